"""The LLM judge's prompts for shadow checks (issue 22), cache hits' and cheap answers', their
verdicts read back, and the simulator's judge mode that answers them deterministically."""

from __future__ import annotations

import gzip
import json

from costmesh.judge_prompt import (
    judge_prompt,
    parse_quality_verdict,
    parse_verdict,
    quality_prompt,
    read_judge_prompt,
    read_quality_prompt,
)
from costmesh.services.simulator.books import Books
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


def test_the_routing_judge_prompt_round_trips_and_its_verdict_is_read_back():
    prompt = quality_prompt("What is 6 x 7?", "42.\n\nSix sevens.", "6 x 7 = 42")
    assert read_quality_prompt(prompt) == ("What is 6 x 7?", "42.\n\nSix sevens.", "6 x 7 = 42")
    assert read_judge_prompt(prompt) is None and read_quality_prompt(judge_prompt("q", "a", "b")) is None
    assert parse_quality_verdict("GOOD") == "as_good" and parse_quality_verdict("worse.") == "worse"
    assert parse_quality_verdict("Verdict: WORSE") == "worse" and parse_quality_verdict("SAME") is None


def test_the_simulator_judges_a_cheap_answer_against_the_premium_one(tmp_path):
    """The book decides when it recorded both answers with their scores (a weak answer worded otherwise
    but right is as good, a wrong one is worse however many words it shares); otherwise alike answers
    are as good."""
    path = tmp_path / "judge_book.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        for row in ({"prompt": "Right but worded otherwise?", "weak_score": 1.0, "strong_score": 1.0,
                     "weak_response": "Paris.", "strong_response": "The capital of France is Paris, on the Seine."},
                    {"prompt": "Wrong?", "weak_score": 0.0, "strong_score": 1.0,
                     "weak_response": "It is 41.", "strong_response": "It is 42."},
                    {"prompt": "Who wrote it?", "weak_score": 0.0, "strong_score": 1.0,
                     "weak_response": "Christopher Marlowe wrote Romeo and Juliet.",
                     "strong_response": "William Shakespeare wrote Romeo and Juliet."}):
            handle.write(json.dumps(row) + "\n")
    books = Books.load([path])
    assert judge_reply(quality_prompt("q", "Reset it in Settings, Security.", "In Settings > Security, reset it."),
                       books) == "GOOD"
    assert judge_reply(quality_prompt("Right but worded otherwise?", "Paris.",
                                      "The capital of France is Paris, on the Seine."), books) == "GOOD"
    assert judge_reply(quality_prompt("Wrong?", "It is 41.", "It is 42."), books) == "WORSE"
    marlowe, shakespeare = "Christopher Marlowe wrote Romeo and Juliet.", "William Shakespeare wrote Romeo and Juliet."
    assert alike(marlowe, shakespeare) >= 0.6  # many words shared ...
    assert judge_reply(quality_prompt("Who wrote it?", marlowe, shakespeare), books) == "WORSE"  # ... and wrong
    assert judge_reply(quality_prompt("unknown?", "Paris.", "The capital is Paris, on the Seine."), books) == "WORSE"
    assert judge_reply(quality_prompt("Right but worded otherwise?", "Paris.", "Lyon."), None) == "WORSE"
