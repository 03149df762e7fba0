"""One bill: the baseline and the savings per layer, the same on every path that answers."""

from __future__ import annotations

import pytest

from costmesh.accounting import answer_savings, baseline_usd, hit_savings
from costmesh.catalog import load_catalog
from costmesh.domain import Usage
from costmesh.pricing import list_cost_of

CATALOG = load_catalog()


def test_the_baseline_is_the_same_tokens_on_the_premium_model_at_list_price():
    usage = Usage(input_tokens=1_000, output_tokens=200, cache_read_tokens=600, cache_write_tokens=100)
    expected = list_cost_of(CATALOG.premium, Usage(input_tokens=1_000, output_tokens=200)).total_usd
    assert baseline_usd(CATALOG, usage) == pytest.approx(expected)
    assert baseline_usd(CATALOG, usage) == baseline_usd(CATALOG, Usage(1_000, 200))  # caching never moves it


def test_savings_add_up_to_baseline_less_paid():
    baseline, listed, paid, discount, embedding = 0.010, 0.004, 0.0012, 0.0013, 0.00001
    savings = answer_savings(baseline=baseline, list_cost=listed, paid=paid, discount=discount, embedding=embedding,
                             provider="anthropic")
    assert savings.total_usd == pytest.approx(baseline - paid - embedding)
    assert (savings.routing_usd, savings.batch_usd, savings.cache_usd) == pytest.approx((0.006, 0.0013, -0.00001))
    assert savings.prompt_caching_usd == pytest.approx(listed - paid - discount)
    assert savings.inference_usd == 0.0


def test_a_self_hosted_answer_saves_in_the_inference_layer():
    savings = answer_savings(baseline=0.01, list_cost=0.0, paid=0.0, provider="vllm")
    assert (savings.inference_usd, savings.routing_usd) == (0.01, 0.0)


def test_a_cache_hit_saves_the_baseline_less_its_embedding():
    savings = hit_savings(baseline=0.002, embedding=0.0001)
    assert savings.cache_usd == pytest.approx(0.0019) and savings.total_usd == pytest.approx(0.0019)
