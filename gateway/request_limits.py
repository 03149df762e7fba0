"""The tenant limits (`limits.Limiter`) applied to the gateway's requests: what a request may use
at most, admitted before any lookup or paid call, settled with its bill when it is done.

A request's *ceiling* is what it could cost at most: its prompt (cl100k tokens, with a margin
for tokenizers that count more, each image at the most any provider bills for one, tools and
their instructions) at the dearest input price a provider bills (a prompt-cache write) plus
`max_tokens` of output, priced at the models the router could call: a pinned model's; for
`auto`, every tier the cascade could reach (from `min_tier`, or trivial, up to `max_tier`, or
complex), each at its dearest model, summed, because the cascade bills an answer the quality
gate turned down as well as the one it serves (at most one answer per tier). The embedding the
semantic cache makes is added. The ceiling is reserved in the budgets and `prompt + max_tokens`
taken from the tokens-per-minute bucket; the bill replaces both when the request is done.

Settling: an answer settles its bill (`cost.total_usd`; its tokens, none for a cache hit); a
request that fails settles nothing spent (a failure carries no bill back to the gateway); a
request abandoned while its paid call was running (the client cancelled, the stream was closed)
keeps its whole reservation, since what the provider billed is not known: the budget errs on
the safe side. Those settles run in the background (`aclose` waits for them).

Settings (`LimitSettings`): `COSTMESH_LIMITS` is `auto` (enforced when the gateway has
Redis, `REDIS_URL`; without it one log line at start and no limits), `required` (the gateway
does not start without Redis, and a request is refused `UNAVAILABLE` while Redis cannot be
reached) or `off`. `COSTMESH_LIMITS_TIMEOUT_MS` bounds each Redis call (default 500). In `auto`,
Redis unreachable admits the request (fail open, as the cache does) and skips Redis for
`COSTMESH_LIMITS_COOLDOWN_MS` (default 1000) before trying again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import structlog
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from redis.asyncio import Redis

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog, ModelSpec, Tier, load_catalog
from costmesh.errors import ConfigError, Unavailable
from costmesh.gateway.limits import Limiter, Reservation
from costmesh.gateway.settings import GatewayConfig
from costmesh.pricing import PER_TOKEN, micro_usd
from costmesh.rpc.server import Runtime
from costmesh.settings import Lowercase, Settings
from costmesh.tokens import MESSAGE_OVERHEAD, REPLY_PRIMING, get_counter

log = structlog.get_logger()

IMAGE_TOKENS = 1_600  # OpenAI bills an image at most 1,445 tokens (2048x768, high detail), Anthropic ~1,534
TOOLS_TOKENS = 512  # the instructions a provider adds when tools are offered (Anthropic's: 300-400)
PROMPT_MARGIN = 1.25  # cl100k counts; a provider's own tokenizer may count more
OFF_LOOP_BYTES = 64 * 1024  # longer prompts are counted in a thread, off the event loop


class LimitSettings(Settings):
    """The tenant limits (`costmesh limits`) in the gateway's Redis."""

    model_config = SettingsConfigDict(env_prefix="COSTMESH_LIMITS_")
    used_by: ClassVar[str] = "gateway"

    mode: Annotated[Literal["auto", "required", "off"], Lowercase] = Field(
        "auto", validation_alias="COSTMESH_LIMITS", description="`auto`: enforced when `REDIS_URL` is set, fail "
        "open; `required`: no start without Redis, `UNAVAILABLE` while it is down; `off`")
    timeout_ms: float = Field(500.0, gt=0.0, description="deadline of each Redis call of the limits")
    cooldown_ms: float = Field(1000.0, ge=0.0, description="how long an unreachable Redis is not asked")

    @property
    def timeout_s(self) -> float:
        return self.timeout_ms / 1000

    @property
    def cooldown_s(self) -> float:
        return self.cooldown_ms / 1000

    @property
    def fail_open(self) -> bool:
        return self.mode != "required"


