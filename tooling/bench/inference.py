"""Section `inference`: vLLM prefix caching and prefix-aware routing on the tiny CPU model.

Runs in `.venv`; the inference replicas are processes of `.venv-inference/bin/python -m
costmesh.services.inference` (override with COSTMESH_INFERENCE_PYTHON) on a freshly built tiny
random-weight Llama (hidden 128, 2 layers; block size 32), reached over gRPC.

1. Prefix caching on vs off. Two replicas, identical but for `enable_prefix_caching`. Requests
   sharing a long prefix (each with its own question), streamed one at a time, alternating
   between the two: time to first event (TTFT); then the same kind of requests at a fixed
   concurrency, in alternating rounds: requests and prompt tokens per second. On the caching
   replica the prefix is computed once, before the timed requests.
2. Prefix-aware vs round-robin routing. Two caching replicas with a KV cache too small to hold
   every prefix (the realistic case: a replica holds a share of the working set). K long
   distinct prefixes x M questions, in a shuffled order, sent through the real vLLM provider
   adapter at a fixed concurrency, with round-robin and with prefix-aware routing, alternating
   (RR, PA, RR, PA; each pass with its own fresh prefixes, so none inherits another's cache). Hit rate: cached
   prompt tokens / prompt tokens over all requests, as the engines report them per request;
   the engines' own prefix-cache counters (GetStats) are reported beside it.

Hit rates are deterministic up to request interleaving; the timings are wall-clock on a shared
2-core machine and move with whatever else runs (the 1-minute load average at the start is recorded).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from costmesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from costmesh.catalog import ModelSpec
from costmesh.domain import Message, Role, Sampling
from costmesh.services.providers.prefix_routing.block_hash import BlockHasher
from costmesh.services.providers.prefix_routing.health import INFERENCE_SERVICE
from costmesh.services.providers.prefix_routing.prompt_tokens import ChatTokenizer
from costmesh.services.providers.prefix_routing.router import PrefixAwarePicker
from costmesh.services.providers.replica_picker import RoundRobinPicker
from costmesh.services.providers.vllm_adapter import VLLMAdapter

REPO = Path(__file__).resolve().parents[2]
BLOCK_SIZE = 32
KV_BYTES_PER_TOKEN = 2 * 2 * 2 * 64 * 4  # layers x (K, V) x kv heads x head dim x float32
ROUTING_KV_BLOCKS = 144  # per replica: 6 of the 24-block prefixes of part 2, not all 10
MAX_MODEL_LEN = 2048
ROUTING_PASSES = 2  # round-robin and prefix-aware alternate this many times each
ROUTING_MAX_IN_FLIGHT = 4  # prefix-aware: a replica with this many requests in flight is saturated
LOAD_TIMEOUT_S = 420
TINY = ModelSpec(id="tiny-llama", provider="vllm", input=0.0, output=0.0)


@dataclass(frozen=True)
class Sizes:
    ttft_prefix_tokens: int = 1536
    ttft_requests: int = 12
    throughput_requests: int = 16
    throughput_concurrency: int = 4
    prefixes: int = 10  # K
    questions: int = 6  # M
    routing_prefix_tokens: int = 768
    routing_concurrency: int = 2
    max_tokens: int = 8


QUICK = Sizes(ttft_requests=4, throughput_requests=8, questions=5)


def run(quick: bool) -> dict:
    return asyncio.run(_run(QUICK if quick else Sizes()))


def _python() -> str:
    python = os.environ.get("COSTMESH_INFERENCE_PYTHON") or str(REPO / ".venv-inference" / "bin" / "python")
    if not Path(python).exists():
        raise SystemExit(f"bench inference: {python} not found; run `make inference-venv` first")
    return python


class Replica:
    """One inference service process from the inference venv."""

    def __init__(self, name: str, model_dir: str, workdir: Path, *, prefix_caching: bool, kv_blocks: int):
        self.name = name
        self.kv_blocks = kv_blocks
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        args = {
            "max_model_len": MAX_MODEL_LEN,
            "block_size": BLOCK_SIZE,
            "dtype": "float32",
            "enforce_eager": True,
            "distributed_executor_backend": "uni",
            "kv_cache_memory_bytes": kv_blocks * BLOCK_SIZE * KV_BYTES_PER_TOKEN,
            "enable_prefix_caching": prefix_caching,
        }
        env = {
            **os.environ,
            "COSTMESH_HOST": "127.0.0.1",
            "COSTMESH_PORT": str(self.port),
            "COSTMESH_VLLM_MODEL": model_dir,
            "COSTMESH_VLLM_ARGS": json.dumps(args),
            "COSTMESH_LOG_LEVEL": os.environ.get("COSTMESH_BENCH_REPLICA_LOG_LEVEL", "warning"),
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
            "COSTMESH_MESH_AUTH": "off",  # a private replica on a loopback port, called by this bench alone
        }
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                [_python(), "-m", "costmesh.services.inference"], env=env, stdout=log, stderr=subprocess.STDOUT,
                cwd=REPO, start_new_session=True,
            )
        self.channel = grpc.aio.insecure_channel(self.address)
        self.stub = inference_pb2_grpc.InferenceServiceStub(self.channel)

    async def wait_serving(self) -> float:
        started = time.perf_counter()
        health = health_pb2_grpc.HealthStub(self.channel)
        while time.perf_counter() - started < LOAD_TIMEOUT_S:
            if self.popen.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited ({self.popen.returncode}); log: {self._tail()}")
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=INFERENCE_SERVICE), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter() - started
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.5)
        raise RuntimeError(f"replica {self.name} not serving after {LOAD_TIMEOUT_S} s; log: {self._tail()}")

    async def stats(self) -> inference_pb2.GetStatsResponse:
        return await self.stub.GetStats(inference_pb2.GetStatsRequest(), timeout=10)

    def _tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    async def stop(self) -> None:
        await self.channel.close()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.popen.wait, 30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)  # this process's own group (start_new_session)
                await asyncio.to_thread(self.popen.wait)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build_model(workdir: Path) -> str:
    path = workdir / "tiny-llama"
    subprocess.run(
        [_python(), "-m", "costmesh.services.inference.tiny_model", str(path)], check=True, cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    return str(path)


class Texts:
    """Texts of single-token words: `words(n, seed)` is about n tokens, distinct per seed."""

    def __init__(self, tokenizer_words: list[str]):
        self._words = tokenizer_words

    def words(self, n: int, seed: int) -> str:
        return " ".join(random.Random(seed).choices(self._words, k=n))


def _single_token_words(model_dir: str) -> list[str]:
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(model_dir).get_vocab()
    return sorted(w for w in vocab if w.isascii() and w.isalpha() and w.islower() and len(w) >= 4)


def _request(prompt: str, max_tokens: int, stream: bool = False):
    """A GenerateRequest, or for StreamGenerate its StreamGenerateRequest (the same fields)."""
    request = (inference_pb2.StreamGenerateRequest if stream else inference_pb2.GenerateRequest)(prompt=prompt)
    request.sampling.max_tokens = max_tokens
    request.sampling.temperature = 0.0
    return request


async def _ttft_s(replica: Replica, prompt: str, max_tokens: int) -> float:
    started = time.perf_counter()
    first = None
    async for _ in replica.stub.StreamGenerate(_request(prompt, max_tokens, stream=True), timeout=120):
        if first is None:
            first = time.perf_counter() - started
    assert first is not None
    return first


async def _caching_on_off(on: Replica, off: Replica, texts: Texts, sizes: Sizes) -> dict:
    """Interleaved, so that both replicas see the same background load: TTFT request by request,
    throughput in alternating rounds."""
    prefix = texts.words(sizes.ttft_prefix_tokens, seed=1)
    pair = {"cached": on, "uncached": off}
    out: dict = {"ttft_prefix_tokens": sizes.ttft_prefix_tokens}
    for replica in pair.values():
        await replica.stub.Generate(_request(prefix + " warm", 1), timeout=120)  # prefix computed once (cached: kept)
    ttfts: dict[str, list[float]] = {label: [] for label in pair}
    for i in range(sizes.ttft_requests):
        for label, replica in pair.items():
            ttfts[label].append(await _ttft_s(replica, f"{prefix} {texts.words(12, 100 + i)}", sizes.max_tokens))
    totals = {label: {"elapsed": 0.0, "requests": 0, "prompt": 0, "cached": 0} for label in pair}
    rounds = 2
    per_round = max(1, sizes.throughput_requests // rounds)
    for round_ in range(rounds):
        for label, replica in pair.items():
            questions = iter(range(round_ * per_round, (round_ + 1) * per_round))
            total = totals[label]

            async def worker(replica: Replica = replica, questions=questions, total: dict = total) -> None:
                for i in questions:
                    request = _request(f"{prefix} {texts.words(12, 200 + i)}", sizes.max_tokens)
                    r = await replica.stub.Generate(request, timeout=120)
                    total["requests"] += 1
                    total["prompt"] += r.prompt_tokens
                    total["cached"] += r.cached_prompt_tokens

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(sizes.throughput_concurrency)))
            total["elapsed"] += time.perf_counter() - started
    for label in pair:
        samples, total = ttfts[label], totals[label]
        out[f"ttft_ms_{label}"] = round(1000 * statistics.median(samples), 1)
        out[f"ttft_ms_{label}_p90"] = round(1000 * sorted(samples)[int(0.9 * (len(samples) - 1))], 1)
        out[f"requests_per_s_{label}"] = round(total["requests"] / total["elapsed"], 2)
        out[f"prompt_tokens_per_s_{label}"] = round(total["prompt"] / total["elapsed"])
        out[f"cached_fraction_{label}"] = round(total["cached"] / total["prompt"], 3)
    out["ttft_speedup"] = round(out["ttft_ms_uncached"] / out["ttft_ms_cached"], 2)
    out["throughput_speedup"] = round(out["requests_per_s_cached"] / out["requests_per_s_uncached"], 2)
    return out


def _workload(texts: Texts, sizes: Sizes, seed: int) -> list[tuple[Message, ...]]:
    docs = [texts.words(sizes.routing_prefix_tokens, seed=seed * 1000 + k) for k in range(sizes.prefixes)]
    order = [(k, m) for k in range(sizes.prefixes) for m in range(sizes.questions)]
    random.Random(seed).shuffle(order)
    return [
        (Message.of(Role.SYSTEM, docs[k]),
         Message.of(Role.USER, f"question {m}: {texts.words(20, seed * 7919 + k * 97 + m)}"))
        for k, m in order
    ]


async def _route(adapter: VLLMAdapter, replicas: list[Replica], chats: list, sizes: Sizes) -> dict:
    """Sums over one pass of `chats`: requests, prompt and cached tokens (per response and per engine), seconds."""
    before = [await r.stats() for r in replicas]
    pending = iter(chats)
    sums = {"requests": len(chats), "prompt": 0, "cached": 0}

    async def worker() -> None:
        for chat in pending:
            g = await adapter.generate(
                TINY, chat, Sampling(max_tokens=sizes.max_tokens, temperature=0.0), "bench", timeout_s=120
            )
            sums["prompt"] += g.usage.input_tokens
            sums["cached"] += g.usage.cache_read_tokens

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(sizes.routing_concurrency)))
    sums["elapsed"] = time.perf_counter() - started
    after = [await r.stats() for r in replicas]
    sums["engine_queries"] = sum(a.prefix_cache_queries - b.prefix_cache_queries for a, b in zip(after, before))
    sums["engine_hits"] = sum(a.prefix_cache_hits - b.prefix_cache_hits for a, b in zip(after, before))
    return sums


async def _routing(replicas: list[Replica], model_dir: str, texts: Texts, sizes: Sizes) -> dict:
    """Round-robin and prefix-aware alternate (RR, PA, RR, PA), each pass on fresh prefixes, so that
    drifting background load and leftover cache contents fall on both alike."""
    addresses = [r.address for r in replicas]
    out: dict = {
        "prefixes": sizes.prefixes, "questions_per_prefix": sizes.questions,
        "routing_prefix_tokens": sizes.routing_prefix_tokens, "kv_blocks_per_replica": ROUTING_KV_BLOCKS,
        "block_size": BLOCK_SIZE, "concurrency": sizes.routing_concurrency, "max_in_flight": ROUTING_MAX_IN_FLIGHT,
        "passes": ROUTING_PASSES,
    }
    tokenizer = ChatTokenizer.load(model_dir)
    pickers = {
        "round_robin": lambda: RoundRobinPicker(addresses),
        "prefix_aware": lambda: PrefixAwarePicker(
            addresses, tokenizer, BlockHasher(BLOCK_SIZE), max_blocks=ROUTING_KV_BLOCKS,
            max_in_flight=ROUTING_MAX_IN_FLIGHT,
        ),
    }
    totals: dict[str, dict] = {label: {} for label in pickers}
    seed = 0
    for _ in range(ROUTING_PASSES):
        for label, make in pickers.items():
            seed += 1
            adapter = VLLMAdapter(make(), grpc.aio.insecure_channel, health_interval_s=2.0)
            try:
                sums = await _route(adapter, replicas, _workload(texts, sizes, seed), sizes)
            finally:
                await adapter.close()
            for key, value in sums.items():
                totals[label][key] = totals[label].get(key, 0) + value
    for label, t in totals.items():
        out[f"hit_rate_{label}"] = round(t["cached"] / t["prompt"], 3)
        out[f"engine_hit_rate_{label}"] = (
            round(t["engine_hits"] / t["engine_queries"], 3) if t["engine_queries"] else 0.0
        )
        out[f"requests_per_s_{label}"] = round(t["requests"] / t["elapsed"], 2)
        out[f"prompt_tokens_per_s_{label}"] = round(t["prompt"] / t["elapsed"])
    out["hit_rate_ratio"] = round(out["hit_rate_prefix_aware"] / max(out["hit_rate_round_robin"], 1e-9), 2)
    out["throughput_ratio"] = round(out["requests_per_s_prefix_aware"] / out["requests_per_s_round_robin"], 2)
    return out


async def _run(sizes: Sizes) -> dict:
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="costmesh-bench-inference-") as tmp:
        workdir = Path(tmp)
        model_dir = _build_model(workdir)
        texts = Texts(_single_token_words(model_dir))
        replicas = [
            Replica("cached-a", model_dir, workdir, prefix_caching=True, kv_blocks=ROUTING_KV_BLOCKS),
            Replica("cached-b", model_dir, workdir, prefix_caching=True, kv_blocks=ROUTING_KV_BLOCKS),
            Replica("uncached", model_dir, workdir, prefix_caching=False, kv_blocks=ROUTING_KV_BLOCKS),
        ]
        try:
            load_s = [await r.wait_serving() for r in replicas]
            result: dict = {"model": "tiny random Llama (hidden 128, 2 layers), float32, CPU",
                            "cpus": os.cpu_count(), "load_average_1m_at_start": round(load_at_start, 2),
                            "replicas_load_s": round(max(load_s), 1)}
            result.update(await _caching_on_off(replicas[0], replicas[2], texts, sizes))
            await replicas[2].stop()  # frees its cores for part 2
            result.update(await _routing(replicas[:2], model_dir, texts, sizes))
        finally:
            for r in replicas:
                await r.stop()
    result["section_s"] = round(time.perf_counter() - started, 1)
    return result


def table(result: dict) -> str:
    rows = [
        ("TTFT, shared prefix, caching on / off (ms)", f"{result['ttft_ms_cached']} / {result['ttft_ms_uncached']}"),
        ("requests/s, shared prefix, on / off", f"{result['requests_per_s_cached']} / "
                                                f"{result['requests_per_s_uncached']}"),
        ("hit rate, prefix-aware / round-robin", f"{result['hit_rate_prefix_aware']} / {result['hit_rate_round_robin']}"
                                                  f"  ({result['hit_rate_ratio']}x)"),
        ("requests/s, prefix-aware / round-robin", f"{result['requests_per_s_prefix_aware']} / "
                                                    f"{result['requests_per_s_round_robin']}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
