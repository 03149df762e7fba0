"""Section `gateway`: what the mesh adds over calling the provider directly.

Both sides call the same simulator with the same prompts in the same run. The mesh runs
with everything on (classification, routing, provider adapter, tracing); the semantic cache
is bypassed by the request's policy for the first figures, and on (every request a miss:
embedding, lookup, store) for the `miss_*` figures.

`hops` (see `hops.py`): CPU per request of every mesh process over the two throughput phases
of this run (span export off, so the figures above are not slowed), and the spans of a second,
short run of the same mesh with span export on: per hop and internal step, p50/p99 time.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time

import anthropic
import openai

from costmesh.catalog import load_catalog
from costmesh.tooling.bench import hops
from costmesh.tooling.bench.timing import percentile_ms, sequential, throughput
from costmesh.tooling.datasets import data_dir, load_book
from costmesh.tooling.launcher import start_mesh
from costmesh.tooling.mesh_client import GatewayClient, build_request

MAX_TOKENS = 256


class DirectClient:
    """The baseline: the official SDK straight to the simulator, no mesh."""

    def __init__(self, simulator_url: str, model: str):
        self.model = model
        self.provider = load_catalog().model(model).provider
        if self.provider == "anthropic":
            self._anthropic = anthropic.AsyncAnthropic(base_url=simulator_url, api_key="bench", max_retries=0)
        else:
            self._openai = openai.AsyncOpenAI(base_url=simulator_url + "/v1", api_key="bench", max_retries=0)

    async def call(self, prompt: str) -> None:
        if self.provider == "anthropic":
            await self._anthropic.messages.create(
                model=self.model, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": prompt}]
            )
        else:
            await self._openai.chat.completions.create(
                model=self.model, max_completion_tokens=MAX_TOKENS, messages=[{"role": "user", "content": prompt}]
            )


async def _measure(gateway: str, simulator_url: str, prompts: list[str], n_seq: int, n_conc: int,
                   api_key: str, cpu: hops.CpuMeter) -> dict:
    async with GatewayClient(gateway, api_key=api_key) as client:

        def mesh(bypass: bool, offset: int = 0):
            async def call(i: int) -> None:
                await client.complete(build_request(prompts[offset + i], bypass_cache=bypass, max_tokens=MAX_TOKENS))

            return call

        # Warm up every hop, and learn which model the mesh picks for these prompts.
        first = None
        for i in range(10):
            first = await client.complete(build_request(prompts[i], bypass_cache=True, max_tokens=MAX_TOKENS))
        direct = DirectClient(simulator_url, first.model)

        async def direct_call(i: int) -> None:
            await direct.call(prompts[i])

        for i in range(10):
            await direct_call(i)

        direct_seq = await sequential(direct_call, n_seq)
        mesh_seq = await sequential(mesh(bypass=True), n_seq)
        direct_rps = await throughput(direct_call, n_conc, 32)
        before, shed_before = cpu.snapshot(), _shed(await client.stats())
        mesh_rps = await throughput(mesh(bypass=True), n_conc, 32)
        bypassed_cpu, bypassed_context = cpu.per_request(before, n_conc)
        bypassed_shed = _shed(await client.stats(), shed_before)
        # Cache on, every request a miss: prompts never asked before in this run.
        offset = n_seq + n_conc
        miss_seq = await sequential(mesh(bypass=False, offset=offset), n_seq)
        before, shed_before = cpu.snapshot(), _shed(await client.stats())
        miss_rps = await throughput(mesh(bypass=False, offset=offset + n_seq), n_conc, 32)
        miss_cpu, miss_context = cpu.per_request(before, n_conc)
        stats = await client.stats()
        miss_shed = _shed(stats, shed_before)

    direct_p50, direct_p99 = percentile_ms(direct_seq, 50), percentile_ms(direct_seq, 99)
    return {
        "model": direct.model,
        "requests_sequential": n_seq,
        "requests_concurrent": n_conc,
        "direct_p50_ms": direct_p50,
        "direct_p99_ms": direct_p99,
        "mesh_p50_ms": percentile_ms(mesh_seq, 50),
        "mesh_p99_ms": percentile_ms(mesh_seq, 99),
        "added_p50_ms": percentile_ms(mesh_seq, 50) - direct_p50,
        "added_p99_ms": percentile_ms(mesh_seq, 99) - direct_p99,
        "rps_c32": mesh_rps,
        "direct_rps_c32": direct_rps,
        "miss_added_p50_ms": percentile_ms(miss_seq, 50) - direct_p50,
        "miss_rps_c32": miss_rps,
        "cache_hits_during_miss_runs": stats.exact_hits + stats.semantic_hits,
        # Work shed by admission control during the throughput phases (the classifier's busy
        # answers take the fallback tier: the requests/s above count them).
        "shed_c32": {"bypassed": bypassed_shed, "miss": miss_shed},
        "hops": {
            "bypassed": {"cpu_ms_per_request": bypassed_cpu, "cpu_context": bypassed_context},
            "miss": {"cpu_ms_per_request": miss_cpu, "cpu_context": miss_context},
        },
    }


async def _hop_spans(run_dir: str, prompts: list[str], n: int) -> dict:
    """A second mesh with span export on: `n` sequential requests, cache bypassed, then `n`
    cache misses (prompts never asked before); spans grouped per phase."""
    async with hops.Receiver() as receiver:
        env = {"COSTMESH_LOG_LEVEL": "warning", **hops.exporter_env(receiver.endpoint)}
        mesh = await asyncio.to_thread(start_mesh, run_dir, env)
        try:
            async with GatewayClient(mesh.gateway, api_key=await asyncio.to_thread(mesh.api_key, "bench")) as client:

                def call(bypass: bool, offset: int):
                    async def one(i: int) -> None:
                        await client.complete(build_request(prompts[offset + i], bypass_cache=bypass,
                                                            max_tokens=MAX_TOKENS))

                    return one

                result = {}
                warm = 10
                for phase, bypass, offset in (("bypassed", True, 0), ("miss", False, warm + n)):
                    await sequential(call(bypass, offset), warm)  # warm up; these spans are dropped
                    await receiver.servicer.quiet()
                    receiver.servicer.take()
                    await sequential(call(bypass, offset + warm), n)
                    await receiver.servicer.quiet()
                    spans = receiver.servicer.take()
                    result[phase] = {"requests": n, "spans": hops.group_spans(spans, skip=hops.not_request_path)}
                return result
        finally:
            await asyncio.to_thread(mesh.stop)


def run(quick: bool = False) -> dict:
    n_seq, n_conc = (40, 128) if quick else (200, 640)
    n_hops = 40 if quick else 200
    book = load_book(data_dir() / "mmlu_routing_dev.jsonl.gz")
    prompts = list(dict.fromkeys(r.prompt for r in book))  # distinct questions
    needed = 2 * n_seq + 2 * n_conc
    if len(prompts) < needed + 2 * (n_hops + 10):
        raise ValueError(f"the MMLU book has {len(prompts)} distinct prompts; the gateway section needs "
                         f"{needed + 2 * (n_hops + 10)}")
    with tempfile.TemporaryDirectory(prefix="costmesh-bench-") as run_dir, start_mesh(
        run_dir, {"COSTMESH_LOG_LEVEL": "warning"}
    ) as mesh:
        cpu = hops.CpuMeter(hops.mesh_pids(mesh))
        result = asyncio.run(_measure(mesh.gateway, mesh.simulator_url, prompts, n_seq, n_conc,
                                      mesh.api_key("bench"), cpu))
    with tempfile.TemporaryDirectory(prefix="costmesh-bench-hops-") as run_dir:
        spans = asyncio.run(_hop_spans(run_dir, prompts[needed:], n_hops))
    for phase, measured in spans.items():
        result["hops"][phase].update(measured)
    result["floor"] = floor(prompts[:256 if quick else 1024], result["hops"])
    return result


SHED = ("classifier_busy", "cache_lookups_busy", "cache_lookups_timed_out")


def _shed(stats, before: dict | None = None) -> dict:
    """The gateway's counts of calls refused as busy or timed out (since `before`)."""
    now = {name: getattr(stats, name) for name in SHED}
    return {name: now[name] - (before or {}).get(name, 0) for name in SHED}


