"""Cache core logic on its own: scope keys, normalisation, verifier, policy, guard, batching."""

from __future__ import annotations

import asyncio

import pytest

from costmesh.domain import Image, Message, Part, Role, Sampling
from costmesh.embeddings import Embedder
from costmesh.errors import InvalidRequest
from costmesh.services.cache.guard import RedisGuard, RedisUnavailable
from costmesh.services.cache.policy import CachePolicy, is_refusal
from costmesh.services.cache.scope import Scope, normalise_query, scope_query
from costmesh.services.cache.semantic import index_name_for
from costmesh.services.cache.verifier import RuleVerifier

from fake_models import FakeModel

U, A, S = Role.USER, Role.ASSISTANT, Role.SYSTEM


def conv(*pairs: tuple[Role, str]) -> tuple[Message, ...]:
    return tuple(Message.of(role, text) for role, text in pairs)


def key(scope=Scope("t1"), messages=conv((U, "hi")), sampling=Sampling()):
    return scope_query(scope, messages, sampling)


# -- normalisation and scope ---------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("How do I reset my password?", "how do i reset my password"),
    ("  How   do I\treset\nmy password ?!  ", "how do i reset my password"),
    ("What is 2.5", "what is 2.5"),
    ("Ｗｈａｔ？", "what"),
])
def test_normalise_query(raw, expected):
    assert normalise_query(raw) == expected


def test_query_is_the_last_user_message_and_case_and_punctuation_share_an_entry():
    q1 = key(messages=conv((S, "be brief"), (U, "How do I reset my password?")))
    q2 = key(messages=conv((S, "be brief"), (U, "how do i reset my password")))
    assert q1.query == "How do I reset my password?"
    assert q1.scope_key == q2.scope_key and q1.entry_id == q2.entry_id


@pytest.mark.parametrize("change", [
    {"scope": Scope("t2")},
    {"scope": Scope("t1", model_policy="gpt-5.1")},
    {"messages": conv((S, "be verbose"), (U, "hi"))},
    {"messages": conv((U, "earlier"), (A, "reply"), (U, "hi"))},
    {"sampling": Sampling(temperature=0.0)},
    {"sampling": Sampling(top_p=0.5)},
    {"sampling": Sampling(max_tokens=10)},
    {"sampling": Sampling(stop=("\n",))},
    {"sampling": Sampling(seed=7)},
])
def test_every_scope_field_changes_the_scope_key(change):
    base = dict(scope=Scope("t1"), messages=conv((S, "be brief"), (U, "hi")), sampling=Sampling())
    assert key(**base).scope_key != key(**{**base, **change}).scope_key


def test_session_counts_only_when_session_scoped():
    assert key(Scope("t", "s1")).scope_key == key(Scope("t", "s2")).scope_key
    assert key(Scope("t", "s1", True)).scope_key != key(Scope("t", "s2", True)).scope_key


def test_an_image_in_the_query_message_is_part_of_the_scope():
    def with_image(data: bytes):
        return (Message(U, (Part(text="what is this?"), Part(image=Image("image/png", data)))),)
    assert key(messages=with_image(b"cat")).scope_key != key(messages=with_image(b"dog")).scope_key


@pytest.mark.parametrize("scope, messages, field", [
    (Scope(""), conv((U, "hi")), "tenant_id"),
    (Scope("t", session_scoped=True), conv((U, "hi")), "session_id"),
    (Scope("t"), conv((S, "sys")), "messages"),
])
def test_scope_rejects_what_it_cannot_key(scope, messages, field):
    with pytest.raises(InvalidRequest, match=field):
        scope_query(scope, messages, Sampling())


def test_index_name_carries_the_model():
    assert index_name_for("all-MiniLM-L6-v2") == "costmesh-cache-all-minilm-l6-v2"
    assert index_name_for("text-embedding-3-small") != index_name_for("all-MiniLM-L6-v2")


def test_index_name_carries_the_vector_type():
    assert index_name_for("all-MiniLM-L6-v2", dtype="float16") == "costmesh-cache-all-minilm-l6-v2-f16"
    assert index_name_for("all-MiniLM-L6-v2", dtype="float16") != index_name_for("all-MiniLM-L6-v2", dtype="float32")
    with pytest.raises(ValueError, match="dtype"):
        index_name_for("all-MiniLM-L6-v2", dtype="int8")


def test_metadata_leaves_out_defaults_and_round_trips():
    from costmesh.domain import Usage
    from costmesh.services.cache.records import CachedAnswer

    bare = CachedAnswer("An answer.")
    assert bare.metadata() == {}
    assert CachedAnswer.from_metadata("An answer.", bare.metadata()) == bare
    full = CachedAnswer("An answer.", "gpt-5-mini", Usage(input_tokens=40, output_tokens=12), 0.0021, "acme",
                        ("product:42",), "length")
    assert full.metadata()["usage"] == {"input_tokens": 40, "output_tokens": 12}
    assert CachedAnswer.from_metadata("An answer.", full.metadata()) == full


