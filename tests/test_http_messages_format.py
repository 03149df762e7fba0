"""Anthropic Messages API JSON <-> the gateway's protos (no server): the request's translation,
the Anthropic parameter each error names (the parser's, and the pipeline's validation's through
the origin of each proto message), the reply, the SSE events as the anthropic SDK assembles
them, and Anthropic's error bodies."""

import base64
import json

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costmesh import errors
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Tier, load_catalog
from costmesh.gateway.http.anthropic_format import parse_messages_request
from costmesh.gateway.http.anthropic_replies import message_body
from costmesh.gateway.http.anthropic_stream import MessageEvents
from costmesh.gateway.http.errors import anthropic_error
from costmesh.gateway.validation import Limits, validate

CATALOG = load_catalog()
PNG = base64.b64encode(b"\x89PNG fake").decode()
EPHEMERAL = {"type": "ephemeral"}
WEATHER = {"name": "get_weather", "description": "The weather in a city.", "cache_control": EPHEMERAL,
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CLOCK = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
LOOP = [
    {"role": "user", "content": [
        {"type": "text", "text": "Weather and time in Paris? See the photo."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
         "content": [{"type": "text", "text": "clock down"}]},
        {"type": "text", "text": "And tomorrow?", "cache_control": EPHEMERAL}]},
]


def parse(**body):
    return parse_messages_request({"model": "auto", "max_tokens": 300,
                                   "messages": [{"role": "user", "content": "hi"}], **body}, CATALOG)


def checked(**body):
    parsed = parse(**body)
    parsed.request.tenant_id = "t"
    try:
        validate(parsed.request, Limits())
    except errors.InvalidRequest as exc:
        raise errors.InvalidRequest(parsed.rename(str(exc))) from None
    return parsed


def test_a_tool_loop_with_system_blocks_images_and_cache_control_is_translated():
    parsed = checked(
        system=[{"type": "text", "text": "Use the tools.", "cache_control": EPHEMERAL},
                {"type": "text", "text": "Be brief."}],
        messages=LOOP, tools=[WEATHER, CLOCK], tool_choice={"type": "any", "disable_parallel_tool_use": True},
        temperature=0.2, top_p=0.9, top_k=5, stop_sequences=["END"], metadata={"user_id": "u1"},
        costmesh={"cache": {"ttl_seconds": 60, "semantic_tool_answers": True}, "routing": {"max_tier": "moderate"}},
    )
    r = parsed.request
    assert [m.role for m in r.messages] == [common.ROLE_SYSTEM, common.ROLE_USER, common.ROLE_ASSISTANT,
                                            common.ROLE_TOOL, common.ROLE_TOOL, common.ROLE_USER]
    system = r.messages[0]
    assert [(p.text, p.cache_breakpoint) for p in system.content] == [("Use the tools.", True), ("Be brief.", False)]
    assert r.messages[1].content[1].image.media_type == "image/png"
    assert r.messages[1].content[1].image.data == b"\x89PNG fake"
    assistant = r.messages[2]
    assert assistant.content[0].text == "Checking."
    assert [(c.id, c.name, json.loads(c.arguments_json)) for c in assistant.tool_calls] == [
        ("toolu_1", "get_weather", {"city": "Paris"}), ("toolu_2", "get_time", {})]
    first, second, after = r.messages[3], r.messages[4], r.messages[5]
    assert (first.tool_call_id, first.content[0].text, first.is_error) == ("toolu_1", "18C, sunny", False)
    assert (second.tool_call_id, second.content[0].text, second.is_error) == ("toolu_2", "clock down", True)
    assert after.content[0].text == "And tomorrow?" and after.content[0].cache_breakpoint
    tools = r.tools
    assert [t.name for t in tools.tools] == ["get_weather", "get_time"]
    assert tools.tools[0].cache_breakpoint and not tools.tools[1].cache_breakpoint
    assert json.loads(tools.tools[0].parameters_json) == WEATHER["input_schema"]
    assert tools.choice.mode == common.TOOL_CHOICE_MODE_REQUIRED and tools.parallel_tool_calls is False
    assert r.sampling.max_tokens == 300 and r.sampling.temperature == pytest.approx(0.2)
    assert r.sampling.top_p == pytest.approx(0.9) and list(r.sampling.stop) == ["END"]
    assert r.cache.ttl_seconds == 60 and r.cache.semantic_tool_answers and r.routing.max_tier == Tier.MODERATE
    assert parsed.model == "auto" and not r.routing.model and not parsed.stream


def test_strings_urls_a_pinned_model_and_the_top_level_cache_control():
    parsed = parse(model="claude-haiku-4-5", system="Be brief.", stream=True, cache_control=EPHEMERAL, messages=[
        {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                                     {"type": "text", "text": "What is this?"}]}])
    r = parsed.request
    assert r.routing.model == "claude-haiku-4-5" and parsed.stream
    assert r.messages[0].role == common.ROLE_SYSTEM and r.messages[0].content[0].text == "Be brief."
    assert r.messages[1].content[0].image.url == "https://x.test/a.jpg"
    assert r.messages[1].content[-1].cache_breakpoint  # automatic caching: the last block


