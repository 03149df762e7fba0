"""Unit tests of the heuristic quality gate."""

from __future__ import annotations

import pytest

from costmesh.domain import Generation, Message, Role
from costmesh.errors import ConfigError
from costmesh.services.router.gate import HeuristicGate
from costmesh.services.router.gate_factory import build_gate

EXPLANATION = (
    "Rayleigh scattering: air molecules scatter short wavelengths much more strongly than long ones, "
    "so blue light from the sun is redirected across the whole sky and reaches our eyes from every direction."
)


async def check(prompt: str, text: str, finish_reason: str = "stop"):
    answer = Generation(text=text, model="m", provider="p", finish_reason=finish_reason)
    return await HeuristicGate().check([Message.of(Role.USER, prompt)], answer)


async def test_a_good_answer_passes():
    verdict = await check("Why is the sky blue?", EXPLANATION)
    assert verdict.passed and verdict.score == 1.0 and verdict.reasons == ()


async def test_a_short_answer_to_a_short_question_passes():
    assert (await check("What is 2 + 2?", "4")).passed


@pytest.mark.parametrize(
    "prompt, text, finish, reason",
    [
        ("Why is the sky blue?", "   ", "stop", "empty"),
        ("Why is the sky blue?", "I can't help with that request.", "stop", "refusal_phrase"),
        ("Why is the sky blue?", "As an AI language model I do not see colours, " + EXPLANATION, "stop",
         "refusal_phrase"),
        ("Why is the sky blue?", EXPLANATION, "refusal", "refusal"),
        ("Why is the sky blue?", EXPLANATION, "length", "truncated"),
        ("Explain why the sky is blue.", "Scattering.", "stop", "too_short"),
        ("Solve it step by step: 17 * 23", "391, done quickly here.", "stop", "too_short"),
        ("Tell me a joke.", "ha ha ha ha " * 30, "stop", "repetition"),
        ("List some fruit.", "\n".join(["apple", "apple", "apple", "pear", "apple", "apple"]), "stop", "repetition"),
    ],
)
async def test_failures(prompt, text, finish, reason):
    verdict = await check(prompt, text, finish)
    assert not verdict.passed
    assert reason in verdict.reasons
    assert 0.0 <= verdict.score < 0.5


async def test_a_refusal_phrase_deep_in_a_long_answer_is_not_a_refusal():
    more = (
        " At sunset the light crosses far more atmosphere, most blue is scattered away before it arrives,"
        " and the remaining reds and oranges dominate; volcanic dust and pollution can deepen that effect."
        " A chatbot that opens with 'I can't help with' is refusing; this sentence only quotes one."
    )
    text = EXPLANATION + more
    assert (await check("Why is the sky blue?", text)).passed


def test_gates_are_picked_by_name():
    assert build_gate("heuristic", 0.7).threshold == 0.7
    with pytest.raises(ConfigError, match="COSTMESH_ROUTER_GATE"):
        build_gate("judge")