@dataclass(frozen=True)
class Ceiling:
    """At most what one request may use: `prompt_tokens + max_tokens` tokens, `micro_usd`."""

    prompt_tokens: int
    max_tokens: int
    micro_usd: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.max_tokens


def prompt_tokens(request: gw.CompleteRequest) -> int:
    """The prompt's tokens as `costmesh.tokens` counts a chat prompt, images at `IMAGE_TOKENS`
    each, tools with `TOOLS_TOKENS` of instructions, times `PROMPT_MARGIN`."""
    counter = get_counter()
    total = REPLY_PRIMING
    if request.tools.tools:
        total += TOOLS_TOKENS + sum(counter.count(t.name) + counter.count(t.description)
                                    + counter.count(t.parameters_json) for t in request.tools.tools)
    total += counter.count(request.response_format.schema_json)
    for message in request.messages:
        role = common.Role.Name(message.role).removeprefix("ROLE_").lower()
        total += MESSAGE_OVERHEAD + counter.count(role) + counter.count(message.tool_call_id)
        for part in message.content:
            total += counter.count(part.text) if part.WhichOneof("kind") == "text" else IMAGE_TOKENS
        for call in message.tool_calls:
            total += counter.count(call.id) + counter.count(call.name) + counter.count(call.arguments_json)
    return math.ceil(total * PROMPT_MARGIN)


def reachable_tiers(catalog: Catalog, routing: gw.RoutingPolicy) -> list[tuple[ModelSpec, ...]]:
    """The models the router could call for `routing`, per tier: a pinned model alone; for auto,
    every tier from min_tier (or trivial: the classifier may pick it) up to max_tier (or complex)."""
    if routing.model:
        return [(catalog.model(routing.model),)]
    low, high = Tier(routing.min_tier or Tier.TRIVIAL), Tier(routing.max_tier or Tier.COMPLEX)
    return [catalog.tier_models(tier) for tier in Tier if low <= tier <= high]


def call_usd(spec: ModelSpec, prompt: int, output: int) -> float:
    """The most one call can cost: every prompt token at the dearest input price (a cache write)."""
    input_price = spec.input * max(1.0, spec.cache_write_5m, spec.cache_write_1h)
    return (prompt * input_price + output * spec.output) * PER_TOKEN


def ceiling_of(catalog: Catalog, request: gw.CompleteRequest, prompt: int) -> Ceiling:
    max_tokens = request.sampling.max_tokens
    usd = sum(max(call_usd(spec, prompt, max_tokens) for spec in models)
              for models in reachable_tiers(catalog, request.routing))
    usd += prompt * catalog.embedding_usd_per_mtok * PER_TOKEN
    return Ceiling(prompt, max_tokens, math.ceil(usd * 1_000_000))


class Admission:
    """One admitted request: settled once, with its bill or without."""

    def __init__(self, owner: RequestLimits, ceiling: Ceiling, reservation: Reservation | None):
        self._owner = owner
        self.ceiling = ceiling
        self._reservation = reservation
        self._calling = False
        self._done = False

    def calling(self) -> None:
        """The paid call starts: from now on an abandoned request keeps its reservation."""
        self._calling = True

    async def settle(self, response: gw.CompleteResponse) -> None:
        """The request was answered: its bill replaces the reservation."""
        if self._done:
            return
        self._done = True
        tokens = 0 if response.cached else response.usage.input_tokens + response.usage.output_tokens
        await self._owner.settle(self._reservation, tokens, micro_usd(response.cost.total_usd))

    def failed(self) -> None:
        """The request failed: nothing it reported was billed; the reservation is given back."""
        if not self._done:
            self._done = True
            self._owner.settle_soon(self._reservation, 0, 0)

    def close(self) -> None:
        """The request ended (`finally`): if it was not settled, it was abandoned."""
        if self._done:
            return
        self._done = True
        if self._calling:  # what the provider billed is unknown: keep the whole reservation
            self._owner.settle_soon(self._reservation, self.ceiling.tokens, self.ceiling.micro_usd)
        else:
            self._owner.settle_soon(self._reservation, 0, 0)


