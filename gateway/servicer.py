"""GatewayService servicer: protobuf in, protobuf out; the work is in `pipeline`.

Every call is authenticated from its `authorization: Bearer <key>` metadata; the tenant of
the request is the key's tenant, whatever the body says. Answers leave with their integer
micro-dollar fields filled (`convert.with_micro_usd`) and the doubles rounded to them
(`convert.with_rounded_usd`): every amount a caller sees is whole micro-dollars.
"""

from __future__ import annotations

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.api.gateway.v1 import gateway_pb2_grpc
from costmesh.convert import with_micro_usd, with_rounded_usd
from costmesh.errors import Unavailable
from costmesh.gateway.auth import Authenticator
from costmesh.gateway.feedback import Feedback
from costmesh.gateway.pipeline import Pipeline


def _authorization(context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, pipeline: Pipeline, auth: Authenticator, feedback: Feedback | None = None):
        self._pipeline = pipeline
        self._auth = auth
        self._feedback = feedback

    def _tenant(self, request: gw.CompleteRequest, context) -> None:
        principal = self._auth.authenticate(_authorization(context), request.tenant_id)
        request.tenant_id = principal.tenant

    async def Complete(self, request: gw.CompleteRequest, context) -> gw.CompleteResponse:
        self._tenant(request, context)
        return with_rounded_usd(with_micro_usd(await self._pipeline.complete(request, context.time_remaining())))

    async def StreamComplete(self, request: gw.StreamCompleteRequest, context):
        self._tenant(request.request, context)
        async for event in self._pipeline.stream(request.request, context.time_remaining()):
            if event.HasField("final"):
                with_rounded_usd(with_micro_usd(event.final))
            yield event

    async def GetStats(self, request: gw.GetStatsRequest, context) -> gw.GetStatsResponse:
        """The caller's tenant's figures only (its key's tenant), and its and its key's limits.
        Authentication off (development): the tenant asked for, or every tenant's totals."""
        if not self._auth.enabled and not request.tenant_id.strip():
            return with_rounded_usd(await self._pipeline.tenant_stats(None))
        principal = self._auth.authenticate(_authorization(context), request.tenant_id)
        return with_rounded_usd(await self._pipeline.tenant_stats(principal.tenant, principal.key_id))

    async def ReportFeedback(self, request: gw.ReportFeedbackRequest, context) -> gw.ReportFeedbackResponse:
        """A bad answer of the caller's tenant (its key's), by request id: NOT_FOUND when unknown."""
        principal = self._auth.authenticate(_authorization(context), request.tenant_id)
        if self._feedback is None:
            raise Unavailable("feedback is not served by this gateway")
        return await self._feedback.report(principal.tenant, request.request_id, request.reason)
