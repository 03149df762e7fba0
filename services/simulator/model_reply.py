"""The simulated model's answer to a turn: tool calls, JSON, or text.

With tools offered and tool_choice allowing it, a conversation that ends with the user's
message gets tool calls (`tool_calls`); "required"/"any" and a named tool force calls even
after tool results. Otherwise the answer is text that uses any tool results (`answers`), or
JSON when an output format asks for it (`json_output`). Cheaper models' mistakes are drawn
per prompt (`mistakes`).

An Anthropic conversation that ends with an assistant turn (a prefill) is continued: the reply
is only what comes after the prefill's text, and calls no tool unless one is forced. A prefill
that opens a JSON object ("{", as JSON mode sends with its instruction) is continued as JSON
mode's object, the same answer and the same mistakes as asked in JSON mode without it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from costmesh.catalog import ModelSpec
from costmesh.services.simulator.answers import answer_with_results
from costmesh.services.simulator.books import Books
from costmesh.services.simulator.json_output import continuation, json_answer, opens_object
from costmesh.services.simulator.judge import judge_reply
from costmesh.services.simulator.mistakes import draw
from costmesh.services.simulator.model_turn import OutputFormat, Reply, Turn
from costmesh.services.simulator.prompt_words import read_prompt
from costmesh.services.simulator.schema_values import Fill
from costmesh.services.simulator.tool_calls import calls_for


def openai_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def anthropic_call_id() -> str:
    return f"toolu_01{uuid.uuid4().hex[:22]}"


def reply_to(
    turn: Turn,
    spec: ModelSpec,
    books: Books,
    new_id: Callable[[], str],
    *,
    objects_only: bool = False,
    preamble: bool = False,
) -> Reply:
    """The model's reply. `objects_only`: tool arguments always parse (Anthropic's `input`);
    `preamble`: a sentence of text before calls the model chose to make (Claude does this)."""
    verdict = judge_reply(turn.prompt, books)  # a shadow check's judge prompt: SAME|DIFFERENT, GOOD|WORSE (judge.py)
    if verdict is not None:
        return Reply(verdict)
    facts = read_prompt(turn.prompt)
    forced = turn.choice.mode in ("required", "named")
    if turn.tools and turn.choice.mode != "none" and (forced or not (turn.results or turn.prefill)):
        mistake = draw(books, spec, turn.prompt, "tool_call")
        calls = calls_for(turn, facts, mistake, new_id, objects_only=objects_only)
        if calls:
            text = f"I'll use the {calls[0].name} tool to help with this." if preamble and not forced else ""
            return Reply(text, calls)
    text = answer_with_results(books, spec, turn.prompt, turn.results)
    output = turn.output
    if output.kind == "text" and opens_object(turn.prefill):
        output = OutputFormat("json_object")
    if output.kind == "text":
        return Reply(continuation(turn.prefill, text))
    mistake = draw(books, spec, turn.prompt, "json")
    return Reply(json_answer(output, Fill(facts, answer=text), mistake, turn.prefill))
