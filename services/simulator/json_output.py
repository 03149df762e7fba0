"""JSON answers: JSON mode ({"answer": ...}) and JSON-schema output filled from the prompt.

A mistake (`mistakes`) makes the text invalid the way a cheaper model's would: a required
field left out, a field of the wrong type, or text that is not JSON at all. Strict schema
output (OpenAI strict json_schema, Anthropic structured outputs) always validates.

After a prefill (Anthropic's final assistant turn, "{" for JSON mode) the model writes only
what follows it: the object without the part the prefill already wrote, never the brace again.
Its "not JSON at all" mistake is then an object that never closes (prose cannot come first).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from costmesh.services.simulator.mistakes import Mistake
from costmesh.services.simulator.model_turn import OutputFormat
from costmesh.services.simulator.schema_values import Fill, resolve, value_for
from costmesh.services.simulator.tool_calls import wrong_type_value

PROSE_BEFORE_JSON = "Here is the JSON you asked for:\n"


def json_answer(output: OutputFormat, fill: Fill, mistake: Mistake, prefill: str = "") -> str:
    """The JSON text the model writes for `output` ("json_object" or "json_schema"), after `prefill`."""
    text, unparseable = _written(output, fill, mistake)
    if not prefill.strip():
        return PROSE_BEFORE_JSON + text[: max(len(text) - 1, 1)] if unparseable else text
    rest = continuation(prefill, text)
    return rest[:-1] if unparseable and rest.endswith("}") else rest


def opens_object(prefill: str) -> bool:
    """Whether a prefill starts a JSON object (the model then goes on writing one)."""
    return prefill.lstrip().startswith("{")


def continuation(prefill: str, text: str) -> str:
    """What follows `prefill` when the model's own answer would have been `text`: the rest of
    `text` when it starts with the prefill (blanks aside), else `text` after a space (the
    prefill's last word is taken as ended)."""
    if not prefill.strip():
        return text
    at = 0
    for char in prefill:
        if char.isspace():
            continue
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text) or text[at] != char:
            return " " + text.lstrip()
        at += 1
    return text[at:]


def _written(output: OutputFormat, fill: Fill, mistake: Mistake) -> tuple[str, bool]:
    """The JSON the model writes, with a mistake in a field applied, and whether it is cut short."""
    if output.kind == "json_schema" and output.schema is not None:
        value = value_for(output.schema, fill)
        root = resolve(output.schema, output.schema)
    else:
        value = {"answer": fill.answer}
        root = None
    text = _dump(value)
    if output.strict:
        return text, False
    kinds = ["unparseable"]
    if isinstance(root, Mapping) and isinstance(value, dict):
        if any(isinstance(r, str) and r in value for r in root.get("required") or []):
            kinds.append("missing_required")
        if isinstance(root.get("properties"), Mapping) and any(k in value for k in root["properties"]):
            kinds.append("wrong_type")
    kind = mistake.kind(kinds)
    if kind == "missing_required" and isinstance(root, Mapping):
        missing = next(r for r in root["required"] if isinstance(r, str) and r in value)
        return _dump({k: v for k, v in value.items() if k != missing}), False
    if kind == "wrong_type" and isinstance(root, Mapping):
        key = next(k for k in root["properties"] if k in value)
        return _dump({**value, key: wrong_type_value(resolve(output.schema, root["properties"][key]))}), False
    return text, kind == "unparseable"


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
