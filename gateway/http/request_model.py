"""What the pydantic models of the HTTP request bodies are built from: a base that takes JSON
values as they are (`Strict`; `Closed` refuses unknown keys), a few field types, and the models'
errors as the one `InvalidRequest` the HTTP APIs answer with, its message starting with the
parameter at fault as OpenAI spells it (`messages[2].content`, `max_tokens`,
`costmesh.cache.ttl_seconds`), then what is wrong with it.

Of all the errors pydantic finds, the one named is the first in the order the body is read:
fields in the order their model declares them, and at each object its unknown keys (the first
in sorted order) before its fields. A union member's tag is not part of the path (every tag of
these models starts with `TAG`). The models say what is wrong in their own words with `fail` (in
a validator), `fail_at` (a key of the value a validator checks) and `says` (any error of a value
itself); pydantic's own errors read as `TEXTS` says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, NoReturn

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

from costmesh.errors import InvalidRequest
from costmesh.gateway.http.json_body import INT32_MAX, INT64_MAX, INT64_MIN, key_name

TAG = ":"  # union tags (`:user`, `:text`): never a JSON key of these models
ERROR_TYPE = "costmesh"  # the models' own errors
TEXTS = {  # pydantic's error types -> what the message says
    "missing": "required",
    "string_type": "expected a string",
    "bool_type": "must be true or false",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "dict_type": "expected an object",
    "list_type": "expected an array",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
}


class Strict(BaseModel):
    """An object of a request body: values as JSON typed them (`"1"` is not 1, `1.0` not an
    integer, `1` not `true`), numbers finite; keys it does not declare are ignored."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")


class Closed(Strict):
    """An object whose unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


def _error(text: str) -> PydanticCustomError:
    return PydanticCustomError(ERROR_TYPE, "{text}", {"text": text})  # braces in `text` stay as they are


def fail(text: str) -> NoReturn:
    """Refuses the value a validator is checking: `text` says why."""
    raise _error(text)


def fail_at(key: str, text: str, value: Any) -> NoReturn:
    """Refuses `value[key]`, from a validator of `value` (a union's check of its tag)."""
    raise ValidationError.from_exception_data(
        "request", [InitErrorDetails(type=_error(text), loc=(key,), input=value)])


def says(text: str, anywhere: bool = False) -> WrapValidator:
    """Any error of the value itself (its type, its bounds) says `text`; errors of the values it
    holds keep theirs, unless `anywhere` (a value refused as a whole: `stop`, cache `tags`)."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            if anywhere or any(not error["loc"] for error in exc.errors(include_url=False)):
                fail(text)
            raise

    return WrapValidator(wrap)


def invalid_request(exc: ValidationError, unknown: Mapping[str, str], prefix: tuple[str, ...] = ()) -> InvalidRequest:
    """The first error of `exc`, named. `unknown`: what an unknown key is, by the path of the
    object it is in ("" the body); `prefix`: the path of the value validated, in the body."""
    errors = exc.errors(include_url=False, include_input=False)
    error = first_error(errors)
    loc = (*prefix, *error["loc"])
    if error["type"] == "extra_forbidden":
        parent = path_of(loc[:-1])
        name = key_name(str(loc[-1]))
        where = f"{parent}.{name}" if parent else name
        return InvalidRequest(f"{where if where != '?' else 'body'}: {unknown.get(parent, 'unknown key')}")
    return InvalidRequest(f"{path_of(loc) or 'body'}: {TEXTS.get(error['type']) or error['msg']}")


def first_error(errors: Sequence[Any]) -> Any:
    """The error the body's reading order meets first. pydantic lists an object's field errors
    in field order, then its unknown keys; an unknown key of an object on the way to its first
    error comes first, the outermost object's first."""
    first = errors[0]
    for depth in range(len(first["loc"]) + 1):
        at = first["loc"][:depth]
        unknown = [e for e in errors if e["type"] == "extra_forbidden" and e["loc"][:-1] == at]
        if unknown:
            return min(unknown, key=lambda e: str(e["loc"][-1]))
    return first


def path_of(loc: Sequence[str | int]) -> str:
    """`messages[0].content[1].image_url.url` from pydantic's `loc`, without the union tags."""
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        elif not key.startswith(TAG):
            out += f".{key_name(key)}" if out else key_name(key)
    return out


# -- field types -------------------------------------------------------------------------------


def integer(low: int, high: int, what: str) -> Any:
    """An integer from `low` to `high` (its protobuf field's range): `{what} (from low to high)` if not."""
    return Annotated[int, Field(ge=low, le=high), says(f"{what} (from {low} to {high})")]


def _float(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            fail("must be a finite number")
    return value


Number = Annotated[float, BeforeValidator(_float)]  # a finite JSON number, integers included
PositiveInt = integer(1, INT32_MAX, "must be a positive integer")
Int64 = integer(INT64_MIN, INT64_MAX, "must be a 64-bit integer")


def or_empty(value: Any) -> Any:
    """An object that a false value (`null`, `{}`, `[]`, `0`, `""`, `false`) leaves as if `{}`."""
    return value or {}