# -- verifier -------------------------------------------------------------------------------

verifier = RuleVerifier(0.90)


@pytest.mark.parametrize("query, candidate", [
    ("How can I reset my password", "How do I reset my password?"),
    ("What is your refund policy?", "What is the refund policy?"),
    ("Who is the author of Hamlet?", "Who wrote Hamlet?"),
    ("what is the capital of france", "What is the capital of France?"),
    ("I can't log in, what should I do?", "What should I do if I cannot log in?"),
])
def test_verifier_accepts_paraphrases(query, candidate):
    assert verifier.verify(query, candidate, 0.95).accepted


@pytest.mark.parametrize("query, candidate, reason", [
    ("don't cancel my subscription", "cancel my subscription", "negation"),
    ("cancel my subscription", "do not cancel my subscription", "negation"),
    ("Never show me ads", "Show me ads", "negation"),
    ("keep my subscription", "cancel my subscription", "opposite"),
    ("How do I disable two-factor auth?", "How do I enable two-factor auth?", "opposite"),
    ("What is 2+3?", "What is 2+2?", "numbers"),
    ("Book a table for two", "Book a table for four", "numbers"),
    ("Book a flight to London on March 3", "Book a flight to London on March 4", "numbers"),
    ("Weather in Paris tomorrow?", "Weather in Paris today?", "dates"),
    ("Is the store open on Sunday?", "Is the store open on Monday?", "dates"),
    ("What is the capital of Germany?", "What is the capital of France?", "entities"),
    ("How do I install Postgres on Ubuntu?", "How do I install Postgres on Debian?", "entities"),
])
def test_verifier_rejects_traps(query, candidate, reason):
    verdict = verifier.verify(query, candidate, 0.96)
    assert not verdict.accepted and verdict.reason.startswith(reason)


def test_verifier_rejects_below_the_similarity_floor():
    assert verifier.verify("How do I reset my password?", "How do I reset my password", 0.89).reason == "similarity"


# -- policy ---------------------------------------------------------------------------------

def test_sampled_requests_are_not_cacheable_unless_allowed():
    assert CachePolicy().lookup_refusal(Sampling(temperature=0.7))
    assert not CachePolicy().lookup_refusal(Sampling(temperature=0.0))
    assert not CachePolicy().lookup_refusal(Sampling())
    assert not CachePolicy(allow_sampled=True).lookup_refusal(Sampling(temperature=0.7))


@pytest.mark.parametrize("text, finish, quality, reason", [
    ("", "stop", True, "empty"),
    ("   ", "stop", True, "empty"),
    ("Half an ans", "length", True, "finish_reason"),
    ("An answer", "", True, "finish_reason"),
    ("An answer", "stop", False, "quality"),
    ("I'm sorry, but I can't help with that.", "stop", True, "refusal"),
    ("As an AI language model, I cannot do that.", "end_turn", True, "refusal"),
])
def test_store_refusals(text, finish, quality, reason):
    assert reason in CachePolicy().store_refusal(Sampling(), text, finish, quality)


def test_good_answers_may_be_stored():
    for finish in ("stop", "end_turn", "stop_sequence"):
        assert CachePolicy().store_refusal(Sampling(), "Click 'Forgot password'.", finish, True) == ""
    assert not is_refusal("I can help with that: click 'Forgot password'.")


# -- guard ----------------------------------------------------------------------------------

async def _fast() -> str:
    return "ok"


def _slow(seconds: float):
    async def call() -> str:
        await asyncio.sleep(seconds)
        return "done"
    return call


def _guard(now: list[float]) -> RedisGuard:
    guard = RedisGuard(timeout_s=0.05, cooldown_s=1.0, clock=lambda: now[0])
    guard.needs_index = False
    return guard


async def test_guard_times_out_cools_down_and_recovers():
    now = [0.0]
    guard = _guard(now)
    with pytest.raises(RedisUnavailable, match="timeout"):
        await guard.call(_slow(1))
    assert guard.needs_index  # a restarted Redis may have lost the index
    with pytest.raises(RedisUnavailable, match="cooling down"):
        await guard.call(_fast)
    now[0] = 1.5
    assert await guard.call(_fast) == "ok"


async def test_a_slow_admin_call_fails_alone_and_lookups_go_on():
    guard = _guard([0.0])
    with pytest.raises(RedisUnavailable, match="timeout after 100 ms"):
        await guard.call(_slow(0.2), timeout_s=0.1, trip_on_timeout=False)
    assert guard.available and not guard.needs_index and await guard.call(_fast) == "ok"  # no cool-down
    assert await guard.call(_slow(0.2), timeout_s=1.0, trip_on_timeout=False) == "done"  # its own, longer deadline


