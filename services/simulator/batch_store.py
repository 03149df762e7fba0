"""Batches and uploaded files the simulator holds, and when a batch ends.

A batch ends on the first look after `batch_latency_s` of the simulator's clock (the one
`/_sim/clock` moves): every request is then answered like an interactive call, prompt
caching included. A batch whose latency reaches the 24-hour window expires instead, and a
cancelled one ends with its requests cancelled. Both providers' APIs share this store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from costmesh.services.simulator.prefix_cache import SimClock

WINDOW_S = 24 * 3600.0  # both providers: a batch ends within 24 hours or expires

# (custom_id, body) -> ("succeeded", payload) | ("errored", payload)
Runner = Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]


@dataclass
class Outcome:
    custom_id: str
    kind: str  # succeeded | errored | canceled | expired
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimBatch:
    id: str
    owner: str  # the API key that created it: nobody else sees it
    items: list[tuple[str, dict[str, Any]]]
    created_clock: float
    created_at: float = field(default_factory=time.time)
    status: str = "in_progress"  # in_progress | canceling | ended
    cancel_requested_at: float | None = None
    ended_at: float | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # provider-specific fields

    def count(self, kind: str) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind)


@dataclass
class SimFile:
    id: str
    owner: str
    filename: str
    purpose: str
    content: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))


class BatchStore:
    def __init__(self, clock: SimClock, latency_s: float):
        self._clock = clock
        self.latency_s = latency_s
        self.batches: dict[str, SimBatch] = {}
        self.files: dict[str, SimFile] = {}

    def create(self, prefix: str, owner: str, items: list[tuple[str, dict[str, Any]]], **extra: Any) -> SimBatch:
        batch = SimBatch(f"{prefix}{uuid.uuid4().hex[:24]}", owner, items, self._clock.now(), extra=dict(extra))
        self.batches[batch.id] = batch
        return batch

    def get(self, owner: str, batch_id: str) -> SimBatch | None:
        batch = self.batches.get(batch_id)
        return batch if batch is not None and batch.owner == owner else None

    def add_file(self, owner: str, filename: str, purpose: str, content: bytes) -> SimFile:
        sim_file = SimFile(f"file-{uuid.uuid4().hex[:24]}", owner, filename, purpose, content)
        self.files[sim_file.id] = sim_file
        return sim_file

    def file(self, owner: str, file_id: str) -> SimFile | None:
        sim_file = self.files.get(file_id)
        return sim_file if sim_file is not None and sim_file.owner == owner else None

    def cancel(self, batch: SimBatch) -> None:
        if batch.status == "in_progress":
            batch.status = "canceling"
            batch.cancel_requested_at = time.time()

    def settle(self, batch: SimBatch, run: Runner) -> None:
        """End `batch` if its time has come (answered, cancelled or expired)."""
        if batch.status == "ended":
            return
        elapsed = self._clock.now() - batch.created_clock
        if batch.status == "canceling":
            batch.outcomes = [Outcome(cid, "canceled") for cid, _ in batch.items]
        elif self.latency_s < WINDOW_S and elapsed >= self.latency_s:
            batch.outcomes = [Outcome(cid, *run(cid, body)) for cid, body in batch.items]
        elif elapsed >= WINDOW_S:
            batch.outcomes = [Outcome(cid, "expired") for cid, _ in batch.items]
        else:
            return
        batch.status = "ended"
        batch.ended_at = time.time()

    def clear(self) -> None:
        self.batches.clear()
        self.files.clear()


def rfc3339(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
