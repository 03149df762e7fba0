"""OpenAI JSON <-> gateway protobuf, and errors -> OpenAI error bodies (no server)."""

import base64

import pytest

from costmesh import errors
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Tier, load_catalog
from costmesh.gateway.http.errors import http_error
from costmesh.gateway.http.openai_format import completion_body, param_of, parse_chat_request

CATALOG = load_catalog()


def parse(**body):
    return parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": "hi"}], **body}, CATALOG)


def test_messages_parts_and_sampling_are_translated():
    png = base64.b64encode(b"\x89PNG fake").decode()
    chat = parse(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                                         {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}]},
        ],
        max_completion_tokens=77, temperature=0.3, top_p=0.9, stop="END", seed=7, stream=True,
        stream_options={"include_usage": True},
        costmesh={"cache": {"ttl_seconds": 60, "tags": ["product:1"], "session_scoped": True},
                  "routing": {"min_tier": "simple", "max_tier": "moderate"}, "session_id": "s1"},
    )
    r = chat.request
    assert [m.role for m in r.messages] == [common.ROLE_SYSTEM, common.ROLE_USER]
    parts = r.messages[1].content
    assert parts[0].text == "What is this?"
    assert parts[1].image.media_type == "image/png" and parts[1].image.data == b"\x89PNG fake"
    assert parts[2].image.url == "https://x.test/a.jpg"
    assert r.sampling.max_tokens == 77 and r.sampling.temperature == pytest.approx(0.3)
    assert r.sampling.top_p == pytest.approx(0.9) and list(r.sampling.stop) == ["END"] and r.sampling.seed == 7
    assert r.cache.ttl_seconds == 60 and list(r.cache.tags) == ["product:1"] and r.cache.session_scoped
    assert r.routing.min_tier == Tier.SIMPLE and r.routing.max_tier == Tier.MODERATE and not r.routing.model
    assert r.session_id == "s1" and chat.stream and chat.include_usage and not r.tenant_id


def test_a_catalog_model_pins_the_route():
    assert parse(model="claude-haiku-4-5").request.routing.model == "claude-haiku-4-5"
    assert parse().request.sampling.max_tokens == 1024


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": ""}, "model"),
        ({"model": "nope"}, "model"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                     "image_url": {"url": "data:text/plain;base64,aGk="}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_completion_tokens": -1}, "max_completion_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"costmesh": {"cache": {"forever": True}}}, "costmesh.cache.forever"),
        ({"costmesh": {"routing": {"model": "x"}}}, "costmesh.routing.model"),
        ({"unknown_thing": 1}, "unknown_thing"),
    ],
)
def test_bad_requests_name_the_parameter(body, param):
    with pytest.raises(errors.InvalidRequest) as error:
        parse(**body)
    assert param_of(str(error.value)) == param


def test_pipeline_field_names_map_to_openai_parameters():
    assert param_of("sampling.max_tokens: must be > 0") == "max_tokens"
    assert param_of("sampling.temperature: must be within [0, 2]") == "temperature"
    assert param_of("cache.ttl_seconds: must be >= 0") == "costmesh.cache.ttl_seconds"
    assert param_of("messages[2].content: empty") == "messages[2].content"
    assert param_of("tenant_id: required") is None
    assert param_of("every model failed") is None


@pytest.mark.parametrize(
    ("error", "status", "type_"),
    [
        (errors.InvalidRequest("max_tokens: bad"), 400, "invalid_request_error"),
        (errors.Unauthenticated("no key"), 401, "invalid_request_error"),
        (errors.NotFound("model: gone"), 404, "invalid_request_error"),
        (errors.RateLimited("slow down", 2.2), 429, "rate_limit_error"),
        (errors.UpstreamTimeout("late"), 504, "timeout_error"),
        (errors.UpstreamError("broken"), 502, "api_error"),
        (errors.Unavailable("down"), 503, "api_error"),
        (RuntimeError("secret detail"), 500, "server_error"),
    ],
)
def test_errors_become_openai_error_bodies(error, status, type_):
    got_status, body, headers = http_error(error)
    assert got_status == status and body["error"]["type"] == type_
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if isinstance(error, errors.RateLimited):
        assert headers == {"retry-after": "3"}
    if status == 500:
        assert "secret" not in body["error"]["message"]


def test_a_cache_hit_reports_no_model_tokens_but_its_cost():
    chat = parse()
    response = gw.CompleteResponse(request_id="r1", text="hi", model="gpt-5-nano", provider="cache", cached=True,
                                   cache_status=gw.CACHE_STATUS_SEMANTIC_HIT, cache_similarity=0.97,
                                   usage=common.TokenUsage(input_tokens=10, output_tokens=5),
                                   cost=common.CostBreakdown(embedding_usd=1.4e-6, total_usd=1.4e-6),
                                   baseline_cost_usd=0.001, saving_usd=0.001 - 1.4e-6, finish_reason="stop")
    body = completion_body(chat, response, created=1)
    assert body["usage"]["total_tokens"] == 0
    assert body["costmesh"]["cache"] == {"hit": True, "status": "semantic_hit", "similarity": pytest.approx(0.97)}
    # whole micro-dollars, as every surface shows amounts
    assert body["costmesh"]["tier"] is None and body["costmesh"]["cost_usd"] == 0.000001
    assert body["costmesh"]["saving_usd"] == 0.000999
    assert body["choices"][0]["message"]["content"] == "hi" and body["id"] == "chatcmpl-r1"
