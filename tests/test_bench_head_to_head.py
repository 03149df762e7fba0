"""The interleaved head-to-head of `gateway_http` and the SDK transport comparison."""

from __future__ import annotations

import asyncio

import pytest

from costmesh.tooling.bench import gateway_http, sdk_transports


def _fake(name: str, delay_s: float, seen: list[str]):
    async def call(prompt: str) -> None:
        seen.append(name)
        await asyncio.sleep(delay_s)

    return call


async def test_the_rounds_interleave_and_the_ratios_are_against_litellm():
    seen: list[str] = []
    calls = {"direct": _fake("direct", 0.0, seen), "grpc": _fake("grpc", 0.004, seen),
             "litellm": _fake("litellm", 0.012, seen)}
    prompts = [f"p{i}" for i in range(3 * 3 * 8)]
    result = await gateway_http._head_to_head(calls, prompts, n_seq=4, n_conc=4, rounds=3)

    # Each round runs every one, the order rotated: a drift in the machine's speed hits each alike.
    firsts = [seen[i * 3 * 8] for i in range(3)]
    assert firsts == ["direct", "grpc", "litellm"]
    assert set(result) >= {"grpc", "litellm", "direct_p50_ms", "rounds"}
    grpc, litellm = result["grpc"], result["litellm"]
    assert len(grpc["rounds_added_p50_ms"]) == 3
    assert grpc["added_p50_ms"] < litellm["added_p50_ms"]  # 4 ms against 12 ms over the direct call
    assert grpc["rps_vs_litellm"] == pytest.approx(grpc["rps_c32"] / litellm["rps_c32"])
    assert grpc["added_p50_vs_litellm"] == pytest.approx(grpc["added_p50_ms"] / litellm["added_p50_ms"])
    assert 0.2 < grpc["added_p50_vs_litellm"] < 0.6
    assert "rps_vs_litellm" not in litellm
    assert "pinned, head to head" in gateway_http.table({"grpc": _phases(), "head_to_head": result})


def _phases() -> dict:
    keys = ("added_p50_ms", "added_p99_ms", "rps_c32", "miss_added_p50_ms", "miss_rps_c32", "pinned_added_p50_ms",
            "pinned_rps_c32", "direct_p50_ms", "direct_rps_c32")
    return {"model": "m", "requests_sequential": 1, "requests_concurrent": 1, **dict.fromkeys(keys, 1.0)}


async def test_the_sdk_transports_are_compared_on_the_simulator():
    result = await sdk_transports.measure(rounds=1, calls=2)
    for name in ("openai/httpx", "openai/aiohttp", "anthropic/httpx", "anthropic/aiohttp"):
        assert result[name]["p50_ms"] > 0 and result[name]["rps_c32"] > 0, name
    assert result["openai_cpu_ratio"] > 0 and result["anthropic_cpu_ratio_c32"] > 0
