"""The report as one HTML page next to its PNGs."""

from __future__ import annotations

from html import escape
from pathlib import Path

from costmesh.tooling.report.summary import Summary, format_table, savings_rows

TITLES = {
    "savings-waterfall.png": "Savings by layer",
    "cost-per-request.png": "Cost per request over time",
    "tier-mix.png": "Tier mix",
    "cache-hit-rate.png": "Cache hit rate",
}


def render(summary: Summary, charts: list[Path]) -> str:
    rows = "\n".join(
        f"<tr><td>{escape(label.strip())}</td><td class=n>{usd:.6f}</td><td class=n>{escape(share)}</td></tr>"
        for label, usd, share in savings_rows(summary)
    )
    figures = "\n".join(
        f'<figure><img src="{escape(path.name)}" alt="{escape(TITLES.get(path.name, path.stem))}">'
        f"<figcaption>{escape(TITLES.get(path.name, path.stem))}</figcaption></figure>"
        for path in charts
    )
    details = escape(format_table(summary).split("\n\n", 2)[-1])
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
{figures}
</body></html>
"""


def write(summary: Summary, charts: list[Path], path: Path) -> Path:
    path.write_text(render(summary, charts))
    return path
