"""The public BatchService: authenticated and validated here, forwarded to the batches service.

The gateway holds no batch state and no provider keys: the batches service (COSTMESH_BATCHES_ADDR)
keeps the jobs in Redis and reaches the providers' batch APIs through the providers service.
Without an address the gateway still serves, and every batch call answers UNAVAILABLE.
"""

from __future__ import annotations

import grpc

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.batch_limits import MAX_REQUESTS
from costmesh.errors import InvalidRequest, Unavailable
from costmesh.gateway.auth import Authenticator
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

    def __init__(self, channel: grpc.aio.Channel | None, auth: Authenticator, limits: Limits):
        self._stub = gateway_pb2_grpc.BatchServiceStub(channel) if channel is not None else None
        self._auth = auth
        self._limits = limits

    def _tenant(self, request, context) -> None:
        request.tenant_id = self._auth.authenticate(_authorization(context), request.tenant_id).tenant

    async def _forward(self, method: str, request, context):
        if self._stub is None:
            raise Unavailable("batches are not configured on this gateway: set COSTMESH_BATCHES_ADDR")
        return await call_unary(getattr(self._stub, method), request, context.time_remaining())

    async def SubmitBatch(self, request: gw.SubmitBatchRequest, context) -> gw.SubmitBatchResponse:
        self._tenant(request, context)
        validate_batch(request, self._limits)
        return await self._forward("SubmitBatch", request, context)

    async def GetBatch(self, request: gw.GetBatchRequest, context) -> gw.GetBatchResponse:
        self._tenant(request, context)
        return await self._forward("GetBatch", request, context)

    async def CancelBatch(self, request: gw.CancelBatchRequest, context) -> gw.CancelBatchResponse:
        self._tenant(request, context)
        return await self._forward("CancelBatch", request, context)


def batch_forwarder(runtime: Runtime, auth: Authenticator, limits: Limits) -> Servicer:
    address = runtime.env.optional("COSTMESH_BATCHES_ADDR")
    if address is None:
        runtime.log.warning("batches disabled: COSTMESH_BATCHES_ADDR is not set")
    channel = runtime.channel(address) if address else None
    servicer = BatchForwarder(channel, auth, limits)
    return Servicer(gateway_pb2_grpc.add_BatchServiceServicer_to_server, servicer, FULL_NAME)
