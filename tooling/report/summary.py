"""The report's text: the savings-by-layer table and its operating figures, from a period's
`costmesh.spend.summary.Summary` (the sums live in the core, shared with the gateway's dashboard
API)."""

from __future__ import annotations

from datetime import UTC, datetime

from costmesh.cost_records import LAYERS
from costmesh.spend.summary import RoutingTally, ShadowTally, Summary, summarize
from costmesh.vocabulary import usd_text

__all__ = ["LAYER_TITLES", "Summary", "format_table", "savings_rows", "summarize"]

LAYER_TITLES = {
    "cache": "semantic cache",
    "routing": "complexity routing",
    "prompt_caching": "prompt caching",
    "batch": "batch APIs",
    "inference": "self-hosted inference",
}
MAX_SHADOW_TENANTS_SHOWN = 10


def _pct(value: float, total: float) -> str:
    return f"{value / total:.1%}" if total else "-"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def savings_rows(summary: Summary) -> list[tuple[str, float, str]]:
    """(label, USD, share of baseline): baseline, each layer's saving, what was paid."""
    rows = [("baseline (premium model, no cache, list price)", summary.baseline_usd,
             _pct(1, 1) if summary.baseline_usd else "-")]
    for layer in LAYERS:
        rows.append((f"  saved by {LAYER_TITLES[layer]}", summary.savings[layer],
                     _pct(summary.savings[layer], summary.baseline_usd)))
    rows.append(("costmesh cost", summary.cost_usd, _pct(summary.cost_usd, summary.baseline_usd)))
    if summary.shadow.checks:
        rows.append(("  of which shadow checks of cache hits", summary.shadow.cost_usd,
                     _pct(summary.shadow.cost_usd, summary.baseline_usd)))
    if summary.routing_checks.checks:
        rows.append(("  of which shadow checks of routing", summary.routing_checks.cost_usd,
                     _pct(summary.routing_checks.cost_usd, summary.baseline_usd)))
    rows.append(("total saving", summary.saving_usd, _pct(summary.saving_usd, summary.baseline_usd)))
    return rows


def format_table(summary: Summary) -> str:
    """The plain-text report: savings by layer, then the operating figures."""
    lines = [
        f"costmesh savings report  {_when(summary.since)} .. {_when(summary.until)}",
        "",
        "savings by layer",
        f"{'':52}{'USD':>14}{'of baseline':>14}",
    ]
    for label, usd, share in savings_rows(summary):
        lines.append(f"{label:<52}{usd_text(usd):>14}{share:>14}")
    tiers = ", ".join(f"{k} {v}" for k, v in sorted(summary.tiers.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"
    errors = ", ".join(f"{k} {v}" for k, v in sorted(summary.errors.items())) or "none"
    lines += [
        "",
        f"{'requests':<30}{summary.requests} ({summary.answered} answered, {summary.failed} failed: {errors})",
        f"{'cache hit rate':<30}{summary.hit_rate:.1%} (avg similarity of hits {summary.avg_hit_similarity:.3f})",
        f"{'tier mix':<30}{tiers}",
        f"{'upgrade rate':<30}{summary.upgrade_rate:.1%} of routed answers",
        f"{'cost per request':<30}{usd_text(summary.cost_per_request)} USD",
        f"{'daily active users':<30}{summary.daily_active_users:.1f} (distinct tenants per day)",
        f"{'cost per daily active user':<30}{usd_text(summary.cost_per_daily_active_user)} USD/day",
        f"{'saving ratio (ROI)':<30}{summary.saving_ratio:.1%} of the baseline",
    ]
    if summary.shadow.checks:
        lines.append(f"{'shadow checks':<30}{_shadow_line(summary.shadow)}")
        ranked = sorted(summary.shadow_by_tenant.items(), key=lambda kv: (-kv[1].checks, kv[0]))
        if len(ranked) > 1:
            for tenant, tally in ranked[:MAX_SHADOW_TENANTS_SHOWN]:
                lines.append(f"{'  ' + (tenant or '(no tenant)')[:26]:<30}{_shadow_line(tally)}")
    if summary.routing_checks.checks:
        lines.append(f"{'routing checks':<30}{_routing_line(summary.routing_checks)}")
        ranked_routing = sorted(summary.routing_checks_by_tenant.items(), key=lambda kv: (-kv[1].checks, kv[0]))
        if len(ranked_routing) > 1:
            for tenant, routed in ranked_routing[:MAX_SHADOW_TENANTS_SHOWN]:
                lines.append(f"{'  ' + (tenant or '(no tenant)')[:26]:<30}{_routing_line(routed)}")
    return "\n".join(lines)


def _routing_line(tally: RoutingTally) -> str:
    """Checks, their cost, and the share of cheap answers as good as the premium model's with its 95% lower bound."""
    if not tally.judged:
        return f"{tally.checks} ({usd_text(tally.cost_usd)} USD), none judged"
    return (f"{tally.checks} ({usd_text(tally.cost_usd)} USD): {tally.as_good} of {tally.judged} cheap answers "
            f"as good as the premium model's, {tally.quality_retained:.1%}, 95% lower bound {tally.lower_bound:.1%}")


def _shadow_line(tally: ShadowTally) -> str:
    """Checks, their cost, and the false-hit rate they measured with its 95% upper bound."""
    if not tally.judged:
        return f"{tally.checks} ({usd_text(tally.cost_usd)} USD), none judged"
    return (f"{tally.checks} ({usd_text(tally.cost_usd)} USD): {tally.different} false hits of {tally.judged} judged, "
            f"rate {tally.false_hit_rate:.1%}, 95% upper bound {tally.upper_bound:.1%}")
