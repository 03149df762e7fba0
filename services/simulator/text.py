"""Answer text: deterministic generated answers, stop sequences, max_tokens (tool calls included), stream chunks.

Everything here reads the prompt in linear time: no pattern can backtrack over the rest of
the text from each position (a 1 MB prompt without a sentence end used to take minutes).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from costmesh.services.simulator.model_turn import Reply, ToolCall
from costmesh.tokens import TokenCounter

# A multiple-choice line, "A. text" or "(B) text": anchored at line starts, and no part of it can
# match a newline or retry a run of blanks, so each line is read once.
_CHOICE = re.compile(r"^[^\S\n]*\(?([A-J])[.)][^\S\n]+(\S(?:[^\n]*\S)?)", re.MULTILINE)
_WORD = re.compile(r"\S+")
_JSON_PIECE = re.compile(r"\w+|\s+|[^\w\s]+")
TOOL_CALL_OVERHEAD = 3  # tokens a call costs besides its name and arguments
_OPENERS = (
    'Here is a short answer to "{topic}".',
    'You asked: "{topic}". Let\'s go through it.',
    'Good question: "{topic}".',
)
_BODY = (
    "The key is to pin down exactly what is being asked and which facts are given.",
    "Work through the details one step at a time and check each assumption on the way.",
    "A common mistake is to skip the edge cases, so it is worth testing them explicitly.",
    "The simplest approach that meets the requirements is usually the right one.",
    "It helps to compare a couple of alternatives before settling on one.",
    "Numbers and units should be carried through every step so the result can be verified.",
    "Where the question is ambiguous, state the interpretation you are using.",
    "Known results and definitions cover most of the ground here.",
    "With more context the answer could be made more specific.",
)
_CLOSERS = (
    "In short, it comes down to applying the basics carefully.",
    "That should answer the question.",
    "I hope this helps.",
)


@dataclass(frozen=True)
class Completion:
    """A finished answer: its text, its tool calls, why it stopped, and its output tokens."""

    text: str
    stop_reason: str  # "end_turn" | "max_tokens" | "stop_sequence" | "tool_use"
    stop_sequence: str | None
    output_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()


def generated_answer(prompt: str, model: str, side: str) -> str:
    """A plausible answer derived from the prompt, the same for the same prompt and model."""
    seed = int.from_bytes(hashlib.sha256(f"{model}\x00{prompt}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    choices = _CHOICE.findall(prompt)
    if len(choices) >= 2:
        letter, text = rng.choice(choices)
        reason = rng.choice(_BODY)
        return f"The answer is {letter}. {text}\n\n{reason}"
    topic = _topic(prompt)
    count = rng.randint(4, 7) if side == "strong" else rng.randint(2, 4)
    sentences = [rng.choice(_OPENERS).format(topic=topic), *rng.sample(_BODY, count), rng.choice(_CLOSERS)]
    return " ".join(sentences)


def _topic(prompt: str, max_words: int = 14) -> str:
    """The question in the prompt (its last sentence ending in '?', else its start), shortened."""
    text = " ".join(prompt.split())
    end = text.rfind("?")
    if end >= 0:  # the last question: from the sentence end before it (if any) to its '?'
        start = max(text.rfind(".", 0, end), text.rfind("!", 0, end), text.rfind("?", 0, end)) + 1
        candidate = text[start:end + 1].strip()
    else:
        candidate = text
    words = candidate.replace('"', "'").split()
    if not words:
        return "your question"
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")


def finish(text: str, counter: TokenCounter, max_tokens: int, stop_sequences: Sequence[str] = ()) -> Completion:
    """Cut `text` at the first stop sequence or at `max_tokens`, whichever comes first."""
    cut, matched = len(text), None
    for sequence in stop_sequences:
        at = text.find(sequence) if sequence else -1
        if 0 <= at < cut:
            cut, matched = at, sequence
    candidate = text[:cut]
    if counter.count(candidate) > max_tokens:
        truncated = counter.truncate(candidate, max_tokens)
        return Completion(truncated, "max_tokens", None, counter.count(truncated))
    reason = "stop_sequence" if matched is not None else "end_turn"
    return Completion(candidate, reason, matched, counter.count(candidate))


def finish_reply(
    reply: Reply, counter: TokenCounter, max_tokens: int, stop_sequences: Sequence[str] = (), *, objects_only: bool
) -> Completion:
    """`finish` for a reply that may call tools: calls that do not fit in `max_tokens` are cut (OpenAI:
    the arguments text truncated; Anthropic, `objects_only`: the input left empty) and stop it there."""
    done = finish(reply.text, counter, max_tokens, stop_sequences)
    if not reply.tool_calls or done.stop_reason != "end_turn":
        return done
    used, calls = done.output_tokens, []
    for call in reply.tool_calls:
        cost = counter.count(call.name) + counter.count(call.arguments) + TOOL_CALL_OVERHEAD
        if used + cost <= max_tokens:
            calls.append(call)
            used += cost
            continue
        room = max(max_tokens - used - counter.count(call.name) - TOOL_CALL_OVERHEAD, 0)
        cut = "{}" if objects_only else counter.truncate(call.arguments, room)
        calls.append(ToolCall(call.id, call.name, cut))
        return Completion(done.text, "max_tokens", None, max_tokens, tuple(calls))
    return Completion(done.text, "tool_use", None, used, tuple(calls))


def json_pieces(text: str) -> list[str]:
    """`text` (tool arguments) split into token-sized pieces that join back to exactly `text`."""
    return _JSON_PIECE.findall(text)


def stream_chunks(text: str) -> list[str]:
    """`text` split into word-sized pieces that join back to exactly `text`."""
    pieces, start = [], 0
    for word in _WORD.finditer(text):
        pieces.append(text[start:word.end()])  # the blanks before a word travel with it
        start = word.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces
