"""`costmesh bench --book FILE`: a routing book replayed through the whole mesh.

gateway -> cache -> classifier -> router -> provider -> simulator, which answers each prompt
with the recorded response of the tier called (`SIM_BOOKS` = the book). Each answer's quality
is the book's score of the side (weak or strong, the catalog's `replay`) of the model that
served it; its cost is what the gateway billed (failed attempts included).

Rows the packaged router artifact was trained on are left out (as in `costmesh eval router`).
Policies, run the same way in the same run (each its own tenant, so no cache hit crosses them):
- `learned`: a mesh with the learned classifier and the learned gate (the defaults);
- `rules`: a second mesh with the seed's rules classifier and heuristic gate;
- `all-strong` / `all-weak`: every prompt pinned to the strong / weak model of the cascade;
- `random`: each prompt pinned to the strong model with probability = the learned premium share.
Prints cost and quality for each and writes a cost-vs-quality plot (PNG).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from costmesh.catalog import Catalog, Tier, load_catalog
from costmesh.errors import ConfigError
from costmesh.routing.artifact import load_artifact
from costmesh.tooling.datasets import BookRecord, load_book
from costmesh.tooling.launcher import Mesh, start_mesh
from costmesh.tooling.mesh_client import GatewayClient, build_request

CONCURRENCY = 8
MAX_TOKENS = 1024
QUICK_ROWS = 120
STARTUP_S = 400.0  # a loaded machine starts the mesh slowly (MiniLM loads twice)


@dataclass
class PolicyResult:
    name: str
    requests: int = 0
    failures: int = 0
    strong_calls: int = 0  # answers served by a strong-side model
    escalated: int = 0  # answers that needed more than one attempt
    quality_sum: float = 0.0
    cost_usd: float = 0.0

    def as_dict(self, all_strong_cost: float | None = None) -> dict:
        served = max(self.requests - self.failures, 1)
        out = {
            "requests": self.requests,
            "failures": self.failures,
            "quality": self.quality_sum / served,
            "premium_share": self.strong_calls / served,
            "multi_attempt_share": self.escalated / served,
            "cost_usd": self.cost_usd,
        }
        if all_strong_cost:
            out["cost_ratio"] = self.cost_usd / all_strong_cost
        return out


def _side(catalog: Catalog, model: str) -> str:
    try:
        return catalog.model(model).replay or "weak"
    except Exception:  # noqa: BLE001 - a model outside the catalog: count it as weak
        return "weak"


async def _replay(
    mesh: Mesh, records: list[BookRecord], catalog: Catalog, result: PolicyResult, tenant: str,
    pins: list[str] | None,
) -> None:
    key = mesh.api_key(tenant)
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with GatewayClient(mesh.gateway, api_key=key) as client:

        async def one(i: int, record: BookRecord) -> None:
            request = build_request(record.prompt, tenant=tenant, max_tokens=MAX_TOKENS,
                                    model=pins[i] if pins else "")
            async with semaphore:
                try:
                    response = await client.complete(request)
                except Exception:  # noqa: BLE001 - a failed request is counted, not fatal
                    result.requests += 1
                    result.failures += 1
                    return
            side = _side(catalog, response.model)
            result.requests += 1
            result.strong_calls += side == "strong"
            result.escalated += response.attempts > 1
            result.quality_sum += record.strong_score if side == "strong" else record.weak_score
            result.cost_usd += response.cost.total_usd

        await asyncio.gather(*(one(i, r) for i, r in enumerate(records)))


def _mesh_env(book: Path, extra: dict[str, str]) -> dict[str, str]:
    return {"COSTMESH_LOG_LEVEL": "warning", "SIM_BOOKS": str(book.resolve()), **extra}


def replay_book(
    book: str, *, limit: int | None = None, seed: int = 0, plot: str | None = None, include_trained: bool = False
) -> dict:
    path = Path(book)
    records = load_book(path)
    left_out = 0
    if not include_trained:  # as `eval router` does: the learned router is judged on rows it never saw
        try:
            trained = load_artifact().was_trained_on([r.prompt for r in records])
        except ConfigError:
            trained = None
        if trained is not None and not trained.all():
            left_out = int(trained.sum())
            records = [r for r, t in zip(records, trained) if not t]
    if limit and len(records) > limit:
        records = random.Random(seed).sample(records, limit)
    catalog = load_catalog()
    weak_model = catalog.tier_models(Tier.SIMPLE)[0].id
    strong_model = catalog.tier_models(Tier.MODERATE)[0].id
    results = {name: PolicyResult(name) for name in ("all-strong", "all-weak", "random", "rules", "learned")}
    with tempfile.TemporaryDirectory(prefix="costmesh-replay-") as run_dir:
        with start_mesh(Path(run_dir) / "learned", _mesh_env(path, {}), startup_timeout_s=STARTUP_S) as mesh:
            asyncio.run(_replay(mesh, records, catalog, results["learned"], "bench-learned", None))
            learned_share = results["learned"].as_dict()["premium_share"]
            rng = random.Random(seed)
            random_pins = [strong_model if rng.random() < learned_share else weak_model for _ in records]
            asyncio.run(_replay(mesh, records, catalog, results["all-strong"], "bench-strong",
                                [strong_model] * len(records)))
            asyncio.run(_replay(mesh, records, catalog, results["all-weak"], "bench-weak", [weak_model] * len(records)))
            asyncio.run(_replay(mesh, records, catalog, results["random"], "bench-random", random_pins))
        seed_env = {"COSTMESH_CLASSIFIER_STRATEGY": "rules", "COSTMESH_ROUTER_GATE": "heuristic"}
        with start_mesh(Path(run_dir) / "rules", _mesh_env(path, seed_env), startup_timeout_s=STARTUP_S) as mesh:
            asyncio.run(_replay(mesh, records, catalog, results["rules"], "bench-rules", None))
    all_strong = results["all-strong"].cost_usd
    out = {
        "book": str(path),
        "rows": len(records),
        "rows_left_out_trained": left_out,
        "models": {"weak": weak_model, "strong": strong_model},
        "policies": {name: r.as_dict(all_strong) for name, r in results.items()},
    }
    strong_q = out["policies"]["all-strong"]["quality"]
    for figures in out["policies"].values():
        figures["quality_fraction"] = figures["quality"] / strong_q if strong_q else 1.0
    if plot:
        out["plot"] = write_plot(out, plot)
    return out


def write_plot(result: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = result["policies"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    weak, strong = policies["all-weak"], policies["all-strong"]
    ax.plot([weak["cost_ratio"], strong["cost_ratio"]], [weak["quality"], strong["quality"]], "--", color="grey",
            label="random mix (line)")
    ax.axhline(0.95 * strong["quality"], color="lightgrey", linewidth=0.8, label="95% of all-strong quality")
    for name, figures in policies.items():
        ax.scatter(figures["cost_ratio"], figures["quality"], s=40, zorder=3)
        ax.annotate(name, (figures["cost_ratio"], figures["quality"]), textcoords="offset points", xytext=(5, 4))
    ax.set_xlabel("cost relative to all-strong")
    ax.set_ylabel("quality (book score)")
    ax.set_title(f"{Path(result['book']).name}: {result['rows']} prompts through the mesh")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def table(result: dict) -> str:
    lines = [
        f"replay of {result['book']} ({result['rows']} prompts"
        + (f", {result['rows_left_out_trained']} the learned router was trained on left out"
           if result.get("rows_left_out_trained") else "")
        + f"; weak {result['models']['weak']}, strong {result['models']['strong']})",
        f"  {'policy':<12}{'quality':>9}{'of strong':>11}{'premium':>9}{'cost $':>12}{'cost/strong':>13}"
        f"{'>1 attempt':>12}{'failed':>8}",
    ]
    for name, p in result["policies"].items():
        lines.append(
            f"  {name:<12}{p['quality']:>9.3f}{p['quality_fraction']:>11.1%}{p['premium_share']:>9.1%}"
            f"{p['cost_usd']:>12.4f}{p['cost_ratio']:>13.3f}{p['multi_attempt_share']:>12.1%}{p['failures']:>8}"
        )
    if result.get("plot"):
        lines.append(f"  plot: {result['plot']}")
    return "\n".join(lines)


def run_book(book: str, output: str, *, quick: bool = False) -> int:
    """The `--book` entry of `costmesh bench`: replay, print, write the plot and the JSON."""
    import json

    out_path = Path(output)
    plot = str(out_path.with_name(out_path.stem + "-replay.png"))
    result = replay_book(book, limit=QUICK_ROWS if quick else None, plot=plot)
    print(table(result), flush=True)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["replay"] = result
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out_path}")
    return 0
