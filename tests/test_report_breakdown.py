"""Spend by tenant, API key and model: the key id the gateway binds lands in the cost record
(never the key), and `costmesh report --by` sums the records per group (table, HTML, charts)."""

from __future__ import annotations

import contextvars
import json
from datetime import UTC, datetime

import pytest

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.cost_records import CostRecorder, bind_key_id, bound_key_id, read_records
from costmesh.errors import UpstreamError
from costmesh.gateway.auth import Authenticator, KeyStore
from costmesh.tooling.cli import main
from costmesh.tooling.mesh_client import build_request
from costmesh.tooling.report.breakdown import breakdown, format_breakdown

DAY1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()
SINCE, UNTIL = DAY1 - 3600, DAY1 + 86400
EMBEDDING = 0.00001


def miss(request_id: str, tier: int, classified: int, cost: float, list_cost: float, baseline: float,
         model: str = "m") -> gw.CompleteResponse:
    return gw.CompleteResponse(
        request_id=request_id, text="an answer", model=model, provider="openai", tier=tier,
        classified_tier=classified, cache_status=gw.CACHE_STATUS_MISS,
        cost=common.CostBreakdown(total_usd=cost + EMBEDDING, embedding_usd=EMBEDDING),
        baseline_cost_usd=baseline, saving_usd=baseline - cost - EMBEDDING,
        savings=common.LayerSavings(cache_usd=-EMBEDDING, routing_usd=baseline - list_cost,
                                    prompt_caching_usd=list_cost - cost),
    )


def hit(request_id: str, baseline: float, similarity: float) -> gw.CompleteResponse:
    return gw.CompleteResponse(
        request_id=request_id, text="an answer", model="m", provider="cache", cached=True,
        cache_status=gw.CACHE_STATUS_SEMANTIC_HIT if similarity < 1 else gw.CACHE_STATUS_EXACT_HIT,
        cache_similarity=similarity, cost=common.CostBreakdown(total_usd=EMBEDDING, embedding_usd=EMBEDDING),
        baseline_cost_usd=baseline, saving_usd=baseline - EMBEDDING,
        savings=common.LayerSavings(cache_usd=baseline - EMBEDDING),
    )


def write(recorder: CostRecorder, key_id: str, tenant: str, response=None, error=None) -> None:
    """One request served in its own context, as each gateway call is."""

    def serve():
        bind_key_id(key_id)
        request = build_request("q", tenant=tenant)
        if error is not None:
            recorder.on_error(request, error)
        else:
            recorder.on_answer(request, response)

    contextvars.copy_context().run(serve)


@pytest.fixture
def records(tmp_path):
    now = [DAY1]
    recorder = CostRecorder(tmp_path, clock=lambda: now[0], writer_id="gw")
    traffic = [
        ("k-acme-1", "acme", miss("r1", common.TIER_SIMPLE, common.TIER_SIMPLE, 0.001, 0.0012, 0.02)),
        ("k-acme-2", "acme", hit("r2", 0.02, 0.95)),
        ("k-glob", "globex", miss("r3", common.TIER_COMPLEX, common.TIER_MODERATE, 0.015, 0.016, 0.02)),
        ("k-glob", "globex", miss("r4", common.TIER_SIMPLE, common.TIER_SIMPLE, 0.002, 0.002, 0.02,
                                  model="claude-sonnet")),
        ("", "dev", miss("r5", common.TIER_TRIVIAL, common.TIER_TRIVIAL, 0.0001, 0.0001, 0.01)),
    ]
    for i, (key_id, tenant, response) in enumerate(traffic):
        now[0] = DAY1 + i * 60
        write(recorder, key_id, tenant, response)
    now[0] = DAY1 + 600
    write(recorder, "k-glob", "globex", error=UpstreamError("openai: 500"))
    recorder.close()
    return tmp_path