class RequestLimits:
    """Admits the gateway's requests against their tenant's and API key's limits."""

    def __init__(self, limiter: Limiter, catalog: Catalog, settings: LimitSettings = LimitSettings(),
                 clock: Callable[[], float] = time.monotonic):
        self.limiter = limiter
        self._catalog = catalog
        self._settings = settings
        self._clock = clock
        self._skip_until = 0.0  # Redis was unreachable: fail open without asking it until then
        self._pending: set[asyncio.Task] = set()

    async def ceiling(self, request: gw.CompleteRequest) -> Ceiling:
        size = sum(len(p.text) for m in request.messages for p in m.content)
        if size > OFF_LOOP_BYTES:
            prompt = await asyncio.to_thread(prompt_tokens, request)
        else:
            prompt = prompt_tokens(request)
        return ceiling_of(self._catalog, request, prompt)

    async def admit(self, request: gw.CompleteRequest, key_id: str) -> Admission:
        """Raises LimitExceeded (RESOURCE_EXHAUSTED / HTTP 429 with a retry-after) when over a limit."""
        ceiling = await self.ceiling(request)
        return Admission(self, ceiling, await self.reserve(request.tenant_id, key_id, ceiling.tokens,
                                                          ceiling.micro_usd))

    async def reserve(self, tenant: str, key_id: str, tokens: int, micro: int,
                      requests: int = 1) -> Reservation | None:
        if self._clock() < self._skip_until:
            if not self._settings.fail_open:
                raise Unavailable("limits: Redis is unreachable")
            return None
        reservation = await self.limiter.admit(tenant, key_id, tokens, micro, requests)
        if reservation is None:  # fail open: Redis is unreachable
            self._skip_until = self._clock() + self._settings.cooldown_s
        return reservation

    async def settle(self, reservation: Reservation | None, tokens: int, micro: int) -> None:
        await self.limiter.settle(reservation, tokens, micro)

    def settle_soon(self, reservation: Reservation | None, tokens: int, micro: int) -> None:
        """Settle in the background: called from `finally` blocks, cancelled requests included."""
        if reservation is None or reservation.settled or not (reservation.token_buckets or reservation.spends):
            return  # nothing was taken (no limit set): nothing to give back
        task = asyncio.get_running_loop().create_task(self.settle(reservation, tokens, micro))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def aclose(self) -> None:
        """Wait for the settles still running."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


async def request_limits(runtime: Runtime, cleanup: contextlib.AsyncExitStack) -> RequestLimits | None:
    """The limits on the gateway's Redis (`REDIS_URL`); None, said in one log line, without Redis
    or with COSTMESH_LIMITS=off; COSTMESH_LIMITS=required without Redis: ConfigError at start."""
    settings = LimitSettings.load(runtime.env)
    url = GatewayConfig.load(runtime.env).redis_url
    if settings.mode == "off" or not url:
        if settings.mode == "required":
            raise ConfigError("COSTMESH_LIMITS=required needs REDIS_URL: the limits are kept in Redis")
        runtime.log.warning("tenant limits not enforced", reason="COSTMESH_LIMITS=off" if url else "no REDIS_URL")
        return None
    redis = Redis.from_url(url, socket_timeout=settings.timeout_s, socket_connect_timeout=settings.timeout_s)
    cleanup.push_async_callback(redis.aclose)
    await asyncio.to_thread(get_counter)  # the tokenizer that sizes each request, loaded before serving
    runtime.log.info("tenant limits enforced", mode=settings.mode, fail_open=settings.fail_open)
    return RequestLimits(Limiter(redis, fail_open=settings.fail_open),
                         load_catalog(runtime.settings.catalog), settings)
