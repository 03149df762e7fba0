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