def test_the_bound_key_id_is_recorded_and_the_key_never_is(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create("acme")
    auth = Authenticator(store)
    recorder = CostRecorder(tmp_path / "records", writer_id="gw")

    def call():
        principal = auth.authenticate(f"Bearer {key}")
        recorder.on_answer(build_request("q", tenant=principal.tenant), hit("r-key", 0.02, 1.0))

    contextvars.copy_context().run(call)
    contextvars.copy_context().run(  # another call, no key: nothing carried over
        lambda: recorder.on_answer(build_request("q", tenant="acme"), hit("r-none", 0.02, 1.0)))
    recorder.close()
    got = {r.request_id: r for r in read_records(tmp_path / "records")}
    assert got["r-key"].key_id == record.key_id and got["r-none"].key_id == ""
    text = "".join(p.read_text() for p in (tmp_path / "records").glob("*.jsonl"))
    assert key not in text and key.rsplit("_", 1)[-1] not in text


def test_authentication_off_binds_no_key(tmp_path):
    def call():
        bind_key_id("stale")
        Authenticator(None).authenticate(None, "dev")
        return bound_key_id()

    assert contextvars.copy_context().run(call) == ""


def test_spend_by_tenant_key_and_model_adds_up_to_the_records(records):
    all_records = list(read_records(records))
    for dimension in ("tenant", "key", "model"):
        result = breakdown(all_records, dimension, SINCE, UNTIL)
        assert sum(g.requests for g in result.groups) == len(all_records)
        assert sum(g.cost_usd for g in result.groups) == pytest.approx(sum(r.cost_usd for r in all_records))
        assert [g.cost_usd for g in result.groups] == sorted((g.cost_usd for g in result.groups), reverse=True)
    tenants = {g.name: g for g in breakdown(all_records, "tenant", SINCE, UNTIL).groups}
    assert set(tenants) == {"acme", "globex", "dev"}
    assert tenants["globex"].requests == 3 and tenants["globex"].failed == 1
    assert tenants["globex"].cost_usd == pytest.approx(0.015 + 0.002 + 2 * 0.00001)
    assert tenants["acme"].cache_hits == 1 and tenants["acme"].hit_rate == 0.5
    keys = {g.name: g for g in breakdown(all_records, "key", SINCE, UNTIL).groups}
    assert set(keys) == {"k-acme-1", "k-acme-2", "k-glob", "(no key)"}
    models = {g.name: g for g in breakdown(all_records, "model", SINCE, UNTIL).groups}
    assert set(models) == {"m", "claude-sonnet", "cache", "(failed)"}
    assert models["cache"].requests == 1 and models["(failed)"].failed == 1


def test_groups_past_the_limit_are_summed_into_one_others_row(records):
    all_records = list(read_records(records))
    result = breakdown(all_records, "key", SINCE, UNTIL, limit=2)
    assert len(result.groups) == 2 and result.total_groups == 4
    assert result.others is not None and result.others.name == "(2 others)"
    total = sum(g.cost_usd for g in result.groups) + result.others.cost_usd
    assert total == pytest.approx(sum(r.cost_usd for r in all_records))
    assert "(top 2 of 4)" in format_breakdown(result)
    payload = result.to_json()
    assert payload["others"]["requests"] == result.others.requests
    assert json.dumps(payload)  # plain JSON


def test_report_by_writes_a_table_an_html_section_and_a_chart_per_dimension(records, tmp_path, capsys):
    output = tmp_path / "out"
    code = main(["report", "--records-dir", str(records), "--since", str(SINCE), "--until", str(UNTIL),
                 "--output", str(output), "--by", "tenant,key", "--by", "model", "--by", "tenant"])
    assert code == 0
    printed = capsys.readouterr().out
    for title in ("spend by tenant", "spend by API key", "spend by model"):
        assert printed.count(title) == 1
    globex = next(line for line in printed.splitlines() if line.startswith("globex"))
    assert "0.017020" in globex  # 0.015 + 0.002 + two embeddings of 0.00001
    page = (output / "report.html").read_text()
    assert "<h2>Spend by API key</h2>" in page and "<td>k-glob</td>" in page
    for name in ("spend-by-tenant.png", "spend-by-key.png", "spend-by-model.png"):
        assert (output / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{name}"' in page
    assert "spend by" in (output / "report.txt").read_text()


def test_report_by_refuses_an_unknown_dimension(records, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--records-dir", str(records), "--by", "team"])
    assert exit_.value.code == 2
    assert "'team': choose from tenant, key, model" in capsys.readouterr().err
