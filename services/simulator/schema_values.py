"""A value that satisfies a JSON schema, filled from what the prompt says.

Strings are chosen by the field's name (an arithmetic expression for `expression`, the
prompt's names for `location`, its key words for `query`, the model's answer for `answer`
...), numbers are the prompt's numbers in order, enums take the member the prompt mentions.
Bounded: `$ref` chains and nesting stop at `MAX_DEPTH`, and at most `MAX_NODES` values are
built per schema (after that, the smallest value of each type), so a recursive or
exponentially branching schema cannot wedge the simulator.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from costmesh.services.simulator.prompt_words import PromptFacts

MAX_DEPTH = 40  # schema levels, $ref and anyOf hops included (checked schemas nest at most 64 JSON levels)
MAX_NODES = 2000
MAX_ITEMS = 3
MAX_ANSWER_CHARS = 2000
EXPRESSION_WORDS = frozenset({"expression", "expr", "formula", "equation", "calculation", "math", "arithmetic"})
PLACE_WORDS = frozenset(
    {"location", "city", "place", "country", "region", "address", "destination", "origin", "town", "state"}
)
NAME_WORDS = frozenset({"name", "person", "author", "title", "who", "entity"})
ANSWER_WORDS = frozenset(
    {
        "answer",
        "response",
        "result",
        "summary",
        "explanation",
        "reasoning",
        "content",
        "message",
        "reply",
        "output",
        "body",
        "justification",
        "rationale",
        "description",
        "text",
        "solution",
        "conclusion",
    }
)
QUERY_WORDS = frozenset({"query", "search", "term", "terms", "keyword", "keywords", "topic", "question", "q"})
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


@dataclass(frozen=True)
class Fill:
    """What values are filled from: the prompt's facts and the model's answer text."""

    facts: PromptFacts
    answer: str
    calculator: bool = False  # the value is a calculator tool's arguments


def value_for(schema: Any, fill: Fill) -> Any:
    """A value valid against `schema` (the root of its `$ref`s)."""
    builder = _Builder(schema, fill)
    builder.expanding.append("#")  # the root is being built: "#" inside it is a recursion
    return builder.value(schema, "", 0)


def resolve(root: Any, schema: Any, depth: int = 0) -> Any:
    """`schema` with local `$ref`s followed (at most MAX_DEPTH of them)."""
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and depth < MAX_DEPTH:
        schema = _pointer(root, schema["$ref"])
        depth += 1
    return schema


def schema_types(schema: Any) -> tuple[str, ...]:
    """The types a schema allows, stated or inferred from its keywords."""
    if not isinstance(schema, Mapping):
        return ("string",)
    kind = schema.get("type")
    if isinstance(kind, str):
        return (kind,)
    if isinstance(kind, list) and kind:
        return tuple(k for k in kind if isinstance(k, str))
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return ("object",)
    if "items" in schema or "prefixItems" in schema:
        return ("array",)
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return ("number",)
    return ("string",)


class _Builder:
    def __init__(self, root: Any, fill: Fill):
        self.root = root
        self.fill = fill
        self.nodes = 0
        self.next_number = 0
        self.expanding: list[str] = []  # the $refs being built, outermost first

    def recursive(self, schema: Any) -> bool:
        """Whether `schema` refers back to a definition already being built (a recursive schema)."""
        return isinstance(schema, Mapping) and schema.get("$ref") in self.expanding

    def value(self, schema: Any, name: str, depth: int) -> Any:
        self.nodes += 1
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        if isinstance(ref, str) and depth < MAX_DEPTH:
            self.expanding.append(ref)
            try:
                return self.value(_pointer(self.root, ref), name, depth + 1)
            finally:
                self.expanding.pop()
        if schema is True or schema is None or not isinstance(schema, Mapping):
            return self._string({}, name) if schema is not False else None
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return self._member(enum)
        if depth >= MAX_DEPTH or self.nodes > MAX_NODES:
            return _smallest(schema)
        merged = _merge_all_of(self.root, schema)
        if merged is not schema:
            return self.value(merged, name, depth + 1)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self.value(self._pick_branch(branches), name, depth + 1)
        types = schema_types(schema)
        kind = next((t for t in types if t != "null"), "null")
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("integer", "number"):
            return self._number(schema, kind == "integer")
        if kind == "boolean":
            default = schema.get("default")
            return default if isinstance(default, bool) else False
        if kind == "null":
            return None
        return self._string(schema, name)

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        names = list(dict.fromkeys([*required, *properties]))
        limit = schema.get("maxProperties")
        if isinstance(limit, int) and limit >= len(required):
            names = names[:limit]
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key in names:
            sub = properties.get(key, extra if isinstance(extra, Mapping) else {})
            if key not in required and self.recursive(sub):
                continue  # an optional recursion is left out rather than built again
            out[key] = self.value(sub, key, depth + 1)
        least = schema.get("minProperties")
        if isinstance(least, int) and extra is not False:
            for i in range(min(least, MAX_NODES) - len(out)):
                out[f"extra_{i + 1}"] = self.value(extra if isinstance(extra, Mapping) else {}, "", depth + 1)
        return out

    def _array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list) and prefix:
            return [self.value(sub, name, depth + 1) for sub in prefix[:MAX_NODES]]
        items = schema.get("items", {})
        least = schema.get("minItems") if isinstance(schema.get("minItems"), int) else 0
        most = schema.get("maxItems") if isinstance(schema.get("maxItems"), int) else MAX_ITEMS
        wanted = 1
        if "string" in schema_types(resolve(self.root, items)) and name.endswith("s"):
            wanted = max(len(self.fill.facts.keywords[:MAX_ITEMS]), 1)
        count = least if self.recursive(items) else max(min(wanted, most), least, 0)
        out: list[Any] = []
        for i in range(min(count, MAX_NODES)):
            if "string" in schema_types(resolve(self.root, items)) and i < len(self.fill.facts.keywords):
                item_schema = resolve(self.root, items)
                if isinstance(item_schema, Mapping) and not item_schema.get("enum") and "const" not in item_schema:
                    out.append(_fit_string(self.fill.facts.keywords[i], item_schema))
                    continue
            value = self.value(items, name, depth + 1)
            if schema.get("uniqueItems") and value in out:
                value = _vary(value, i)
            out.append(value)
        return out

    def _number(self, schema: Mapping[str, Any], integer: bool) -> int | float:
        numbers = self.fill.facts.numbers
        value: float = 1.0
        if self.next_number < len(numbers):
            value = numbers[self.next_number]
            self.next_number += 1
        multiple = _num(schema.get("multipleOf"))
        if multiple is not None and multiple > 0:
            value = round(value / multiple) * multiple
        if integer:
            value = float(round(value))
        low, high = _num(schema.get("minimum")), _num(schema.get("maximum"))
        ex_low, ex_high = _num(schema.get("exclusiveMinimum")), _num(schema.get("exclusiveMaximum"))
        gap = 1.0 if integer else 0.5
        if low is not None and value < low:
            value = math.ceil(low) if integer else low
        if ex_low is not None and value <= ex_low:
            value = math.floor(ex_low) + 1 if integer else ex_low + gap
        if high is not None and value > high:
            value = math.floor(high) if integer else high
        if ex_high is not None and value >= ex_high:
            value = math.ceil(ex_high) - 1 if integer else ex_high - gap
        if integer or float(value).is_integer():
            return int(value)
        return value

    def _string(self, schema: Mapping[str, Any], name: str) -> str:
        facts = self.fill.facts
        fmt = schema.get("format")
        words = set(_name_words(name))
        if fmt == "date" or "date" in words:
            text = facts.date or "2025-01-01"
        elif fmt == "date-time":
            text = f"{facts.date or '2025-01-01'}T00:00:00Z"
        elif fmt == "time":
            text = "12:00:00Z"
        elif fmt == "email" or "email" in words:
            text = "user@example.com"
        elif fmt in ("uri", "url") or words & {"url", "uri", "link"}:
            text = "https://example.com/" + "-".join(facts.keywords[:4])
        elif fmt == "uuid":
            text = str(uuid.UUID(bytes=hashlib.sha256(facts.query.encode()).digest()[:16], version=4))
        elif words & EXPRESSION_WORDS or (self.fill.calculator and words & {"input", "value", "values", "x"}):
            text = facts.expression or " + ".join(_number_text(n) for n in facts.numbers[:4]) or facts.query
        elif words & PLACE_WORDS:
            text = (facts.places or facts.names or (facts.query,))[0]
        elif words & ANSWER_WORDS:
            text = self.fill.answer[:MAX_ANSWER_CHARS] or facts.query
        elif words & NAME_WORDS:
            text = facts.names[0] if facts.names else facts.query.title()
        elif words & {"language", "lang", "locale"}:
            text = "en"
        else:
            text = facts.query
        return _fit_string(text, schema)

    def _pick_branch(self, branches: list[Any]) -> Any:
        """The first branch that is neither just null nor a recursion; else null if offered; else the first."""
        nulls = []
        for branch in branches:
            resolved = resolve(self.root, branch)
            if isinstance(resolved, Mapping) and "type" in resolved and schema_types(resolved) == ("null",):
                nulls.append(branch)
            elif not self.recursive(branch):
                return branch
        return nulls[0] if nulls else branches[0]

    def _member(self, enum: list[Any]) -> Any:
        """The enum member the prompt mentions first, else the first member."""
        mentioned = set(self.fill.facts.keywords)
        for member in enum:
            if isinstance(member, str) and member.lower() in mentioned:
                return member
        return enum[0]


def _merge_all_of(root: Any, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """`schema` with its allOf parts folded in (properties and required united); itself without allOf."""
    parts = schema.get("allOf")
    if not isinstance(parts, list) or not parts:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[str] = list(merged.get("required") or [])
    for part in parts[:64]:
        part = resolve(root, part)
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, Mapping):
                properties.update(value)
            elif key == "required" and isinstance(value, list):
                required.extend(r for r in value if r not in required)
            else:
                merged.setdefault(key, value)
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def _smallest(schema: Mapping[str, Any]) -> Any:
    """The smallest value of the schema's first type, built without looking deeper."""
    types = schema_types(schema)
    if "null" in types:
        return None
    kind = types[0] if types else "string"
    return {"object": {}, "array": [], "integer": 0, "number": 0, "boolean": False}.get(kind, "")


def _fit_string(text: str, schema: Mapping[str, Any]) -> str:
    least = schema.get("minLength") if isinstance(schema.get("minLength"), int) else 0
    most = schema.get("maxLength") if isinstance(schema.get("maxLength"), int) else None
    if most is not None:
        text = text[: max(most, 0)]
    if len(text) < least:
        text = (text + " " + "x" * least)[:least] if text else "x" * least
    return text


def _vary(value: Any, i: int) -> Any:
    if isinstance(value, str):
        return f"{value} {i + 1}"
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + i
    return value


def _name_words(name: str) -> list[str]:
    out, current = [], ""
    for char in name:
        if char in "_- " or (char.isupper() and current and current[-1].islower()):
            if current:
                out.append(current.lower())
            current = "" if char in "_- " else char
        else:
            current += char
    if current:
        out.append(current.lower())
    return out


def _num(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _pointer(root: Any, ref: str) -> Any:
    """A local JSON pointer (`#/$defs/Name`); {} for anything else."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return {}
    node = root
    for raw in ref[2:].split("/")[:MAX_DEPTH]:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return {}
    return node
