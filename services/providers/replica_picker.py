"""Which inference replica serves a request: round-robin, or prefix-aware (`prefix_routing.router`).

Both skip replicas marked down (`ReplicaHealth`, fed by the health monitor and by failed calls)
and count each replica's requests in flight (`pick` ... `done`).
"""

from __future__ import annotations

from typing import Protocol

from costmesh.domain import Message
from costmesh.errors import ConfigError, Unavailable


class ReplicaPicker(Protocol):
    @property
    def replicas(self) -> tuple[str, ...]:
        ...

    @property
    def health(self) -> "ReplicaHealth":
        ...

    def pick(self, messages: tuple[Message, ...], exclude: frozenset[str] = frozenset()) -> str:
        """The address of the replica to send `messages` to (one of the healthy ones not in `exclude`)."""
        ...

    def done(self, replica: str) -> None:
        """The request sent to `replica` has finished."""
        ...


class ReplicaHealth:
    """Which replicas are up, and how many requests each has in flight."""

    def __init__(self, replicas: list[str] | tuple[str, ...]):
        if not replicas:
            raise ConfigError("inference replicas: at least one address is required (COSTMESH_INFERENCE_ADDRS)")
        if len(set(replicas)) != len(replicas):
            raise ConfigError(f"COSTMESH_INFERENCE_ADDRS: duplicate addresses in {list(replicas)}")
        self.replicas = tuple(replicas)
        self._down: set[str] = set()
        self.in_flight = {replica: 0 for replica in self.replicas}

    def is_up(self, replica: str) -> bool:
        return replica not in self._down

    def set_up(self, replica: str, up: bool) -> None:
        if up:
            self._down.discard(replica)
        else:
            self._down.add(replica)

    def candidates(self, exclude: frozenset[str] = frozenset()) -> list[str]:
        """Healthy replicas, in configured order; Unavailable when none is left."""
        up = [r for r in self.replicas if r not in self._down and r not in exclude]
        if not up:
            raise Unavailable(
                f"no healthy inference replica (down: {sorted(self._down)}, already tried: {sorted(exclude)})"
            )
        return up

    def started(self, replica: str) -> None:
        self.in_flight[replica] += 1

    def finished(self, replica: str) -> None:
        self.in_flight[replica] = max(0, self.in_flight[replica] - 1)


class RoundRobinPicker:
    """Each healthy replica in turn, ignoring the prompt (the baseline prefix-aware routing beats)."""

    def __init__(self, replicas: list[str] | tuple[str, ...]):
        self.health = ReplicaHealth(replicas)
        self._next = 0

    @property
    def replicas(self) -> tuple[str, ...]:
        return self.health.replicas

    def pick(self, messages: tuple[Message, ...], exclude: frozenset[str] = frozenset()) -> str:
        return self.pick_index(exclude)

    def pick_index(self, exclude: frozenset[str] = frozenset()) -> str:
        up = set(self.health.candidates(exclude))
        for _ in range(len(self.replicas)):
            replica = self.replicas[self._next % len(self.replicas)]
            self._next += 1
            if replica in up:
                self.health.started(replica)
                return replica
        raise AssertionError("unreachable: candidates() returned a healthy replica")

    def done(self, replica: str) -> None:
        self.health.finished(replica)