async def test_guard_connection_errors_trip_and_command_errors_do_not():
    from redis.exceptions import ConnectionError, ResponseError

    guard = RedisGuard(timeout_s=1, cooldown_s=60)

    async def raise_(exc):
        raise exc

    with pytest.raises(RedisUnavailable):
        await guard.call(lambda: raise_(ResponseError("OOM command not allowed")))
    assert guard.available
    with pytest.raises(RedisUnavailable):
        await guard.call(lambda: raise_(ConnectionError("refused")))
    assert not guard.available


# -- embedder batching ------------------------------------------------------------------------

async def test_concurrent_embeds_share_one_forward_pass():
    model = FakeModel()
    embedder = Embedder(model=model, window_ms=20, max_batch=64, warmup=False)
    texts = [f"text {'x' * i}" for i in range(10)]
    results = await asyncio.gather(*[embedder.embed([t]) for t in texts])
    assert model.sizes == [10]
    for text, [vector] in zip(texts, results):
        assert vector == pytest.approx(model.encode([text])[0].tolist())
    assert embedder.dims == 4
    await embedder.aclose()


async def test_batches_are_bounded_and_batching_can_be_switched_off():
    model = FakeModel()
    embedder = Embedder(model=model, window_ms=20, max_batch=4, warmup=False)
    await asyncio.gather(*[embedder.embed([str(i)]) for i in range(10)])
    assert max(model.sizes) <= 4 and sum(model.sizes) == 10
    await embedder.aclose()

    model = FakeModel()
    baseline = Embedder(model=model, batching=False, warmup=False)
    await asyncio.gather(*[baseline.embed([str(i)]) for i in range(5)])
    assert model.sizes == [1] * 5
    await baseline.aclose()


# -- per-tenant policy -------------------------------------------------------------------------

def test_tenant_policy_overrides_ttl_and_sampled_consent():
    policy = CachePolicy(ttl_s=600, tenants={"gold": {"ttl_s": 60, "allow_sampled": True}})
    assert policy.ttl_for("gold") == 60 and policy.ttl_for("other") == 600
    assert policy.ttl_for("gold", requested_s=5) == 5  # the request's own TTL wins
    assert not policy.lookup_refusal(Sampling(temperature=0.7), "gold")
    assert policy.lookup_refusal(Sampling(temperature=0.7), "other")
    assert "temperature" in policy.store_refusal(Sampling(temperature=0.7), "An answer", "stop", True, "other")
    assert policy.store_refusal(Sampling(temperature=0.7), "An answer", "stop", True, "gold") == ""


@pytest.mark.parametrize("raw, field", [
    ("not json", "not JSON"),
    ('["gold"]', "must be an object"),
    ('{"gold": {"ttl": 5}}', "fields are"),
    ('{"gold": {"ttl_s": "5"}}', "gold'].ttl_s"),
    ('{"gold": {"ttl_s": 0}}', "gold'].ttl_s"),
    ('{"gold": {"allow_sampled": 1}}', "allow_sampled"),
])
def test_bad_tenant_policies_name_the_field(raw, field):
    from costmesh.config import Env
    from costmesh.errors import ConfigError
    from costmesh.services.cache.config import CacheConfig

    with pytest.raises(ConfigError, match="COSTMESH_CACHE_TENANT_POLICIES") as info:
        CacheConfig.from_env(Env({"COSTMESH_CACHE_TENANT_POLICIES": raw}))
    assert field in str(info.value)


@pytest.mark.parametrize("env, message", [
    ({"COSTMESH_CACHE_VERIFIER": "magic"}, "COSTMESH_CACHE_VERIFIER"),
    ({"COSTMESH_CACHE_MAX_FALSE_HIT_RATE": "1.5"}, "COSTMESH_CACHE_MAX_FALSE_HIT_RATE"),
    ({"COSTMESH_CACHE_VECTOR_DTYPE": "int8"}, "COSTMESH_CACHE_VECTOR_DTYPE"),
    ({"COSTMESH_CACHE_ENCODING_CACHE": "-1"}, "COSTMESH_CACHE_ENCODING_CACHE"),
])
def test_bad_verifier_settings_fail_at_start(env, message):
    from costmesh.config import Env
    from costmesh.errors import ConfigError
    from costmesh.services.cache.config import CacheConfig

    with pytest.raises(ConfigError, match=message):
        CacheConfig.from_env(Env(env))


async def test_cosine_verifier_is_a_plain_threshold():
    from costmesh.services.cache.verifier import CosineVerifier

    verdicts = await CosineVerifier(0.8).verify_many("q", [("a", 0.81), ("b", 0.79)])
    assert [v.accepted for v in verdicts] == [True, False]
