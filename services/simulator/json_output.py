"""JSON answers: JSON mode ({"answer": ...}) and JSON-schema output filled from the prompt.

A mistake (`mistakes`) makes the text invalid the way a cheaper model's would: a required
field left out, a field of the wrong type, or text that is not JSON at all. Strict schema
output (OpenAI strict json_schema, Anthropic structured outputs) always validates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from costmesh.services.simulator.mistakes import Mistake
from costmesh.services.simulator.model_turn import OutputFormat
from costmesh.services.simulator.schema_values import Fill, resolve, value_for
from costmesh.services.simulator.tool_calls import wrong_type_value


def json_answer(output: OutputFormat, fill: Fill, mistake: Mistake) -> str:
    """The JSON text the model writes for `output` ("json_object" or "json_schema")."""
    if output.kind == "json_schema" and output.schema is not None:
        value = value_for(output.schema, fill)
        root = resolve(output.schema, output.schema)
    else:
        value = {"answer": fill.answer}
        root = None
    text = _dump(value)
    if output.strict:
        return text
    kinds = ["unparseable"]
    if isinstance(root, Mapping) and isinstance(value, dict):
        if any(isinstance(r, str) and r in value for r in root.get("required") or []):
            kinds.append("missing_required")
        if isinstance(root.get("properties"), Mapping) and any(k in value for k in root["properties"]):
            kinds.append("wrong_type")
    kind = mistake.kind(kinds)
    if kind == "unparseable":
        return "Here is the JSON you asked for:\n" + text[: max(len(text) - 1, 1)]
    if kind == "missing_required" and isinstance(root, Mapping):
        missing = next(r for r in root["required"] if isinstance(r, str) and r in value)
        return _dump({k: v for k, v in value.items() if k != missing})
    if kind == "wrong_type" and isinstance(root, Mapping):
        key = next(k for k in root["properties"] if k in value)
        return _dump({**value, key: wrong_type_value(resolve(output.schema, root["properties"][key]))})
    return text


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
