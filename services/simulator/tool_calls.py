"""Which tools the simulated model calls, with which arguments, and how a cheaper model gets it wrong.

The tool whose name and description share the most words with the prompt wins (a
calculator-like tool wins when the prompt holds an arithmetic expression); with parallel
calls allowed, every other tool scoring at least half the best is called too (the calls in
the order the tools are listed). Arguments are
built from the tool's schema (`schema_values`). A mistake (`mistakes`) changes the first call:
no call at all (tool_choice auto), a misspelled tool name, a required argument left out, an
argument of the wrong type, or arguments that are not JSON (OpenAI only: Anthropic's `input`
is always an object). Strict tools only ever get the first kind, as constrained decoding allows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from costmesh.services.simulator.mistakes import Mistake
from costmesh.services.simulator.model_turn import ToolCall, ToolSpec, Turn
from costmesh.services.simulator.prompt_words import PromptFacts, stems
from costmesh.services.simulator.schema_values import Fill, resolve, schema_types, value_for

MAX_PARALLEL_CALLS = 4
MAX_PROMPT_STEMS = 4096
CALCULATOR_STEMS = frozenset({"calcu", "math", "arith", "compu", "evalu", "expre", "multi", "divid", "sum"})
NO_CALL = "no_call"


def calls_for(
    turn: Turn,
    facts: PromptFacts,
    mistake: Mistake,
    new_id: Callable[[], str],
    *,
    objects_only: bool,
) -> tuple[ToolCall, ...]:
    """The calls the model makes (empty: it answers in text instead, a mistake under auto)."""
    chosen = choose_tools(turn, facts)
    if not chosen:
        return ()
    first = chosen[0]
    kinds = _mistake_kinds(turn, first, objects_only)
    kind = mistake.kind(kinds)
    if kind == NO_CALL:
        return ()
    calls = []
    for i, tool in enumerate(chosen):
        fill = Fill(facts, answer=turn.prompt[:500], calculator=_is_calculator(tool))
        arguments = value_for(tool.schema, fill) if tool.schema else {}
        name = tool.name
        text = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
        if i == 0 and kind is not None:
            name, text = _botch(kind, turn, tool, arguments, text)
        calls.append(ToolCall(new_id(), name, text))
    return tuple(calls)


def choose_tools(turn: Turn, facts: PromptFacts) -> list[ToolSpec]:
    """The tools called: the named one, or the best match (and, parallel, close seconds, in the tools' order)."""
    choice = turn.choice
    if not turn.tools or choice.mode == "none":
        return []
    if choice.mode == "named":
        named = turn.tool(choice.name or "")
        return [named] if named else []
    prompt_stems = stems(turn.prompt, MAX_PROMPT_STEMS)
    scored = sorted(
        ((_score(tool, prompt_stems, facts), i, tool) for i, tool in enumerate(turn.tools)),
        key=lambda row: (-row[0], row[1]),
    )
    best_score, best_index, best = scored[0]
    if not choice.parallel or best_score <= 0:
        return [best]
    chosen = [(best_index, best)]
    for score, index, tool in scored[1:]:
        if len(chosen) >= MAX_PARALLEL_CALLS:
            break
        if score > 0 and 2 * score >= best_score:
            chosen.append((index, tool))
    return [tool for _, tool in sorted(chosen, key=lambda pair: pair[0])]  # parallel calls in the tools' order


def _score(tool: ToolSpec, prompt_stems: frozenset[str], facts: PromptFacts) -> int:
    name_stems = stems(tool.name)
    score = 2 * len(prompt_stems & name_stems) + len(prompt_stems & (stems(tool.description) - name_stems))
    if _is_calculator(tool):
        score += 3 if facts.expression else 1 if len(facts.numbers) >= 2 else -1
    return score


def _is_calculator(tool: ToolSpec) -> bool:
    return bool((stems(tool.name) | stems(tool.description)) & CALCULATOR_STEMS)


def _mistake_kinds(turn: Turn, tool: ToolSpec, objects_only: bool) -> list[str]:
    kinds = [NO_CALL] if turn.choice.mode == "auto" else []
    if tool.strict:
        return kinds
    kinds.append("misspelled_name")
    root = resolve(tool.schema, tool.schema)
    if isinstance(root, Mapping):
        if any(isinstance(r, str) for r in root.get("required") or []):
            kinds.append("missing_required")
        if isinstance(root.get("properties"), Mapping) and root["properties"]:
            kinds.append("wrong_type")
    if not objects_only:
        kinds.append("unparseable")
    return kinds


def _botch(kind: str, turn: Turn, tool: ToolSpec, arguments: Any, text: str) -> tuple[str, str]:
    """The first call made wrong in the way `kind` says."""
    if kind == "misspelled_name":
        return misspell(tool.name, {t.name for t in turn.tools}), text
    if kind == "unparseable":
        return tool.name, text[: max(len(text) // 2, 1)]
    root = resolve(tool.schema, tool.schema)
    if not isinstance(arguments, dict) or not isinstance(root, Mapping):
        return tool.name, text
    broken = dict(arguments)
    if kind == "missing_required":
        missing = next(r for r in root["required"] if isinstance(r, str))
        broken.pop(missing, None)
    elif kind == "wrong_type":
        key = next(iter(root["properties"]))
        broken[key] = wrong_type_value(resolve(tool.schema, root["properties"][key]))
    return tool.name, json.dumps(broken, separators=(",", ":"), ensure_ascii=False)


def misspell(name: str, taken: set[str]) -> str:
    """A near miss of `name` that names no offered tool (two letters swapped, else one dropped)."""
    candidates = []
    if len(name) >= 2 and name[-1] != name[-2]:
        candidates.append(name[:-2] + name[-1] + name[-2])
    candidates += [name[:-1], name + "s"]
    candidates += [f"{name}_{k}" for k in range(len(taken) + 1)]  # one of these is free
    return next(c for c in candidates if c and c not in taken)


def wrong_type_value(schema: Any) -> Any:
    """A value whose JSON type the schema does not allow."""
    allowed = set(schema_types(schema))
    if "number" in allowed:
        allowed.add("integer")
    for value, kind in ((12345, "integer"), ("not a number", "string"), (["unexpected"], "array")):
        if kind not in allowed:
            return value
    return {"unexpected": True}