def _cpu_ms_per_text(encode, texts: list[str], batch: int = 32) -> float:
    """CPU of the calling thread per text (ONNX Runtime with one thread runs on it), in batches."""
    encode(texts[:batch])  # warm
    started = time.thread_time()
    for i in range(0, len(texts), batch):
        encode(texts[i:i + batch])
    return (time.thread_time() - started) * 1000 / len(texts)


def floor(prompts: list[str], hop_cpu: dict) -> dict:
    """What the routed path cannot go below on this machine: one request needs the prompt's
    embedding once (the classifier's, or the cache's with its token vectors, which the classifier
    then reuses), in batches of 32 on one thread; the other hops add their measured CPU. The bound
    on requests/s is the machine's cores over that CPU per request. Measured for the mesh's
    embedder (int8 by default) and, in the same run, for fp32 MiniLM (`by_model`)."""
    from costmesh.embeddings import Embedder
    from costmesh.model_files import DEFAULT_MODEL_ID, FP32_MODEL_ID

    by_model = {}
    for model_id in dict.fromkeys((DEFAULT_MODEL_ID, FP32_MODEL_ID)):
        embedder = Embedder(model_id=model_id, threads=1, warmup=False, batching=False)
        by_model[model_id] = {"embed_cpu_ms_per_prompt": _cpu_ms_per_text(embedder.encode, prompts),
                              "embed_full_cpu_ms_per_prompt": _cpu_ms_per_text(embedder.encode_full, prompts)}
    embed_ms = by_model[DEFAULT_MODEL_ID]["embed_cpu_ms_per_prompt"]
    embed_full_ms = by_model[DEFAULT_MODEL_ID]["embed_full_cpu_ms_per_prompt"]
    cores = os.cpu_count() or 1
    tokenizer = embedder._model.tokenizer
    lengths = [len(ids) for ids in tokenizer(prompts, truncation=True, max_length=embedder._model.max_seq_length)[
        "input_ids"]]
    out = {"cores": cores, "prompts": len(prompts), "prompt_tokens_mean": sum(lengths) / len(lengths),
           "backend": embedder.backend, "model": DEFAULT_MODEL_ID, "by_model": by_model,
           "embed_cpu_ms_per_prompt": embed_ms, "embed_full_cpu_ms_per_prompt": embed_full_ms}
    if FP32_MODEL_ID != DEFAULT_MODEL_ID:
        out["fp32_over_model_cpu"] = by_model[FP32_MODEL_ID]["embed_full_cpu_ms_per_prompt"] / embed_full_ms
    for phase, models_ms, model_hops in (("bypassed", embed_ms, ("classifier",)),
                                         ("miss", embed_full_ms, ("classifier", "cache"))):
        cpu = hop_cpu.get(phase, {}).get("cpu_ms_per_request", {})
        rest = sum(v for k, v in cpu.items() if k not in (*model_hops, "mesh_total"))
        out[phase] = {"models_cpu_ms": models_ms, "other_hops_cpu_ms": rest,
                      "bound_rps_models_only": cores * 1000 / models_ms,
                      "bound_rps": cores * 1000 / (models_ms + rest)}
    return out


