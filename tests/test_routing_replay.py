"""`costmesh bench --book`'s replay: a small book through the in-process mesh (real services,
real Redis, the simulator answering from the book), quality read from the book's scores."""

from __future__ import annotations

import gzip
import json

import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.catalog import Tier, load_catalog
from costmesh.routing.artifact import load_artifact
from costmesh.services.simulator import start_simulator
from costmesh.tooling.bench.replay import PolicyResult, _replay, table, write_plot
from costmesh.tooling.datasets import data_dir, load_book, read_jsonl

from inprocess_mesh import start_inprocess_mesh

CATALOG = load_catalog()
WEAK = CATALOG.tier_models(Tier.SIMPLE)[0].id
STRONG = CATALOG.tier_models(Tier.MODERATE)[0].id


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    artifact = load_artifact()
    rows = [r for r in read_jsonl(data_dir() / "gsm8k_routing_dev.jsonl.gz")
            if not artifact.was_trained_on([r["prompt"]])[0]][:6]
    path = tmp_path_factory.mktemp("book") / "math.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    return path


@pytest.fixture(scope="module")
async def mesh(redis_url, book):
    sim = await start_simulator(port=0, books=(str(book),))
    mesh = await start_inprocess_mesh(redis_url, sim.url, TracerProvider())
    yield mesh
    await mesh.stop()
    await sim.stop()


async def test_replay_scores_every_policy_from_the_book(mesh, book):
    records = load_book(book)
    weak_q = sum(r.weak_score for r in records) / len(records)
    strong_q = sum(r.strong_score for r in records) / len(records)
    results = {name: PolicyResult(name) for name in ("all-weak", "all-strong", "learned")}
    await _replay(mesh, records, CATALOG, results["all-weak"], "replay-weak", [WEAK] * len(records))
    await _replay(mesh, records, CATALOG, results["all-strong"], "replay-strong", [STRONG] * len(records))
    await _replay(mesh, records, CATALOG, results["learned"], "replay-learned", None)
    figures = {name: r.as_dict(results["all-strong"].cost_usd) for name, r in results.items()}
    for f in figures.values():
        assert f["requests"] == len(records) and f["failures"] == 0
    assert figures["all-weak"]["quality"] == pytest.approx(weak_q)
    assert figures["all-strong"]["quality"] == pytest.approx(strong_q)
    assert figures["all-weak"]["premium_share"] == 0.0 and figures["all-strong"]["premium_share"] == 1.0
    learned = figures["learned"]
    # Every word problem starts cheap; the strong answers are exactly the escalations.
    assert learned["premium_share"] == pytest.approx(learned["multi_attempt_share"])
    assert figures["all-weak"]["cost_usd"] <= learned["cost_usd"]
    assert learned["cost_usd"] <= figures["all-weak"]["cost_usd"] + figures["all-strong"]["cost_usd"]

    result = {"book": str(book), "rows": len(records), "models": {"weak": WEAK, "strong": STRONG},
              "policies": {**figures, "random": figures["all-weak"], "rules": figures["all-weak"]}}
    for f in result["policies"].values():
        f["quality_fraction"] = f["quality"] / strong_q
    path = write_plot(result, str(book.with_suffix(".png")))
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    text = table(result)
    for name in ("all-strong", "all-weak", "learned", "cost/strong"):
        assert name in text
