"""Checks on the JSON schemas a request carries (tool parameters, output formats).

Each check returns a problem (a sentence, without the API's prefix) or None. A schema is
first walked without recursion to bound its depth and size; only a schema within those
bounds reaches `jsonschema` (whose checks recurse) or the strict-mode rules.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

MAX_SCHEMA_DEPTH = 64  # JSON nesting levels of the schema document itself
MAX_SCHEMA_NODES = 20_000  # the metaschema check costs about 70 us a node
CHECKED_SCHEMAS = 1024  # verdicts remembered (an agent sends the same tools on every turn)
OPENAI_STRICT_MAX_NESTING = 10  # object / array levels
_META = Draft202012Validator(Draft202012Validator.META_SCHEMA)
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


def size_problem(schema: Any) -> str | None:
    """Whether the document is too deep or too large to look at further (an iterative walk)."""
    stack: list[tuple[Any, int]] = [(schema, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            return f"schema has more than {MAX_SCHEMA_NODES} nodes"
        if depth > MAX_SCHEMA_DEPTH:
            return f"schema nesting exceeds the maximum depth of {MAX_SCHEMA_DEPTH}"
        if isinstance(value, Mapping):
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)
    return None


class SchemaChecker:
    """Validates schemas against the draft 2020-12 metaschema, remembering recent verdicts."""

    def __init__(self, capacity: int = CHECKED_SCHEMAS):
        self._capacity = capacity
        self._verdicts: OrderedDict[bytes, tuple[str, tuple[Any, ...]] | None] = OrderedDict()

    def problem(self, schema: Any) -> tuple[str, tuple[Any, ...]] | None:
        """Why `schema` is not a valid JSON Schema, and where; None when it is."""
        problem = size_problem(schema)
        if problem is not None:
            return problem, ()
        key = hashlib.sha256(json.dumps(schema, sort_keys=True, default=str).encode()).digest()
        if key in self._verdicts:
            self._verdicts.move_to_end(key)
            return self._verdicts[key]
        error = best_match(_META.iter_errors(schema))
        verdict = None if error is None else (error.message, tuple(error.absolute_path))
        self._verdicts[key] = verdict
        if len(self._verdicts) > self._capacity:
            self._verdicts.popitem(last=False)
        return verdict


def object_root_problem(schema: Mapping[str, Any]) -> str | None:
    """Tool parameters must describe an object (an empty schema stands for no parameters)."""
    if not schema:
        return None
    kind = schema.get("type")
    if kind != "object":
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{kind}\"'."
    return None


def openai_strict_problem(schema: Mapping[str, Any]) -> str | None:
    """OpenAI's strict mode rules (Structured Outputs): every object closed and fully required."""
    for context, node, nesting in _subschemas(schema):
        where = f"In context={context!r}, "
        if nesting > OPENAI_STRICT_MAX_NESTING:
            return f"{where}schema exceeds the maximum nesting depth of {OPENAI_STRICT_MAX_NESTING}."
        if not _is_object(node):
            continue
        if node.get("additionalProperties") is not False:
            return f"{where}'additionalProperties' is required to be supplied and to be false."
        properties = node.get("properties") or {}
        required = node.get("required")
        missing = [key for key in properties if not isinstance(required, list) or key not in required]
        if missing:
            return (
                f"{where}'required' is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'."
            )
    return None


def anthropic_strict_problem(schema: Mapping[str, Any]) -> str | None:
    """Anthropic's structured outputs: every object schema closed with additionalProperties false."""
    for _context, node, _nesting in _subschemas(schema):
        if _is_object(node) and node.get("additionalProperties") is not False:
            return "For 'object' type, 'additionalProperties' must be explicitly set to false"
    return None


def _is_object(node: Mapping[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or (kind is None and "properties" in node)


def _subschemas(schema: Mapping[str, Any]) -> Iterator[tuple[tuple[Any, ...], Mapping[str, Any], int]]:
    """Every subschema with its path and its object/array nesting (breadth first, no recursion).

    Only called on schemas that passed `size_problem`, so the walk is bounded."""
    queue: list[tuple[tuple[Any, ...], Any, int]] = [((), schema, 1)]
    index = 0
    while index < len(queue):
        path, node, nesting = queue[index]
        index += 1
        if not isinstance(node, Mapping):
            continue
        yield path, node, nesting
        deeper = nesting + (1 if _is_object(node) or node.get("type") == "array" else 0)
        for key in _SUBSCHEMA_MAPS:
            children = node.get(key)
            if isinstance(children, Mapping):
                level = nesting if key in ("$defs", "definitions") else deeper
                queue.extend(((*path, key, name), child, level) for name, child in children.items())
        for key in _SUBSCHEMA_LISTS:
            children = node.get(key)
            if isinstance(children, list):
                level = deeper if key == "prefixItems" else nesting
                queue.extend(((*path, key, i), child, level) for i, child in enumerate(children))
        for key in _SUBSCHEMA_ONE:
            if isinstance(node.get(key), Mapping):
                queue.append(((*path, key), node[key], deeper if key == "items" else nesting))
