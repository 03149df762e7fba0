"""Server interceptor: one access-log line per call, and costmesh errors turned into gRPC
statuses through the one table in `status`. Runs inside the OpenTelemetry server span, so
its log lines carry the trace id."""

from __future__ import annotations

import time

import grpc
import structlog

from costmesh.errors import CostmeshError
from costmesh.observability.handler_wrapping import HandlerWrappingInterceptor
from costmesh.rpc.status import code_for, to_status

log = structlog.get_logger()


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if not isinstance(exc, CostmeshError):
        log.exception("unhandled error", error=repr(exc))
    await context.abort_with_status(to_status(exc))


def _log_call(method: str, started: float, code: grpc.StatusCode, error: BaseException | None = None) -> None:
    fields = {"method": method, "code": code.name, "duration_ms": round((time.perf_counter() - started) * 1000, 2)}
    if error is not None:
        fields["error"] = str(error) if isinstance(error, CostmeshError) else type(error).__name__
    log.info("rpc", **fields)


def _wrap_unary(method: str, behavior):
    async def handler(request, context):
        started = time.perf_counter()
        try:
            response = await behavior(request, context)
        except grpc.aio.AbortError:
            _log_call(method, started, context.code() or grpc.StatusCode.UNKNOWN)
            raise
        except Exception as exc:
            _log_call(method, started, code_for(exc), exc)
            await _abort(context, exc)
        else:
            _log_call(method, started, grpc.StatusCode.OK)
            return response

    return handler


def _wrap_stream(method: str, behavior):
    async def handler(request, context):
        started = time.perf_counter()
        try:
            async for item in behavior(request, context):
                yield item
        except grpc.aio.AbortError:
            _log_call(method, started, context.code() or grpc.StatusCode.UNKNOWN)
            raise
        except Exception as exc:
            _log_call(method, started, code_for(exc), exc)
            await _abort(context, exc)
        else:
            _log_call(method, started, grpc.StatusCode.OK)

    return handler


class CallInterceptor(HandlerWrappingInterceptor):
    """Wraps the project's own servicers (coroutines and async generators); health and
    reflection handlers pass through untouched."""
    def wrap_unary(self, method, behavior):
        return _wrap_unary(method, behavior)

    def wrap_stream(self, method, behavior):
        return _wrap_stream(method, behavior)
