"""The evaluation set that ships with costmesh (`costmesh.tooling.eval.packaged`): hand-written
assistant-style pairs, never trained on. Its shape, that it installs as package data, and that none
of it is in what `costmesh train-verifier` trains on (the Quora pairs of the data file, every bucket,
and the generated trap frames of every split)."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from costmesh.tooling.datasets import data_dir, load_pairs, read_jsonl
from costmesh.tooling.eval.packaged import PAIRS, pairs_path
from costmesh.tooling.verification.traps import generate

ROOT = Path(__file__).resolve().parent.parent
NEAR_MISS_KINDS = {"entity", "negation", "number", "date", "scope", "format", "language", "proglang", "audience"}


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return list(read_jsonl(PAIRS["assistant"]))


def test_the_set_is_assistant_style_pairs_with_paraphrases_and_near_misses(rows):
    assert len(rows) >= 600
    assert all(set(r) == {"a", "b", "duplicate", "kind"} and r["a"] != r["b"] for r in rows)
    assert len({(r["a"], r["b"]) for r in rows}) == len(rows)
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == NEAR_MISS_KINDS | {"paraphrase"}
    assert all((r["kind"] == "paraphrase") == r["duplicate"] for r in rows)
    assert 0.35 <= kinds["paraphrase"] / len(rows) <= 0.45
    assert len(load_pairs(pairs_path("assistant"))) == len(rows)  # `--pairs assistant` reads it by name
    assert pairs_path("some/file.jsonl.gz") == "some/file.jsonl.gz"


def test_it_ships_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["costmesh.tooling"]
    relative = PAIRS["assistant"].relative_to(ROOT / "tooling")
    assert any(relative.match(pattern) for pattern in patterns), patterns


def test_no_text_of_it_is_in_the_verifiers_training_data(rows):
    mine = {norm(t) for r in rows for t in (r["a"], r["b"])}
    traps = {norm(p[k]) for split in ("train", "calibration", "test") for p in generate(split) for k in ("a", "b")}
    assert not mine & traps
    quora_file = data_dir() / "qqp_pairs_dev.jsonl.gz"
    if not quora_file.exists():
        pytest.skip(f"{quora_file} is not here")
    quora = {norm(t) for p in load_pairs(quora_file) for t in (p.a, p.b)}
    assert not mine & quora
