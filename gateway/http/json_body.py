"""A request body as JSON, checked before either API format reads it, and the typed getters
the Anthropic format reads it with (the OpenAI format reads it with pydantic models:
`openai_models`).

Every rejection is an `InvalidRequest` whose message starts with the parameter at fault, in
the caller's API's own spelling (`messages[2].content` for OpenAI, `messages.2.content` for
Anthropic: the format builds its `where` strings; the getters only append `.key`).
Before anything is read, the whole body is checked (`check_json`): at most `MAX_JSON_DEPTH`
levels, no lone surrogate in any string; integers are checked against their protobuf range
before they are set.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from costmesh.errors import InvalidRequest

MAX_JSON_DEPTH = 32  # nesting levels of the request body (a chat request needs 6, a tool schema more)
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def parse_json(raw: bytes) -> Any:
    """The body as JSON; too deep a nesting, a huge number or NaN is a 400 like any bad JSON."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidRequest(f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise InvalidRequest("body: not valid JSON") from None


def _no_constant(name: str) -> None:
    raise InvalidRequest(f"body: {name} is not valid JSON")


def check_json(body: Any, dotted: bool = False) -> None:
    """The parsed body as a whole: nested at most `MAX_JSON_DEPTH` deep, every string (keys
    included) valid Unicode, i.e. no lone surrogate (JSON's `"\\ud800"` escapes allow them).
    `dotted`: name places as Anthropic does (`messages.0.content`), else as OpenAI does."""
    stack: list[tuple[Any, tuple | None, int]] = [(body, None, 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequest(f"{_path(path, dotted) or 'body'}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise InvalidRequest(f"{_path(path, dotted) or 'body'}: a lone surrogate is not valid Unicode")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise InvalidRequest(
                        f"{_path(path, dotted) or 'body'}: a lone surrogate in a key is not valid Unicode")
                stack.append((item, (path, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, (path, i), depth + 1) for i, item in enumerate(value))


def _path(path: tuple | None, dotted: bool) -> str:
    """`messages[0].content` (or `messages.0.content`) from the linked (parent, key) pairs."""
    keys = []
    while path is not None:
        path, key = path
        keys.append(key)
    out = ""
    for key in reversed(keys):
        if isinstance(key, int):
            out += f".{key}" if dotted else f"[{key}]"
        else:
            out += f".{key_name(key)}" if out else key_name(key)
    return out


def key_name(key: str) -> str:
    """A key of the body as an error may name it: "?" unless a plain identifier."""
    return key if _NAME.fullmatch(key) else "?"


def unknown_keys(value: Mapping, known: set[str] | frozenset[str], where: str, what: str) -> None:
    """Refuses the first key of `value` not in `known`: `{where}.{key}: {what}`."""
    for key in sorted(set(value) - known):
        name = key_name(key)
        prefix = f"{where}.{name}" if where else name
        raise InvalidRequest(f"{prefix if name != '?' else (where or 'body')}: {what}")


def short(value: Any, limit: int = 40) -> str:
    """A value quoted in an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def get(value: Any, key: str, where: str) -> Any:
    """`value[key]`, required; `value` must be an object."""
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{where}: expected an object")
    if key not in value:
        raise InvalidRequest(f"{where}.{key}: required")
    return value[key]


def mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{where}: expected an object")
    return value


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}: expected a string")
    return value


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{where}: must be true or false")
    return value


def integer(value: Any, where: str, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"{where}: {what} (from {low} to {high})")
    return value


def number(value: Any, where: str) -> float:
    """A finite JSON number (a bool is not one; an integer too large for a float is refused)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidRequest(f"{where}: must be a number")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise InvalidRequest(f"{where}: must be a finite number")
    return out


def schema_text(value: Any, where: str) -> str:
    """A JSON Schema object of the body, serialised for the protos (`costmesh.output_spec`
    checks it against its metaschema in the pipeline)."""
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{where}: a JSON Schema must be an object")
    return schema_json(value)


def schema_json(schema: Mapping) -> str:
    """A JSON Schema as the protos carry it."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def b64decode(payload: str, where: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}: invalid base64") from None