@pytest.mark.parametrize(
    ("choice", "mode", "name"),
    [({"type": "auto"}, common.TOOL_CHOICE_MODE_AUTO, ""), ({"type": "any"}, common.TOOL_CHOICE_MODE_REQUIRED, ""),
     ({"type": "none"}, common.TOOL_CHOICE_MODE_NONE, ""),
     ({"type": "tool", "name": "get_time"}, common.TOOL_CHOICE_MODE_TOOL, "get_time")],
)
def test_tool_choices(choice, mode, name):
    tools = checked(tools=[WEATHER, CLOCK], tool_choice=choice).request.tools
    assert tools.choice.mode == mode and tools.choice.name == name and not tools.HasField("parallel_tool_calls")


def test_structured_output():
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    for body in ({"output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}},
                 {"output_format": {"type": "json_schema", "schema": schema}}):
        fmt = checked(**body).request.response_format
        assert fmt.type == common.RESPONSE_FORMAT_TYPE_JSON_SCHEMA and fmt.strict
        assert json.loads(fmt.schema_json) == schema


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"model": "claude-2"}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
         "messages.0.content.0.type"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
         "messages.0.content.0.source.type"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
            "type": "base64", "media_type": "image/tiff", "data": PNG}}]}]}, "messages.0.content.0.source.media_type"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "not base64!"}}]}]},
         "messages.0.content.0.source.data"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}]}, "messages.1.content.0.input"),
        ({"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
         "messages.0.content.0.tool_use_id"),
        ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "document"}]}]}]}, "messages.0.content.0.content.0.type"),
        ({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "x", "cache_control": {"type": "forever"}}]}]},
         "messages.0.content.0.cache_control.type"),
        ({"system": [{"type": "image"}]}, "system.0.type"),
        ({"system": 5}, "system"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
        ({"tools": [{"name": "f", "input_schema": "{}"}]}, "tools.0.input_schema"),
        ({"tools": [CLOCK], "tool_choice": {"type": "required"}}, "tool_choice.type"),
        ({"tools": [CLOCK], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"tools": [CLOCK], "tool_choice": {"type": "auto", "disable_parallel_tool_use": 1}},
         "tool_choice.disable_parallel_tool_use"),
        ({"output_config": {"format": {"type": "regex"}}}, "output_config.format.type"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "thinking"),
        ({"container": "c1"}, "container"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"metadata": "x"}, "metadata"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"costmesh": {"cache": {"forever": True}}}, "costmesh.cache.forever"),
    ],
)
def test_bad_requests_name_the_anthropic_parameter(body, field):
    with pytest.raises(errors.InvalidRequest) as error:
        parse(**body)
    assert str(error.value).split(": ")[0] == field, str(error.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [*LOOP[:2], {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "?"}]}]}, "messages.2.content.1.tool_use_id"),
        ({"system": "Be brief.", "messages": [*LOOP[:1], {"role": "assistant", "content": [
            {"type": "tool_use", "id": "dup", "name": "get_time", "input": {}},
            {"type": "tool_use", "id": "dup", "name": "get_time", "input": {}}]}, LOOP[2]]},
         "messages.1.content.1.id"),
        ({"messages": [*LOOP[:1], {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "bad name", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}]}, "messages.1.content.0.name"),
        ({"system": "x", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"}, {"type": "image", "source": {"type": "url", "url": "ftp://x.test/a.png"}}]}]},
         "messages.0.content.1.source.url"),
        ({"messages": [{"role": "user", "content": []}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]}, "messages"),
        ({"tools": [CLOCK, {"name": "f", "input_schema": {"type": "object", "properties": 3}}]},
         "tools.1.input_schema"),
        ({"tools": [CLOCK, CLOCK]}, "tools.1.name"),
        ({"tools": [CLOCK], "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"output_config": {"format": {"type": "json_schema", "schema": {"type": 5}}}}, "output_config.format.schema"),
        ({"temperature": 5}, "temperature"),
        ({"stop_sequences": [""]}, "stop_sequences.0"),
        ({"max_tokens": 10**9}, "max_tokens"),
        ({"costmesh": {"cache": {"ttl_seconds": 10**9}}}, "costmesh.cache.ttl_seconds"),
        ({"costmesh": {"cache": {"session_scoped": True}}}, "costmesh.session_id"),
        ({"costmesh": {"routing": {"min_tier": "complex", "max_tier": "trivial"}}}, "costmesh.routing"),
    ],
)
def test_the_pipelines_errors_name_the_anthropic_parameter(body, field):
    with pytest.raises(errors.InvalidRequest) as error:
        checked(**body)
    assert str(error.value).split(": ")[0] == field, str(error.value)


def answer(**fields) -> gw.CompleteResponse:
    base = {"request_id": "r1", "model": "claude-haiku-4-5", "provider": "anthropic", "finish_reason": "tool_use",
            "text": "Let me check.",
            "usage": common.TokenUsage(input_tokens=100, output_tokens=20, cache_read_tokens=60, cache_write_tokens=30),
            "tool_calls": [common.ToolCall(id="toolu_a", name="get_weather", arguments_json='{"city":"Paris"}'),
                           common.ToolCall(id="toolu_b", name="get_time", arguments_json="")]}
    return gw.CompleteResponse(**{**base, **fields})


def test_the_reply_is_an_anthropic_message():
    body = message_body("auto", answer())
    assert body["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}]
    assert body["stop_reason"] == "tool_use" and body["stop_sequence"] is None and body["id"] == "msg_r1"
    assert body["usage"] == {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 30,
                             "cache_read_input_tokens": 60}
    message = Message.model_validate(body)
    assert message.model == "claude-haiku-4-5" and message.content[1].input == {"city": "Paris"}
    assert message.model_extra["costmesh"]["request_id"] == "r1"
    for finish, reason in (("stop", "end_turn"), ("length", "max_tokens"), ("refusal", "refusal"),
                           ("pause", "pause_turn"), ("", "end_turn")):
        plain = message_body("auto", answer(finish_reason=finish, tool_calls=[], text="Hi."))
        assert plain["stop_reason"] == reason and plain["content"] == [{"type": "text", "text": "Hi."}]
    hit = message_body("auto", answer(cached=True, tool_calls=[], finish_reason="stop"))
    assert set(hit["usage"].values()) == {0}
    assert message_body("auto", answer(tool_calls=[], text="", finish_reason="stop"))["content"] == []
    odd = message_body("auto", answer(tool_calls=[common.ToolCall(id="t", name="f", arguments_json="[1")]))
    assert odd["content"][1]["input"] == "[1"  # not an object: the text as the model wrote it


def replay(events):
    """SSE events through the anthropic SDK's own accumulation (`MessageStream`'s)."""
    snapshot, bufs = None, {}
    for name, data in events:
        if name == "ping":
            continue
        assert data["type"] == name
        snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs=bufs)
    return snapshot


def test_streamed_text_and_tool_calls_are_events_the_anthropic_sdk_assembles():
    final = answer()
    final.text = ""  # the pipeline's final event carries no text
    stream = MessageEvents("auto", "r1")
    events = [e for event in [
        gw.StreamCompleteResponse(text_delta="Let me "),
        gw.StreamCompleteResponse(text_delta="check."),
        gw.StreamCompleteResponse(tool_call_delta=common.ToolCallDelta(index=0, id="toolu_a", name="get_weather",
                                                                       arguments_delta='{"city":')),
        gw.StreamCompleteResponse(tool_call_delta=common.ToolCallDelta(index=0, arguments_delta='"Paris"}')),
        gw.StreamCompleteResponse(final=final),  # toolu_b only here
    ] for e in stream.events(event)]
    assert [name for name, _ in events] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_stop",
        "message_delta", "message_stop"]
    assert events[6][1]["content_block"] == {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}
    assert events[7][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"city":'}
    message = replay(events)
    assert message.content[0].text == "Let me check."
    assert [(b.id, b.name, b.input) for b in message.content[1:]] == [
        ("toolu_a", "get_weather", {"city": "Paris"}), ("toolu_b", "get_time", {})]
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 20
    assert message.usage.input_tokens == 10 and message.usage.cache_read_input_tokens == 60
    delta = events[-2][1]
    assert delta["costmesh"]["model"] == "claude-haiku-4-5" and delta["costmesh"]["request_id"] == "r1"


def test_a_streamed_text_answer():
    stream = MessageEvents("claude-haiku-4-5", "r2")
    final = answer(request_id="r2", text="", tool_calls=[], finish_reason="length")
    events = [e for event in [gw.StreamCompleteResponse(text_delta="Hello"), gw.StreamCompleteResponse(final=final)]
              for e in stream.events(event)]
    message = replay(events)
    assert message.id == "msg_r2" and message.model == "claude-haiku-4-5"
    assert [b.text for b in message.content] == ["Hello"] and message.stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("error", "status", "type_"),
    [
        (errors.InvalidRequest("max_tokens: bad"), 400, "invalid_request_error"),
        (errors.Unauthenticated("no key"), 401, "authentication_error"),
        (errors.NotFound("model: gone"), 404, "not_found_error"),
        (errors.RateLimited("slow down", 2.2), 429, "rate_limit_error"),
        (errors.Overloaded("busy", 0.05), 529, "overloaded_error"),
        (errors.Unavailable("down"), 503, "overloaded_error"),
        (errors.UpstreamTimeout("late"), 504, "timeout_error"),
        (errors.UpstreamError("broken"), 502, "api_error"),
        (RuntimeError("secret detail"), 500, "api_error"),
    ],
)
def test_errors_become_anthropic_error_bodies(error, status, type_):
    got, body, headers = anthropic_error(error)
    assert got == status and body["type"] == "error" and body["error"]["type"] == type_
    assert set(body["error"]) == {"type", "message"}
    if isinstance(error, errors.RateLimited):
        assert headers["retry-after"] == ("3" if status == 429 else "1")
    if status == 500:
        assert "secret" not in body["error"]["message"]


