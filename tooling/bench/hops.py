"""Where a request's time and CPU go, hop by hop (`gateway.hops`).

Time: the spans every service exports over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is
set, received here by a small OTLP trace receiver (the opentelemetry-proto TraceService
definitions, as Jaeger's receiver is) and grouped by (service, span name): p50/p99 and count.
Internal spans (the cache's embed/search/verify, the router's attempts and gate) are grouped
like the RPC spans; whatever names arrive are reported.

CPU: utime + stime from /proc/<pid>/stat of each mesh process and its descendants (worker
processes), read before and after a measured phase, divided by its requests; beside it the
bench client's own CPU, the whole machine's busy CPU (/proc/stat: anything else running
shows there) and what the cores could give in that time (cores x wall time).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

SPAN_KIND_CLIENT = trace_pb2.Span.SpanKind.SPAN_KIND_CLIENT
HOP_ORDER = ("gateway", "cache", "classifier", "router", "providers", "batches", "redis", "simulator")


@dataclass(frozen=True)
class ReceivedSpan:
    service: str  # the resource's service.name, "costmesh-" dropped
    name: str
    kind: int
    duration_ms: float
    trace_id: bytes


class SpanReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.last_export = 0.0  # time.monotonic() of the last export that carried spans

    async def Export(self, request, context):  # noqa: N802 - the generated servicer's name
        received = []
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            service = service.removeprefix("costmesh-")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
                    received.append(ReceivedSpan(service, span.name, span.kind, duration_ms, span.trace_id))
        if received:
            self.spans.extend(received)
            self.last_export = time.monotonic()
        return trace_service_pb2.ExportTraceServiceResponse()

    def take(self) -> list[ReceivedSpan]:
        spans, self.spans = self.spans, []
        return spans

    async def quiet(self, quiet_s: float = 1.0, timeout_s: float = 15.0) -> None:
        """Wait until no span has arrived for `quiet_s` (the services' batch processors flushed)."""
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() - max(self.last_export, started) >= quiet_s:
                return
            await asyncio.sleep(0.1)


class Receiver:
    """`async with Receiver() as receiver`: the receiver served on a free loopback port."""

    def __init__(self) -> None:
        self.servicer = SpanReceiver()
        self._server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> "Receiver":
        self._server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self.servicer, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None


def exporter_env(endpoint: str, delay_ms: int = 100) -> dict[str, str]:
    """Env for the mesh's services: export every span to `endpoint`, flushing every `delay_ms`."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": str(delay_ms),
        "OTEL_BSP_MAX_QUEUE_SIZE": "65536",
    }


def span_key(span: ReceivedSpan) -> str:
    """`service/name`: an RPC span `/pkg.v1.XService/Method` as `XService/Method`; a client span
    (the caller's side of an RPC, network and queueing included) marked `(client)`."""
    name = span.name
    if name.startswith("/") and name.count("/") == 2:
        service, method = name[1:].split("/")
        name = f"{service.rsplit('.', 1)[-1]}/{method}"
    key = f"{span.service}/{name}"
    return key + " (client)" if span.kind == SPAN_KIND_CLIENT else key


def _order(key: str) -> tuple[int, str]:
    service = key.split("/", 1)[0]
    return (HOP_ORDER.index(service) if service in HOP_ORDER else len(HOP_ORDER), key)


def group_spans(spans: Iterable[ReceivedSpan], *, skip: Callable[[ReceivedSpan], bool] | None = None) -> dict:
    """{"service/span": {"p50_ms", "p99_ms", "count"}}, in hop order."""
    durations: dict[str, list[float]] = defaultdict(list)
    for span in spans:
        if skip is not None and skip(span):
            continue
        durations[span_key(span)].append(span.duration_ms)
    return {
        key: {
            "p50_ms": round(float(np.percentile(durations[key], 50)), 3),
            "p99_ms": round(float(np.percentile(durations[key], 99)), 3),
            "count": len(durations[key]),
        }
        for key in sorted(durations, key=_order)
    }


def not_request_path(span: ReceivedSpan) -> bool:
    """Health checks, stats and reflection: not a request's work."""
    return "grpc.health" in span.name or "/GetStats" in span.name or "Reflection" in span.name


# --- CPU ------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces


def _process_tree() -> dict[int, list[int]]:
    """ppid -> pids of every process on the machine (one pass over /proc)."""
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                tree[int(fields[1])].append(int(entry.name))  # field 4: ppid
    return tree


def process_cpu_s(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each named process and its live descendants."""
    tree = _process_tree()
    result = {}
    for name, pid in pids.items():
        total, todo = 0.0, [pid]
        while todo:
            current = todo.pop()
            fields = _stat_fields(current)
            if fields is not None:
                total += (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14, 15: utime, stime
            todo.extend(tree.get(current, ()))
        result[name] = total
    return result


def mesh_pids(mesh) -> dict[str, int]:
    """The launcher's mesh: every service process, the simulator, and the embedded Redis."""
    pids = {name: process.popen.pid for name, process in mesh.processes.items()}
    redis_process = getattr(mesh.redis, "_process", None)
    if redis_process is not None:
        pids["redis"] = redis_process.pid
    return pids


def cpu_ms_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """Per process, plus `mesh_total`: every process but the simulator (the stand-in upstream)."""
    per = {name: round((after[name] - before[name]) * 1000 / requests, 3) for name in sorted(after, key=_order)}
    per["mesh_total"] = round(sum(v for name, v in per.items() if name != "simulator"), 3)
    return per


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (every core; /proc/stat, idle and iowait excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / _TICKS


@dataclass(frozen=True)
class CpuSnapshot:
    processes: dict[str, float]
    bench_client: float  # this process (the load generator)
    machine: float
    wall: float


class CpuMeter:
    """`snapshot()` before a phase, `per_request(snapshot, n)` after it (CPU ms per request of
    every mesh process, then `mesh_total`), and `context(...)` (the rest of the machine)."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def snapshot(self) -> CpuSnapshot:
        times = os.times()
        return CpuSnapshot(process_cpu_s(self.pids), times.user + times.system, machine_cpu_s(), time.monotonic())

    def per_request(self, before: CpuSnapshot, requests: int) -> tuple[dict[str, float], dict[str, float]]:
        """(CPU ms per request by mesh process, plus `mesh_total`; the machine around it: the bench
        client's CPU, every process's, and what the cores could give, ms per request)."""
        after = self.snapshot()
        per = cpu_ms_per_request(before.processes, after.processes, requests)
        context = {
            "bench_client": round((after.bench_client - before.bench_client) * 1000 / requests, 3),
            "machine_busy": round((after.machine - before.machine) * 1000 / requests, 3),
            "machine_capacity": round((after.wall - before.wall) * (os.cpu_count() or 1) * 1000 / requests, 3),
        }
        return per, context


# --- the table ------------------------------------------------------------------------------

def table(hops: dict) -> str:
    phases = [p for p in ("bypassed", "miss") if p in hops]
    lines = ["hops (spans: p50 / p99 ms, count; sequential requests, export on)"]
    keys = sorted({k for p in phases for k in hops[p].get("spans", {})}, key=_order)
    width = max([len(k) for k in keys] + [20]) + 2
    lines.append(f"  {'':{width}}" + "".join(f"{p:>26}" for p in phases))
    for key in keys:
        cells = []
        for phase in phases:
            s = hops[phase].get("spans", {}).get(key)
            cells.append(f"{s['p50_ms']:>8.2f} /{s['p99_ms']:>8.2f} {s['count']:>6}" if s else f"{'-':>26}")
        lines.append(f"  {key:<{width}}" + "".join(f"{c:>26}" for c in cells))
    for title, field in (("CPU ms per request (throughput phase at c32, export off)", "cpu_ms_per_request"),
                         ("  the rest of the machine, ms per request", "cpu_context")):
        names = sorted({k for p in phases for k in hops[p].get(field, {})}, key=_order)
        if names:
            lines.append(f"  {title}")
        for name in names:
            cells = [hops[p].get(field, {}).get(name) for p in phases]
            lines.append(f"  {name:<{width}}" + "".join(f"{c:>26.2f}" if c is not None else f"{'-':>26}"
                                                         for c in cells))
    return "\n".join(lines)
