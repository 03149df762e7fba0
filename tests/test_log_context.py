"""The request's ids on its log lines (#21), piece by piece: the HTTP API's per-request scope, the
tenant carried downstream as `x-tenant-id` (read only by the mesh's own services), the ids a
queued cache store takes along, and the level of an `rpc` line (an upstream failure: warning).
The whole mesh's lines are checked in test_serve_mesh.py."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import structlog

from costmesh.api.cache.v1 import cache_pb2
from costmesh.api.classifier.v1 import classifier_pb2
from costmesh.errors import InvalidRequest, LimitExceeded, Overloaded, RateLimited, UpstreamError
from costmesh.gateway.store_queue import StoreQueue
from costmesh.observability import log_context
from costmesh.rpc import interceptors


class Context:
    def __init__(self, metadata=()):
        self._metadata = tuple(metadata)

    def invocation_metadata(self):
        return self._metadata


def test_an_http_request_scope_unbinds_what_it_bound():
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service_wide="kept")
    with log_context.request_scope():
        log_context.bind_request(request_id="r1", tenant_id="acme")
        assert log_context.request_fields() == {"request_id": "r1", "tenant_id": "acme"}
    assert structlog.contextvars.get_contextvars() == {"service_wide": "kept"}  # the next request starts clean
    structlog.contextvars.clear_contextvars()


def test_only_the_mesh_services_log_the_tenant_a_caller_sent():
    request = classifier_pb2.ClassifyRequest()  # names no tenant
    context = Context([("x-request-id", "r2"), ("x-tenant-id", "acme")])
    assert log_context._bound(request, context, trust_tenant_header=True) == {"request_id": "r2", "tenant_id": "acme"}
    assert log_context._bound(request, context, trust_tenant_header=False) == {"request_id": "r2"}  # the gateway
    bad = Context([("x-tenant-id", "a\x00b")])
    assert "tenant_id" not in log_context._bound(classifier_pb2.ClassifyRequest(), bad, trust_tenant_header=True)


def test_the_tenant_and_request_id_travel_downstream():
    structlog.contextvars.clear_contextvars()
    with log_context.request_scope():
        log_context.bind_request(request_id="r3", tenant_id="acme")
        details = grpc.aio.ClientCallDetails("/costmesh.classifier.v1.ClassifierService/Classify", 1.0, None, None,
                                             None)
        sent = dict(log_context._with_request_id(details).metadata)
    assert sent == {"x-request-id": "r3", "x-tenant-id": "acme"}


async def test_a_queued_store_carries_its_requests_ids():
    seen = []

    async def store(request, timeout):
        seen.append(log_context.request_fields())
        return cache_pb2.StoreResponse(stored=True)

    queue = StoreQueue(store, timeout_s=1.0)
    with log_context.request_scope():
        log_context.bind_request(request_id="r4", tenant_id="acme")
        queue.submit(cache_pb2.StoreRequest(scope=cache_pb2.Scope(tenant_id="acme")))
    await asyncio.wait_for(queue.drain(), 5)
    await queue.aclose()
    assert seen == [{"request_id": "r4", "tenant_id": "acme"}]


@pytest.mark.parametrize(("code", "error", "level"), [
    (grpc.StatusCode.UNAVAILABLE, UpstreamError("provider 500"), "warning"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, None, "warning"),
    (grpc.StatusCode.INTERNAL, RuntimeError("bug"), "warning"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, RateLimited("upstream 429", 2.0), "warning"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, LimitExceeded("tenant over its budget", 60.0), "info"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, Overloaded("cache busy"), "info"),
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidRequest("messages: required"), "info"),
    (grpc.StatusCode.CANCELLED, None, "info"),
    (grpc.StatusCode.OK, None, "info"),
])
def test_an_upstream_failure_is_logged_at_warning(monkeypatch, code, error, level):
    logged = []

    class Log:  # the module's logger (structlog caches it on first use: patched, not captured)
        def info(self, event, **fields):
            logged.append((event, "info"))

        def warning(self, event, **fields):
            logged.append((event, "warning"))

    monkeypatch.setattr(interceptors, "log", Log())
    interceptors._log_call("/costmesh.router.v1.RouterService/Execute", 0.0, code, error)
    assert logged == [("rpc", level)]
