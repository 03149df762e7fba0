"""Which upstreams the providers service talks to, from the environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.services.providers.anthropic_adapter import AnthropicAdapter
from costmesh.services.providers.base import ProviderAdapter
from costmesh.services.providers.cache_breakpoints import AutoBreakpoints, BreakpointPolicy, ClientBreakpoints
from costmesh.services.providers.openai_adapter import OpenAIAdapter
from costmesh.services.providers.prefix_routing.factory import build_picker
from costmesh.services.providers.prefix_routing.settings import RoutingSettings
from costmesh.services.providers.vllm_adapter import VLLMAdapter

SIMULATOR_API_KEY = "costmesh-simulator"
BREAKPOINT_POLICIES: dict[str, type] = {"auto": AutoBreakpoints, "client": ClientBreakpoints}
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Upstream:
    """One HTTP provider: its key and base URL (None: the SDK's default)."""

    api_key: str
    base_url: str | None


@dataclass(frozen=True)
class ProvidersConfig:
    anthropic: Upstream | None
    openai: Upstream | None
    inference_addrs: tuple[str, ...]
    timeout_s: float
    simulator_url: str | None = None
    breakpoints: str = "auto"  # COSTMESH_PROMPT_CACHING: auto (placed by costmesh) | client (the client's only)
    routing: RoutingSettings | None = None  # how the vLLM adapter spreads requests over replicas
    # COSTMESH_PROMPT_CACHE_ISOLATION: tenant (default): no tenant reads another's Anthropic prompt-cache
    # entries (`anthropic_content.tenant_scoped`); off: tenants sending the same prefix share them.
    prompt_cache_isolation: bool = True

    @classmethod
    def from_env(cls, env: Env) -> "ProvidersConfig":
        """COSTMESH_SIMULATOR_URL points both SDKs at the simulator; otherwise each key enables its provider."""
        simulator = env.optional("COSTMESH_SIMULATOR_URL")
        if simulator:
            simulator = simulator.rstrip("/")
            anthropic = Upstream(env.str("ANTHROPIC_API_KEY", SIMULATOR_API_KEY), simulator)
            openai = Upstream(env.str("OPENAI_API_KEY", SIMULATOR_API_KEY), simulator + "/v1")
        else:
            anthropic = _keyed(env, "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
            openai = _keyed(env, "OPENAI_API_KEY", "OPENAI_BASE_URL")
        config = cls(
            anthropic=anthropic,
            openai=openai,
            inference_addrs=tuple(env.list("COSTMESH_INFERENCE_ADDRS")),
            timeout_s=env.float("COSTMESH_PROVIDER_TIMEOUT_S", DEFAULT_TIMEOUT_S),
            simulator_url=simulator,
            breakpoints=env.str("COSTMESH_PROMPT_CACHING", "auto"),
            routing=RoutingSettings.from_env(env),
            prompt_cache_isolation=_isolation(env),
        )
        if config.breakpoints not in BREAKPOINT_POLICIES:
            raise ConfigError(
                f"COSTMESH_PROMPT_CACHING must be one of {sorted(BREAKPOINT_POLICIES)}, got {config.breakpoints!r}"
            )
        if not config.enabled:
            raise ConfigError(
                "providers: no upstream configured; set ANTHROPIC_API_KEY and/or OPENAI_API_KEY for the real "
                "providers, COSTMESH_SIMULATOR_URL for the simulator, or COSTMESH_INFERENCE_ADDRS for self-hosted vLLM"
            )
        if config.timeout_s <= 0:
            raise ConfigError("COSTMESH_PROVIDER_TIMEOUT_S must be positive")
        return config

    def breakpoint_policy(self) -> BreakpointPolicy:
        return BREAKPOINT_POLICIES[self.breakpoints]()

    @property
    def enabled(self) -> tuple[str, ...]:
        names = []
        if self.anthropic:
            names.append("anthropic")
        if self.openai:
            names.append("openai")
        if self.inference_addrs:
            names.append("vllm")
        return tuple(names)


def _isolation(env: Env) -> bool:
    value = env.str("COSTMESH_PROMPT_CACHE_ISOLATION", "tenant").lower()
    if value not in ("tenant", "off"):
        raise ConfigError(f"COSTMESH_PROMPT_CACHE_ISOLATION must be 'tenant' or 'off', got {value!r}")
    return value == "tenant"


def _keyed(env: Env, key_var: str, url_var: str) -> Upstream | None:
    key = env.optional(key_var)
    return Upstream(key, env.optional(url_var)) if key else None


def build_adapters(
    config: ProvidersConfig, channel: Callable[[str], grpc.aio.Channel]
) -> dict[str, ProviderAdapter]:
    """One adapter per enabled provider, keyed by provider name."""
    adapters: dict[str, ProviderAdapter] = {}
    if config.anthropic:
        adapters["anthropic"] = AnthropicAdapter.connect(
            api_key=config.anthropic.api_key,
            base_url=config.anthropic.base_url,
            timeout_s=config.timeout_s,
            breakpoints=config.breakpoint_policy(),
            tenant_isolation=config.prompt_cache_isolation,
        )
    if config.openai:
        adapters["openai"] = OpenAIAdapter.connect(
            api_key=config.openai.api_key, base_url=config.openai.base_url, timeout_s=config.timeout_s
        )
    if config.inference_addrs:
        routing = config.routing or RoutingSettings()
        adapters["vllm"] = VLLMAdapter(
            build_picker(config.inference_addrs, routing), channel, health_interval_s=routing.health_interval_s
        )
    return adapters
