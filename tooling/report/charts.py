"""The report's PNG charts (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from costmesh.cost_records import LAYERS  # noqa: E402
from costmesh.spend.breakdown import Breakdown, all_rows  # noqa: E402
from costmesh.spend.summary import Summary  # noqa: E402
from costmesh.tooling.report.breakdown import DIMENSION_TITLES  # noqa: E402
from costmesh.tooling.report.summary import LAYER_TITLES  # noqa: E402
from costmesh.vocabulary import usd  # noqa: E402

SAVE_COLOR, LOSS_COLOR, TOTAL_COLOR, PAID_COLOR = "#2e9d5b", "#c8453b", "#7a8594", "#2f6db5"
TIER_ORDER = ("cached", "trivial", "simple", "moderate", "complex")
HIT_RATE_ALERT = 0.4


def _usd(value: float) -> str:
    """Short for a chart: 4 decimals under $10 (6 under a cent), never `-0`."""
    value = usd(value)
    decimals = 6 if abs(value) < 0.01 else 4 if abs(value) < 10 else 2
    return f"${round(value, decimals) + 0.0:,.{decimals}f}"


def waterfall(summary: Summary, path: Path) -> Path:
    """Baseline, minus what each layer saved, down to what costmesh cost."""
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    labels = ["baseline"] + [LAYER_TITLES[layer].replace(" ", "\n", 1) for layer in LAYERS] + ["costmesh"]
    level = summary.baseline_usd
    ax.bar(0, level, color=TOTAL_COLOR)
    ax.annotate(_usd(level), (0, level), ha="center", va="bottom", fontsize=9)
    for i, layer in enumerate(LAYERS, start=1):
        saved = summary.savings[layer]
        bottom = level - saved if saved >= 0 else level
        ax.bar(i, abs(saved), bottom=bottom, color=SAVE_COLOR if saved >= 0 else LOSS_COLOR)
        ax.plot([i - 1.4, i + 0.4], [level, level], color="#999999", linewidth=0.8, linestyle=":")
        text = "0" if saved == 0 else f"-{_usd(saved)}" if saved > 0 else f"+{_usd(-saved)}"
        ax.annotate(text, (i, max(level, level - saved)), ha="center", va="bottom", fontsize=9)
        level -= saved
    last = len(LAYERS) + 1
    ax.bar(last, summary.cost_usd, color=PAID_COLOR)
    ax.annotate(f"{_usd(summary.cost_usd)}\n({summary.cost_usd / summary.baseline_usd:.0%} of baseline)"
                if summary.baseline_usd else _usd(summary.cost_usd),
                (last, summary.cost_usd), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(labels)), labels, fontsize=9)
    ax.set_ylabel("USD")
    ax.set_title(f"Savings by layer: {summary.saving_ratio:.0%} saved on {summary.answered} answered requests")
    ax.set_ylim(0, max(summary.baseline_usd, summary.cost_usd, 1e-9) * 1.18)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _times(summary: Summary):
    used = [b for b in summary.buckets if b.answered]
    return used, [datetime.fromtimestamp(b.start + summary.bucket_s / 2, UTC) for b in used]


def _time_axis(ax, summary: Summary) -> None:
    # The span of the records, else the requested period; never matplotlib's default (the Unix epoch).
    if summary.buckets:
        start = datetime.fromtimestamp(summary.buckets[0].start, UTC)
        end = datetime.fromtimestamp(summary.buckets[-1].start + summary.bucket_s, UTC)
    else:
        start = datetime.fromtimestamp(summary.since, UTC)
        end = datetime.fromtimestamp(max(summary.until, summary.since + 1), UTC)
    ax.set_xlim(start, end)
    if summary.bucket_s < 60:
        fmt = "%H:%M:%S"
    elif summary.bucket_s < 86400:
        fmt = "%m-%d %H:%M"
    else:
        fmt = "%Y-%m-%d"
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=10))
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=UTC))
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_xlabel(f"time (UTC), {_bucket_name(summary.bucket_s)} buckets")
    ax.spines[["top", "right"]].set_visible(False)


def _bucket_name(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400}-day"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}-hour"
    if seconds % 60 == 0:
        return f"{seconds // 60}-minute"
    return f"{seconds}-second"


def cost_over_time(summary: Summary, path: Path) -> Path:
    used, times = _times(summary)
    fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
    ax.plot(times, [b.baseline_per_request for b in used], marker="o", markersize=3, color=TOTAL_COLOR,
            label="baseline per request")
    ax.plot(times, [b.cost_per_request for b in used], marker="o", markersize=3, color=PAID_COLOR,
            label="costmesh per request")
    ax.fill_between(times, [b.cost_per_request for b in used], [b.baseline_per_request for b in used],
                    color=SAVE_COLOR, alpha=0.15, label="saving")
    ax.set_ylabel("USD per answered request")
    ax.set_ylim(bottom=0)
    ax.set_title("Cost per request over time")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    _time_axis(ax, summary)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def tier_mix(summary: Summary, path: Path) -> Path:
    names = [t for t in TIER_ORDER if summary.tiers.get(t)] + sorted(set(summary.tiers) - set(TIER_ORDER))
    counts = [summary.tiers[n] for n in names]
    total = sum(counts) or 1
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    colors = ["#2e9d5b" if n == "cached" else "#2f6db5" for n in names]
    bars = ax.barh(names[::-1], counts[::-1], color=colors[::-1])
    for bar, count in zip(bars, counts[::-1]):
        ax.annotate(f"{count} ({count / total:.0%})", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
    ax.set_xlabel("answered requests")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Who answered: the cache, or the tier the router served")
    ax.set_xlim(0, max(counts or [1]) * 1.25)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def hit_rate(summary: Summary, path: Path) -> Path:
    used, times = _times(summary)
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
    ax.plot(times, [b.hit_rate for b in used], marker="o", markersize=3, color=SAVE_COLOR, label="hit rate")
    ax.axhline(summary.hit_rate, color=SAVE_COLOR, linestyle="--", linewidth=1,
               label=f"period: {summary.hit_rate:.0%}")
    ax.axhline(HIT_RATE_ALERT, color=LOSS_COLOR, linestyle=":", linewidth=1, label=f"alert below {HIT_RATE_ALERT:.0%}")
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    ax.set_ylabel("answers from the cache")
    ax.set_title("Cache hit rate")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    _time_axis(ax, summary)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def spend_by(result: Breakdown, path: Path) -> Path:
    """One bar per group: what it cost, then what it saved, together its baseline."""
    groups = all_rows(result)[::-1]  # biggest at the top
    names = [g.name if len(g.name) <= 28 else g.name[:27] + "…" for g in groups]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.42 * max(len(groups), 1)), dpi=110)
    cost = [g.cost_usd for g in groups]
    saving = [max(g.saving_usd, 0.0) for g in groups]
    ax.barh(names, cost, color=PAID_COLOR, label="cost")
    ax.barh(names, saving, left=cost, color=SAVE_COLOR, label="saved (baseline - cost)")
    widest = max([c + s for c, s in zip(cost, saving)] or [0.0])
    for i, group in enumerate(groups):
        ax.annotate(f"{_usd(group.cost_usd)} paid, {group.saving_ratio:.0%} saved, {group.requests} req",
                    (cost[i] + saving[i], i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(0, max(widest, 1e-9) * 1.55)
    ax.set_xlabel("USD")
    title = DIMENSION_TITLES[result.dimension]
    shown = f" (top {len(result.groups)} of {result.total_groups})" if result.others else ""
    ax.set_title(f"Spend by {title}{shown}", pad=22)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def spend_chart_name(dimension: str) -> str:
    return f"spend-by-{dimension}.png"


CHARTS = {
    "savings-waterfall.png": waterfall,
    "cost-per-request.png": cost_over_time,
    "tier-mix.png": tier_mix,
    "cache-hit-rate.png": hit_rate,
}


def draw_all(summary: Summary, directory: Path, breakdowns: Sequence[Breakdown] = ()) -> list[Path]:
    drawn = [draw(summary, directory / name) for name, draw in CHARTS.items()]
    return drawn + [spend_by(result, directory / spend_chart_name(result.dimension)) for result in breakdowns]
