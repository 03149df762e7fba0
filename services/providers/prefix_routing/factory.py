"""The replica picker the settings ask for."""

from __future__ import annotations

from costmesh.services.providers.prefix_routing.block_hash import BlockHasher
from costmesh.services.providers.prefix_routing.prompt_tokens import ChatTokenizer
from costmesh.services.providers.prefix_routing.router import PrefixAwarePicker
from costmesh.services.providers.prefix_routing.settings import RoutingSettings
from costmesh.services.providers.replica_picker import ReplicaPicker, RoundRobinPicker


def build_picker(replicas: tuple[str, ...] | list[str], settings: RoutingSettings | None) -> ReplicaPicker:
    settings = settings or RoutingSettings()
    if settings.mode == "round_robin":
        return RoundRobinPicker(replicas)
    assert settings.tokenizer is not None  # the settings' validator checked
    return PrefixAwarePicker(
        replicas,
        ChatTokenizer.load(settings.tokenizer),
        BlockHasher(settings.block_size, settings.hash_algo, settings.hash_seed),
        max_blocks=settings.prefix_max_blocks,
        max_in_flight=settings.max_in_flight,
    )
