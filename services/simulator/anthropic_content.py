"""Anthropic message content blocks: images, tool_use and tool_result checked and counted, and tool
results paired with the tool uses they answer. Errors are worded like the real API's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costmesh.services.simulator import images
from costmesh.services.simulator.errors import invalid
from costmesh.services.simulator.images import ImageError
from costmesh.services.simulator.model_turn import ToolResult
from costmesh.tokens import TokenCounter, block_text

SOURCE_TYPES = ("base64", "url")


def block_tokens(counter: TokenCounter, block: Mapping[str, Any], where: str, role: str) -> int:
    """The block's prompt tokens (an image by its pixels), after checking it; raises ApiError(400)."""
    kind = block["type"]
    if kind == "image":
        return image_tokens(block, where)
    if kind == "tool_use":
        _check_tool_use(block, where, role)
    elif kind == "tool_result":
        return _tool_result_tokens(counter, block, where, role)
    return counter.count(block_text(block))


def image_tokens(block: Mapping[str, Any], where: str) -> int:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise invalid(f"{where}.image.source: Field required")
    kind = source.get("type")
    if kind not in SOURCE_TYPES:
        raise invalid(
            f"{where}.image.source: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'base64', 'url'"
        )
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise invalid(f"{where}.image.source.url.url: Field required")
        if not url.startswith(("https://", "http://")):
            raise invalid(f"{where}.image.source.url.url: Only HTTP and HTTPS URLs are supported")
        return images.anthropic_tokens(images.from_url(url))
    at = f"{where}.image.source.base64"
    media_type = source.get("media_type")
    if media_type not in images.MEDIA_TYPES:
        raise invalid(f"{at}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
    data = source.get("data")
    if not isinstance(data, str):
        raise invalid(f"{at}.data: Field required")
    if len(data) > images.ANTHROPIC_MAX_BASE64_BYTES:
        raise invalid(
            f"{at}: image exceeds 5 MB maximum: {len(data)} bytes > {images.ANTHROPIC_MAX_BASE64_BYTES} bytes"
        )
    try:
        image = images.from_base64(data, media_type)
    except ImageError as error:
        if error.kind == "mismatch":
            raise invalid(f"{at}.data: Image does not match the provided media type {media_type}") from None
        raise invalid(f"{at}.data: Could not process image") from None
    if max(image.width, image.height) > images.ANTHROPIC_MAX_DIMENSION:
        raise invalid(
            f"{at}.data: At least one of the image dimensions exceed max allowed size: "
            f"{images.ANTHROPIC_MAX_DIMENSION} pixels"
        )
    return images.anthropic_tokens(image)


def _check_tool_use(block: Mapping[str, Any], where: str, role: str) -> None:
    if role != "assistant":
        raise invalid(f"{where}: `tool_use` blocks can only appear in assistant messages")
    for key in ("id", "name"):
        if block.get(key) is None:
            raise invalid(f"{where}.tool_use.{key}: Field required")
        if not isinstance(block[key], str):
            raise invalid(f"{where}.tool_use.{key}: Input should be a valid string")
    if "input" not in block:
        raise invalid(f"{where}.tool_use.input: Field required")
    if not isinstance(block["input"], Mapping):
        raise invalid(f"{where}.tool_use.input: Input should be a valid dictionary")


def _tool_result_tokens(counter: TokenCounter, block: Mapping[str, Any], where: str, role: str) -> int:
    if role != "user":
        raise invalid(f"{where}: `tool_result` blocks can only appear in user messages")
    if block.get("tool_use_id") is None:
        raise invalid(f"{where}.tool_result.tool_use_id: Field required")
    if not isinstance(block["tool_use_id"], str):
        raise invalid(f"{where}.tool_result.tool_use_id: Input should be a valid string")
    if not isinstance(block.get("is_error", False), bool):
        raise invalid(f"{where}.tool_result.is_error: Input should be a valid boolean")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return counter.count(block_text(block))
    if not isinstance(content, list):
        raise invalid(f"{where}.tool_result.content: Input should be a valid string or a list of content blocks")
    pictures, others = 0, []
    for k, part in enumerate(content):
        at = f"{where}.tool_result.content.{k}"
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise invalid(f"{at}.type: Field required")
        if part["type"] == "image":
            pictures += image_tokens(part, at)
            continue
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise invalid(f"{at}.text: Field required")
        others.append(part)
    return counter.count(block_text({**block, "content": others})) + pictures


def result_text(block: Mapping[str, Any]) -> str:
    """A tool_result's content as text (its text blocks joined)."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return ""


class ToolPairing:
    """Every tool_use must be answered by a tool_result in the very next message, and every
    tool_result must answer a tool_use of the message just before it."""

    def __init__(self) -> None:
        self.open: dict[str, str] = {}  # tool_use id -> tool name, of the previous assistant message
        self.open_index = -1
        self.uses_tool_blocks = False
        self.results: tuple[ToolResult, ...] = ()  # those of the last message

    def add(self, i: int, role: str, blocks: list[Any]) -> None:
        typed = [b for b in blocks if isinstance(b, Mapping)]
        uses = {b["id"]: b["name"] for b in typed if b.get("type") == "tool_use"}
        answers = [b for b in typed if b.get("type") == "tool_result"]
        self.uses_tool_blocks = self.uses_tool_blocks or bool(uses) or bool(answers)
        results = []
        for j, block in enumerate(typed):
            if block.get("type") != "tool_result":
                continue
            if block["tool_use_id"] not in self.open:
                raise invalid(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding `tool_use` block "
                    "in the previous message."
                )
            results.append(
                ToolResult(self.open[block["tool_use_id"]], result_text(block), bool(block.get("is_error", False)))
            )
        answered = {b["tool_use_id"] for b in answers}
        missing = [use_id for use_id in self.open if use_id not in answered]
        if missing:
            raise invalid(
                f"messages.{self.open_index}: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                "in the next message."
            )
        self.open, self.open_index = (uses, i) if role == "assistant" else ({}, -1)
        self.results = tuple(results)

    def check_tools_defined(self, has_tools: bool) -> None:
        if self.uses_tool_blocks and not has_tools:
            raise invalid("Requests which include `tool_use` or `tool_result` blocks must define tools.")
