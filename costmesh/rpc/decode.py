"""Requests that do not parse: `INVALID_ARGUMENT` naming the field, not grpc's `UNKNOWN`.

grpc.aio turns an exception raised by a request deserializer into `UNKNOWN`. The server
interceptor swaps each deserializer for `lenient(...)`, which returns an `Undecodable` in
its place; the call is then refused as an `InvalidRequest` like any other bad input. For
invalid UTF-8 in a string field (what protobuf's `DecodeError` does not say), the field is
found by walking the wire format against the message's descriptor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

MAX_DEPTH = 64


class Undecodable:
    """Stands in for a request whose bytes are not a valid message."""

    def __init__(self, problem: str):
        self.problem = problem  # "field: what is wrong", ready for an InvalidRequest


def lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return Undecodable(describe(data, descriptor))

    return deserialize


def describe(data: bytes, descriptor: Descriptor | None) -> str:
    if descriptor is not None:
        try:
            field = _bad_utf8_field(data, descriptor, 0)
        except (IndexError, ValueError):
            field = None
        if field:
            return f"{field}: not valid UTF-8"
        return f"request: not a valid {descriptor.full_name} message"
    return "request: not a valid message"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _bad_utf8_field(data: bytes, descriptor: Descriptor, depth: int) -> str | None:
    """The path of the first string field whose bytes are not UTF-8, e.g. `messages[0].content[1].text`."""
    if depth > MAX_DEPTH:
        return None
    seen: dict[int, int] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            continue
        if wire in (1, 5):
            pos += 8 if wire == 1 else 4
            continue
        if wire != 2:
            return None  # groups: none in costmesh's messages
        length, pos = _varint(data, pos)
        chunk, pos = data[pos:pos + length], pos + length
        field = descriptor.fields_by_number.get(number)
        if field is None:
            continue
        name = field.name
        if field.is_repeated:
            index = seen.get(number, 0)
            seen[number] = index + 1
            name = f"{name}[{index}]"
        if field.type == FieldDescriptor.TYPE_STRING:
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                return name
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            inner = _bad_utf8_field(chunk, field.message_type, depth + 1)
            if inner:
                return f"{name}.{inner}"
    return None
