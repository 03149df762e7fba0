"""`costmesh train-router --book FILE... [--from-records [SOURCE]] [--output PATH]`: train,
calibrate and save the router.

`--from-records` adds the judged rows of the router's shadow checks (consenting tenants only; see
`judged_rows`): a Redis URL (default $REDIS_URL) or a JSON-lines file; trained on, never held out.

The operating point is a quality target (`--quality-target 0.95`: 95% of all-strong quality)
or a premium-call budget (`--premium-budget 0.4`); it is calibrated on held-out rows and the
expected premium share and quality (measured on other held-out rows) are printed. A quality
target is met with `--confidence` (default 0.9: the threshold that reaches it in 90% of
bootstrap resamples of the calibration rows, so that it holds on new traffic; 0: the plain
point, which falls short about half the time).
"""

from __future__ import annotations

import argparse
import json

from costmesh.errors import InvalidRequest
from costmesh.model_files import DEFAULT_MODEL_ID, SENTENCE_MODEL_IDS
from costmesh.routing.artifact import DEFAULT_ARTIFACT
from costmesh.routing.calibration import OperatingPoint
from costmesh.tooling.kept_lines import records_source

from .train import Book, TrainConfig, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--book", action="append", required=True, help="a routing book; repeat for several")
    parser.add_argument("--output", default=str(DEFAULT_ARTIFACT), help="where to write the artifact")
    point = parser.add_mutually_exclusive_group()
    point.add_argument("--quality-target", type=float, help="share of all-strong quality to reach (default 0.95)")
    point.add_argument("--premium-budget", type=float, help="largest share of calls for the strong model")
    parser.add_argument("--confidence", type=float, default=0.9,
                        help="meet the quality target with this confidence "
                             "(bootstrap of the calibration rows; 0: none)")
    parser.add_argument("--holdout", type=float, default=0.3, help="share of rows held out (never trained on)")
    parser.add_argument("--hidden", type=int, default=0, help="hidden units (0: logistic regression)")
    parser.add_argument("--c", type=float, default=0.02, help="inverse regularisation strength")
    parser.add_argument("--k", type=int, default=50,
                        help="nearest training prompts of the neighbour component (0: no neighbour components)")
    parser.add_argument("--embedding-model", default=DEFAULT_MODEL_ID, choices=SENTENCE_MODEL_IDS,
                        help=f"the MiniLM whose vectors it reads: fp32 or int8 (default {DEFAULT_MODEL_ID}); the "
                             "classifier embeds with the one its artifact names")
    parser.add_argument("--limit", type=int, help="only the first N rows of each book")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--from-records", nargs="?", const="$REDIS_URL", default=None, metavar="SOURCE",
                        help="also train on the judged rows of the router's shadow checks: a Redis URL (default "
                             "$REDIS_URL) whose routing-rows lists the gateway kept, or a JSON-lines file of them")


def run(args: argparse.Namespace) -> int:
    if args.premium_budget is not None:
        point = OperatingPoint(quality_target=None, premium_budget=args.premium_budget)
    else:
        point = OperatingPoint(quality_target=0.95 if args.quality_target is None else args.quality_target,
                               confidence=args.confidence)
    if args.hidden < 0:
        raise InvalidRequest("hidden: must be >= 0")
    books = [Book.read(path, args.limit) for path in args.book]
    if args.from_records:
        from .judged_rows import load_judged_rows

        live = load_judged_rows(records_source(args.from_records))
        worse = sum(r.weak_score < 1.0 for r in live)
        if not args.json:
            print(f"judged rows of shadow checks: {len(live)} ({worse} cheap answers judged worse)")
        books.append(Book("shadow-checks", live, train_only=True))
    config = TrainConfig(holdout=args.holdout, point=point, hidden=args.hidden, c=args.c, k=args.k)
    artifact, report = train(books, config=config, embedding_model=args.embedding_model, progress=not args.json)
    path = artifact.save(args.output)
    if args.json:
        print(json.dumps({"artifact": str(path), **report}))
        return 0
    calibration = report["operating_point"]
    expected = calibration["expected"]
    print(f"wrote {path}")
    print(f"operating point: {calibration['describe']} -> threshold {calibration['threshold']:.4f} "
          f"(calibrated on {calibration['calibrated_on_rows']} held-out rows)")
    print(f"  expected on {expected['rows']} other held-out rows: premium share {expected['premium_share']:.1%}, "
          f"quality {expected['quality']:.3f} ({expected['quality_fraction']:.1%} of all-strong)")
    gate = report.get("gate")
    if gate:
        line = f"answer gate: threshold {gate['threshold']:.4f} (trained on {gate['trained_on_rows']} rows)"
        if "expected_escalation" in gate:
            e = gate["expected_escalation"]
            line += (f"; expected escalation {e['premium_share']:.1%}, quality {e['quality_fraction']:.1%} "
                     "of all-strong")
        print(line)
    for name, figures in report["held_out"].items():
        for mode, result in figures.items():
            base = result["baselines"]
            print(f"held-out {name} [{mode}, {result['rows']} rows]: premium@95% learned "
                  f"{result['premium_share_at_95']:.1%} / rules {base['rules']['premium_share_at_95']:.1%} / "
                  f"random {base['random']['premium_share_at_95']:.1%};  APGR {result['apgr']:.3f} / "
                  f"{base['rules']['apgr']:.3f} / {base['random']['apgr']:.3f}")
    return 0
