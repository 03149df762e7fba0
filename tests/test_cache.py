"""The cache service through real gRPC on port 0, against real Redis and the local MiniLM."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from costmesh.api.cache.v1 import cache_pb2 as pb
from costmesh.api.cache.v1 import cache_pb2_grpc
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.config import Env
from costmesh.embeddings import Embedder
from costmesh.rpc.server import ServiceSpec, start_service
from costmesh.services.cache.service import make_mount
from costmesh.tooling.redis_embedded import EmbeddedRedis


@pytest.fixture(scope="module")
async def embedder():
    model = await asyncio.to_thread(Embedder)
    yield model
    await model.aclose()


class Cache:
    """A running cache service and a stub to it."""

    def __init__(self, service, channel):
        self.service = service
        self.channel = channel
        self.stub = cache_pb2_grpc.CacheServiceStub(channel)

    @classmethod
    async def start(cls, redis_url: str, embedder: Embedder, tracer_provider=None, **env: str) -> "Cache":
        spec = ServiceSpec("cache", 0, make_mount(embedder))
        service = await start_service(spec, Env({"COSTMESH_MESH_AUTH": "off",
                                                 "REDIS_URL": redis_url, "COSTMESH_LOG_LEVEL": "warning", **env}),
                                      tracer_provider=tracer_provider, port=0)
        return cls(service, grpc.aio.insecure_channel(service.address))

    async def stop(self) -> None:
        await self.channel.close()
        await self.service.stop(0.5)


@pytest.fixture(scope="module")
async def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture(scope="module")
async def cache(redis_url, embedder, spans):
    running = await Cache.start(redis_url, embedder, spans[0])
    yield running.stub
    await running.stop()


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


def messages(question: str, system: str = "You are a helpful support agent.") -> list[common.Message]:
    out = []
    if system:
        out.append(common.Message(role=common.ROLE_SYSTEM, content=[common.ContentPart(text=system)]))
    out.append(common.Message(role=common.ROLE_USER, content=[common.ContentPart(text=question)]))
    return out


def lookup(tenant: str, question: str, *, system: str = "You are a helpful support agent.", temperature=0.0,
           session: str = "", session_scoped: bool = False) -> pb.LookupRequest:
    return pb.LookupRequest(
        scope=pb.Scope(tenant_id=tenant, session_id=session, session_scoped=session_scoped, model_policy="auto"),
        messages=messages(question, system),
        sampling=common.SamplingParams(temperature=temperature, max_tokens=256),
    )


def store(tenant: str, question: str, answer: str, *, system: str = "You are a helpful support agent.",
          tags=(), ttl_seconds=0, temperature=0.0, finish_reason="stop", quality_passed=True,
          session: str = "", session_scoped: bool = False) -> pb.StoreRequest:
    ask = lookup(tenant, question, system=system, temperature=temperature, session=session,
                 session_scoped=session_scoped)
    return pb.StoreRequest(
        scope=ask.scope, messages=ask.messages, sampling=ask.sampling, text=answer, model="gpt-5-mini",
        usage=common.TokenUsage(input_tokens=40, output_tokens=12), baseline_cost_usd=0.0021, tags=list(tags),
        ttl_seconds=ttl_seconds, finish_reason=finish_reason, quality_passed=quality_passed,
    )


async def lookup_span(exporter: InMemorySpanExporter):
    """The one finished server span of a Lookup (it may end just after the reply is sent)."""
    for _ in range(50):
        found = [s for s in exporter.get_finished_spans() if s.name.endswith("/Lookup")]
        if found:
            [span] = found
            return span
        await asyncio.sleep(0.02)
    raise AssertionError("no Lookup span")


RESET = "How do I reset my password?"
RESET_ANSWER = "Open Settings > Security and click 'Reset password'."


async def test_store_then_exact_hit(cache, tenant):
    stored = await cache.Store(store(tenant, RESET, RESET_ANSWER))
    assert stored.stored and stored.entry_id
    hit = await cache.Lookup(lookup(tenant, "  how do I reset my PASSWORD  "))
    assert hit.kind == pb.HIT_KIND_EXACT
    assert (hit.text, hit.model, hit.entry_id, hit.similarity) == (RESET_ANSWER, "gpt-5-mini", stored.entry_id, 1.0)
    assert hit.usage.input_tokens == 40 and hit.usage.output_tokens == 12
    assert hit.baseline_cost_usd == pytest.approx(0.0021)


async def test_paraphrase_is_a_semantic_hit_carrying_the_embedding(cache, tenant):
    await cache.Store(store(tenant, RESET, RESET_ANSWER))
    hit = await cache.Lookup(lookup(tenant, "How can I reset my password"))
    assert hit.kind == pb.HIT_KIND_SEMANTIC
    assert hit.text == RESET_ANSWER
    assert 0.9 <= hit.similarity < 1.0
    assert len(hit.embedding) == 384 and hit.embedding_model == "all-MiniLM-L6-v2-int8"
    assert hit.embedding_cost_usd == 0.0  # local model


async def test_a_semantic_lookup_encodes_its_query_once_and_reuses_candidate_encodings(cache, embedder, tenant):
    await cache.Store(store(tenant, RESET, RESET_ANSWER))
    assert (await cache.Lookup(lookup(tenant, "How can I reset my password"))).kind == pb.HIT_KIND_SEMANTIC
    embedded = embedder.texts_embedded
    hit = await cache.Lookup(lookup(tenant, "How could I reset my password"))
    assert hit.kind == pb.HIT_KIND_SEMANTIC and hit.text == RESET_ANSWER
    assert embedder.texts_embedded == embedded + 1  # the query only: the candidate's encoding was kept


async def test_miss_carries_the_embedding_and_the_store_reuses_it(cache, embedder, tenant):
    miss = await cache.Lookup(lookup(tenant, "What are your opening hours?"))
    assert miss.kind == pb.HIT_KIND_MISS and len(miss.embedding) == 384
    assert miss.embedding_model == "all-MiniLM-L6-v2-int8"
    request = store(tenant, "What are your opening hours?", "9 to 5, Monday to Friday.")
    request.embedding.extend(miss.embedding)
    request.embedding_model = miss.embedding_model
    embedded = embedder.texts_embedded
    assert (await cache.Store(request)).stored
    assert embedder.texts_embedded == embedded  # the prompt is embedded once
    assert (await cache.Lookup(lookup(tenant, "what are your opening hours"))).kind == pb.HIT_KIND_EXACT


async def test_a_vector_of_another_model_is_never_stored(cache, embedder, tenant):
    # a vector of the right length from another model (a rolling change of model): the cache
    # embeds the prompt itself, so a paraphrase still finds the entry
    for model in ("other-model-384", ""):
        request = store(tenant, f"Where can I download my invoice ({model or 'no model'})?", "Under Billing.")
        request.embedding.extend([1.0] + [0.0] * 383)
        request.embedding_model = model
        embedded = embedder.texts_embedded
        assert (await cache.Store(request)).stored
        assert embedder.texts_embedded == embedded + 1
        found = await cache.Lookup(lookup(tenant, f"Where do I download my invoice ({model or 'no model'})?"))
        assert found.kind == pb.HIT_KIND_SEMANTIC and found.text == "Under Billing."


async def test_tenants_never_share(cache, tenant):
    await cache.Store(store(tenant, RESET, RESET_ANSWER))
    other = tenant + "-b"
    for question in (RESET, "How can I reset my password"):
        assert (await cache.Lookup(lookup(other, question))).kind == pb.HIT_KIND_MISS


async def test_a_different_system_prompt_never_shares(cache, tenant):
    await cache.Store(store(tenant, RESET, RESET_ANSWER))
    for question in (RESET, "How can I reset my password"):
        reply = await cache.Lookup(lookup(tenant, question, system="Answer in French."))
        assert reply.kind == pb.HIT_KIND_MISS


async def test_session_scoped_entries_stay_in_their_session(cache, tenant):
    await cache.Store(store(tenant, RESET, RESET_ANSWER, session="s1", session_scoped=True))
    assert (await cache.Lookup(lookup(tenant, RESET, session="s1", session_scoped=True))).kind == pb.HIT_KIND_EXACT
    assert (await cache.Lookup(lookup(tenant, RESET, session="s2", session_scoped=True))).kind == pb.HIT_KIND_MISS
    assert (await cache.Lookup(lookup(tenant, RESET))).kind == pb.HIT_KIND_MISS


async def test_invalidating_a_tag_removes_exactly_the_entries_carrying_it(cache, tenant):
    entries = {
        "What is the price of the Pro plan?": ["pricing"],
        "Do you ship to Canada?": ["shipping", "pricing"],
        "How do I export my data?": ["export"],
    }
    for question, tags in entries.items():
        assert (await cache.Store(store(tenant, question, f"Answer to {question}", tags=tags))).stored
    other = tenant + "-other"
    await cache.Store(store(other, "What is the price of the Pro plan?", "Other tenant's price", tags=["pricing"]))

    removed = await cache.Invalidate(pb.InvalidateRequest(tenant_id=tenant, tags=["pricing"]))
    assert removed.removed == 2
    kinds = {q: (await cache.Lookup(lookup(tenant, q))).kind for q in entries}
    assert kinds == {
        "What is the price of the Pro plan?": pb.HIT_KIND_MISS,
        "Do you ship to Canada?": pb.HIT_KIND_MISS,
        "How do I export my data?": pb.HIT_KIND_EXACT,
    }
    assert (await cache.Lookup(lookup(other, "What is the price of the Pro plan?"))).kind == pb.HIT_KIND_EXACT


async def test_invalidate_by_entry_id_and_all(cache, tenant):
    first = await cache.Store(store(tenant, RESET, RESET_ANSWER))
    await cache.Store(store(tenant, "How do I export my data?", "Settings > Export."))
    # another tenant cannot remove it by id
    assert (await cache.Invalidate(pb.InvalidateRequest(tenant_id=tenant + "-x", entry_id=first.entry_id))).removed == 0
    assert (await cache.Invalidate(pb.InvalidateRequest(tenant_id=tenant, entry_id=first.entry_id))).removed == 1
    assert (await cache.Lookup(lookup(tenant, RESET))).kind == pb.HIT_KIND_MISS
    assert (await cache.Invalidate(pb.InvalidateRequest(tenant_id=tenant, all=True))).removed == 1
    assert (await cache.Lookup(lookup(tenant, "How do I export my data?"))).kind == pb.HIT_KIND_MISS
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await cache.Invalidate(pb.InvalidateRequest(tenant_id=tenant))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_invalidate_by_session_removes_that_session_only(cache, tenant):
    for session in ("s1", "s2"):
        assert (await cache.Store(store(tenant, RESET, f"{RESET_ANSWER} ({session})", session=session,
                                        session_scoped=True))).stored
    assert (await cache.Store(store(tenant, RESET, RESET_ANSWER))).stored  # tenant-wide entry
    assert (await cache.Invalidate(pb.InvalidateRequest(tenant_id=tenant + "-x", session_id="s1"))).removed == 0
    assert (await cache.Invalidate(pb.InvalidateRequest(tenant_id=tenant, session_id="s1"))).removed == 1
    kinds = [(await cache.Lookup(lookup(tenant, RESET, session=s, session_scoped=bool(s)))).kind
             for s in ("s1", "s2", "")]
    assert kinds == [pb.HIT_KIND_MISS, pb.HIT_KIND_EXACT, pb.HIT_KIND_EXACT]


async def test_an_expired_entry_is_a_miss(cache, tenant):
    assert (await cache.Store(store(tenant, RESET, RESET_ANSWER, ttl_seconds=1))).stored
    assert (await cache.Lookup(lookup(tenant, RESET))).kind == pb.HIT_KIND_EXACT
    await asyncio.sleep(1.3)
    assert (await cache.Lookup(lookup(tenant, RESET))).kind == pb.HIT_KIND_MISS
    assert (await cache.Lookup(lookup(tenant, "How can I reset my password"))).kind == pb.HIT_KIND_MISS


async def test_negation_trap_is_rejected_by_the_verifier(cache, tenant, spans):
    before = (await cache.GetStats(pb.GetStatsRequest())).verifier_rejections
    await cache.Store(store(tenant, "cancel my subscription", "Your subscription is cancelled."))
    spans[1].clear()
    reply = await cache.Lookup(lookup(tenant, "don't cancel my subscription"))
    assert reply.kind == pb.HIT_KIND_MISS and reply.text == ""
    assert (await cache.GetStats(pb.GetStatsRequest())).verifier_rejections == before + 1
    span = await lookup_span(spans[1])
    assert span.attributes["costmesh.cache.verifier"] == "rejected"
    assert span.attributes["costmesh.cache.hit_kind"] == "miss"


async def test_span_attributes_of_a_semantic_hit(cache, tenant, spans):
    await cache.Store(store(tenant, RESET, RESET_ANSWER))
    spans[1].clear()
    await cache.Lookup(lookup(tenant, "How can I reset my password"))
    span = await lookup_span(spans[1])
    assert span.attributes["costmesh.cache.hit_kind"] == "semantic"
    assert span.attributes["costmesh.cache.verifier"] == "accepted"
    assert span.attributes["costmesh.cache.similarity"] > 0.9


async def test_sampled_requests_are_not_cacheable(cache, tenant):
    await cache.Store(store(tenant, RESET, RESET_ANSWER))
    before = (await cache.GetStats(pb.GetStatsRequest())).not_cacheable
    reply = await cache.Lookup(lookup(tenant, RESET, temperature=0.8))
    assert reply.kind == pb.HIT_KIND_NOT_CACHEABLE and len(reply.embedding) == 384
    assert (await cache.GetStats(pb.GetStatsRequest())).not_cacheable == before + 1
    refused = await cache.Store(store(tenant, "Write me a poem", "Roses...", temperature=0.8))
    assert not refused.stored and "temperature" in refused.reason


@pytest.mark.parametrize("answer, finish_reason, quality_passed, reason", [
    ("", "stop", True, "empty"),
    ("I'm sorry, but I can't help with that.", "stop", True, "refusal"),
    ("The answer is cut sho", "length", True, "finish_reason"),
    ("A fine answer.", "stop", False, "quality"),
])
async def test_answers_not_worth_reusing_are_refused(cache, tenant, answer, finish_reason, quality_passed, reason):
    before = (await cache.GetStats(pb.GetStatsRequest())).stores_refused
    reply = await cache.Store(store(tenant, "Tell me about refunds", answer, finish_reason=finish_reason,
                                    quality_passed=quality_passed))
    assert not reply.stored and reason in reply.reason
    assert (await cache.Lookup(lookup(tenant, "Tell me about refunds"))).kind == pb.HIT_KIND_MISS
    assert (await cache.GetStats(pb.GetStatsRequest())).stores_refused == before + 1


async def test_a_request_without_tenant_is_invalid(cache):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await cache.Lookup(lookup("", RESET))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_stats(cache, tenant):
    await cache.Store(store(tenant, RESET, RESET_ANSWER))
    assert (await cache.Lookup(lookup(tenant, RESET))).kind == pb.HIT_KIND_EXACT
    assert (await cache.Lookup(lookup(tenant, "How can I reset my password"))).kind == pb.HIT_KIND_SEMANTIC
    assert (await cache.Lookup(lookup(tenant, "Where is my parcel?"))).kind == pb.HIT_KIND_MISS
    stats = await cache.GetStats(pb.GetStatsRequest())
    assert stats.lookups == stats.exact_hits + stats.semantic_hits + stats.misses
    assert stats.exact_hits >= 1 and stats.semantic_hits >= 1 and stats.stores >= 1
    assert stats.entries >= 1 and stats.bytes_per_entry > 384 * 4
    assert 0 < stats.hit_rate < 1 and 0.9 <= stats.avg_hit_similarity <= 1
    assert stats.index_name == "costmesh-cache-all-minilm-l6-v2-int8-f16"
    assert stats.embedding_model == "all-MiniLM-L6-v2-int8"
    assert stats.errors == 0


async def test_float16_and_float32_vectors_live_in_separate_indexes_and_both_hit(redis_url, embedder, tenant):
    prefix = f"costmesh-dtype-{uuid.uuid4().hex[:8]}"
    half = await Cache.start(redis_url, embedder, COSTMESH_CACHE_INDEX_PREFIX=prefix)
    full = await Cache.start(redis_url, embedder, COSTMESH_CACHE_INDEX_PREFIX=prefix,
                             COSTMESH_CACHE_VECTOR_DTYPE="float32")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        names = [(await c.stub.GetStats(pb.GetStatsRequest())).index_name for c in (half, full)]
        assert names == [f"{prefix}-all-minilm-l6-v2-int8-f16", f"{prefix}-all-minilm-l6-v2-int8"]
        stored = await half.stub.Store(store(tenant, RESET, RESET_ANSWER))
        assert (await admin.hstrlen(f"{names[0]}:{stored.entry_id}", "prompt_vector")) == 384 * 2
        hit = await half.stub.Lookup(lookup(tenant, "How can I reset my password"))
        assert hit.kind == pb.HIT_KIND_SEMANTIC and hit.text == RESET_ANSWER and 0.9 <= hit.similarity < 1.0
        # the float32 index never sees the float16 entry (the exact tier neither: other keys)
        assert (await full.stub.Lookup(lookup(tenant, "How can I reset my password"))).kind == pb.HIT_KIND_MISS
        stored = await full.stub.Store(store(tenant, RESET, RESET_ANSWER))
        assert (await admin.hstrlen(f"{names[1]}:{stored.entry_id}", "prompt_vector")) == 384 * 4
        again = await full.stub.Lookup(lookup(tenant, "How can I reset my password"))
        assert again.kind == pb.HIT_KIND_SEMANTIC and again.similarity == pytest.approx(hit.similarity, abs=2e-3)
        for name in names:  # only the vector and the filter tags are indexed
            info = await admin.execute_command("FT.INFO", name)
            indexed = sorted(a[b"identifier"].decode() for a in info[b"attributes"])
            assert indexed == ["prompt_vector", "scope", "session", "tags", "tenant"]
    finally:
        for name in names:
            await admin.execute_command("FT.DROPINDEX", name, "DD")
        await admin.aclose()
        await half.stop()
        await full.stop()


# -- the learned verifier and its operating point -----------------------------------------------

@pytest.mark.parametrize("stored, asked", [
    ("Please cancel my Netflix subscription.", "Please cancel my Spotify subscription."),
    ("Set an alarm for 7 am on Monday.", "Set an alarm for 8 am on Monday."),
    ("Book a table for 4 people at Nobu on Friday.", "Book a table for 4 people at Nobu on Saturday."),
    ("Delete this email from Alice.", "Delete all emails from Alice."),
    ("Convert 100 USD to EUR.", "Convert 100 EUR to USD."),
])
async def test_traps_are_rejected_by_the_learned_verifier(cache, tenant, stored, asked):
    await cache.Store(store(tenant, stored, "Done."))
    reply = await cache.Lookup(lookup(tenant, asked))
    assert reply.kind == pb.HIT_KIND_MISS and reply.text == ""


async def test_stats_report_the_operating_point(cache):
    from costmesh.verification.artifact import VerifierArtifact

    stats = await cache.GetStats(pb.GetStatsRequest())
    point = VerifierArtifact.load().operating_point(0.05)
    assert stats.verifier == "learned-v1+cross-encoder" and stats.max_false_hit_rate == pytest.approx(0.05)
    assert stats.verifier_threshold == pytest.approx(point.threshold)
    assert stats.calibrated_false_hit_rate <= 0.05 and stats.calibrated_recall == pytest.approx(point.quora_recall)


async def test_a_stricter_false_hit_bound_raises_the_threshold(redis_url, embedder):
    strict = await Cache.start(redis_url, embedder, COSTMESH_CACHE_MAX_FALSE_HIT_RATE="0.01")
    try:
        stats = await strict.stub.GetStats(pb.GetStatsRequest())
    finally:
        await strict.stop()
    from costmesh.verification.artifact import VerifierArtifact

    default = VerifierArtifact.load().operating_point(0.05)
    assert stats.max_false_hit_rate == pytest.approx(0.01)
    assert stats.verifier_threshold >= default.threshold and stats.calibrated_false_hit_rate <= 0.01


async def test_a_failing_verifier_is_a_miss_counted_once_as_an_error(redis_url, embedder, tenant, monkeypatch):
    from costmesh.services.cache.verifier import LearnedVerifier

    async def broken(self, *args, **kwargs):
        raise RuntimeError("the cross-encoder crashed")

    running = await Cache.start(redis_url, embedder)
    try:
        await running.stub.Store(store(tenant, RESET, RESET_ANSWER))
        monkeypatch.setattr(LearnedVerifier, "verify_many", broken)
        before = await running.stub.GetStats(pb.GetStatsRequest())
        reply = await running.stub.Lookup(lookup(tenant, "How can I reset my password"))
        after = await running.stub.GetStats(pb.GetStatsRequest())
    finally:
        await running.stop()
    assert reply.kind == pb.HIT_KIND_MISS and not reply.text
    assert len(reply.embedding) == 384  # the store after the provider's answer still reuses it
    assert (after.errors - before.errors, after.misses - before.misses) == (1, 1)
    assert after.verifier_rejections == before.verifier_rejections  # it judged nothing: no rejection


async def test_tenant_policies_set_ttl_and_consent_to_sampled_caching(redis_url, embedder, tenant):
    gold = tenant + "-gold"
    policies = '{"%s": {"ttl_s": 1, "allow_sampled": true}}' % gold
    running = await Cache.start(redis_url, embedder, COSTMESH_CACHE_TENANT_POLICIES=policies)
    stub = running.stub
    try:
        assert (await stub.Store(store(gold, "Write a haiku about rain", "Rain...", temperature=0.7))).stored
        assert (await stub.Lookup(lookup(gold, "Write a haiku about rain", temperature=0.7))).kind == pb.HIT_KIND_EXACT
        refused = await stub.Store(store(tenant, "Write a haiku about rain", "Rain...", temperature=0.7))
        assert not refused.stored and "temperature" in refused.reason
        assert (await stub.Store(store(tenant, RESET, RESET_ANSWER))).stored  # the default TTL (a day)
        await asyncio.sleep(1.3)
        assert (await stub.Lookup(lookup(gold, "Write a haiku about rain", temperature=0.7))).kind == pb.HIT_KIND_MISS
        assert (await stub.Lookup(lookup(tenant, RESET))).kind == pb.HIT_KIND_EXACT
    finally:
        await running.stop()


async def test_embed_full_shares_the_forward_pass_of_concurrent_embeds(embedder):
    before = embedder.batches
    plain, full = await asyncio.gather(embedder.embed(["How do I reset my password?"]),
                                       embedder.embed_full(["How can I reset my password", "Where is my parcel?"]))
    assert embedder.batches == before + 1
    assert len(plain[0]) == 384 and full[0].tokens.shape[1] == 384 and len(full[0].tokens) >= 5
    alone = await embedder.embed(["How do I reset my password?"])
    assert alone[0] == pytest.approx(plain[0], abs=1e-4)


# -- faults: a Redis of its own, stopped and restarted --------------------------------------------

async def test_redis_down_fails_open_and_recovers_after_restart(embedder, tenant):
    redis_server = EmbeddedRedis(extra_args=("--enable-debug-command", "yes")).start()
    cache = await Cache.start(redis_server.url, embedder, COSTMESH_CACHE_REDIS_COOLDOWN_MS="200")
    stub = cache.stub
    try:
        assert (await stub.Store(store(tenant, RESET, RESET_ANSWER))).stored
        assert (await stub.Lookup(lookup(tenant, RESET))).kind == pb.HIT_KIND_EXACT

        # slower than the deadline (250 ms): a miss after about the deadline (plus embedding),
        # long before Redis answers again
        admin = aioredis.Redis.from_url(redis_server.url)
        sleeper = asyncio.create_task(admin.execute_command("DEBUG", "SLEEP", "2"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        reply = await stub.Lookup(lookup(tenant, RESET))
        assert reply.kind == pb.HIT_KIND_UNAVAILABLE and len(reply.embedding) == 384
        assert time.monotonic() - started < 1.5
        await sleeper
        await admin.aclose()

        redis_server.stop()
        for _ in range(3):
            started = time.monotonic()
            reply = await stub.Lookup(lookup(tenant, "How can I reset my password"))
            assert reply.kind == pb.HIT_KIND_UNAVAILABLE
            assert time.monotonic() - started < 1.5
        dropped = await stub.Store(store(tenant, "How do I export my data?", "Settings > Export."))
        assert not dropped.stored and "unavailable" in dropped.reason
        stats = await stub.GetStats(pb.GetStatsRequest())
        assert stats.errors >= 5 and stats.stores_dropped == 1 and stats.entries == 0 and not stats.redis_available

        redis_server.start()  # same port, empty: the index must come back by itself
        deadline = time.monotonic() + 10
        while (await stub.Lookup(lookup(tenant, RESET))).kind == pb.HIT_KIND_UNAVAILABLE:
            assert time.monotonic() < deadline, "the cache did not recover after Redis came back"
            await asyncio.sleep(0.1)
        assert (await stub.Store(store(tenant, RESET, RESET_ANSWER))).stored
        assert (await stub.Lookup(lookup(tenant, RESET))).kind == pb.HIT_KIND_EXACT
        assert (await stub.Lookup(lookup(tenant, "How can I reset my password"))).kind == pb.HIT_KIND_SEMANTIC
        recovered = await stub.GetStats(pb.GetStatsRequest())
        assert recovered.entries == 1 and recovered.redis_available
    finally:
        await cache.stop()
        redis_server.stop()


async def test_starts_and_fails_open_when_redis_is_down_from_the_start(embedder, tenant):
    from costmesh.tooling.redis_embedded import free_port

    cache = await Cache.start(f"redis://127.0.0.1:{free_port()}", embedder)
    try:
        reply = await cache.stub.Lookup(lookup(tenant, RESET))
        assert reply.kind == pb.HIT_KIND_UNAVAILABLE and len(reply.embedding) == 384
        assert not (await cache.stub.Store(store(tenant, RESET, RESET_ANSWER))).stored
        with pytest.raises(grpc.aio.AioRpcError) as info:  # invalidation must not silently do nothing
            await cache.stub.Invalidate(pb.InvalidateRequest(tenant_id=tenant, all=True))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await cache.stop()


async def test_embedding_cost_comes_from_the_catalog(redis_url, embedder, tenant, tmp_path):
    from costmesh.catalog.model import DEFAULT_CATALOG
    from costmesh.tokens import count_tokens

    catalog = tmp_path / "models.toml"
    text = DEFAULT_CATALOG.read_text()
    assert "[embedding]" in text
    head, tail = text.split("[embedding]", 1)
    tail = "\n".join(line for line in tail.splitlines() if not line.startswith("usd_per_mtok"))
    catalog.write_text(head + "[embedding]\nusd_per_mtok = 0.02" + tail)
    cache = await Cache.start(redis_url, embedder, COSTMESH_CATALOG=str(catalog))
    try:
        reply = await cache.stub.Lookup(lookup(tenant, "What are your opening hours?"))
        assert reply.embedding_cost_usd == pytest.approx(count_tokens("What are your opening hours?") * 0.02 / 1e6)
    finally:
        await cache.stop()


# -- tools (issue 18): scoped by the tools offered; tool-calling answers served to exact repeats only --

WEATHER_CALL = common.ToolCall(id="call_1", name="get_weather", arguments_json='{"city": "Paris"}')


def tool_lookup(tenant: str, question: str, *, spec: str = "tools-a", opt_in: bool = False,
                results: bool = False) -> pb.LookupRequest:
    ask = lookup(tenant, question)
    ask.scope.output_spec = spec
    ask.scope.semantic_tool_answers = opt_in
    if results:  # the conversation goes on after a tool call: the model called, the tool answered
        ask.messages.append(common.Message(role=common.ROLE_ASSISTANT, tool_calls=[WEATHER_CALL]))
        ask.messages.append(common.Message(role=common.ROLE_TOOL, tool_call_id="call_1",
                                           content=[common.ContentPart(text="18 C, sunny")]))
    return ask


def tool_store(ask: pb.LookupRequest, *, text: str = "", calls=(WEATHER_CALL,)) -> pb.StoreRequest:
    return pb.StoreRequest(
        scope=ask.scope, messages=ask.messages, sampling=ask.sampling, text=text, model="gpt-5-mini",
        usage=common.TokenUsage(input_tokens=40, output_tokens=12), baseline_cost_usd=0.0021,
        finish_reason="tool_use" if calls else "stop", quality_passed=True, tool_calls=list(calls),
    )


async def test_an_answer_calling_tools_is_served_to_an_exact_repeat_only(cache, tenant):
    question = "What is the weather in Paris right now?"
    stored = await cache.Store(tool_store(tool_lookup(tenant, question)))
    assert stored.stored, stored.reason
    hit = await cache.Lookup(tool_lookup(tenant, "what is the weather in paris right now"))
    assert hit.kind == pb.HIT_KIND_EXACT
    calls = [(c.id, c.name, c.arguments_json) for c in hit.tool_calls]
    assert calls == [("call_1", "get_weather", '{"city": "Paris"}')]
    paraphrase = await cache.Lookup(tool_lookup(tenant, "What's the weather like in Paris at the moment?"))
    assert paraphrase.kind == pb.HIT_KIND_MISS
    opted_in = await cache.Lookup(tool_lookup(tenant, "What's the weather like in Paris at the moment?", opt_in=True))
    assert opted_in.kind == pb.HIT_KIND_SEMANTIC and opted_in.tool_calls[0].name == "get_weather"


async def test_other_tools_or_no_tools_never_share_an_answer(cache, tenant):
    question = "What is the weather in Paris right now?"
    await cache.Store(tool_store(tool_lookup(tenant, question, spec="tools-a")))
    assert (await cache.Lookup(tool_lookup(tenant, question, spec="tools-b"))).kind == pb.HIT_KIND_MISS
    assert (await cache.Lookup(lookup(tenant, question))).kind == pb.HIT_KIND_MISS


async def test_a_conversation_with_tool_results_is_served_from_the_exact_tier_only(cache, tenant):
    question = "What is the weather in Paris right now?"
    ask = tool_lookup(tenant, question, results=True)
    stored = await cache.Store(tool_store(ask, text="It is 18 C and sunny in Paris.", calls=()))
    assert stored.stored, stored.reason
    assert (await cache.Lookup(tool_lookup(tenant, question, results=True))).kind == pb.HIT_KIND_EXACT
    paraphrase = tool_lookup(tenant, "What's the weather like in Paris at the moment?", results=True)
    assert (await cache.Lookup(paraphrase)).kind == pb.HIT_KIND_MISS
    paraphrase.scope.semantic_tool_answers = True
    assert (await cache.Lookup(paraphrase)).kind == pb.HIT_KIND_SEMANTIC


async def test_a_tool_call_answer_cut_short_is_not_stored(cache, tenant):
    request = tool_store(tool_lookup(tenant, "What is the weather in Paris right now?"))
    request.finish_reason = "length"
    stored = await cache.Store(request)
    assert not stored.stored and "finish_reason" in stored.reason
