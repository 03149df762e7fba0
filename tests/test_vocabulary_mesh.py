"""One vocabulary across the front doors (#21), on the in-process mesh: the same question over
gRPC (the Python client) and HTTP names tiers and the cache status the same way, bills the
same whole micro-dollars, reports no usage for a cache hit on both, and says what the
classifier said in `classified_tier` when `min_tier` raised the tier. The Node client's side
is in test_node_client.py."""

from __future__ import annotations

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider

from costmesh.client import AsyncClient, CacheStatus, Tier
from costmesh.services.simulator import start_simulator

from inprocess_mesh import start_inprocess_mesh

TIERS = {"trivial", "simple", "moderate", "complex"}


@pytest.fixture(scope="module")
async def mesh(redis_url):
    sim = await start_simulator(port=0)
    mesh = await start_inprocess_mesh(redis_url, sim.url, TracerProvider())
    yield mesh
    await mesh.stop()
    await sim.stop()


async def http_chat(mesh, api_key: str, prompt: str, costmesh: dict | None = None) -> tuple[dict, dict]:
    body = {"model": "auto", "messages": [{"role": "user", "content": prompt}], "max_tokens": 1024,
            **({"costmesh": costmesh} if costmesh else {})}
    async with aiohttp.ClientSession() as session, session.post(
        f"{mesh.http_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {api_key}"}
    ) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.json(), dict(reply.headers)


def micro(value: float) -> bool:
    return round(value * 1e6) / 1e6 == value and repr(value) != "-0.0"


async def test_grpc_and_http_say_the_same_of_a_miss_and_of_a_hit(mesh):
    key = mesh.api_key("vocab")
    prompt = "Name three sorting algorithms."
    async with AsyncClient(mesh.gateway, key) as client:
        miss = await client.complete(prompt, max_tokens=1024)
        assert miss.cache_status == "miss" and str(miss.tier) in TIERS and str(miss.classified_tier) in TIERS
        assert miss.usage.output_tokens > 0 and all(micro(v) for v in (miss.cost.total_usd, miss.saving_usd,
                                                                        miss.baseline_cost_usd))
        await mesh.stores_settled()
        grpc_hit = await client.complete(prompt, max_tokens=1024)
        stats = await client.stats()
    body, headers = await http_chat(mesh, key, prompt)

    assert grpc_hit.cache_status is CacheStatus.EXACT_HIT and body["costmesh"]["cache"]["status"] == "exact_hit"
    assert headers["x-costmesh-cache"] == "exact_hit"
    # no usage for a hit, on both
    assert (grpc_hit.usage.input_tokens, grpc_hit.usage.output_tokens) == (0, 0)
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (0, 0)
    # the same bill, in whole micro-dollars
    extras = body["costmesh"]
    assert extras["cost_usd"] == grpc_hit.cost.total_usd and extras["saving_usd"] == grpc_hit.saving_usd
    assert extras["baseline_cost_usd"] == grpc_hit.baseline_cost_usd
    assert float(headers["x-costmesh-cost-usd"]) == grpc_hit.cost.total_usd
    assert all(micro(v) for v in (extras["cost_usd"], extras["saving_usd"], *extras["savings"].values()))
    # GetStats: tiers by name
    assert set(stats.tier_counts) <= TIERS and sum(stats.tier_counts.values()) == 1
    assert micro(stats.cost_usd) and micro(stats.saving_usd)


async def test_min_tier_by_name_and_classified_tier_is_the_classifiers(mesh):
    key = mesh.api_key("vocab-floor")
    async with AsyncClient(mesh.gateway, key) as client:
        answer = await client.complete("What is 2+2?", min_tier="complex", bypass=True, max_tokens=50)
    assert answer.tier is Tier.COMPLEX and answer.cache_status == "bypassed"
    assert answer.classified_tier is not None and answer.classified_tier < Tier.COMPLEX  # not the floor

    body, headers = await http_chat(mesh, key, "What is 3+3?",
                                    {"routing": {"min_tier": "complex"}, "cache": {"bypass": True}})
    assert body["costmesh"]["tier"] == "complex" and headers["x-costmesh-tier"] == "complex"
    assert body["costmesh"]["classified_tier"] in TIERS - {"complex"}
