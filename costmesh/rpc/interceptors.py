"""Server interceptor: one access-log line per call, and costmesh errors turned into gRPC
statuses through the one table in `status`. Runs inside the OpenTelemetry server span, so
its log lines carry the trace id.

A request that does not parse is refused as `INVALID_ARGUMENT` naming the field (`decode`);
a call its client cancelled is one `rpc` line with code `CANCELLED`; an unexpected error is
one line with its type and where it was raised (`error_fields`), never its message or a
traceback, which could carry the prompt.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import structlog

from costmesh.errors import CostmeshError, InvalidRequest, LimitExceeded, Overloaded, RateLimited
from costmesh.observability.error_fields import error_fields
from costmesh.observability.handler_wrapping import HandlerWrappingInterceptor
from costmesh.rpc.decode import Undecodable, lenient
from costmesh.rpc.status import code_for, to_status

log = structlog.get_logger()


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if not isinstance(exc, CostmeshError):
        log.error("unhandled error", **error_fields(exc))
    await context.abort_with_status(to_status(exc))


# Codes that say something upstream (a provider, a peer service, Redis) failed, or we did: their
# `rpc` line is a warning. A caller's own mistake (INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND,
# a tenant over its limit, a cancelled call) stays at info.
UPSTREAM_FAILURES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                               grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})


def _upstream_failure(code: grpc.StatusCode, error: BaseException | None) -> bool:
    if code in UPSTREAM_FAILURES:
        return True
    # an upstream's 429 (RESOURCE_EXHAUSTED); not a tenant over its own limit, nor a busy peer shedding load
    return isinstance(error, RateLimited) and not isinstance(error, (LimitExceeded, Overloaded))


def _log_call(method: str, started: float, code: grpc.StatusCode, error: BaseException | None = None) -> None:
    fields = {"method": method, "code": code.name, "duration_ms": round((time.perf_counter() - started) * 1000, 2)}
    if error is not None:
        fields["error"] = str(error) if isinstance(error, CostmeshError) else type(error).__name__
    (log.warning if _upstream_failure(code, error) else log.info)("rpc", **fields)


def _checked(request):
    if isinstance(request, Undecodable):
        raise InvalidRequest(request.problem)
    return request


def _wrap_unary(method: str, behavior):
    async def handler(request, context):
        started = time.perf_counter()
        try:
            response = await behavior(_checked(request), context)
        except grpc.aio.AbortError:
            _log_call(method, started, context.code() or grpc.StatusCode.UNKNOWN)
            raise
        except asyncio.CancelledError:
            _log_call(method, started, grpc.StatusCode.CANCELLED)
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
            async for item in behavior(_checked(request), context):
                yield item
        except grpc.aio.AbortError:
            _log_call(method, started, context.code() or grpc.StatusCode.UNKNOWN)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away: cancelled while waiting upstream, or while grpc wrote the
            # last item (then the stream is closed later by the event loop).
            _log_call(method, started, grpc.StatusCode.CANCELLED)
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

    def wrap_deserializer(self, deserializer):
        return lenient(deserializer)
