"""The report's text of spend by tenant, by API key and by model (the groups are summed in the
core, `costmesh.spend.breakdown`, shared with the gateway's dashboard API)."""

from __future__ import annotations

from costmesh.spend.breakdown import Breakdown, all_rows, breakdown
from costmesh.vocabulary import usd_text

__all__ = ["DIMENSION_TITLES", "breakdown", "format_breakdown"]

DIMENSION_TITLES = {"tenant": "tenant", "key": "API key", "model": "model"}


def format_breakdown(result: Breakdown) -> str:
    """The plain-text table of one breakdown."""
    title = DIMENSION_TITLES[result.dimension]
    lines = [
        f"spend by {title}" + (f" (top {len(result.groups)} of {result.total_groups})" if result.others else ""),
        f"{title:<34}{'requests':>9}{'hit rate':>9}{'cost USD':>14}{'baseline USD':>14}{'saving USD':>14}{'saved':>8}",
    ]
    for group in all_rows(result):
        lines.append(
            f"{group.name[:33]:<34}{group.requests:>9}{group.hit_rate:>9.1%}{usd_text(group.cost_usd):>14}"
            f"{usd_text(group.baseline_usd):>14}{usd_text(group.saving_usd):>14}{group.saving_ratio:>8.1%}"
        )
    if not result.groups:
        lines.append("(no requests)")
    return "\n".join(lines)
