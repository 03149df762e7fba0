"""The OpenAI request's pydantic models (no server): each parameter's error spelled with its
OpenAI path and what is wrong, the first of several errors named in the body's order, what is
accepted without effect, pydantic's `loc` turned into that path; the replies as the openai SDK's
own types, sent with the fields OpenAI sends (nulls too)."""

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

from costmesh import errors
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import load_catalog
from costmesh.gateway.http.anthropic_format import parse_messages_request
from costmesh.gateway.http.openai_format import KNOWN, completion_body, param_of, parse_chat_request
from costmesh.gateway.http.openai_stream import ChunkStream
from costmesh.gateway.http.request_model import Strict, fail, first_error, invalid_request, path_of, says

CATALOG = load_catalog()
USER = [{"role": "user", "content": "hi"}]
TIERS = "['trivial', 'simple', 'moderate', 'complex']"
ANY_ROLE = "is not supported; use system, developer, user, assistant or tool"


def parse(**body):
    return parse_chat_request({"model": "auto", "messages": USER, **body}, CATALOG)


def user(content):
    return [{"role": "user", "content": content}]


def assistant(**message):
    return [{"role": "assistant", **message}]


def call(**fields):
    return assistant(tool_calls=[{"id": "c", "function": {"name": "f", "arguments": "{}"}, **fields}])


def json_schema(**spec):
    return {"type": "json_schema", "json_schema": spec}


