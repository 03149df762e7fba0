"""`costmesh report`: a period of cost records -> the savings table, an HTML page and PNG charts."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from costmesh.cost_records import FILE_GLOB, read_records
from costmesh.errors import InvalidRequest
from costmesh.spend.breakdown import DEFAULT_LIMIT, DIMENSIONS, MAX_LIMIT, Breakdown, breakdown
from costmesh.spend.summary import Summary, summarize
from costmesh.spend.times import parse_time
from costmesh.tooling.report import charts, html
from costmesh.tooling.report.breakdown import format_breakdown
from costmesh.tooling.report.summary import format_table

DEFAULT_RECORDS_DIR = "out/costmesh-records"
DEFAULT_REPORT_DIR = "out/costmesh-report"


@dataclass
class Report:
    summary: Summary
    table: str
    text_path: Path
    html_path: Path
    charts: list[Path]
    breakdowns: list[Breakdown] = field(default_factory=list)


def write_report(records_dir: str | os.PathLike, output_dir: str | os.PathLike, since: float, until: float,
                 *, source: str = "--records-dir", by: Sequence[str] = (), limit: int = DEFAULT_LIMIT) -> Report:
    """`source` says where `records_dir` came from, for the message when there is nothing to report;
    `by`: the spend breakdowns to add (tenant, key, model), each its table and chart."""
    if until <= since:
        raise InvalidRequest(f"--until: must be after --since ({_when(until)} is not after {_when(since)})")
    records_dir = Path(records_dir)
    if not records_dir.is_dir():
        raise InvalidRequest(f"--records-dir: {records_dir} ({source}) is not a directory; the gateway writes "
                             "cost records where COSTMESH_RECORDS_DIR points (`costmesh serve --records-dir`)")
    summary = summarize(read_records(records_dir, since, until), since, until)
    if summary.requests == 0:
        raise NoRecords(_no_records_message(records_dir, source, since, until))
    breakdowns = [breakdown(read_records(records_dir, since, until), dimension, since, until, limit)
                   for dimension in by]
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    table = "\n\n".join([format_table(summary), *(format_breakdown(result) for result in breakdowns)])
    text_path = output / "report.txt"
    text_path.write_text(table + "\n")
    drawn = charts.draw_all(summary, output, breakdowns)
    html_path = html.write(summary, drawn, output / "report.html", breakdowns)
    return Report(summary, table, text_path, html_path, drawn, breakdowns)


class NoRecords(InvalidRequest):
    """The period has no cost records: an all-zero report would say nothing."""


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _no_records_message(records_dir: Path, source: str, since: float, until: float) -> str:
    where = f"{records_dir.resolve()} (from {source})"
    files = sorted(records_dir.rglob(FILE_GLOB))
    if not files:
        return (f"no cost records in {where}: no {FILE_GLOB} files there. The gateway writes them only "
                "where COSTMESH_RECORDS_DIR points (`costmesh serve` and `make demo` set it); "
                "pass --records-dir or set COSTMESH_RECORDS_DIR")
    stamps = [r.ts for r in read_records(records_dir)]
    if not stamps:
        return f"no cost records in {where}: {len(files)} record file(s), none with a readable record"
    return (f"no cost records between {_when(since)} and {_when(until)} in {where}; its {len(stamps)} "
            f"record(s) run from {_when(min(stamps))} to {_when(max(stamps))}: widen --since/--until")


def add_arguments(parser) -> None:
    parser.add_argument("--since", default="7d", help="start of the period (default 7d: a week ago)")
    parser.add_argument("--until", default=None, help="end of the period, exclusive (default now)")
    parser.add_argument("--records-dir", default=None,
                        help="where the gateway writes cost records "
                             f"(default $COSTMESH_RECORDS_DIR or ./{DEFAULT_RECORDS_DIR})")
    parser.add_argument("--output", default=DEFAULT_REPORT_DIR,
                        help="directory for report.txt, report.html and the PNGs")
    parser.add_argument("--by", type=_dimensions, default=[], metavar="{tenant,key,model}",
                        help="add spend by tenant, by API key (its id) and/or by model: a table, an HTML "
                             "section and a chart each; repeat or comma-separate (--by tenant,model)",
                        action=_Extend)
    parser.add_argument("--top", type=_top, default=DEFAULT_LIMIT,
                        help=f"rows per breakdown, the rest summed as one 'others' row (default {DEFAULT_LIMIT})")


def _dimensions(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    for name in names:
        if name not in DIMENSIONS:
            raise argparse.ArgumentTypeError(f"{name!r}: choose from {', '.join(DIMENSIONS)}")
    if not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(DIMENSIONS)}")
    return names


def _top(value: str) -> int:
    try:
        top = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 1 <= top <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{top}: must be 1 to {MAX_LIMIT}")
    return top


class _Extend(argparse.Action):
    """--by tenant --by model and --by tenant,model both give [tenant, model] (each once, in order)."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = list(getattr(namespace, self.dest) or [])
        setattr(namespace, self.dest, current + [v for v in values if v not in current])


def run(args) -> int:
    now = time.time()
    since = parse_time(args.since, "--since", now)
    if args.until is None:  # only --since given: up to now
        if since >= now:
            raise InvalidRequest(f"--since: {args.since!r} is {_when(since)}, not before now ({_when(now)}); "
                                 "times are UTC unless they say otherwise")
        until = now
    else:
        until = parse_time(args.until, "--until", now)
    if args.records_dir:
        records_dir, source = args.records_dir, "--records-dir"
    elif os.environ.get("COSTMESH_RECORDS_DIR"):
        records_dir, source = os.environ["COSTMESH_RECORDS_DIR"], "$COSTMESH_RECORDS_DIR"
    else:
        records_dir, source = DEFAULT_RECORDS_DIR, "the default: neither --records-dir nor $COSTMESH_RECORDS_DIR set"
    report = write_report(records_dir, args.output, since, until, source=source,
                          by=getattr(args, "by", None) or [], limit=getattr(args, "top", DEFAULT_LIMIT))
    print(report.table)
    print(f"\nwrote {report.html_path} ({', '.join(p.name for p in report.charts)})")
    return 0
