"""The OpenAI-compatible HTTP API: `/v1/chat/completions` (JSON or server-sent events) and
`/v1/models`, on the same pipeline as the gRPC API.

Each request is authenticated from its `Authorization: Bearer <key>` header, runs inside one
SERVER span (so the pipeline's attributes and the downstream gRPC hops join its trace), and
ends in one access-log line. A caller's W3C `traceparent` (and `tracestate`, `baggage`) is
continued through OpenTelemetry's global propagator, as the gRPC server interceptors do: the
span is a child of the caller's. (`opentelemetry-instrumentation-aiohttp-server` would do the
same, but no release of it matches the pinned opentelemetry-sdk's semantic conventions.)
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import structlog
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import Catalog
from costmesh.errors import CostmeshError, InvalidRequest, NotFound
from costmesh.gateway.auth import Authenticator
from costmesh.gateway.http import openai_format as fmt
from costmesh.gateway.http.errors import error_body, http_error
from costmesh.gateway.pipeline import Pipeline
from costmesh.observability.error_fields import error_fields

log = structlog.get_logger()
DEV_TENANT_HEADER = "x-costmesh-tenant"  # only read when authentication is off (dev mode)
MAX_TIMEOUT_S = 3600.0  # x-costmesh-timeout-s


class HttpApi:
    def __init__(self, pipeline: Pipeline, auth: Authenticator, catalog: Catalog,
                 tracer: trace.Tracer, max_body_bytes: int):
        self._pipeline = pipeline
        self._auth = auth
        self._catalog = catalog
        self._tracer = tracer
        self._max_body_bytes = max_body_bytes

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self._max_body_bytes, middlewares=[self._middleware])
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model}", self.get_model)
        return app

    # -- plumbing ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        name = (f"{request.method} "
                f"{request.match_info.route.resource.canonical if request.match_info.route.resource else request.path}")
        with self._tracer.start_as_current_span(
            name, context=propagate.extract(request.headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        ) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # 404, 405, 413 from aiohttp itself
                response = _json(exc.status, error_body(exc.reason, "invalid_request_error", None, _slug(exc.reason)))
            except Exception as exc:  # noqa: BLE001 - every error becomes an OpenAI error body
                response = _error_response(exc)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            log.info("http", method=request.method, path=request.path, status=response.status,
                     duration_ms=round((time.perf_counter() - started) * 1000, 2))
            return response

    def _tenant(self, request: web.Request) -> str:
        claimed = "" if self._auth.enabled else request.headers.get(DEV_TENANT_HEADER, "dev")
        return self._auth.authenticate(request.headers.get("Authorization"), claimed).tenant

    # -- handlers ------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        self._tenant(request)
        return web.json_response({"object": "list", "data": [self._model(m) for m in self._model_ids()]})

    async def get_model(self, request: web.Request) -> web.Response:
        self._tenant(request)
        model = request.match_info["model"]
        if model not in self._model_ids():
            raise NotFound(f"model: {model!r} is not served here")
        return web.json_response(self._model(model))

    def _model_ids(self) -> list[str]:
        return [fmt.AUTO_MODEL, *self._catalog.models]

    def _model(self, model: str) -> dict[str, Any]:
        owner = "costmesh" if model == fmt.AUTO_MODEL else self._catalog.models[model].provider
        return {"id": model, "object": "model", "created": 0, "owned_by": owner}

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        tenant = self._tenant(request)
        body = _json_body(await request.read())
        chat = fmt.parse_chat_request(body, self._catalog)
        chat.request.tenant_id = tenant
        chat.request.request_id = chat.request.request_id or uuid.uuid4().hex
        deadline = _deadline(request)
        span = trace.get_current_span()
        span.set_attribute("gen_ai.request.model", chat.model)
        if chat.stream:
            return await self._stream(request, chat, deadline)
        response = await self._pipeline.complete(chat.request, deadline)
        return web.json_response(fmt.completion_body(chat, response), headers=fmt.extra_headers(response))

    async def _stream(self, request: web.Request, chat: fmt.ChatRequest, deadline: float | None) -> web.StreamResponse:
        events = aiter(self._pipeline.stream(chat.request, deadline))
        try:
            # The first event comes after validation and the cache lookup: errors up to here
            # still get their own HTTP status.
            first = await anext(events)
            request_id = chat.request.request_id
            created = int(time.time())
            response = web.StreamResponse(status=200, headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-costmesh-request-id": request_id,
            })
            event: gw.StreamCompleteResponse | None = first
            try:
                await response.prepare(request)
                await _send(response, fmt.chunk(request_id, chat.model, created, {"role": "assistant", "content": ""}))
                try:
                    while event is not None:
                        if event.WhichOneof("event") == "text_delta":
                            if event.text_delta:
                                await _send(response, fmt.chunk(request_id, chat.model, created,
                                                                {"content": event.text_delta}))
                        else:
                            await self._send_final(response, chat, event.final, created)
                        event = await anext(events, None)
                except ConnectionError:
                    raise
                except Exception as exc:  # noqa: BLE001 - after the headers, errors travel as an SSE event
                    status, body, _ = http_error(exc)
                    if status >= 500 and not isinstance(exc, CostmeshError):
                        log.error("stream failed", **error_fields(exc))
                    await _send(response, body)
                await response.write(b"data: [DONE]\n\n")
                await response.write_eof()
            except ConnectionError:  # the client went away (before the headers too): one line, no traceback
                log.info("stream client disconnected", request_id=request_id)
            return response
        finally:
            await events.aclose()

    async def _send_final(self, response: web.StreamResponse, chat: fmt.ChatRequest,
                          final: gw.CompleteResponse, created: int) -> None:
        last = fmt.chunk(final.request_id, final.model or chat.model, created, {}, fmt.finish_reason(final))
        last["costmesh"] = fmt.extras(final)
        await _send(response, last)
        if chat.include_usage:
            usage_chunk = fmt.chunk(final.request_id, final.model or chat.model, created, {})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = fmt.usage(final)
            await _send(response, usage_chunk)


async def _send(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode())


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _json_body(raw: bytes) -> Any:
    """The body as JSON; too deep a nesting, a huge number or NaN is a 400 like any bad JSON."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidRequest(f"body: JSON nested deeper than {fmt.MAX_JSON_DEPTH} levels") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise InvalidRequest("body: not valid JSON") from None


def _no_constant(name: str) -> None:
    raise InvalidRequest(f"body: {name} is not valid JSON")


def _error_response(exc: BaseException) -> web.Response:
    status, body, headers = http_error(exc)
    if not isinstance(exc, CostmeshError):
        log.error("unhandled error", **error_fields(exc))
    trace.get_current_span().set_attribute("costmesh.error", type(exc).__name__)
    return _json(status, body, headers)


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