ERRORS = [
    # model and messages
    ({"model": None}, "model: required; use 'auto' to let costmesh choose, or a model of GET /v1/models"),
    ({"model": "m" * 129}, "model: longer than 128 characters; see GET /v1/models"),
    ({"model": "nope"}, "model: 'nope' is not served here; see GET /v1/models"),
    ({"messages": None}, "messages: a non-empty array of messages is required"),
    ({"messages": []}, "messages: a non-empty array of messages is required"),
    ({"messages": ["hi"]}, "messages[0]: expected an object"),
    ({"messages": [{"content": "x"}]}, f"messages[0].role: None {ANY_ROLE}"),
    ({"messages": [{"role": ["user"]}]}, f"messages[0].role: ['user'] {ANY_ROLE}"),
    ({"messages": [*USER, {"role": "function", "content": "x"}]}, f"messages[1].role: 'function' {ANY_ROLE}"),
    ({"messages": [{"role": "user"}]}, "messages[0].content: expected a string or an array of parts"),
    ({"messages": user(3)}, "messages[0].content: expected a string or an array of parts"),
    ({"messages": user(["hi"])}, "messages[0].content[0]: expected an object"),
    ({"messages": user([{"text": "hi"}])}, "messages[0].content[0].type: required"),
    ({"messages": user([{"type": "text", "text": 3}])}, "messages[0].content[0].text: expected a string"),
    ({"messages": user([{"type": "audio"}])},
     "messages[0].content[0].type: 'audio' is not supported in a user message; use text or image_url"),
    ({"messages": [{"role": "developer", "content": [{"type": "refusal", "refusal": "x"}]}]},
     "messages[0].content[0].type: 'refusal' is not supported in a developer message; use text or image_url"),
    ({"messages": assistant(content=[{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}])},
     "messages[0].content[0].type: 'image_url' is not supported in an assistant message; use text"),
    ({"messages": [{"role": "tool", "tool_call_id": "c", "content": [{"type": "refusal", "refusal": "x"}]}]},
     "messages[0].content[0].type: 'refusal' is not supported in a tool message; use text"),
    ({"messages": user([{"type": "image_url"}])}, "messages[0].content[0].image_url: required"),
    ({"messages": user([{"type": "image_url", "image_url": {"url": 5}}])},
     "messages[0].content[0].image_url.url: expected a string"),
    ({"messages": user([{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}])},
     "messages[0].content[0].image_url.url: invalid base64"),
    ({"messages": user([{"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}])},
     "messages[0].content[0].image_url.url: a data URL must be data:image/<type>;base64,<data>"),
    ({"messages": assistant(content=[{"type": "refusal"}])}, "messages[0].content[0].refusal: required"),
    ({"messages": assistant(tool_calls=[])}, "messages[0].content: expected a string or an array of parts"),
    ({"messages": assistant(function_call={"name": "f"})},
     "messages[0].function_call: not supported by costmesh; use tool_calls"),
    ({"messages": assistant(tool_calls={})}, "messages[0].tool_calls: expected an array of tool calls"),
    ({"messages": assistant(tool_calls=[3])}, "messages[0].tool_calls[0]: expected an object"),
    ({"messages": call(type="custom")}, "messages[0].tool_calls[0].type: 'custom' is not supported; use function"),
    ({"messages": call(function=[])}, "messages[0].tool_calls[0].function: expected an object"),
    ({"messages": call(id=1)}, "messages[0].tool_calls[0].id: expected a string"),
    ({"messages": call(function={"name": "f", "arguments": {}})},
     "messages[0].tool_calls[0].function.arguments: expected a string"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id: required"),
    ({"messages": [{"role": "tool", "tool_call_id": 7, "content": "x"}]},
     "messages[0].tool_call_id: expected a string"),
    # sampling
    ({"max_tokens": 0}, "max_tokens: must be a positive integer (from 1 to 2147483647)"),
    ({"max_tokens": 1.0}, "max_tokens: must be a positive integer (from 1 to 2147483647)"),
    ({"max_completion_tokens": True}, "max_completion_tokens: must be a positive integer (from 1 to 2147483647)"),
    ({"max_completion_tokens": 2**31}, "max_completion_tokens: must be a positive integer (from 1 to 2147483647)"),
    ({"temperature": "hot"}, "temperature: must be a number"),
    ({"temperature": True}, "temperature: must be a number"),
    ({"temperature": 10**400}, "temperature: must be a finite number"),
    ({"top_p": float("inf")}, "top_p: must be a finite number"),
    ({"stop": 5}, "stop: expected a string or an array of strings"),
    ({"stop": ["a", 1]}, "stop: expected a string or an array of strings"),
    ({"stop": ["a"] * 5}, "stop: at most 4 sequences"),
    ({"seed": 2**63}, "seed: must be a 64-bit integer (from -9223372036854775808 to 9223372036854775807)"),
    # refused
    ({"n": 2}, "n: only n=1 is supported"),
    ({"logprobs": True}, "logprobs: not supported by costmesh"),
    ({"logit_bias": {"1": 2}}, "logit_bias: not supported by costmesh"),
    ({"functions": [{"name": "f"}]}, "functions: not supported by costmesh; use tools and tool_choice"),
    ({"function_call": "auto"}, "function_call: not supported by costmesh; use tools and tool_choice"),
    ({"web_search_options": {"x": 1}}, "web_search_options: not supported by costmesh"),
    # tools and structured output
    ({"tools": {}}, "tools: expected an array of tools"),
    ({"tools": [3]}, "tools[0]: expected an object"),
    ({"tools": [{"function": {}}]}, "tools[0].type: required"),
    ({"tools": [{"type": "custom"}]}, "tools[0].type: 'custom' is not supported; use function"),
    ({"tools": [{"type": "function"}]}, "tools[0].function: required"),
    ({"tools": [{"type": "function", "function": {"name": 1}}]}, "tools[0].function.name: expected a string"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
     "tools[0].function.parameters: a JSON Schema must be an object"),
    ({"tools": [{"type": "function", "function": {"name": "f", "strict": 1}}]},
     "tools[0].function.strict: must be true or false"),
    ({"tool_choice": "any"},
     "tool_choice: 'any' is not supported; use auto, none, required "
     "or {'type': 'function', 'function': {'name': ...}}"),
    ({"tool_choice": 3}, "tool_choice: expected an object"),
    ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice.type: 'allowed_tools' is not supported; use function"),
    ({"tool_choice": {"type": "function", "function": {"name": None}}}, "tool_choice.function.name: expected a string"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls: must be true or false"),
    ({"response_format": "json"}, "response_format: expected an object"),
    ({"response_format": {"json_schema": {}}}, "response_format.type: required"),
    ({"response_format": {"type": 3}},
     "response_format.type: 3 is not supported; use text, json_object or json_schema"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema: required"),
    ({"response_format": json_schema(schema={})}, "response_format.json_schema.name: required"),
    ({"response_format": json_schema(name="x", schema=None)},
     "response_format.json_schema.schema: a JSON Schema must be an object"),
    ({"response_format": json_schema(name="x", schema={}, strict="yes")},
     "response_format.json_schema.strict: must be true or false"),
    # costmesh's options, the stream
    ({"costmesh": []}, "costmesh: expected an object"),
    ({"costmesh": {"zz": 1}}, "costmesh.zz: unknown option"),
    ({"costmesh": {"a b": 1}}, "costmesh.?: unknown option"),
    ({"costmesh": {"request_id": None}}, "costmesh.request_id: expected a string"),
    ({"costmesh": {"cache": "x"}}, "costmesh.cache: expected an object"),
    ({"costmesh": {"cache": {"bypass": 1}}}, "costmesh.cache.bypass: must be true or false"),
    ({"costmesh": {"cache": {"ttl_seconds": -1}}},
     "costmesh.cache.ttl_seconds: must be a whole number of seconds (from 0 to 2147483647)"),
    ({"costmesh": {"cache": {"tags": ["a", 1]}}}, "costmesh.cache.tags: expected an array of strings"),
    ({"costmesh": {"routing": {"model": "x"}}}, "costmesh.routing.model: unknown option; pin a model with `model`"),
    ({"costmesh": {"routing": {"min_tier": "huge"}}}, f"costmesh.routing.min_tier: one of {TIERS}"),
    ({"stream": None}, "stream: must be true or false"),
    ({"stream_options": 1}, "stream_options: expected an object"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage: must be true or false"),
    # unknown keys, and the first of several errors
    ({"unknown_thing": 1}, "unknown_thing: unrecognized request argument"),
    ({"a b": 1}, "body: unrecognized request argument"),
    ({"zeta": 1, "alpha": 1, "max_tokens": 0}, "alpha: unrecognized request argument"),
    ({"max_tokens": 0, "messages": [{"role": "function"}]}, f"messages[0].role: 'function' {ANY_ROLE}"),
    ({"costmesh": {"zz": 1, "session_id": 1}}, "costmesh.zz: unknown option"),
    ({"stream": 1, "costmesh": {"cache": {"ttl_seconds": -1, "forever": 1}}}, "costmesh.cache.forever: unknown option"),
]


@pytest.mark.parametrize(("body", "message"), ERRORS)
def test_each_error_names_the_openai_parameter(body, message):
    with pytest.raises(errors.InvalidRequest) as error:
        parse(**body)
    assert str(error.value) == message
    assert param_of(message) == message.partition(": ")[0]  # the error body's `param`


@pytest.mark.parametrize(
    "body",
    [
        {"user": "u1", "metadata": {"k": "v"}, "store": False, "presence_penalty": 0.5, "frequency_penalty": 0,
         "service_tier": "auto", "reasoning_effort": "low", "modalities": ["text"], "verbosity": "low",
         "prompt_cache_key": "k", "safety_identifier": "s"},
        {"functions": [], "function_call": None, "logit_bias": {}, "top_logprobs": None, "audio": None,
         "prediction": None, "web_search_options": {}, "logprobs": False, "n": 1},
        {"response_format": {}, "tools": [], "costmesh": {"cache": None, "routing": {}}, "stream_options": None},
        {"response_format": {"type": "text", "json_schema": "ignored"}, "stop": []},
        {"messages": [{"role": "user", "name": "ann",
                       "content": [{"type": "text", "text": "hi", "cache_control": {}}]}]},
    ],
)
def test_accepted_without_effect(body):
    r = parse(**body).request
    plain = parse().request
    if "costmesh" in body:  # a `costmesh` object sets the cache policy's defaults
        plain.cache.SetInParent()
    assert r == plain


def test_every_known_parameter_is_a_field():
    assert {"model", "messages", "tools", "costmesh", "functions", "web_search_options"} <= KNOWN


def test_max_completion_tokens_replaces_max_tokens():
    assert parse(max_completion_tokens=7, max_tokens="not read").request.sampling.max_tokens == 7
    assert parse(max_completion_tokens=None, max_tokens=5).request.sampling.max_tokens == 1024
    assert parse(max_tokens=5).request.sampling.max_tokens == 5


def test_content_and_tool_calls_become_the_proto():
    r = parse(messages=[
        {"role": "user", "content": ""},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": None,
                                                            "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
    ]).request
    assert [p.text for p in r.messages[0].content] == [""]  # an empty text is kept (the pipeline judges it)
    assert not r.messages[1].content and r.messages[1].tool_calls[0].name == "f"
    assert r.messages[2].tool_call_id == "c1" and r.messages[3].content[0].text == "no"


# -- pydantic's errors, named -------------------------------------------------------------------


class Inner(Strict):
    n: int


class Outer(Strict):
    items: list[Inner] = []
    label: str = ""


def test_path_of_drops_union_tags_and_spells_indices():
    assert path_of(("messages", 2, ":user", "content", ":parts", 1, ":image_url", "image_url", "url")) == \
        "messages[2].content[1].image_url.url"
    assert path_of(("a b", "x")) == "?.x" and path_of(()) == ""


def test_first_error_takes_unknown_keys_first_outermost_then_sorted():
    errors_ = [{"type": "missing", "loc": ("a", "b")}, {"type": "extra_forbidden", "loc": ("a", "z")},
               {"type": "extra_forbidden", "loc": ("a", "y")}, {"type": "extra_forbidden", "loc": ("q",)}]
    assert first_error(errors_)["loc"] == ("q",)
    assert first_error(errors_[:3])["loc"] == ("a", "y")
    assert first_error(errors_[:1])["loc"] == ("a", "b")


def test_invalid_request_spells_pydantics_errors():
    with pytest.raises(ValidationError) as error:
        Outer.model_validate({"items": [{"n": 1}, {"n": "2"}], "label": 3})
    assert str(invalid_request(error.value, {})) == "items[1].n: must be an integer"
    with pytest.raises(ValidationError) as error:
        Outer.model_validate({"items": [{}]})
    assert str(invalid_request(error.value, {}, ("body",))) == "body.items[0].n: required"
    with pytest.raises(ValidationError) as error:
        Outer.model_validate([])
    assert str(invalid_request(error.value, {})) == "body: expected an object"


def test_says_and_fail_keep_their_words():
    from typing import Annotated

    from pydantic import AfterValidator, TypeAdapter

    def no_braces(text):
        return fail("{'type': ...} is not {here}") if "{" in text else text

    items = TypeAdapter(Annotated[list[Inner], says("an array of items")])
    for value, message in (("x", "an array of items"), ([{"n": "1"}], "[0].n: must be an integer")):
        with pytest.raises(ValidationError) as error:
            items.validate_python(value)
        assert str(invalid_request(error.value, {})).removeprefix("body: ") == message
    with pytest.raises(ValidationError) as error:
        TypeAdapter(Annotated[str, AfterValidator(no_braces)]).validate_python("{")
    assert error.value.errors()[0]["msg"] == "{'type': ...} is not {here}"


def test_anthropic_reads_the_same_costmesh_options():
    body = {"model": "auto", "max_tokens": 5, "messages": USER}
    parsed = parse_messages_request({**body, "costmesh": {"cache": {"ttl_seconds": 60, "tags": ["t"]},
                                                          "routing": {"max_tier": "Simple"}}}, CATALOG)
    assert parsed.request.cache.ttl_seconds == 60 and list(parsed.request.cache.tags) == ["t"]
    assert parsed.request.routing.max_tier == 2
    with pytest.raises(errors.InvalidRequest, match=r"^costmesh\.cache\.ttl_seconds: must be a whole number"):
        parse_messages_request({**body, "costmesh": {"cache": {"ttl_seconds": 1.5}}}, CATALOG)
    with pytest.raises(errors.InvalidRequest, match=r"^costmesh: expected an object$"):
        parse_messages_request({**body, "costmesh": "x"}, CATALOG)


# -- replies --------------------------------------------------------------------------------


def answer(**fields) -> gw.CompleteResponse:
    return gw.CompleteResponse(**{"request_id": "r1", "text": "Hi.", "model": "gpt-5-mini", "provider": "openai",
                                  "finish_reason": "stop", "usage": common.TokenUsage(input_tokens=9, output_tokens=3),
                                  **fields})


def test_a_completion_is_the_sdks_type_with_openais_nulls():
    body = completion_body(parse(), answer(), created=5)
    assert set(body) == {"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "costmesh"}
    assert body["system_fingerprint"] is None and body["object"] == "chat.completion"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hi.", "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12,
                             "prompt_tokens_details": {"cached_tokens": 0}}
    parsed = ChatCompletion.model_validate(body)
    assert parsed.choices[0].message.content == "Hi." and parsed.costmesh["request_id"] == "r1"


def test_stream_chunks_are_the_sdks_type():
    chat = parse(stream=True, stream_options={"include_usage": True})
    stream = ChunkStream(chat, "r1", created=5)
    chunks = [c for e in (gw.StreamCompleteResponse(text_delta="Hi"), gw.StreamCompleteResponse(final=answer()))
              for c in stream.chunks(e)]
    assert [c["choices"][0]["delta"] if c["choices"] else None for c in chunks] == [
        {"role": "assistant", "content": ""}, {"content": "Hi"}, {}, None]
    assert chunks[0]["choices"][0] == {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                       "finish_reason": None}
    assert chunks[2]["choices"][0]["finish_reason"] == "stop" and chunks[2]["costmesh"]["request_id"] == "r1"
    assert chunks[3]["usage"]["total_tokens"] == 12 and "costmesh" not in chunks[3]
    for data in chunks:
        assert ChatCompletionChunk.model_validate(data).object == "chat.completion.chunk"
