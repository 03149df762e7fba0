"""The prompt token ids the engine will see for a chat, from the model's own tokenizer (no gRPC).

The inference service renders chat messages with the tokenizer's chat template (opening the
assistant's turn, or continuing a trailing assistant message) and tokenizes the rendered text
without adding special tokens again; this does the same with `transformers`, loaded from the
model directory (or hub id) in COSTMESH_INFERENCE_TOKENIZER.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from costmesh.domain import Message, Role
from costmesh.errors import ConfigError

_ROLE_NAMES = {Role.SYSTEM: "system", Role.USER: "user", Role.ASSISTANT: "assistant"}


class ChatTokenizer:
    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer

    @classmethod
    def load(cls, path: str) -> "ChatTokenizer":
        try:
            from transformers import AutoTokenizer

            return cls(AutoTokenizer.from_pretrained(path))
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigError(f"COSTMESH_INFERENCE_TOKENIZER: cannot load a tokenizer from {path!r}: {exc}") from None

    def __call__(self, messages: Sequence[Message]) -> list[int]:
        chat = [{"role": _ROLE_NAMES[m.role], "content": m.text} for m in messages]
        prefill = bool(chat) and chat[-1]["role"] == "assistant"
        text = self._tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=not prefill, continue_final_message=prefill
        )
        return list(self._tokenizer.encode(text, add_special_tokens=False))