def test_an_error_of_the_pipeline_is_renamed():
    parsed = parse(system="x", tools=[CLOCK])
    _, body, _ = anthropic_error(errors.InvalidRequest("tools.tools[0].name: bad"), parsed.rename)
    assert body["error"]["message"] == "tools.0.name: bad"
    assert parsed.rename("messages[1].content: empty") == "messages.0.content: empty"
    assert parsed.rename("messages[0].content[0]: neither text nor image") == "system: neither text nor image"
    assert parsed.rename("messages[0].content: empty") == "system: empty"
    assert parsed.rename("tenant_id: required") == "required"
    assert parsed.rename("every model failed") == "every model failed"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["\ud800", 2**70, "text", "image", "tool_use", "tool_result", "base64", "url", "auto", "tool"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "text", "source", "data", "media_type", "url", "id", "name", "input", "content",
                         "tool_use_id", "is_error", "cache_control", "input_schema", "schema", "format"])
        | st.text(max_size=6), inner, max_size=4),
    max_leaves=24,
)
_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["auto", "claude-haiku-4-5", ""]) | _json, "max_tokens": st.integers(-1, 99) | _json,
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]) | _json,
                                                  "content": _json}), max_size=3) | _json},
    optional={"system": _json, "tools": _json, "tool_choice": _json, "stop_sequences": _json, "temperature": _json,
              "output_config": _json, "cache_control": _json, "thinking": _json, "stream": _json, "costmesh": _json},
) | _json


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies)
def test_fuzzed_bodies_through_the_parser_and_validate_only_raise_invalid_request(body):
    try:
        parsed = parse_messages_request(body, CATALOG)
        parsed.request.tenant_id = "fuzz"
        try:
            validate(parsed.request, Limits())
        except errors.InvalidRequest as exc:
            raise errors.InvalidRequest(parsed.rename(str(exc))) from None
    except errors.InvalidRequest as exc:
        assert ": " in str(exc) or str(exc)
