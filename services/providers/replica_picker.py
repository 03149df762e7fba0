"""Which inference replica serves a request. Round-robin for now; prefix-aware routing replaces it later."""

from __future__ import annotations

from typing import Protocol

from costmesh.domain import Message
from costmesh.errors import ConfigError


class ReplicaPicker(Protocol):
    @property
    def replicas(self) -> tuple[str, ...]:
        ...

    def pick(self, messages: tuple[Message, ...]) -> str:
        """The address of the replica to send `messages` to."""
        ...

    def done(self, replica: str) -> None:
        """The request sent to `replica` has finished (for pickers that balance load)."""
        ...


class RoundRobinPicker:
    """Each replica in turn, ignoring the prompt."""

    def __init__(self, replicas: list[str] | tuple[str, ...]):
        if not replicas:
            raise ConfigError("inference replicas: at least one address is required (COSTMESH_INFERENCE_ADDRS)")
        self._replicas = tuple(replicas)
        self._next = 0

    @property
    def replicas(self) -> tuple[str, ...]:
        return self._replicas

    def pick(self, messages: tuple[Message, ...]) -> str:
        replica = self._replicas[self._next % len(self._replicas)]
        self._next += 1
        return replica

    def done(self, replica: str) -> None:
        pass
