"""What a metrics scrape reads of state that lives elsewhere (a service's event loop, Redis).

The Prometheus exporter calls the instruments' callbacks from its own thread:
- `read_on_loop` runs a coroutine on the service's event loop and waits for it, within a
  timeout, never failing the scrape;
- `CachedRead` makes one read serve every instrument of a scrape (kept `max_age_s`);
- `worst_per_label` folds per-tenant estimates onto a bounded tenant label (`BoundedLabel`):
  the tenants past the limit share `other`, which reports the worst of them;
- `TenantGauges` puts the three together for gauges over every tenant's live estimate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry.metrics import CallbackOptions, Observation

from costmesh.observability.bounded_labels import BoundedLabel

T = TypeVar("T")


def read_on_loop(loop: asyncio.AbstractEventLoop, read: Callable[[], Coroutine[Any, Any, T]],
                 timeout_s: float) -> T | None:
    """`await read()` on the service's event loop, from the scrape thread; None when the loop is
    gone, is this thread's own (waiting would deadlock), or does not answer within `timeout_s`."""
    if loop.is_closed():
        return None
    try:
        if asyncio.get_running_loop() is loop:  # scraped on the loop itself: waiting would deadlock
            return None
    except RuntimeError:  # no loop in this thread: the scrape thread
        pass
    try:
        future = asyncio.run_coroutine_threadsafe(read(), loop)
    except RuntimeError:  # the loop is shutting down
        return None
    try:
        return future.result(timeout_s)
    except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
        future.cancel()
        return None
    except Exception:  # noqa: BLE001 - a metrics scrape never fails on the service's account
        return None


class CachedRead(Generic[T]):
    """`read()`'s answer, at most `max_age_s` old: one read serves every instrument of a scrape.
    None (the read failed) is kept as well, so a slow source is not asked again at once."""

    def __init__(self, read: Callable[[], T | None], max_age_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self._read = read
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, T | None] | None = None

    def __call__(self) -> T | None:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last[0] < self._max_age_s:
                return self._last[1]
            value = self._read()
            self._last = (now, value)
            return value


class TenantEstimate(Protocol):
    tenant_id: str
    total_verdicts: int


E = TypeVar("E", bound=TenantEstimate)


def worst_per_label(estimates: Iterable[E], label: BoundedLabel, worse: Callable[[E, E], bool]) -> dict[str, E]:
    """Label -> estimate for the tenants with a verdict; a label several tenants share (`other`)
    keeps the one `worse` ranks worst."""
    labelled: dict[str, E] = {}
    for estimate in estimates:
        if not estimate.total_verdicts:
            continue
        name = label(estimate.tenant_id)
        known = labelled.get(name)
        if known is None or worse(estimate, known):
            labelled[name] = estimate
    return labelled


S = TypeVar("S")


class TenantGauges(Generic[E, S]):
    """Gauges over every tenant's live estimate, one cached read a scrape. `read`: every tenant's
    estimate, or None when they cannot be read now (the series are then left out of that scrape);
    `worse` ranks the estimates that share the label `other`. Subclasses register their
    instruments with callbacks from `_per_tenant` (one series a tenant label) and `_setting`."""

    def __init__(self, read: Callable[[], list[E] | None], settings: S, worse: Callable[[E, E], bool], *,
                 max_tenants: int, max_age_s: float, clock: Callable[[], float]):
        self._settings = settings
        tenant = BoundedLabel(max_tenants)

        def labelled() -> dict[str, E] | None:
            read_now = read()
            return None if read_now is None else worst_per_label(read_now, tenant, worse)

        self._labelled = CachedRead(labelled, max_age_s, clock)
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def _estimates(self) -> dict[str, E] | None:
        """Label -> estimate, at most `max_age_s` old."""
        return None if self._closed else self._labelled()

    def _setting(self, value: Callable[[S], float | None]):
        def observe(_options: CallbackOptions):
            observed = None if self._closed else value(self._settings)
            return [] if observed is None else [Observation(observed)]  # None: not decided (yet)
        return observe

    def _per_tenant(self, value: Callable[[E], float]):
        def observe(_options: CallbackOptions):
            estimates = self._estimates()
            if not estimates:
                return []
            return [Observation(value(e), {"tenant": label}) for label, e in estimates.items()]
        return observe
