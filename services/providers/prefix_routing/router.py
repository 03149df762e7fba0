"""Prefix-aware replica choice (no gRPC): longest recorded prefix wins unless its replica is saturated.

For each request: token ids -> block-hash chain -> per healthy replica, how many leading blocks its
trie holds. The replica with the longest match gets the request unless it already has
`max_in_flight` requests in flight; then (and when nothing matches) the least-loaded healthy
replica does, ties going to the replica remembering fewer blocks, then round-robin, so that new
prefixes spread evenly. The chosen replica's
trie records the chain: that replica is about to compute, hence cache, those blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry import trace

from costmesh.domain import Message
from costmesh.errors import ConfigError
from costmesh.services.providers.prefix_routing.block_hash import BlockHasher
from costmesh.services.providers.prefix_routing.trie import PrefixTrie
from costmesh.services.providers.replica_picker import ReplicaHealth


@dataclass(frozen=True)
class Choice:
    replica: str
    matched_blocks: int  # blocks of the chain the chosen replica had recorded
    best_blocks: int  # longest match over all healthy replicas
    reason: str  # "prefix" (longest match), "spill" (longest match saturated), "least_loaded" (no match)


class PrefixAwarePicker:
    def __init__(
        self,
        replicas: list[str] | tuple[str, ...],
        tokens: Callable[[tuple[Message, ...]], Sequence[int]],
        hasher: BlockHasher,
        *,
        max_blocks: int = 65536,
        max_in_flight: int = 8,
    ):
        if max_in_flight <= 0:
            raise ConfigError("COSTMESH_INFERENCE_MAX_IN_FLIGHT: must be positive")
        self.health = ReplicaHealth(replicas)
        self._tokens = tokens
        self.hasher = hasher
        self.max_in_flight = max_in_flight
        self.tries = {replica: PrefixTrie(max_blocks) for replica in self.health.replicas}
        self._next = 0

    @property
    def replicas(self) -> tuple[str, ...]:
        return self.health.replicas

    def pick(self, messages: tuple[Message, ...], exclude: frozenset[str] = frozenset()) -> str:
        choice = self.choose(self._tokens(messages), exclude)
        span = trace.get_current_span()
        span.set_attribute("costmesh.inference.replica", choice.replica)
        span.set_attribute("costmesh.inference.route", choice.reason)
        span.set_attribute("costmesh.inference.matched_tokens", choice.matched_blocks * self.hasher.block_size)
        return choice.replica

    def choose(self, token_ids: Sequence[int], exclude: frozenset[str] = frozenset()) -> Choice:
        """Pick a replica for these prompt tokens, count it in flight, record the chain on it."""
        chain = self.hasher.chain(token_ids)
        candidates = self.health.candidates(exclude)
        matches = {replica: self.tries[replica].match(chain) for replica in candidates}
        in_flight = self.health.in_flight
        best = max(candidates, key=lambda r: (matches[r], -in_flight[r]))  # longest, then least loaded
        best_blocks = matches[best]
        if best_blocks > 0 and in_flight[best] < self.max_in_flight:
            replica, reason = best, "prefix"
        else:
            replica = self._least_loaded(candidates)
            reason = "least_loaded" if best_blocks == 0 else ("spill" if replica != best else "prefix")
        self.health.started(replica)
        self.tries[replica].insert(chain)
        return Choice(replica, matches[replica], best_blocks, reason)

    def _least_loaded(self, candidates: list[str]) -> str:
        """Fewest requests in flight; among those, the one remembering fewest blocks (least cache
        pressure); then in turn."""
        low = min((self.health.in_flight[r], len(self.tries[r])) for r in candidates)
        tied = [r for r in candidates if (self.health.in_flight[r], len(self.tries[r])) == low]
        replica = tied[self._next % len(tied)]
        self._next += 1
        return replica

    def done(self, replica: str) -> None:
        self.health.finished(replica)
