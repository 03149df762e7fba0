"""The answer to a prompt for a model: replayed from a book, else generated; after tool results, using them."""

from __future__ import annotations

from collections.abc import Sequence

from costmesh.catalog import ModelSpec
from costmesh.services.simulator.books import Books
from costmesh.services.simulator.model_turn import ToolResult
from costmesh.services.simulator.text import generated_answer

MAX_RESULTS_QUOTED = 8
MAX_RESULT_CHARS = 300


def answer_for(books: Books, spec: ModelSpec, prompt: str) -> str:
    """The recorded response of the model's replay side when the book has it; a generated one otherwise."""
    entry = books.lookup(prompt)
    if entry is not None:
        recorded = entry.response(spec.replay)
        if recorded:
            return recorded
    return generated_answer(prompt, spec.id, spec.replay)


def answer_with_results(books: Books, spec: ModelSpec, prompt: str, results: Sequence[ToolResult]) -> str:
    """The answer after tool calls: what each tool returned (quoted, shortened), then the answer itself."""
    if not results:
        return answer_for(books, spec, prompt)
    lines = []
    for result in results[:MAX_RESULTS_QUOTED]:
        tool = f"The {result.name} tool" if result.name else "The tool"
        quoted = " ".join(result.content[: MAX_RESULT_CHARS * 4].split())[:MAX_RESULT_CHARS] or "nothing"
        lines.append(f"{tool} reported an error: {quoted}." if result.is_error else f"{tool} returned: {quoted}.")
    return " ".join(lines) + "\n\n" + answer_for(books, spec, prompt)
