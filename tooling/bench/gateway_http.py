"""Section `gateway_http`: what each front door adds over calling the provider directly.

In one run, against one simulator and with the same prompts: the official SDK straight to
the simulator (the baseline), the gateway's gRPC API, its OpenAI-compatible HTTP API (through
the unmodified `openai` SDK), and LiteLLM's proxy when it is installed. For each front door:
sequential p50/p99 and the latency added over the direct call, requests per second at
concurrency 32 (cache bypassed), and the same with the semantic cache on and every request a
miss (`miss_*`; LiteLLM runs without a cache, so its `miss_*` figures are a second run on
fresh prompts), and with the direct call's model pinned (`pinned_*`: no classification, no
cascade, the closest costmesh request to what a plain proxy does).

`head_to_head` (with LiteLLM): the pinned gRPC and HTTP APIs, LiteLLM and the direct call measured
in interleaved rounds (`HEAD_TO_HEAD_ROUNDS`, the order rotated each round), so that a machine
whose speed drifts during the run (a shared VM) slows each the same: per round each one's added
p50 (against that round's direct p50) and requests/s at concurrency 32, and the medians over the
rounds with costmesh's ratios to LiteLLM.

LiteLLM lives in its own virtual environment so its pins cannot disturb the project's:
`python3 -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'`
(or `.venv-litellm`, or `COSTMESH_LITELLM=/path/to/bin/litellm`). Without it, the section
has no `litellm` key and says why in `litellm_skipped`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import openai

from costmesh.catalog import load_catalog
from costmesh.tooling.bench.gateway import MAX_TOKENS, DirectClient
from costmesh.tooling.bench.timing import percentile_ms, sequential, throughput
from costmesh.tooling.datasets import data_dir, load_book
from costmesh.tooling.launcher import free_port, start_mesh
from costmesh.tooling.mesh_client import GatewayClient, build_request

CONCURRENCY = 32
HEAD_TO_HEAD_ROUNDS = 5
LITELLM_CANDIDATES = (".venv-litellm/bin/litellm", "/tmp/litellm-venv/bin/litellm")

Call = Callable[[str], Awaitable[object]]


def find_litellm() -> str | None:
    explicit = os.environ.get("COSTMESH_LITELLM")
    if explicit:
        return explicit
    for candidate in LITELLM_CANDIDATES:
        if Path(candidate).exists():
            return str(Path(candidate).resolve())
    return shutil.which("litellm")


class LiteLLMProxy:
    """LiteLLM's proxy as a process, serving one model from the simulator."""

    def __init__(self, binary: str, simulator_url: str, model: str, run_dir: Path):
        provider = load_catalog().model(model).provider
        api_base = simulator_url + "/v1" if provider == "openai" else simulator_url
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = run_dir / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            f"  - model_name: {model}\n"
            "    litellm_params:\n"
            f"      model: {provider}/{model}\n"
            f"      api_base: {api_base}\n"
            "      api_key: bench\n"
            "litellm_settings:\n"
            "  drop_params: true\n"
            "  telemetry: false\n"
        )
        self._log = open(run_dir / "litellm.log", "ab")  # noqa: SIM115 - closed in stop()
        # Authenticated like costmesh (a master key, no database): the same work per request.
        self.master_key = f"sk-{secrets.token_hex(32)}"
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
               "LITELLM_MASTER_KEY": self.master_key}
        self._process = subprocess.Popen(
            [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port), "--num_workers", "1"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.log_path = run_dir / "litellm.log"

    def wait_ready(self, timeout_s: float = 240.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"litellm exited with {self._process.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health/liveliness", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"litellm did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


async def _figures(name: str, bypass: Call, miss: Call, pinned: Call, prompts: list[str], miss_offset: int,
                   n_seq: int, n_conc: int, direct: dict, hits: Callable[[], Awaitable[int]] | None) -> dict:
    for i in range(5):  # warm up connections and every hop
        await bypass(prompts[i])
        await pinned(prompts[i])
    seq = await sequential(lambda i: bypass(prompts[i]), n_seq)
    rps = await throughput(lambda i: bypass(prompts[n_seq + i]), n_conc, CONCURRENCY)
    pinned_seq = await sequential(lambda i: pinned(prompts[i]), n_seq)
    pinned_rps = await throughput(lambda i: pinned(prompts[n_seq + i]), n_conc, CONCURRENCY)
    hits_before = await hits() if hits else 0
    miss_seq = await sequential(lambda i: miss(prompts[miss_offset + i]), n_seq)
    miss_rps = await throughput(lambda i: miss(prompts[miss_offset + n_seq + i]), n_conc, CONCURRENCY)
    hits_after = await hits() if hits else 0
    p50, p99 = percentile_ms(seq, 50), percentile_ms(seq, 99)
    print(f"  {name}: p50 {p50:.2f} ms, {rps:.1f} req/s at c{CONCURRENCY}", flush=True)
    return {
        "model": direct["model"],
        "requests_sequential": n_seq,
        "requests_concurrent": n_conc,
        "direct_p50_ms": direct["p50"],
        "direct_p99_ms": direct["p99"],
        "mesh_p50_ms": p50,
        "mesh_p99_ms": p99,
        "added_p50_ms": p50 - direct["p50"],
        "added_p99_ms": p99 - direct["p99"],
        "rps_c32": rps,
        "direct_rps_c32": direct["rps"],
        "miss_added_p50_ms": percentile_ms(miss_seq, 50) - direct["p50"],
        "miss_rps_c32": miss_rps,
        "cache_hits_during_miss_runs": hits_after - hits_before,
        # The direct call's model pinned, cache bypassed: no classification, no cascade.
        "pinned_added_p50_ms": percentile_ms(pinned_seq, 50) - direct["p50"],
        "pinned_added_p99_ms": percentile_ms(pinned_seq, 99) - direct["p99"],
        "pinned_rps_c32": pinned_rps,
    }


async def _head_to_head(calls: dict[str, Call], prompts: list[str], n_seq: int, n_conc: int,
                        rounds: int = HEAD_TO_HEAD_ROUNDS) -> dict:
    """`calls` by name, "direct" among them: interleaved rounds, each on its own prompts."""
    names = list(calls)
    per_round: dict[str, dict[str, list[float]]] = {name: {"p50_ms": [], "rps_c32": []} for name in names}
    block = n_seq + n_conc
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for i, name in enumerate(order):
            start = (r * len(names) + i) * block
            call = calls[name]
            seq = await sequential(lambda k, call=call, start=start: call(prompts[start + k]), n_seq)
            per_round[name]["p50_ms"].append(percentile_ms(seq, 50))
            rps = await throughput(lambda k, call=call, start=start: call(prompts[start + n_seq + k]), n_conc,
                                   CONCURRENCY)
            per_round[name]["rps_c32"].append(rps)
    direct = per_round["direct"]["p50_ms"]
    result: dict = {"rounds": rounds, "requests_sequential": n_seq, "requests_concurrent": n_conc,
                    "direct_p50_ms": float(np.median(direct)),
                    "direct_rps_c32": float(np.median(per_round["direct"]["rps_c32"]))}
    for name in names:
        if name == "direct":
            continue
        added = [p - d for p, d in zip(per_round[name]["p50_ms"], direct, strict=True)]
        rps = per_round[name]["rps_c32"]
        result[name] = {"added_p50_ms": float(np.median(added)), "rps_c32": float(np.median(rps)),
                        "rounds_added_p50_ms": added, "rounds_rps_c32": rps}
    if "litellm" in result:
        lite = result["litellm"]
        for name in names:
            if name not in ("direct", "litellm"):
                result[name]["rps_vs_litellm"] = result[name]["rps_c32"] / lite["rps_c32"]
                result[name]["added_p50_vs_litellm"] = result[name]["added_p50_ms"] / lite["added_p50_ms"]
    return result


async def _measure(mesh, prompts: list[str], n_seq: int, n_conc: int, litellm: str | None,
                   run_dir: Path, head_to_head: tuple[int, int]) -> dict:
    block = n_seq + n_conc
    key = mesh.api_key("bench")
    result: dict = {}
    proxy = None
    async with GatewayClient(mesh.gateway, api_key=key) as grpc_client:
        first = await grpc_client.complete(build_request(prompts[0], bypass_cache=True, max_tokens=MAX_TOKENS))
        model = first.model
        if litellm is not None:
            # Started first and waited for, so that its start-up takes no CPU from a measurement.
            proxy = LiteLLMProxy(litellm, mesh.simulator_url, model, run_dir)
        try:
            if proxy is not None:
                try:
                    await asyncio.to_thread(proxy.wait_ready)
                except RuntimeError as exc:
                    result["litellm_skipped"] = f"LiteLLM did not run: {exc}"
                    proxy.stop()
                    proxy = None
            await _measure_all(mesh, grpc_client, key, model, proxy, prompts, n_seq, n_conc, block, head_to_head,
                               result)
        finally:
            if proxy is not None:
                proxy.stop()
    if litellm is None:
        result["litellm_skipped"] = ("LiteLLM is not installed: python3 -m venv /tmp/litellm-venv && "
                                     "/tmp/litellm-venv/bin/pip install 'litellm[proxy]'")
    return result


async def _measure_all(mesh, grpc_client: GatewayClient, key: str, model: str, proxy: LiteLLMProxy | None,
                       prompts: list[str], n_seq: int, n_conc: int, block: int, head_to_head: tuple[int, int],
                       result: dict) -> None:
    direct_client = DirectClient(mesh.simulator_url, model)

    async def direct_call(i: int) -> None:
        await direct_client.call(prompts[i])

    for i in range(10):
        await direct_call(i)
    direct_seq = await sequential(direct_call, n_seq)
    direct = {"model": model, "p50": percentile_ms(direct_seq, 50), "p99": percentile_ms(direct_seq, 99),
              "rps": await throughput(lambda i: direct_call(n_seq + i), n_conc, CONCURRENCY)}
    print(f"  direct ({model}): p50 {direct['p50']:.2f} ms, {direct['rps']:.1f} req/s", flush=True)

    async def hits() -> int:
        stats = await grpc_client.stats()
        return stats.exact_hits + stats.semantic_hits

    def grpc_call(bypass: bool, pin: str = "") -> Call:
        return lambda prompt: grpc_client.complete(
            build_request(prompt, bypass_cache=bypass, max_tokens=MAX_TOKENS, model=pin))

    result["grpc"] = await _figures("grpc", grpc_call(True), grpc_call(False), grpc_call(True, model), prompts,
                                    block, n_seq, n_conc, direct, hits)

    http = openai.AsyncOpenAI(base_url=mesh.http_url, api_key=key, max_retries=0)

    def http_call(bypass: bool, pin: str = "auto") -> Call:
        extra = {"costmesh": {"cache": {"bypass": True}}} if bypass else None
        return lambda prompt: http.chat.completions.create(
            model=pin, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": prompt}], extra_body=extra)

    result["http"] = await _figures("http", http_call(True), http_call(False), http_call(True, model), prompts,
                                    2 * block, n_seq, n_conc, direct, hits)
    pinned: dict[str, Call] = {"direct": direct_client.call, "grpc": grpc_call(True, model),
                               "http": http_call(True, model)}
    client = None
    if proxy is not None:
        client = openai.AsyncOpenAI(base_url=proxy.url, api_key=proxy.master_key, max_retries=0)

        async def litellm_call(prompt: str) -> None:
            await client.chat.completions.create(model=model, max_tokens=MAX_TOKENS,
                                                 messages=[{"role": "user", "content": prompt}])

        for i in range(5):  # its connections, before any measurement
            await litellm_call(prompts[i])
        result["litellm"] = await _figures("litellm", litellm_call, litellm_call, litellm_call, prompts, 3 * block,
                                           n_seq, n_conc, direct, None)
        result["litellm"]["version"] = _litellm_version(proxy.binary)
        pinned["litellm"] = litellm_call
    # Prompts are reused from here on: every call bypasses the cache (LiteLLM has none).
    cycled = prompts * (1 + (HEAD_TO_HEAD_ROUNDS * len(pinned) * sum(head_to_head)) // len(prompts))
    result["head_to_head"] = await _head_to_head(pinned, cycled, *head_to_head)
    _print_head_to_head(result["head_to_head"])
    await http.close()
    if client is not None:
        await client.close()


def _print_head_to_head(h2h: dict) -> None:
    for name in ("grpc", "http", "litellm"):
        if name in h2h:
            r = h2h[name]
            ratios = (f" ({r['rps_vs_litellm']:.2f}x LiteLLM's req/s, {r['added_p50_vs_litellm']:.2f} of its added p50)"
                      if "rps_vs_litellm" in r else "")
            print(f"  head to head, {name}: added p50 {r['added_p50_ms']:.2f} ms, {r['rps_c32']:.1f} req/s{ratios}",
                  flush=True)


def _litellm_version(binary: str) -> str:
    python = Path(binary).with_name("python")
    try:
        out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip()
    except OSError:
        return ""


def run(quick: bool = False) -> dict:
    n_seq, n_conc = (40, 128) if quick else (200, 640)
    head_to_head = (20, 64) if quick else (100, 320)
    book = load_book(data_dir() / "mmlu_routing_dev.jsonl.gz")
    prompts = list(dict.fromkeys(r.prompt for r in book))
    needed = 4 * (n_seq + n_conc)
    if len(prompts) < needed:
        raise ValueError(f"the MMLU book has {len(prompts)} distinct prompts; gateway_http needs {needed}")
    with tempfile.TemporaryDirectory(prefix="costmesh-bench-http-") as run_dir, start_mesh(
        run_dir, {"COSTMESH_LOG_LEVEL": "warning"}, startup_timeout_s=300
    ) as mesh:
        return asyncio.run(_measure(mesh, prompts, n_seq, n_conc, find_litellm(), Path(run_dir), head_to_head))


def table(result: dict) -> str:
    grpc = result["grpc"]
    lines = [
        f"gateway_http (model {grpc['model']}, {grpc['requests_sequential']} sequential, "
        f"{grpc['requests_concurrent']} at concurrency {CONCURRENCY}; direct p50 {grpc['direct_p50_ms']:.2f} ms, "
        f"{grpc['direct_rps_c32']:.1f} req/s)",
        f"  {'':10}{'added p50':>11}{'added p99':>11}{'req/s c32':>11}{'miss +p50':>11}{'miss req/s':>11}"
        f"{'pinned +p50':>13}{'pinned req/s':>14}",
    ]
    for name in ("grpc", "http", "litellm"):
        if name in result:
            r = result[name]
            lines.append(f"  {name:<10}{r['added_p50_ms']:>11.2f}{r['added_p99_ms']:>11.2f}{r['rps_c32']:>11.1f}"
                         f"{r['miss_added_p50_ms']:>11.2f}{r['miss_rps_c32']:>11.1f}"
                         f"{r['pinned_added_p50_ms']:>13.2f}{r['pinned_rps_c32']:>14.1f}")
    lines.append("  (added: cache bypassed, costmesh routes; miss: cache on, every request new; pinned: the direct "
                 "call's model pinned, cache bypassed; LiteLLM always serves the pinned model with no cache)")
    h2h = result.get("head_to_head")
    if h2h:
        lines.append(f"  pinned, head to head ({h2h['rounds']} interleaved rounds of {h2h['requests_sequential']} "
                     f"sequential and {h2h['requests_concurrent']} at c{CONCURRENCY}; medians; direct p50 "
                     f"{h2h['direct_p50_ms']:.2f} ms, {h2h['direct_rps_c32']:.1f} req/s)")
        for name in ("grpc", "http", "litellm"):
            if name in h2h:
                r = h2h[name]
                ratios = (f"{r['rps_vs_litellm']:>8.2f}x req/s{r['added_p50_vs_litellm']:>8.2f} of added p50"
                          if "rps_vs_litellm" in r else "")
                lines.append(f"  {name:<10}{r['added_p50_ms']:>11.2f}{'':>11}{r['rps_c32']:>11.1f}{ratios}")
    if "litellm_skipped" in result:
        lines.append(f"  litellm: {result['litellm_skipped']}")
    return "\n".join(lines)
