"""The LLM judge's prompt for shadow checks (issue 22), its verdict read back, and the simulator's
judge mode that answers it deterministically."""

from __future__ import annotations

from costmesh.judge_prompt import judge_prompt, parse_verdict, read_judge_prompt
from costmesh.services.simulator.judge import alike, judge_reply


def test_the_prompt_round_trips_and_the_verdict_is_read_back():
    prompt = judge_prompt("How do I reset it?", "Open Settings.\n\nThen Reset.", "Go to Settings, pick Reset.")
    assert read_judge_prompt(prompt) == ("How do I reset it?", "Open Settings.\n\nThen Reset.",
                                         "Go to Settings, pick Reset.")
    assert read_judge_prompt("How do I reset it?") is None
    assert parse_verdict("SAME") == "same" and parse_verdict("different.") == "different"
    assert parse_verdict("Verdict: DIFFERENT") == "different" and parse_verdict("I cannot tell") is None


def test_the_simulator_judges_by_content_words_and_numbers():
    same = judge_prompt("q", "Open Settings, choose Security, then Reset password.",
                        "Go to Settings > Security and pick Reset password.")
    assert judge_reply(same) == "SAME"
    assert judge_reply(judge_prompt("q", "The store opens at 9 am.", "The store opens at 10 am.")) == "DIFFERENT"
    assert judge_reply(judge_prompt("q", "Canberra is the capital.", "Vienna is the capital.")) == "DIFFERENT"
    assert judge_reply("What is the capital of Australia?") is None
    assert alike("Exactly this.", "exactly THIS") == 1.0
