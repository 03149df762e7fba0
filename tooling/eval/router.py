"""`costmesh eval router --book FILE [--strategy rules|learned] [--json] [--cascade]`.

Routing alone: weak and strong quality, the premium-call share needed to reach 95% of
all-strong quality, and APGR, for the chosen strategy and, in the same run, a random router
and the rules. With `--cascade` (books with `weak_response`): every prompt gets the weak
model's recorded answer first, the quality gate decides which to escalate; `cost_ratio` is the
cost against all-strong with every weak attempt counted.

Rows the artifact was trained on are left out (their hashes are in the artifact), so figures
on the repository's own books are held-out figures; `--include-trained` keeps them.
"""

from __future__ import annotations

import argparse
import json
import sys

from costmesh.errors import ConfigError, InvalidRequest
from costmesh.routing.artifact import load_artifact
from costmesh.routing.embedding_cache import embed_prompts
from costmesh.tooling.datasets import load_book
from costmesh.tooling.routing.evaluation import evaluate

KEYS = ("weak_quality", "strong_quality", "premium_share_at_95", "apgr", "cost_ratio")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--book", required=True, help="a routing book (.jsonl or .jsonl.gz)")
    parser.add_argument("--strategy", choices=("rules", "learned"), default="learned")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--cascade", action="store_true", help="evaluate the cascade (needs weak_response)")
    parser.add_argument("--artifact", help="the router artifact (default: the packaged one)")
    parser.add_argument("--limit", type=int, help="only the first N rows")
    parser.add_argument("--include-trained", action="store_true",
                        help="keep rows the artifact was trained on (figures are then not held-out)")
    parser.add_argument("--no-embedding-cache", action="store_true", help="always recompute embeddings")
    parser.add_argument("--online", action="store_true",
                        help="replay the book as one tenant's live traffic in a random order, with routing checks "
                             "judged by the book's scores (the loop; see costmesh.tooling.eval.router_online)")
    parser.add_argument("--shadow-rate", type=float, default=0.05, help="--online: the share of cheap answers checked")
    parser.add_argument("--seed", type=int, default=0, help="--online: the replay's order and draws")


def run(args: argparse.Namespace) -> int:
    online = getattr(args, "online", False)
    if online and (args.strategy != "learned" or args.cascade):
        raise InvalidRequest("online: replays the learned router alone (no --strategy rules, no --cascade)")
    if online and not 0 < args.shadow_rate <= 1:
        raise InvalidRequest("shadow-rate: must be in (0, 1]")
    records = load_book(args.book, args.limit)
    if not records:
        raise InvalidRequest(f"book: {args.book} has no rows")
    artifact = None
    if args.strategy == "learned":
        artifact = load_artifact(args.artifact)
    elif not args.include_trained:
        try:  # only to leave out the rows the learned router was trained on, as its own figures do
            artifact = load_artifact(args.artifact)
        except ConfigError:
            artifact = None
    embeddings = None
    if args.strategy == "learned":  # the whole book (so a re-run hits the embedding cache), then filtered
        embeddings = embed_prompts([r.prompt for r in records], artifact.embedding_model,
                                   use_cache=not args.no_embedding_cache, progress=not args.json)
    left_out = 0
    reference: list = []  # the trained-on rows: the subject baseline learns from them
    if artifact is not None and not args.include_trained:
        trained = artifact.was_trained_on([r.prompt for r in records])
        left_out = int(trained.sum())
        if left_out == len(records):
            raise InvalidRequest(f"book: every row of {args.book} was trained on; pass --include-trained")
        reference = [r for r, t in zip(records, trained) if t]
        records = [r for r, t in zip(records, trained) if not t]
        if embeddings is not None:
            embeddings = embeddings[~trained]
    if online:
        from costmesh.tooling.eval.router_online import run_online
        from costmesh.tooling.eval.router_online import table as online_table
        from costmesh.tooling.routing.evaluation import learned_prompt_scores

        scores = learned_prompt_scores(artifact, [r.prompt for r in records], embeddings)
        result = run_online(args, records, scores, artifact.threshold)
        result["book"] = args.book
        result["rows_left_out_trained"] = left_out
        print(json.dumps(result) if args.json else online_table(result))
        return 0
    result = evaluate(records, strategy=args.strategy, cascade=args.cascade, artifact=artifact, embeddings=embeddings,
                      reference=reference)
    result["book"] = args.book
    result["rows_left_out_trained"] = left_out
    if args.json:
        print(json.dumps(result, indent=None, sort_keys=False))
    else:
        print(table(result))
    return 0


def _row(name: str, figures: dict, cascade: bool) -> str:
    line = f"  {name:<10}{figures['premium_share_at_95']:>14.1%}{figures['apgr']:>10.3f}"
    if cascade:
        line += f"{figures['cost_ratio']:>12.3f}"
    return line


def table(result: dict) -> str:
    cascade = result["mode"] == "cascade"
    lines = [
        f"{result['mode']} on {result['book']} ({result['rows']} rows"
        + (f", {result['rows_left_out_trained']} trained-on rows left out" if result["rows_left_out_trained"] else "")
        + ")",
        f"  weak quality {result['weak_quality']:.3f}   strong quality {result['strong_quality']:.3f}",
        f"  {'router':<10}{'premium@95%':>14}{'APGR':>10}" + (f"{'cost/strong':>12}" if cascade else ""),
        _row(result["strategy"], result, cascade),
    ]
    for name in ("rules", "random", "subject"):
        if name != result["strategy"] and name in result["baselines"]:
            lines.append(_row(name, result["baselines"][name], cascade))
    if "subject" in result["baselines"]:
        lines.append("  (subject: told each prompt's subject, scored by its mean gain on the trained-on rows)")
    if cascade:
        lines.append(f"  models: weak {result['models']['weak']}, strong {result['models']['strong']}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