def floor_table(floor: dict) -> str:
    lines = [f"floor ({floor['cores']} cores; one embedding per request, {floor.get('model', '')} on "
             f"{floor['backend']}, batches of 32, "
             f"{floor['prompts']} of these prompts, {floor.get('prompt_tokens_mean', 0):.0f} tokens on average)",
             f"  {'':28}{'models ms':>10}{'rest ms':>10}{'bound/s':>10}{'models/s':>10}"]
    for phase, label in (("bypassed", "routed, cache bypassed"), ("miss", "routed, all misses")):
        f = floor[phase]
        lines.append(f"  {label:<28}{f['models_cpu_ms']:>10.2f}{f['other_hops_cpu_ms']:>10.2f}"
                     f"{f['bound_rps']:>10.1f}{f['bound_rps_models_only']:>10.1f}")
    for model_id, m in floor.get("by_model", {}).items():
        lines.append(f"  {model_id}: {m['embed_cpu_ms_per_prompt']:.2f} ms per prompt, "
                     f"{m['embed_full_cpu_ms_per_prompt']:.2f} with token vectors")
    return "\n".join(lines)


def table(result: dict) -> str:
    return "\n".join(
        [
            f"gateway (model {result['model']}, {result['requests_sequential']} sequential, "
            f"{result['requests_concurrent']} at concurrency 32)",
            f"  {'':28}{'direct':>10}{'mesh':>10}{'added':>10}",
            f"  {'p50 ms (cache bypassed)':<28}{result['direct_p50_ms']:>10.2f}{result['mesh_p50_ms']:>10.2f}"
            f"{result['added_p50_ms']:>10.2f}",
            f"  {'p99 ms (cache bypassed)':<28}{result['direct_p99_ms']:>10.2f}{result['mesh_p99_ms']:>10.2f}"
            f"{result['added_p99_ms']:>10.2f}",
            f"  {'req/s at c32':<28}{result['direct_rps_c32']:>10.1f}{result['rps_c32']:>10.1f}",
            f"  {'cache on, all misses':<28}{'':>10}{'':>10}{result['miss_added_p50_ms']:>10.2f}  (added p50 ms)",
            f"  {'req/s at c32, all misses':<28}{'':>10}{result['miss_rps_c32']:>10.1f}",
            *([f"  shed at c32 (of {result['requests_concurrent']} each): bypassed {result['shed_c32']['bypassed']}, "
               f"misses {result['shed_c32']['miss']}"] if "shed_c32" in result else []),
            *([hops.table(result["hops"])] if "hops" in result else []),
            *([floor_table(result["floor"])] if "floor" in result else []),
        ]
    )
