"""`costmesh train-router --from-records` (issue 22): the judged rows the gateway kept from the
router's shadow checks (consenting tenants only) become routing-book rows (weak score 1 when the
cheap answer was as good, else 0), read from Redis or a file, and are trained on, never held out."""

from __future__ import annotations

import argparse
import gzip
import json
import uuid

import pytest
from redis.asyncio import Redis

from costmesh.errors import ConfigError
from costmesh.gateway.routing_quality import RoutingLedger, RoutingQualitySettings, TenantPolicy
from costmesh.routing.hashing_encoder import HashingEncoder
from costmesh.tooling.datasets import data_dir, load_book
from costmesh.tooling.routing.judged_rows import load_judged_rows
from costmesh.tooling.routing.train import Book, TrainConfig, is_held_out, train
from costmesh.tooling.routing.train_cli import add_arguments

ENCODER = HashingEncoder()


def rows(tag: str) -> list[dict]:
    return [{"prompt": f"{tag} question {i}: what is {i} plus {i}?", "tier": "simple", "as_good": i % 3 != 0,
             "weak_response": f"It is {2 * i + (i % 3 == 0)}.", "strong_response": f"It is {2 * i}."}
            for i in range(40)]


async def test_the_judged_rows_are_read_from_redis_and_from_a_file(redis_url, tmp_path):
    tag = uuid.uuid4().hex[:8]
    client = Redis.from_url(redis_url)
    settings = RoutingQualitySettings(prefix=f"test-{tag}", policies={"acme": TenantPolicy(1.0, True)})
    ledger = RoutingLedger(client, settings, cheap_tiers=("trivial", "simple", "moderate"))
    await ledger.keep_row("acme", {"prompt": f"{tag} q", "as_good": True, "weak_response": "old"})
    await ledger.keep_row("acme", {"prompt": f"{tag} q", "as_good": False, "weak_response": "new"})  # newest wins
    await ledger.keep_row("acme", {"prompt": f"{tag} r", "as_good": True})
    await client.aclose()
    mine = [r for r in load_judged_rows(redis_url) if r.prompt.startswith(tag)]
    assert [(r.prompt, r.weak_score, r.strong_score, r.weak_response) for r in mine] == [
        (f"{tag} q", 0.0, 1.0, "new"), (f"{tag} r", 1.0, 1.0, None)]

    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("not json\n" + "".join(json.dumps(r) + "\n" for r in rows(tag)))
    loaded = load_judged_rows(str(path))
    assert len(loaded) == 40 and sum(r.weak_score == 0.0 for r in loaded) == 14
    with pytest.raises(ConfigError, match="neither a Redis URL nor a file"):
        load_judged_rows(str(tmp_path / "missing.jsonl"))


def test_the_judged_rows_are_trained_on_and_never_held_out(tmp_path):
    live = Book("shadow-checks", load_judged_rows_from(rows("live"), tmp_path), train_only=True)
    assert any(is_held_out(r.prompt, 0.3) for r in live.records)  # a plain book would hold some out
    mmlu = Book("mmlu-small", load_book(data_dir() / "mmlu_routing_dev.jsonl.gz", limit=300))
    artifact, _ = train([mmlu, live], config=TrainConfig(k=10), embedding_model=ENCODER.model_id,
                        encode=ENCODER.encode, use_cache=False)
    assert artifact.was_trained_on([r.prompt for r in live.records]).all()
    books = artifact.meta["training"]["books"]
    assert books[1] == {"name": "shadow-checks", "sha256": "", "rows": 40, "train_only": True}
    assert "train_only" not in books[0]


def test_the_cli_takes_from_records():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--book", "b.jsonl.gz", "--from-records"]).from_records == "$REDIS_URL"
    assert parser.parse_args(["--book", "b", "--from-records", "rows.jsonl"]).from_records == "rows.jsonl"
    assert parser.parse_args(["--book", "b"]).from_records is None


def load_judged_rows_from(lines: list[dict], tmp_path) -> list:
    path = tmp_path / "live.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return load_judged_rows(str(path))
