"""OpenAI Chat Completions `messages`: each message checked (content parts, images, tool calls),
tool messages paired with the assistant tool calls they answer, errors worded like the real API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from costmesh.services.simulator import images
from costmesh.services.simulator.errors import ApiError, invalid
from costmesh.services.simulator.images import Image, ImageError
from costmesh.services.simulator.model_turn import ToolResult

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
PART_TYPES = ("text", "image_url", "input_audio", "refusal", "audio", "file")
DETAILS = ("auto", "low", "high")
UNSUPPORTED_IMAGE = (
    "You uploaded an unsupported image. Please make sure your image has of one the following formats: "
    "['png', 'jpeg', 'gif', 'webp']."
)
INVALID_IMAGE = (
    "The image data you provided does not represent a valid image. Please check your input and try again with "
    "one of the supported image formats: ['image/jpeg', 'image/png', 'image/gif', 'image/webp']."
)


@dataclass(frozen=True)
class ImagePart:
    image: Image
    tokens: int


@dataclass(frozen=True)
class ChatMessages:
    prompt_text: str  # the last user message's text
    results: tuple[ToolResult, ...]  # the tool messages ending the conversation, if it ends with some
    images: Mapping[tuple[int, int], ImagePart]  # by (message index, content part index)
    mentions_json: bool  # some message's text says "json" (JSON mode requires it)


def check_messages(messages: list[Any]) -> ChatMessages:
    """Validate every message and the pairing of tool calls with tool messages; raises ApiError(400)."""
    prompt_text = ""
    found: dict[tuple[int, int], ImagePart] = {}
    mentions_json = False
    pairing = _Pairing()
    for i, message in enumerate(messages):
        text = _check_message(i, message, found)
        mentions_json = mentions_json or "json" in text.lower()
        if message["role"] == "user":
            prompt_text = text if text or not prompt_text else prompt_text
        pairing.add(i, message, text)
    pairing.finish()
    return ChatMessages(prompt_text, tuple(pairing.trailing_results), found, mentions_json)


def _check_message(i: int, message: Any, found: dict[tuple[int, int], ImagePart]) -> str:
    """Check one message; returns the text of its content (parts joined by newlines)."""
    where = f"messages[{i}]"
    if not isinstance(message, Mapping):
        raise invalid(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
    role = message.get("role")
    if role is None:
        raise invalid(f"Missing required parameter: '{where}.role'.", f"{where}.role", "missing_required_parameter")
    if role not in ROLES:
        raise invalid(
            f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', "
            "and 'developer'.",
            f"{where}.role",
            "invalid_value",
        )
    if role == "assistant" and message.get("tool_calls") is not None:
        _check_tool_calls(where, message["tool_calls"])
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        name = f"{where}.tool_call_id"
        if message.get("tool_call_id") is None:
            raise invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        raise invalid(f"Invalid type for '{name}': expected a string.", name, "invalid_type")
    content = message.get("content")
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return ""
        raise invalid(
            f"Missing required parameter: '{where}.content'.", f"{where}.content", "missing_required_parameter"
        )
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(
            f"Invalid type for '{where}.content': expected one of a string or array of objects.",
            f"{where}.content",
            "invalid_type",
        )
    texts = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise invalid(f"Missing required parameter: '{at}.type'.", f"{at}.type", "missing_required_parameter")
        kind = part["type"]
        if kind not in PART_TYPES:
            raise invalid(
                f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', "
                "'audio', and 'file'.",
                f"{at}.type",
                "invalid_value",
            )
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise invalid(f"Missing required parameter: '{at}.text'.", f"{at}.text", "missing_required_parameter")
            texts.append(part["text"])
        elif kind == "image_url":
            if role != "user":
                raise invalid(
                    f"Invalid '{where}'. Image URLs are only allowed for messages with role 'user', but this "
                    f"message with role '{role}' contains an image URL.",
                    where,
                    "invalid_value",
                )
            found[(i, j)] = _image_part(at, part)
    return "\n".join(texts)


def _image_part(at: str, part: Mapping[str, Any]) -> ImagePart:
    spec = part.get("image_url")
    if not isinstance(spec, Mapping):
        name = f"{at}.image_url"
        raise invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    url = spec.get("url")
    if not isinstance(url, str):
        name = f"{at}.image_url.url"
        raise invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
    detail = spec.get("detail", "auto")
    if detail not in DETAILS:
        raise invalid(
            f"Invalid value: '{detail}'. Supported values are: 'auto', 'low', and 'high'.",
            f"{at}.image_url.detail",
            "invalid_value",
        )
    if url.startswith(("https://", "http://")):
        image = images.from_url(url)
    elif url.startswith("data:"):
        image = _data_url(url)
    else:
        raise invalid(
            f"Invalid '{at}.image_url.url'. Expected a base64-encoded data URL with an image MIME type (e.g. "
            "'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value with an invalid format.",
            f"{at}.image_url.url",
            "invalid_value",
        )
    return ImagePart(image, images.openai_tokens(image, detail))


def _data_url(url: str) -> Image:
    head, comma, data = url.partition(",")
    media_type, _, encoding = head[len("data:") :].partition(";")
    if not comma or encoding != "base64" or media_type not in images.MEDIA_TYPES:
        raise ApiError(400, UNSUPPORTED_IMAGE, code="invalid_image_format")
    if len(data) * 3 // 4 > images.OPENAI_MAX_IMAGE_BYTES:
        raise ApiError(400, "Image too large: images must be at most 20 MB.", code="image_too_large")
    try:
        return images.from_base64(data)
    except ImageError:
        raise ApiError(400, INVALID_IMAGE, code="invalid_image_format") from None


def _check_tool_calls(where: str, calls: Any) -> None:
    if not isinstance(calls, list):
        name = f"{where}.tool_calls"
        raise invalid(f"Invalid type for '{name}': expected an array.", name, "invalid_type")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, Mapping):
            raise invalid(f"Invalid type for '{at}': expected an object.", at, "invalid_type")
        for key in ("id", "type", "function"):
            if call.get(key) is None:
                raise invalid(f"Missing required parameter: '{at}.{key}'.", f"{at}.{key}", "missing_required_parameter")
        if call["type"] != "function":
            raise invalid(
                f"Invalid value: '{call['type']}'. Supported values are: 'function'.", f"{at}.type", "invalid_value"
            )
        function = call["function"]
        for key in ("name", "arguments"):
            value = function.get(key) if isinstance(function, Mapping) else None
            name = f"{at}.function.{key}"
            if value is None:
                raise invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
            if not isinstance(value, str):
                raise invalid(
                    f"Invalid type for '{name}': expected a string, but got {_kind(value)} instead.",
                    name,
                    "invalid_type",
                )


class _Pairing:
    """Tool messages must answer the tool calls of the assistant message just before them, all of them."""

    def __init__(self) -> None:
        self.calls: dict[str, str] = {}  # id -> function name, of the open assistant message
        self.unanswered: dict[str, None] = {}  # ordered, O(1) removal
        self.assistant_index = -1
        self.trailing_results: list[ToolResult] = []

    def add(self, i: int, message: Mapping[str, Any], text: str) -> None:
        role = message["role"]
        if role == "tool":
            self._tool(i, message, text)
            return
        self.finish()
        self.trailing_results = []
        self.calls = {}
        if role == "assistant" and message.get("tool_calls"):
            self.assistant_index = i
            self.calls = {call["id"]: call["function"]["name"] for call in message["tool_calls"]}
            self.unanswered = dict.fromkeys(self.calls)

    def _tool(self, i: int, message: Mapping[str, Any], text: str) -> None:
        if not self.calls:
            raise invalid(
                "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                "'tool_calls'.",
                f"messages.[{i}].role",
            )
        call_id = message["tool_call_id"]
        if call_id not in self.calls:
            raise invalid(
                f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                f"messages.[{i}].tool_call_id",
            )
        self.unanswered.pop(call_id, None)
        self.trailing_results.append(ToolResult(self.calls[call_id], text))

    def finish(self) -> None:
        """The open assistant message's calls must all have been answered by now."""
        if self.unanswered:
            raise invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: "
                f"{', '.join(self.unanswered)}",
                f"messages.[{self.assistant_index}].role",
            )


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string"
