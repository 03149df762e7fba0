"""An OpenAI chat prompt as one token sequence: `costmesh.tokens.TokenCounter.encode_messages`'s rule,
plus the response format's schema after the tools and each image as its tile tokens (synthetic
ids derived from the image's bytes, so the same image caches like the same text)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from costmesh.services.simulator.openai_messages import ImagePart
from costmesh.tokens import IM_END, IM_SEP, IM_START, NAME_MARK, TokenCounter, block_text, message_texts, tool_text


def prompt_tokens(
    counter: TokenCounter,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    output_schema: Mapping[str, Any] | None,
    images: Mapping[tuple[int, int], ImagePart],
) -> list[int]:
    """The prompt's tokens; without images or a schema, exactly `counter.encode_messages(messages, tools=tools)`."""
    out: list[int] = []
    for tool in tools:
        out.extend(counter.encode(tool_text(tool)))
    if output_schema is not None:
        out.extend(counter.encode(json.dumps(output_schema, sort_keys=True, separators=(",", ":"))))
    for i, message in enumerate(messages):
        out.extend([IM_START, *counter.encode(str(message.get("role", "")))])
        name = message.get("name")
        if name:
            out.extend([NAME_MARK, *counter.encode(str(name))])
        out.append(IM_SEP)
        content = message.get("content")
        if isinstance(content, list) and any((i, j) in images for j in range(len(content))):
            for j, part in enumerate(content):
                image = images.get((i, j))
                out.extend(image.image.token_ids(image.tokens) if image else counter.encode(block_text(part)))
            calls = message.get("tool_calls") or message.get("function_call")
            if calls:
                out.extend(counter.encode(json.dumps(calls, sort_keys=True, separators=(",", ":"), default=str)))
        else:
            for text in message_texts(message):
                out.extend(counter.encode(text))
        out.append(IM_END)
    out.extend([IM_START, *counter.encode("assistant"), IM_SEP])
    return out
