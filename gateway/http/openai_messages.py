"""An OpenAI Chat Completions request's `messages` as pydantic models, one per role, each with the
proto message it becomes: system and developer (SYSTEM), user, assistant (its `tool_calls`, its
earlier refusals as text), tool (a tool's result, by `tool_call_id`).

Content is a string or an array of parts: `text` in every role, `image_url` in system, developer
and user messages (a `data:image/<type>;base64,` URL decoded, another URL kept), `refusal` in an
assistant's. Keys a message or part does not declare (`name`, `cache_control`, `detail`...) are
ignored, as before pydantic; the legacy `function_call` is refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationInfo,
    field_validator,
)

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.gateway.http.json_body import short
from costmesh.gateway.http.request_model import ERROR_TYPE, TAG, Strict, fail, fail_at, says

# The parts a message of each role may hold.
PART_KINDS = {"system": ("text", "image_url"), "developer": ("text", "image_url"), "user": ("text", "image_url"),
              "assistant": ("text", "refusal"), "tool": ("text",)}


def _image(url: Any) -> common.Image:
    """An image URL as the proto's image: a data URL decoded, any other URL kept."""
    if not isinstance(url, str):
        fail("expected a string")
    if not url.startswith("data:"):
        return common.Image(url=url)
    header, _, payload = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64" or not media_type.startswith("image/"):
        fail("a data URL must be data:image/<type>;base64,<data>")
    try:
        return common.Image(media_type=media_type, data=base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError):
        fail("invalid base64")


class TextPart(Strict):
    text: str

    def to_proto(self) -> common.ContentPart:
        return common.ContentPart(text=self.text)


class RefusalPart(Strict):
    """An earlier answer's refusal, passed on as its text."""

    refusal: str

    def to_proto(self) -> common.ContentPart:
        return common.ContentPart(text=self.refusal)


class ImageUrl(Strict):
    url: Annotated[common.Image, PlainValidator(_image)]


class ImagePart(Strict):
    image_url: ImageUrl

    def to_proto(self) -> common.ContentPart:
        return common.ContentPart(image=self.image_url.url)


PART_MODELS = {"text": TextPart, "image_url": ImagePart, "refusal": RefusalPart}
Part = Union[TextPart, ImagePart, RefusalPart]


def _part(role: str) -> Any:
    """A part of a `role` message: its `type` one of the kinds such a message holds."""
    kinds = PART_KINDS[role]
    use = "text or image_url" if "image_url" in kinds else "text"
    article = "an" if role == "assistant" else "a"

    def check(part: Any) -> Any:
        if isinstance(part, Mapping):
            if "type" not in part:
                fail_at("type", "required", part)
            if part["type"] not in kinds:
                fail_at("type", f"{short(part['type'])} is not supported in {article} {role} message; use {use}", part)
        return part

    if len(kinds) == 1:
        return Annotated[PART_MODELS[kinds[0]], BeforeValidator(check)]
    members = tuple(Annotated[PART_MODELS[kind], Tag(TAG + kind)] for kind in kinds)
    return Annotated[Union[members], Discriminator(_part_tag), BeforeValidator(check)]


def _part_tag(part: Any) -> str:
    return TAG + (part["type"] if isinstance(part, Mapping) else "text")  # not an object: refused by any


def _content_tag(content: Any) -> str | None:
    return TAG + "text" if isinstance(content, str) else TAG + "parts" if isinstance(content, list) else None


def _content(role: str) -> Any:
    """A `role` message's content: a string, or an array of the parts it may hold."""
    return Annotated[
        Union[Annotated[str, Tag(TAG + "text")], Annotated[list[_part(role)], Tag(TAG + "parts")]],
        Discriminator(_content_tag, custom_error_type=ERROR_TYPE,
                      custom_error_message="expected a string or an array of parts"),
    ]


SystemContent, DeveloperContent, UserContent, AssistantContent, ToolContent = (
    _content(role) for role in ("system", "developer", "user", "assistant", "tool"))


def _content_proto(content: str | list[Part] | None) -> list[common.ContentPart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [common.ContentPart(text=content)]
    return [part.to_proto() for part in content]


class SystemMessage(Strict):
    content: SystemContent = Field(None, validate_default=True)  # missing: as null, refused

    def to_proto(self) -> common.Message:
        return common.Message(role=common.ROLE_SYSTEM, content=_content_proto(self.content))


class DeveloperMessage(SystemMessage):
    """A system message by OpenAI's newer name."""

    content: DeveloperContent = Field(None, validate_default=True)  # missing: as null, refused


class UserMessage(Strict):
    content: UserContent = Field(None, validate_default=True)  # missing: as null, refused

    def to_proto(self) -> common.Message:
        return common.Message(role=common.ROLE_USER, content=_content_proto(self.content))


class CalledFunction(Strict):
    name: str
    arguments: str  # JSON, as the model wrote it


def _function_or_unset(kind: Any) -> Any:
    if kind and kind != "function":
        fail(f"{short(kind)} is not supported; use function")
    return kind


class ToolCall(Strict):
    """A tool call of an earlier answer: {id, type: function, function: {name, arguments}}."""

    type: Annotated[Any, AfterValidator(_function_or_unset)] = None
    function: CalledFunction
    id: str

    def to_proto(self) -> common.ToolCall:
        return common.ToolCall(id=self.id, name=self.function.name, arguments_json=self.function.arguments)


def _refuse_function_call(value: Any) -> Any:
    if value is not None:
        fail("not supported by costmesh; use tool_calls")
    return value


class AssistantMessage(Strict):
    function_call: Annotated[Any, AfterValidator(_refuse_function_call)] = None
    tool_calls: Annotated[list[ToolCall] | None, says("expected an array of tool calls")] = None
    content: AssistantContent | None = Field(None, validate_default=True)

    @field_validator("content")
    @classmethod
    def _content_or_calls(cls, content: Any, info: ValidationInfo) -> Any:
        if content is None and not info.data.get("tool_calls"):
            fail("expected a string or an array of parts")
        return content

    def to_proto(self) -> common.Message:
        message = common.Message(role=common.ROLE_ASSISTANT)
        if self.tool_calls:
            message.tool_calls.extend(call.to_proto() for call in self.tool_calls)
            if not self.content:  # an answer that only calls tools
                return message
        message.content.extend(_content_proto(self.content))
        return message


class ToolMessage(Strict):
    tool_call_id: str
    content: ToolContent = Field(None, validate_default=True)  # missing: as null, refused

    def to_proto(self) -> common.Message:
        return common.Message(role=common.ROLE_TOOL, tool_call_id=self.tool_call_id,
                              content=_content_proto(self.content))


ROLE_MODELS = {"system": SystemMessage, "developer": DeveloperMessage, "user": UserMessage,
               "assistant": AssistantMessage, "tool": ToolMessage}


def _check_role(message: Any) -> Any:
    if isinstance(message, Mapping):
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLE_MODELS:
            fail_at("role", f"{short(role)} is not supported; use system, developer, user, assistant or tool", message)
    return message


def _role_tag(message: Any) -> str:
    return TAG + (message["role"] if isinstance(message, Mapping) else "user")  # not an object: refused by any


Message = Annotated[
    Union[tuple(Annotated[model, Tag(TAG + role)] for role, model in ROLE_MODELS.items())],
    Discriminator(_role_tag), BeforeValidator(_check_role),
]
