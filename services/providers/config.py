"""Which upstreams the providers service talks to (`ProvidersConfig`), from the environment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

import grpc
from pydantic import Field, SecretStr, field_validator

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.services.providers.anthropic_adapter import AnthropicAdapter
from costmesh.services.providers.base import ProviderAdapter
from costmesh.services.providers.cache_breakpoints import AutoBreakpoints, BreakpointPolicy, ClientBreakpoints
from costmesh.services.providers.openai_adapter import OpenAIAdapter
from costmesh.services.providers.prefix_routing.factory import build_picker
from costmesh.services.providers.prefix_routing.settings import RoutingSettings
from costmesh.services.providers.vllm_adapter import VLLMAdapter
from costmesh.settings import CommaList, Lowercase, Settings, SkipEnv, split_commas

SIMULATOR_API_KEY = "costmesh-simulator"
BREAKPOINT_POLICIES: dict[str, type] = {"auto": AutoBreakpoints, "client": ClientBreakpoints}
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Upstream:
    """One HTTP provider: its key and base URL (None: the SDK's default)."""

    api_key: str = field(repr=False)
    base_url: str | None


class ProvidersConfig(Settings):
    """The providers service's settings. COSTMESH_SIMULATOR_URL points both SDKs at the simulator;
    otherwise each key enables its provider. How the vLLM adapter spreads requests: `routing`."""

    used_by: ClassVar[str] = "providers"

    simulator_url: str | None = Field(None, description="send both SDKs to the simulator (their keys default "
                                      "to the simulator's)")
    # Keys are SecretStr: a repr or a log line of the settings shows `**********`, never the key.
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY",
                                          description="real upstreams: the key enables Anthropic")
    anthropic_base_url: str | None = Field(None, validation_alias="ANTHROPIC_BASE_URL",
                                           description="Anthropic's base URL (default: the SDK's)")
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY",
                                       description="real upstreams: the key enables OpenAI")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL",
                                        description="OpenAI's base URL (default: the SDK's)")
    inference_addrs: CommaList = Field((), description="vLLM inference replicas, comma-separated")
    provider_timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0.0, description="deadline of one upstream call")
    provider_http_client: Annotated[Literal["aiohttp", "httpx"], Lowercase] = Field(
        "aiohttp", description="the HTTP client under the anthropic and openai SDKs: `aiohttp` (the SDKs' "
        "`DefaultAioHttpClient`; about a fifth less CPU per call than httpx here) or `httpx` (the SDKs' default)")
    prompt_caching: Literal["auto", "client"] = Field(
        "auto", description="Anthropic prompt-cache breakpoints: `auto` (placed by costmesh) or `client` (the "
        "client's only)")
    prompt_cache_isolation: Annotated[Literal["tenant", "off"], Lowercase] = Field(
        "tenant", description="`tenant` (default): no tenant reads another's Anthropic prompt-cache entries (a "
        "scope block first in each system prompt, ~15 tokens); `off`: tenants share them")
    # How the vLLM adapter spreads requests over replicas (COSTMESH_INFERENCE_*)
    routing: SkipEnv[RoutingSettings] = Field(default_factory=RoutingSettings)

    @field_validator("inference_addrs", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("simulator_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @classmethod
    def from_env(cls, env: Env | Mapping[str, str] | None = None) -> ProvidersConfig:
        """The settings with their routing, failing at start when no upstream is configured."""
        config = cls.load(env).model_copy(update={"routing": RoutingSettings.load(env)})
        if not config.enabled:
            raise ConfigError(
                "providers: no upstream configured; set ANTHROPIC_API_KEY and/or OPENAI_API_KEY for the real "
                "providers, COSTMESH_SIMULATOR_URL for the simulator, or COSTMESH_INFERENCE_ADDRS for self-hosted vLLM"
            )
        return config

    @property
    def anthropic(self) -> Upstream | None:
        key = _secret(self.anthropic_api_key)
        if self.simulator_url:
            return Upstream(key or SIMULATOR_API_KEY, self.simulator_url)
        return Upstream(key, self.anthropic_base_url) if key else None

    @property
    def openai(self) -> Upstream | None:
        key = _secret(self.openai_api_key)
        if self.simulator_url:
            return Upstream(key or SIMULATOR_API_KEY, self.simulator_url + "/v1")
        return Upstream(key, self.openai_base_url) if key else None

    @property
    def timeout_s(self) -> float:
        return self.provider_timeout_s

    @property
    def tenant_isolation(self) -> bool:
        """No tenant reads another's Anthropic prompt-cache entries (`anthropic_content.tenant_scoped`)."""
        return self.prompt_cache_isolation == "tenant"

    def breakpoint_policy(self) -> BreakpointPolicy:
        return BREAKPOINT_POLICIES[self.prompt_caching]()

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


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


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
            tenant_isolation=config.tenant_isolation,
            aiohttp=config.provider_http_client == "aiohttp",
        )
    if config.openai:
        adapters["openai"] = OpenAIAdapter.connect(
            api_key=config.openai.api_key, base_url=config.openai.base_url, timeout_s=config.timeout_s,
            aiohttp=config.provider_http_client == "aiohttp",
        )
    if config.inference_addrs:
        routing = config.routing
        adapters["vllm"] = VLLMAdapter(
            build_picker(config.inference_addrs, routing), channel, health_interval_s=routing.health_interval_s
        )
    return adapters
