"""`costmesh eval cache`: the real cache service on real Redis, pair by pair, with baselines."""

from __future__ import annotations

import asyncio
import json

import pytest

from costmesh.embeddings import Embedder
from costmesh.tooling.cli import main
from costmesh.tooling.datasets import Pair
from costmesh.tooling.eval.cache import Tally, evaluate, format_table
from costmesh.tooling.verification.traps import write_pairs

KEYS = {"precision", "recall", "false_hit_rate", "f1", "p50_ms", "p99_ms"}
PAIRS = [
    Pair("How do I reset my password?", "how do i reset my password", True),        # exact repeat
    Pair("How can I reset my password", "How do I reset my password?", True),        # paraphrase
    Pair("Please cancel my Netflix subscription.", "Please don't cancel my Netflix subscription.", False),
    # b of one pair is a of the next: only per-pair scoping keeps this a miss
    Pair("Where is my order?", "What is the weather in Paris?", False),
    Pair("What is the weather in Paris?", "Tell me a joke about cats.", False),
]


@pytest.fixture(scope="module")
async def embedder():
    model = await asyncio.to_thread(Embedder)
    yield model
    await model.aclose()


async def test_evaluate_scores_each_pair_on_its_own(redis_url, embedder):
    result = await evaluate(PAIRS, redis_url, concurrency=4, progress=False, embedder=embedder)
    assert KEYS <= result.keys() and set(result["baselines"]) == {"redisvl_distance_0.1", "gptcache_similarity_0.8"}
    for figures in result["baselines"].values():
        assert KEYS <= figures.keys()
    assert result["pairs"] == 5 and result["duplicates"] == 2 and result["errors"] == 0
    assert result["false_hit_rate"] == 0.0 and result["recall"] >= 0.5  # the exact repeat at least
    assert result["precision"] == 1.0
    # the negation trap sits above redisvl's threshold: plain cosine serves the wrong answer
    assert result["baselines"]["redisvl_distance_0.1"]["false_hit_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert result["p50_ms"] > 0 and result["p99_ms"] >= result["p50_ms"]
    assert result["verifier"] == "learned-v1+cross-encoder" and result["operating_point"]["max_false_hit_rate"] == 0.05
    assert "costmesh (verified)" in format_table(result)


def test_cli_json_and_limit(redis_url, tmp_path, monkeypatch, capsys):
    path = write_pairs([{"a": p.a, "b": p.b, "duplicate": p.duplicate} for p in PAIRS], tmp_path / "p.jsonl.gz")
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["eval", "cache", "--pairs", str(path), "--json", "--limit", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == 2 and result["recall"] == 1.0 and KEYS <= result.keys()


def test_cli_rejects_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "x"}\n')
    assert main(["eval", "cache", "--pairs", str(bad)]) == 2
    assert "missing 'b'" in capsys.readouterr().err
    assert main(["eval", "cache", "--pairs", str(bad), "--limit", "0"]) == 2
    assert "limit" in capsys.readouterr().err



def test_a_pair_that_could_not_be_measured_is_left_out_of_the_figures():
    tally = Tally()
    tally.add(True, True, 0.01, error=False)    # a served duplicate
    tally.add(True, False, 0.01, error=False)   # a wrong answer served
    tally.add(False, False, None, error=True)   # Redis unavailable: not a correct miss
    figures = tally.figures()
    assert figures["errors"] == 1 and figures["false_hit_rate"] == 1.0 and figures["precision"] == 0.5
    assert (tally.tp, tally.fp, tally.fn, tally.tn) == (1, 1, 0, 0)


# --online (issue 22): the shadow-check loop replayed with an oracle judge
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
ONLINE_PAIRS = [Pair(f"What time does the store open on {day}?", f"What time does the store open on {other}?", False)
                for day, other in zip(DAYS, DAYS[1:] + DAYS[:1])] + [
    Pair(f"How do I reset my {thing}?", f"How can I reset my {thing}?", True)
    for thing in ("password", "router", "phone", "watch", "laptop", "account")]
ONLINE_KEYS = {"final_false_hit_rate", "final_recall", "shadow_share", "shadow_cost_usd"}


async def test_online_replays_the_loop_with_an_oracle_judge(redis_url, embedder):
    from costmesh.tooling.eval.cache_online import evaluate_online
    from costmesh.tooling.eval.cache_online import format_table as online_table

    env = {"COSTMESH_CACHE_MAX_FALSE_HIT_RATE": "0.5", "COSTMESH_CACHE_SHADOW_MAX_FALSE_HIT_RATE": "0.05",
           "COSTMESH_CACHE_SHADOW_MIN_VERDICTS": "3", "COSTMESH_CACHE_SHADOW_THRESHOLD_STEP": "0.1"}
    result = await evaluate_online(ONLINE_PAIRS, redis_url, shadow_rate=1.0, concurrency=1, seed=3, env=env,
                                   progress=False, embedder=embedder)
    assert ONLINE_KEYS | KEYS - {"p50_ms", "p99_ms"} <= result.keys() and result["online"] is True
    assert result["pairs"] == 12 and result["final_pairs"] == 6 and result["errors"] == 0
    live = result["live"]
    # every semantic hit is checked at rate 1 and the oracle reads the label: a trap served is a false hit
    assert result["shadow_checks"] == live["verdicts"] > 0 and live["false_hits"] >= 1
    assert result["shadow_share"] == pytest.approx(result["shadow_checks"] / 12, abs=1e-4)
    assert result["shadow_cost_usd"] > 0 and result["shadow_model"] == "claude-opus-4-5"
    assert live["threshold_moves"] >= 1 and live["threshold"] > live["calibrated_threshold"]
    assert result["without_loop"]["false_hit_rate"] >= result["false_hit_rate"]  # the loop only raised the bar
    assert "with the loop" in online_table(result)


def test_cli_online_rejects_a_bad_shadow_rate(tmp_path, capsys):
    path = write_pairs([{"a": p.a, "b": p.b, "duplicate": p.duplicate} for p in PAIRS], tmp_path / "p.jsonl.gz")
    assert main(["eval", "cache", "--pairs", str(path), "--online", "--shadow-rate", "1.5"]) == 2
