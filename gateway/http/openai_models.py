"""The OpenAI Chat Completions request body as a pydantic model (its messages: `openai_messages`;
tools and structured output: `openai_tools`; costmesh's options: `costmesh_options`).

Every parameter OpenAI documents is a field: used, refused unless empty (`functions`,
`function_call`, `logit_bias`, `top_logprobs`, `audio`, `prediction`, `web_search_options`; a true
`logprobs`; `n` other than 1), or accepted without effect (`user`, `metadata`, `store`,
`presence_penalty`...). Any other key is refused: "unrecognized request argument". The fields are
declared in the order they are checked, so that of several errors the first is named.
Validate with `context={"catalog": catalog}`: `model` is checked against it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, model_validator

from costmesh.gateway.http.costmesh_options import UNKNOWN_OPTION, CostmeshOptions, model_error
from costmesh.gateway.http.openai_messages import Message
from costmesh.gateway.http.openai_tools import ResponseFormat, Tool, ToolChoice
from costmesh.gateway.http.request_model import Closed, Int64, Number, PositiveInt, Strict, fail, or_empty, says

DEFAULT_MAX_TOKENS = 1024
MAX_STOP_SEQUENCES = 4
# What an unknown key is, by the path of the object it is in.
UNKNOWN = {"": "unrecognized request argument", **UNKNOWN_OPTION}


def _unsupported(hint: str = "") -> Any:
    """A parameter costmesh refuses unless it is empty (null, [] or {})."""

    def check(value: Any) -> Any:
        if value not in (None, [], {}):
            fail("not supported by costmesh" + hint)
        return value

    return Annotated[Any, AfterValidator(check)]


def _no_logprobs(value: Any) -> Any:
    if value:
        fail("not supported by costmesh")
    return value


def _one_choice(value: Any) -> Any:
    if value not in (None, 1):
        fail("only n=1 is supported")
    return value


def _served(model: Any, info: ValidationInfo) -> Any:
    problem = model_error(model, info.context["catalog"])
    if problem:
        fail(problem)
    return model


def _few_stops(stop: Any) -> Any:
    if isinstance(stop, list) and len(stop) > MAX_STOP_SEQUENCES:
        fail(f"at most {MAX_STOP_SEQUENCES} sequences")
    return stop


Unsupported = _unsupported()
Functions = _unsupported("; use tools and tool_choice")
Stop = Annotated[str | list[str] | None, says("expected a string or an array of strings", anywhere=True),
                 AfterValidator(_few_stops)]


class StreamOptions(Strict):
    include_usage: bool = False


class ChatCompletionRequest(Closed):
    # refused unless empty (in sorted order, as checked before pydantic)
    audio: Unsupported = None
    function_call: Functions = None
    functions: Functions = None
    logit_bias: Unsupported = None
    prediction: Unsupported = None
    top_logprobs: Unsupported = None
    web_search_options: Unsupported = None
    logprobs: Annotated[Any, AfterValidator(_no_logprobs)] = None
    n: Annotated[Any, AfterValidator(_one_choice)] = None
    # used
    model: Annotated[Any, AfterValidator(_served)] = Field(None, validate_default=True)
    messages: Annotated[list[Message], Field(min_length=1), says("a non-empty array of messages is required")] = (
        Field(None, validate_default=True))
    max_completion_tokens: PositiveInt | None = None
    max_tokens: PositiveInt | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    stop: Stop = None
    seed: Int64 | None = None
    tools: Annotated[list[Tool] | None, says("expected an array of tools")] = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat = None
    costmesh: CostmeshOptions | None = None
    stream: bool = False
    stream_options: Annotated[StreamOptions, BeforeValidator(or_empty)] = StreamOptions()
    # accepted without effect
    user: Any = None
    metadata: Any = None
    store: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    service_tier: Any = None
    reasoning_effort: Any = None
    modalities: Any = None
    verbosity: Any = None
    prompt_cache_key: Any = None
    safety_identifier: Any = None

    @model_validator(mode="before")
    @classmethod
    def _one_max_tokens(cls, body: Any) -> Any:
        """`max_completion_tokens` (OpenAI's newer name), when given (null too), replaces
        `max_tokens`, which is then not read."""
        if isinstance(body, dict) and "max_completion_tokens" in body:
            return {key: value for key, value in body.items() if key != "max_tokens"}
        return body

    def max_tokens_or_default(self) -> int:
        value = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        return DEFAULT_MAX_TOKENS if value is None else value


KNOWN = frozenset(ChatCompletionRequest.model_fields)
