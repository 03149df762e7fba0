"""Cost functions, built from the providers' documented multipliers, one usage field at a time."""

from __future__ import annotations

import pytest

from costmesh.catalog import load_catalog
from costmesh.domain import Usage
from costmesh.pricing import (
    anthropic_cost,
    anthropic_usage,
    cost_of,
    embedding_cost,
    list_cost_of,
    openai_cost,
    openai_usage,
)

CATALOG = load_catalog()
SONNET = CATALOG.model("claude-sonnet-4-5")  # $3 in, $15 out
GPT = CATALOG.model("gpt-5.1")  # $1.25 in, $10 out
M = 1e-6

# Documented multipliers of the input price (Anthropic): 5m write 1.25x, 1h write 2x, read 0.1x.
# OpenAI: cached input at 0.1x of the input price, cache writes free.


def test_catalog_carries_the_documented_multipliers():
    for model in CATALOG.models.values():
        assert model.cache_read == pytest.approx(0.1)
        if model.provider == "anthropic":
            assert (model.cache_write_5m, model.cache_write_1h) == (1.25, 2.0)
        else:
            assert (model.cache_write_5m, model.cache_write_1h) == (1.0, 1.0)
    assert CATALOG.batch_discount == 0.5
    assert CATALOG.model("claude-sonnet-4-5").min_cacheable_tokens == 1024
    assert CATALOG.model("claude-opus-4-5").min_cacheable_tokens == 4096
    assert CATALOG.model("claude-haiku-4-5").min_cacheable_tokens == 4096


@pytest.mark.parametrize(
    ("field", "tokens", "expected_usd"),
    [
        ("input_tokens", 1000, 1000 * 3 * M),
        ("cache_read_input_tokens", 1000, 1000 * 3 * 0.1 * M),
        ("cache_creation_input_tokens", 1000, 1000 * 3 * 1.25 * M),  # no split: the default 5m TTL
        ("output_tokens", 1000, 1000 * 15 * M),
    ],
)
def test_anthropic_each_usage_field(field, tokens, expected_usd):
    assert anthropic_cost(SONNET, {field: tokens}).total_usd == pytest.approx(expected_usd, rel=1e-12)


def test_anthropic_5m_and_1h_writes_split():
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        "cache_read_input_tokens": 500,
        "output_tokens": 40,
    }
    cost = anthropic_cost(SONNET, usage)
    assert cost.input_usd == pytest.approx(10 * 3 * M)
    assert cost.cache_write_usd == pytest.approx(1000 * 3 * 1.25 * M + 2000 * 3 * 2.0 * M)
    assert cost.cache_read_usd == pytest.approx(500 * 3 * 0.1 * M)
    assert cost.output_usd == pytest.approx(40 * 15 * M)
    assert cost.total_usd == pytest.approx(
        (10 * 3 + 1000 * 3.75 + 2000 * 6 + 500 * 0.3 + 40 * 15) * M, rel=1e-12
    )
    # the normalised usage counts every prompt token once (no double-charged writes)
    assert anthropic_usage(usage) == Usage(3510, 40, 500, 3000, 2000)


@pytest.mark.parametrize(
    ("usage", "expected_usd"),
    [
        ({"prompt_tokens": 2000}, 2000 * 1.25 * M),
        ({"prompt_tokens": 2000, "prompt_tokens_details": {"cached_tokens": 1536}},
         (464 * 1.25 + 1536 * 1.25 * 0.1) * M),
        ({"completion_tokens": 300}, 300 * 10 * M),
    ],
)
def test_openai_each_usage_field(usage, expected_usd):
    assert openai_cost(GPT, usage).total_usd == pytest.approx(expected_usd, rel=1e-12)


def test_openai_cached_tokens_are_inside_prompt_tokens():
    usage = openai_usage({"prompt_tokens": 2000, "completion_tokens": 5,
                          "prompt_tokens_details": {"cached_tokens": 1536}})
    assert usage == Usage(input_tokens=2000, output_tokens=5, cache_read_tokens=1536)
    assert usage.uncached_input_tokens == 464


def test_sdk_objects_price_like_their_dicts():
    import anthropic.types as at
    import openai.types as ot

    a = at.Usage(input_tokens=7, output_tokens=9, cache_read_input_tokens=1100, cache_creation_input_tokens=2048,
                 cache_creation=at.CacheCreation(ephemeral_5m_input_tokens=48, ephemeral_1h_input_tokens=2000))
    assert anthropic_cost(SONNET, a) == anthropic_cost(SONNET, a.model_dump())
    assert anthropic_usage(a).cache_write_1h_tokens == 2000
    o = ot.CompletionUsage(prompt_tokens=3000, completion_tokens=10, total_tokens=3010,
                           prompt_tokens_details={"cached_tokens": 2048})
    assert openai_cost(GPT, o) == openai_cost(GPT, o.model_dump())


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_batch_discount_halves_every_part(provider):
    if provider == "anthropic":
        usage = {"input_tokens": 100, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 1000,
                 "output_tokens": 50}
        full, batch = anthropic_cost(SONNET, usage), anthropic_cost(SONNET, usage, batch_discount=0.5)
    else:
        usage = {"prompt_tokens": 3000, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 2048}}
        full, batch = openai_cost(GPT, usage), openai_cost(GPT, usage, batch_discount=0.5)
    assert batch.discount_usd == pytest.approx(full.total_usd / 2)
    assert batch.total_usd == pytest.approx(full.total_usd / 2, rel=1e-12)
    assert batch.input_usd == full.input_usd  # parts stay at list; the discount is its own line


def test_batch_discount_out_of_range_is_refused():
    with pytest.raises(ValueError, match="batch_discount"):
        cost_of(SONNET, Usage(input_tokens=1), batch_discount=1.5)


def test_list_cost_prices_every_prompt_token_uncached():
    usage = Usage(input_tokens=3000, output_tokens=10, cache_read_tokens=2000, cache_write_tokens=900)
    assert list_cost_of(SONNET, usage).total_usd == pytest.approx((3000 * 3 + 10 * 15) * M)
    assert cost_of(SONNET, usage).total_usd < list_cost_of(SONNET, usage).total_usd


def test_embedding_calls_are_priced_from_the_catalog():
    assert embedding_cost(1_000_000, 0.02).embedding_usd == pytest.approx(0.02)
    assert embedding_cost(1000, CATALOG.embedding_usd_per_mtok).total_usd == 0.0  # local model: free
