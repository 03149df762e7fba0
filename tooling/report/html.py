"""The report as one HTML page next to its PNGs."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from costmesh.spend.breakdown import Breakdown, all_rows
from costmesh.spend.summary import Summary
from costmesh.tooling.report.breakdown import DIMENSION_TITLES
from costmesh.tooling.report.summary import format_table, savings_rows
from costmesh.vocabulary import usd_text

TITLES = {
    "savings-waterfall.png": "Savings by layer",
    "cost-per-request.png": "Cost per request over time",
    "tier-mix.png": "Tier mix",
    "cache-hit-rate.png": "Cache hit rate",
    **{f"spend-by-{d}.png": f"Spend by {t}" for d, t in DIMENSION_TITLES.items()},
}


def _breakdown_table(result: Breakdown) -> str:
    title = DIMENSION_TITLES[result.dimension]
    head = (f"<tr><th>{escape(title)}</th><th>requests</th><th>hit rate</th><th>cost USD</th>"
            "<th>baseline USD</th><th>saving USD</th><th>saved</th></tr>")
    body = "\n".join(
        f"<tr><td>{escape(g.name)}</td><td class=n>{g.requests}</td><td class=n>{g.hit_rate:.1%}</td>"
        f"<td class=n>{usd_text(g.cost_usd)}</td><td class=n>{usd_text(g.baseline_usd)}</td>"
        f"<td class=n>{usd_text(g.saving_usd)}</td><td class=n>{g.saving_ratio:.1%}</td></tr>"
        for g in all_rows(result)
    )
    shown = f" (top {len(result.groups)} of {result.total_groups})" if result.others else ""
    return f"<h2>Spend by {escape(title)}{shown}</h2>\n<table>{head}\n{body}\n</table>"


def render(summary: Summary, charts: list[Path], breakdowns: Sequence[Breakdown] = ()) -> str:
    rows = "\n".join(
        f"<tr><td>{escape(label.strip())}</td><td class=n>{usd_text(usd)}</td><td class=n>{escape(share)}</td></tr>"
        for label, usd, share in savings_rows(summary)
    )
    figures = "\n".join(
        f'<figure><img src="{escape(path.name)}" alt="{escape(TITLES.get(path.name, path.stem))}">'
        f"<figcaption>{escape(TITLES.get(path.name, path.stem))}</figcaption></figure>"
        for path in charts
    )
    details = escape(format_table(summary).split("\n\n", 2)[-1])
    spend = "\n".join(_breakdown_table(result) for result in breakdowns)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>costmesh savings report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ padding: 4px 12px; border-bottom: 1px solid #ddd; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
pre {{ background: #f6f6f6; padding: 1em; }}
</style></head><body>
<h1>costmesh savings report</h1>
<p>{escape(format_table(summary).splitlines()[0].removeprefix("costmesh savings report").strip())}</p>
<h2>Savings by layer</h2>
<table><tr><th></th><th>USD</th><th>of baseline</th></tr>
{rows}
</table>
<pre>{details}</pre>
{spend}
{figures}
</body></html>
"""


def write(summary: Summary, charts: list[Path], path: Path, breakdowns: Sequence[Breakdown] = ()) -> Path:
    path.write_text(render(summary, charts, breakdowns))
    return path
