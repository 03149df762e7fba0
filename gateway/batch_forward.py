"""The public BatchService: authenticated and validated here, forwarded to the batches service.

The gateway holds no batch state and no provider keys: the batches service (COSTMESH_BATCHES_ADDR)
keeps the jobs in Redis and reaches the providers' batch APIs through the providers service.
Without an address the gateway still serves, and every batch call answers UNAVAILABLE.

Limits (`RequestLimits`, when the gateway has them): a batch is admitted before it is forwarded
as one request per item against the requests-per-minute buckets and its items' prompts and
`max_tokens` against the tokens-per-minute buckets (so a batch larger than a bucket leaves it in
debt until it refills), and only while the budgets are not spent. What a batch costs is not
known here (the batches service bills it when the provider is done, hours later): it is neither
reserved nor counted against the USD budgets.
"""

from __future__ import annotations

import asyncio

import grpc

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.batch_limits import MAX_REQUESTS
from costmesh.convert import with_rounded_usd
from costmesh.errors import InvalidRequest, Unavailable
from costmesh.gateway.auth import Authenticator, Principal
from costmesh.gateway.request_limits import RequestLimits, prompt_tokens
from costmesh.gateway.validation import Limits, validate
from costmesh.rpc.server import Runtime, Servicer
from costmesh.rpc.status import call_unary

FULL_NAME = gw.DESCRIPTOR.services_by_name["BatchService"].full_name


def _authorization(context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None


def validate_batch(request: gw.SubmitBatchRequest, limits: Limits) -> None:
    """Each request as the interactive path validates it (fields named `requests[i].`), in the batch's tenant."""
    if len(request.requests) > MAX_REQUESTS:  # counted before reading 100,000 requests
        raise InvalidRequest(
            f"requests: {len(request.requests)} requests; a batch takes at most {MAX_REQUESTS:,} "
            "(Anthropic's limit; OpenAI's is 50,000)"
        )
    for i, req in enumerate(request.requests):
        if req.tenant_id and req.tenant_id != request.tenant_id:
            raise InvalidRequest(f"requests[{i}].tenant_id: {req.tenant_id!r} is not the batch's tenant")
        req.tenant_id = request.tenant_id
        try:
            validate(req, limits)
        except InvalidRequest as exc:
            raise InvalidRequest(f"requests[{i}].{exc}") from None


class BatchForwarder(gateway_pb2_grpc.BatchServiceServicer):
    """Authenticated like GatewayService: the batch's tenant is the API key's tenant."""

    def __init__(self, channel: grpc.aio.Channel | None, auth: Authenticator, limits: Limits,
                 tenant_limits: RequestLimits | None = None):
        self._stub = gateway_pb2_grpc.BatchServiceStub(channel) if channel is not None else None
        self._auth = auth
        self._limits = limits
        self._tenant_limits = tenant_limits

    def _tenant(self, request, context) -> Principal:
        principal = self._auth.authenticate(_authorization(context), request.tenant_id)
        request.tenant_id = principal.tenant
        return principal

    async def _admit(self, request: gw.SubmitBatchRequest, key_id: str) -> None:
        """One request per item, their tokens (prompt and max_tokens); LimitExceeded when over."""
        if self._tenant_limits is None or not request.requests:
            return
        tokens = await asyncio.to_thread(  # up to 100,000 prompts: counted off the event loop
            lambda: sum(prompt_tokens(req) + req.sampling.max_tokens for req in request.requests))
        await self._tenant_limits.reserve(request.tenant_id, key_id, tokens, 0, requests=len(request.requests))

    async def _forward(self, method: str, request, context):
        if self._stub is None:
            raise Unavailable("batches are not configured on this gateway: set COSTMESH_BATCHES_ADDR")
        return await call_unary(getattr(self._stub, method), request, context.time_remaining())

    async def SubmitBatch(self, request: gw.SubmitBatchRequest, context) -> gw.SubmitBatchResponse:
        principal = self._tenant(request, context)
        validate_batch(request, self._limits)
        await self._admit(request, principal.key_id)
        return await self._forward("SubmitBatch", request, context)

    async def GetBatch(self, request: gw.GetBatchRequest, context) -> gw.GetBatchResponse:
        self._tenant(request, context)
        return with_rounded_usd(await self._forward("GetBatch", request, context))  # whole micro-dollars

    async def CancelBatch(self, request: gw.CancelBatchRequest, context) -> gw.CancelBatchResponse:
        self._tenant(request, context)
        return with_rounded_usd(await self._forward("CancelBatch", request, context))


def batch_forwarder(runtime: Runtime, address: str | None, auth: Authenticator, limits: Limits,
                    tenant_limits: RequestLimits | None = None) -> Servicer:
    if address is None:
        runtime.log.warning("batches disabled: COSTMESH_BATCHES_ADDR is not set")
    channel = runtime.channel(address) if address else None
    servicer = BatchForwarder(channel, auth, limits, tenant_limits)
    return Servicer(gateway_pb2_grpc.add_BatchServiceServicer_to_server, servicer, FULL_NAME)
