"""The answer's format on Anthropic: JSON with a schema, or any JSON object.

JSON schema: Anthropic's structured outputs, `output_config.format = {"type": "json_schema",
"schema": ...}` (constrained decoding, typed by the installed SDK), with the schema passed
through the SDK's own `anthropic.transform_schema`: every object closed
(`additionalProperties: false`, which the API requires) and the constraints the API does not
enforce moved into descriptions. The answer is the text block; the gate still validates it
against the schema the client sent.

JSON object (Anthropic has no JSON mode): a system instruction asking for one JSON object and
nothing else, and the answer prefilled with "{" (an assistant turn the model continues), the
brace put back in front of the text. No prefill when the model may call tools (a prefilled
answer cannot start with a tool call), when the conversation already ends with an assistant
turn (the client's own prefill), or in a batch (its results are read without the request, so
the brace could not be put back): the instruction alone then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anthropic

from costmesh.domain import Message, Role
from costmesh.errors import InvalidRequest
from costmesh.output_spec import FormatType, OutputSpec

JSON_INSTRUCTION = (
    "Answer with a single JSON object and nothing else: no text before or after it, no code fences."
)
PREFILL = "{"


def prefill(output: OutputSpec, messages: Sequence[Message]) -> str:
    """The start of the answer the request writes for the model ("" for none)."""
    if output.response_format.type != FormatType.JSON_OBJECT or output.may_call_tools:
        return ""
    turns = [m for m in messages if m.role != Role.SYSTEM]
    return "" if turns and turns[-1].role == Role.ASSISTANT else PREFILL


def apply(kwargs: dict[str, Any], system: list[dict[str, Any]], output: OutputSpec, start: str) -> None:
    """Adds the format to a request's keyword arguments and system blocks; `start`: the prefill."""
    fmt = output.response_format
    if fmt.type == FormatType.JSON_SCHEMA and fmt.schema is not None:
        try:
            schema = anthropic.transform_schema(dict(fmt.schema))
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"response_format.schema_json: not a schema Anthropic can follow: {exc}") from None
        kwargs["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif fmt.type == FormatType.JSON_OBJECT:
        system.append({"type": "text", "text": JSON_INSTRUCTION})
        if start:
            kwargs["messages"].append({"role": "assistant", "content": start})


def with_prefill(start: str, text: str) -> str:
    """The whole answer: the prefill, then what the model wrote after it (a model that wrote the
    brace again is taken as it wrote it: "{{" is never JSON)."""
    if not start or text.lstrip().startswith(start):
        return text
    return start + text


class PrefilledStream:
    """`with_prefill` over streamed deltas: leading whitespace is held until the first other
    character shows whether the model repeated the prefill."""

    def __init__(self, start: str):
        self._start = start
        self._held = ""
        self._decided = not start

    def feed(self, delta: str) -> str:
        if self._decided:
            return delta
        self._held += delta
        if not self._held.strip():
            return ""
        self._decided = True
        return with_prefill(self._start, self._held)

    def flush(self) -> str:
        """What is still held when the stream ends (an answer of whitespace only)."""
        if self._decided:
            return ""
        self._decided = True
        return self._start + self._held
