"""The HTTP APIs: OpenAI's `/v1/chat/completions` and Anthropic's `/v1/messages` (JSON or
server-sent events) and `/v1/models`, on the same pipeline as the gRPC API; and, for admin keys,
the dashboard (`/dashboard`) and its JSON API (`/admin/api/v1/...`, `gateway.admin.api`).

Each request is authenticated from its API key (`Authorization: Bearer <key>`, or `x-api-key`
as the Anthropic SDK sends it), runs inside one SERVER span (so the pipeline's attributes and
the downstream gRPC hops join its trace), and ends in one access-log line. A caller's W3C
`traceparent` (and `tracestate`, `baggage`) is continued through OpenTelemetry's global
propagator, as the gRPC server interceptors do: the span is a child of the caller's.
(`opentelemetry-instrumentation-aiohttp-server` would do the same, but no release of it
matches the pinned opentelemetry-sdk's semantic conventions.) Errors come in the caller's
API's shape: Anthropic's on `/v1/messages` and on `/v1/models` asked with an
`anthropic-version` header, OpenAI's elsewhere.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog
from costmesh.errors import CostmeshError, InvalidRequest, NotFound, Unauthenticated, Unavailable
from costmesh.gateway.auth import Authenticator
from costmesh.gateway.feedback import Feedback
from costmesh.gateway.http import anthropic_format, anthropic_replies, sse
from costmesh.gateway.http import openai_format as fmt
from costmesh.gateway.http.anthropic_stream import MessageEvents
from costmesh.gateway.http.errors import (
    ANTHROPIC_HTTP_TYPES,
    anthropic_error,
    anthropic_error_body,
    error_body,
    http_error,
)
from costmesh.gateway.http.json_body import parse_json
from costmesh.gateway.http.openai_stream import ChunkStream
from costmesh.gateway.pipeline import Pipeline
from costmesh.observability.error_fields import error_fields
from costmesh.observability.log_context import bind_request, request_scope
from costmesh.vocabulary import cache_status_name

log = structlog.get_logger()
DEV_TENANT_HEADER = "x-costmesh-tenant"  # only read when authentication is off (dev mode)
MAX_TIMEOUT_S = 3600.0  # x-costmesh-timeout-s
# Names the Anthropic parameter in the pipeline's errors (`MessagesRequest.rename`).
RENAME: web.RequestKey[Callable[[str], str]] = web.RequestKey("costmesh.rename")


class HttpApi:
    def __init__(self, pipeline: Pipeline, auth: Authenticator, catalog: Catalog,
                 tracer: trace.Tracer, max_body_bytes: int, feedback: Feedback | None = None,
                 more_routes: Callable[[web.Application], None] | None = None):
        self._feedback = feedback  # POST /v1/feedback (None: not served)
        self._more_routes = more_routes  # the dashboard and its API (`AdminApi.add_routes`; None: not served)
        self._pipeline = pipeline
        self._auth = auth
        self._catalog = catalog
        self._tracer = tracer
        self._max_body_bytes = max_body_bytes

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self._max_body_bytes, middlewares=[self._middleware])
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model}", self.get_model)
        app.router.add_post("/v1/feedback", self.report_feedback)
        if self._more_routes is not None:
            self._more_routes(app)
        return app

    # -- plumbing ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        name = (f"{request.method} "
                f"{request.match_info.route.resource.canonical if request.match_info.route.resource else request.path}")
        with request_scope(), self._tracer.start_as_current_span(  # the request's ids on its lines, then gone
            name, context=propagate.extract(request.headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        ) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # 404, 405, 413 from aiohttp itself
                if _anthropic(request):
                    kind = ANTHROPIC_HTTP_TYPES.get(exc.status, "invalid_request_error")
                    body = anthropic_error_body(exc.reason, kind)
                else:
                    body = error_body(exc.reason, "invalid_request_error", None, _slug(exc.reason))
                response = web.json_response(body, status=exc.status)
            except Exception as exc:  # noqa: BLE001 - every error becomes an error body of the caller's API
                response = _error_response(request, exc)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            # an upstream failure (502, 503, 504) or a fault of ours at warning, the rest at info
            (log.warning if response.status >= 500 else log.info)(
                "http", method=request.method, path=request.path, status=response.status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2))
            return response

    def _tenant(self, request: web.Request) -> str:
        claimed = "" if self._auth.enabled else request.headers.get(DEV_TENANT_HEADER, "dev")
        authorization = request.headers.get("Authorization")
        api_key = request.headers.get("x-api-key")
        if not authorization and api_key:
            authorization = f"Bearer {api_key}"
        if not authorization and self._auth.enabled and _anthropic(request):
            raise Unauthenticated("missing API key: send `x-api-key: <key>` or `authorization: Bearer <key>`")
        tenant = self._auth.authenticate(authorization, claimed).tenant
        bind_request(tenant_id=tenant)
        return tenant

    # -- models --------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        self._tenant(request)
        models = [self._model(request, m) for m in self._model_ids()]
        if _anthropic(request):
            return web.json_response({"data": models, "has_more": False, "first_id": models[0]["id"],
                                      "last_id": models[-1]["id"]})
        return web.json_response({"object": "list", "data": models})

    async def get_model(self, request: web.Request) -> web.Response:
        self._tenant(request)
        model = request.match_info["model"]
        if model not in self._model_ids():
            raise NotFound(f"model: {model!r} is not served here")
        return web.json_response(self._model(request, model))

    def _model_ids(self) -> list[str]:
        return [fmt.AUTO_MODEL, *self._catalog.models]

    def _model(self, request: web.Request, model: str) -> dict[str, Any]:
        if _anthropic(request):
            return {"type": "model", "id": model, "display_name": model, "created_at": "1970-01-01T00:00:00Z"}
        owner = "costmesh" if model == fmt.AUTO_MODEL else self._catalog.models[model].provider
        return {"id": model, "object": "model", "created": 0, "owned_by": owner}

    # -- feedback ------------------------------------------------------------------------

    async def report_feedback(self, request: web.Request) -> web.Response:
        """`{"request_id": ..., "reason": ...}`: a bad answer of the caller's tenant, its cache entry
        removed and, for a semantic hit, counted as a false hit (`gateway.feedback`); 404 when unknown."""
        tenant = self._tenant(request)
        body = parse_json(await request.read())
        if not isinstance(body, dict):
            raise InvalidRequest("body: must be a JSON object")
        request_id, reason = body.get("request_id"), body.get("reason", "")
        if not isinstance(request_id, str) or not request_id.strip():
            raise InvalidRequest("request_id: required, a string")
        if not isinstance(reason, str):
            raise InvalidRequest("reason: must be a string")
        if self._feedback is None:
            raise Unavailable("feedback is not served by this gateway")
        bind_request(request_id=request_id, tenant_id=tenant)
        reported = await self._feedback.report(tenant, request_id, reason)
        return web.json_response({
            "object": "feedback", "request_id": reported.request_id,
            "cache_status": cache_status_name(reported.cache_status),
            "entries_removed": reported.entries_removed, "verdict_counted": reported.verdict_counted,
        })

    # -- completions ---------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        tenant = self._tenant(request)
        chat = fmt.parse_chat_request(parse_json(await request.read()), self._catalog)
        request_id = _prepare(chat.request, tenant, chat.model)
        deadline = _deadline(request)
        if chat.stream:
            chunks = ChunkStream(chat, request_id)
            return await self._stream(
                request, chat.request, deadline, headers={"x-costmesh-request-id": request_id},
                encode=lambda event: b"".join(sse.data_line(c) for c in chunks.chunks(event)),
                error=lambda exc: sse.data_line(http_error(exc)[1]),
                trailer=sse.OPENAI_DONE,
            )
        response = await self._pipeline.complete(chat.request, deadline)
        return web.json_response(fmt.completion_body(chat, response), headers=fmt.extra_headers(response))

    async def messages(self, request: web.Request) -> web.StreamResponse:
        tenant = self._tenant(request)
        parsed = anthropic_format.parse_messages_request(parse_json(await request.read()), self._catalog)
        request[RENAME] = parsed.rename
        request_id = _prepare(parsed.request, tenant, parsed.model)
        deadline = _deadline(request)
        headers = {"x-costmesh-request-id": request_id, "request-id": request_id}
        if parsed.stream:
            events = MessageEvents(parsed.model, request_id)
            return await self._stream(
                request, parsed.request, deadline, headers=headers,
                encode=lambda event: b"".join(sse.named_event(n, d) for n, d in events.events(event)),
                error=lambda exc: sse.named_event("error", anthropic_error(exc, parsed.rename)[1]),
                trailer=b"",
            )
        response = await self._pipeline.complete(parsed.request, deadline)
        return web.json_response(anthropic_replies.message_body(parsed.model, response),
                                 headers={**fmt.extra_headers(response), "request-id": request_id})

    async def _stream(self, request: web.Request, complete: gw.CompleteRequest, deadline: float | None, *,
                      headers: dict[str, str], encode: Callable[[gw.StreamCompleteResponse], bytes],
                      error: Callable[[BaseException], bytes], trailer: bytes) -> web.StreamResponse:
        """Streams the pipeline's events, each `encode`d. Errors before the first event get
        their own HTTP status (the middleware); after it, they travel as one last `error` event."""
        events: AsyncIterator[gw.StreamCompleteResponse] = aiter(self._pipeline.stream(complete, deadline))
        try:
            # The first event comes after validation and the cache lookup.
            event: gw.StreamCompleteResponse | None = await anext(events)
            response = sse.event_stream(headers)
            try:
                await response.prepare(request)
                try:
                    while event is not None:
                        data = encode(event)
                        if data:
                            await response.write(data)
                        event = await anext(events, None)
                except ConnectionError:
                    raise
                except Exception as exc:  # noqa: BLE001 - after the headers, errors travel as an SSE event
                    if not isinstance(exc, CostmeshError):
                        log.error("stream failed", **error_fields(exc))
                    await response.write(error(exc))
                if trailer:
                    await response.write(trailer)
                await response.write_eof()
            except ConnectionError:  # the client went away (before the headers too): one line, no traceback
                log.info("stream client disconnected", request_id=complete.request_id)
            return response
        finally:
            await events.aclose()


def _anthropic(request: web.Request) -> bool:
    """Whether the caller speaks Anthropic's API (its errors and model list take that shape):
    `/v1/messages`, and `/v1/models` asked with an `anthropic-version` header (the anthropic SDK)."""
    path = request.path
    return path.startswith("/v1/messages") or (path.startswith("/v1/models") and "anthropic-version" in request.headers)


def _prepare(complete: gw.CompleteRequest, tenant: str, model: str) -> str:
    complete.tenant_id = tenant
    complete.request_id = complete.request_id or uuid.uuid4().hex
    bind_request(request_id=complete.request_id, tenant_id=tenant)  # on every line of it, and sent downstream
    trace.get_current_span().set_attribute("gen_ai.request.model", model)
    return complete.request_id


def _error_response(request: web.Request, exc: BaseException) -> web.Response:
    if _anthropic(request):
        status, body, headers = anthropic_error(exc, request.get(RENAME))
    else:
        status, body, headers = http_error(exc)
    if not isinstance(exc, CostmeshError):
        log.error("unhandled error", **error_fields(exc))
    trace.get_current_span().set_attribute("costmesh.error", type(exc).__name__)
    return web.json_response(body, status=status, headers=headers)


def _deadline(request: web.Request) -> float | None:
    raw = request.headers.get("x-costmesh-timeout-s")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest("x-costmesh-timeout-s: must be a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT_S:
        raise InvalidRequest(f"x-costmesh-timeout-s: must be > 0 and at most {MAX_TIMEOUT_S:.0f}")
    return value


def _slug(reason: str) -> str:
    return reason.lower().replace(" ", "_")
