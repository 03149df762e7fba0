"""Cost records on disk and `costmesh report`: the savings-by-layer table, the HTML page, the PNGs."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime

import pytest

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.cost_records import CostRecorder, read_records
from costmesh.errors import UpstreamError
from costmesh.tooling.cli import main
from costmesh.tooling.mesh_client import build_request
from costmesh.tooling.report.summary import format_table, summarize

DAY1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC).timestamp()


def miss(request_id: str, tier: int, classified: int, cost: float, list_cost: float, baseline: float,
         embedding: float = 0.00001) -> gw.CompleteResponse:
    return gw.CompleteResponse(
        request_id=request_id, text="an answer", model="m", provider="openai", tier=tier, classified_tier=classified,
        complexity_score=0.3, cache_status=gw.CACHE_STATUS_MISS, attempts=1 + (tier > classified),
        usage=common.TokenUsage(input_tokens=100, output_tokens=50, cache_read_tokens=20),
        cost=common.CostBreakdown(total_usd=cost + embedding, embedding_usd=embedding),
        baseline_cost_usd=baseline, saving_usd=baseline - cost - embedding,
        savings=common.LayerSavings(cache_usd=-embedding, routing_usd=baseline - list_cost,
                                    prompt_caching_usd=list_cost - cost),
    )


def hit(request_id: str, baseline: float, similarity: float, embedding: float = 0.00001) -> gw.CompleteResponse:
    return gw.CompleteResponse(
        request_id=request_id, text="an answer", model="m", provider="cache", cached=True,
        cache_status=gw.CACHE_STATUS_SEMANTIC_HIT if similarity < 1 else gw.CACHE_STATUS_EXACT_HIT,
        cache_similarity=similarity, cost=common.CostBreakdown(total_usd=embedding, embedding_usd=embedding),
        baseline_cost_usd=baseline, saving_usd=baseline - embedding,
        savings=common.LayerSavings(cache_usd=baseline - embedding),
    )


@pytest.fixture
def recorded(tmp_path):
    """Two days of traffic written by two gateway processes (the second after a 'restart')."""
    directory = tmp_path / "records"
    now = [DAY1]
    first = CostRecorder(directory, clock=lambda: now[0], writer_id="gw-a")
    answers = [
        ("t1", miss("r1", common.TIER_SIMPLE, common.TIER_SIMPLE, 0.001, 0.0012, 0.02)),
        ("t1", hit("r2", 0.02, 1.0)),
        ("t2", miss("r3", common.TIER_COMPLEX, common.TIER_MODERATE, 0.015, 0.016, 0.02)),
        ("t2", hit("r4", 0.02, 0.93)),
    ]
    for i, (tenant, response) in enumerate(answers):
        now[0] = DAY1 + i * 600
        first.on_answer(build_request("q", tenant=tenant), response)
    now[0] = DAY1 + 3000
    failed = build_request("q", tenant="t3")
    failed.request_id = "r5"
    first.on_error(failed, UpstreamError("openai: 500 from upstream"))
    first.close()

    # A restarted gateway, writing into a subdirectory (as each `make demo` run does).
    second = CostRecorder(directory / "run-2", clock=lambda: now[0], writer_id="gw-b")
    for i, (tenant, response) in enumerate([
        ("t1", miss("r6", common.TIER_TRIVIAL, common.TIER_TRIVIAL, 0.0002, 0.0002, 0.01)),
        ("t1", hit("r7", 0.01, 0.97)),
    ]):
        now[0] = DAY2 + i * 600
        second.on_answer(build_request("q", tenant=tenant), response)
    second.close()
    with (directory / "run-2" / "costs-2026-11-03-gw-b.jsonl").open("a") as handle:
        handle.write('{"ts": 17')  # a line torn by a crash
    return directory


def test_records_survive_a_restart_and_a_torn_line(recorded):
    records = list(read_records(recorded))
    assert sorted(r.request_id for r in records) == ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]
    assert sorted(str(p.relative_to(recorded)) for p in recorded.rglob("*.jsonl")) == [
        "costs-2026-11-02-gw-a.jsonl", "run-2/costs-2026-11-03-gw-b.jsonl"]
    failed = next(r for r in records if r.request_id == "r5")
    assert failed.outcome == "UpstreamError" and failed.cost_usd == 0 and "500" in failed.error
    assert [r.request_id for r in read_records(recorded, since=DAY2, until=DAY2 + 3600)] == ["r6", "r7"]
    line = json.loads((recorded / "costs-2026-11-02-gw-a.jsonl").read_text().splitlines()[0])
    assert line["tenant_id"] == "t1" and line["cache"] == "miss" and line["tier"] == "simple"


def test_summary_is_the_sum_of_the_records(recorded):
    summary = summarize(read_records(recorded), DAY1, DAY2 + 86400)
    assert (summary.requests, summary.answered, summary.failed) == (7, 6, 1)
    assert summary.baseline_usd == pytest.approx(0.02 * 4 + 0.01 * 2)
    embedding = 0.00001
    assert summary.cost_usd == pytest.approx(0.001 + 0.015 + 0.0002 + 6 * embedding)
    assert summary.savings["cache"] == pytest.approx(0.02 + 0.02 + 0.01 - 6 * embedding)
    assert summary.savings["routing"] == pytest.approx((0.02 - 0.0012) + (0.02 - 0.016) + (0.01 - 0.0002))
    assert summary.savings["prompt_caching"] == pytest.approx(0.0002 + 0.001)
    assert sum(summary.savings.values()) == pytest.approx(summary.baseline_usd - summary.cost_usd)
    assert summary.hit_rate == pytest.approx(3 / 6)
    assert summary.avg_hit_similarity == pytest.approx((1.0 + 0.93 + 0.97) / 3)
    assert dict(summary.tiers) == {"cached": 3, "simple": 1, "complex": 1, "trivial": 1}
    assert summary.upgrade_rate == pytest.approx(1 / 3)
    assert summary.daily_active_users == pytest.approx((3 + 1) / 2)  # day 1: t1 t2 t3; day 2: t1
    assert summary.cost_per_daily_active_user == pytest.approx(summary.cost_usd / 2 / 2)
    table = format_table(summary)
    assert "saved by semantic cache" in table and "saved by complexity routing" in table
    assert "UpstreamError 1" in table


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def test_costmesh_report_writes_the_table_the_page_and_the_charts(recorded, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["report", "--since", "2026-11-02", "--until", "2026-11-04", "--records-dir", str(recorded),
                 "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "savings by layer" in printed
    text = (out / "report.txt").read_text()
    summary = summarize(read_records(recorded), DAY1 - 9 * 3600, DAY2 + 15 * 3600)
    for label in ("baseline", "semantic cache", "complexity routing", "prompt caching", "batch APIs",
                  "self-hosted inference", "costmesh cost"):
        assert label in text
    assert f"{summary.baseline_usd:.6f}" in text and f"{summary.cost_usd:.6f}" in text
    page = (out / "report.html").read_text()
    for name in ("savings-waterfall.png", "cost-per-request.png", "tier-mix.png", "cache-hit-rate.png"):
        width, height = png_size(out / name)
        assert width >= 600 and height >= 300, name
        assert f'src="{name}"' in page
    assert "<table>" in page and f"{summary.cost_usd:.6f}" in page


def test_report_period_is_respected(recorded, tmp_path):
    out = tmp_path / "day2"
    assert main(["report", "--since", "2026-11-03T00:00", "--until", "2026-11-04T00:00",
                 "--records-dir", str(recorded), "--output", str(out)]) == 0
    text = (out / "report.txt").read_text()
    assert "requests                      2 (2 answered, 0 failed: none)" in text


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--since", "last tuesday"], "--since"),
        (["--since", "2026-11-04", "--until", "2026-11-02"], "--until"),
        (["--records-dir", "/nonexistent/records"], "--records-dir"),
    ],
)
def test_report_bad_input_names_the_field(args, field, recorded, tmp_path, capsys):
    base = {"--records-dir": str(recorded), "--output": str(tmp_path / "x")}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    argv = ["report"] + [item for pair in base.items() for item in pair]
    assert main(argv) == 2
    assert field in capsys.readouterr().err


def test_report_with_no_records_fails_and_says_where_it_looked(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty-records"
    empty.mkdir()
    monkeypatch.setenv("COSTMESH_RECORDS_DIR", str(empty))
    out = tmp_path / "report"
    assert main(["report", "--since", "24h", "--output", str(out)]) != 0
    err = capsys.readouterr().err
    assert "no cost records" in err and str(empty.resolve()) in err and "COSTMESH_RECORDS_DIR" in err
    assert not (out / "report.txt").exists()


def test_report_with_records_outside_the_period_fails_and_names_their_span(recorded, tmp_path, capsys):
    assert main(["report", "--since", "2026-10-01", "--until", "2026-10-02", "--records-dir", str(recorded),
                 "--output", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err
    assert "no cost records between 2026-10-01" in err and "2026-11-02 09:00:00 UTC" in err


def test_report_since_alone_runs_up_to_now(recorded, tmp_path, monkeypatch):
    # The records are from 2026-11-02/03; "now" is a day later, so --since alone must cover them.
    monkeypatch.setattr("costmesh.tooling.report.command.time.time", lambda: DAY2 + 86400)
    out = tmp_path / "report"
    assert main(["report", "--since", "2026-11-02", "--records-dir", str(recorded), "--output", str(out)]) == 0
    assert "requests                      7 (6 answered, 1 failed" in (out / "report.txt").read_text()


def test_report_since_in_the_future_names_since(recorded, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("costmesh.tooling.report.command.time.time", lambda: DAY1)
    assert main(["report", "--since", "2026-11-03", "--records-dir", str(recorded),
                 "--output", str(tmp_path / "x")]) == 2
    assert "--since" in capsys.readouterr().err


def _chart_xlims(summary, tmp_path, monkeypatch) -> dict[str, tuple[datetime, datetime]]:
    import matplotlib.dates as mdates

    from costmesh.tooling.report import charts

    figures = []
    real_close = charts.plt.close
    monkeypatch.setattr(charts.plt, "close", lambda fig: (figures.append(fig), real_close(fig)))
    spans = {}
    for name, draw in (("cost", charts.cost_over_time), ("hits", charts.hit_rate)):
        draw(summary, tmp_path / f"{name}.png")
        low, high = figures[-1].axes[0].get_xlim()
        spans[name] = (mdates.num2date(low, UTC), mdates.num2date(high, UTC))
    return spans


def test_time_charts_span_the_records_period(recorded, tmp_path, monkeypatch):
    since, until = DAY1 - 9 * 3600, DAY2 + 15 * 3600
    summary = summarize(read_records(recorded), since, until)
    for low, high in _chart_xlims(summary, tmp_path, monkeypatch).values():
        assert since <= low.timestamp() <= DAY1 and DAY2 + 600 < high.timestamp() <= until


def test_time_charts_of_an_empty_period_span_the_period_not_the_epoch(tmp_path, monkeypatch):
    since, until = DAY1, DAY2
    summary = summarize([], since, until)
    for low, high in _chart_xlims(summary, tmp_path, monkeypatch).values():
        assert (low.timestamp(), high.timestamp()) == pytest.approx((since, until))
