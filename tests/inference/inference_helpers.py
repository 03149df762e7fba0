"""Helpers for the inference tests: prompts of exact token lengths, requests."""

from __future__ import annotations

import random

from costmesh.api.inference.v1 import inference_pb2
from costmesh.convert import same_fields_as

BLOCK_SIZE = 32  # KV block size the test engine runs with (prefix-cache hits come in whole blocks)

def single_token_words(tokenizer) -> list[str]:
    """Lower-case vocabulary words that the tokenizer keeps as one token each."""
    return sorted(w for w in tokenizer.get_vocab() if w.isascii() and w.isalpha() and w.islower() and len(w) >= 4)


def text_of_tokens(tokenizer, n_tokens: int, seed: int) -> str:
    """Text that tokenizes to exactly `n_tokens` (BOS included), different for each seed."""
    words = random.Random(seed).choices(single_token_words(tokenizer), k=n_tokens - 1)
    text = " ".join(words)
    assert len(tokenizer(text)["input_ids"]) == n_tokens
    return text


def generate_request(prompt: str, max_tokens: int, temperature: float = 0.0) -> inference_pb2.GenerateRequest:
    """A raw-prompt request, greedy by default."""
    request = inference_pb2.GenerateRequest(prompt=prompt)
    request.sampling.max_tokens = max_tokens
    request.sampling.temperature = temperature
    return request


def streamed(request: inference_pb2.GenerateRequest) -> inference_pb2.StreamGenerateRequest:
    """The same request for StreamGenerate (its own message, the same fields)."""
    return same_fields_as(request, inference_pb2.StreamGenerateRequest)
