"""Anthropic Message Batches API: create, retrieve, cancel, results (JSONL).

Limits as documented: 1 to 100,000 requests per batch (256 MB is the body limit upstream),
`custom_id` of 1-64 letters, digits, `-` or `_`, unique within the batch. Each request's
`params` are checked when the batch runs: a bad one becomes an `errored` result.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web

from costmesh.services.simulator.anthropic_api import answer, message_body
from costmesh.services.simulator.anthropic_request import parse_messages_request
from costmesh.services.simulator.batch_store import WINDOW_S, SimBatch, rfc3339
from costmesh.services.simulator.errors import ANTHROPIC_TYPES, ApiError, anthropic_response, invalid
from costmesh.services.simulator.gate import ANTHROPIC_NO_KEY, api_key, json_body
from costmesh.services.simulator.state import STATE_KEY, SimState

MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


async def create(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        key = api_key(request, state, ANTHROPIC_NO_KEY)
        body = await json_body(request)
        state.stats.request("anthropic.batches.create", None)
        items = _items(body.get("requests"))
        batch = state.batches.create("msgbatch_", key, items)
        state.log.info("anthropic batch created", batch=batch.id, requests=len(items))
        return web.json_response(_batch(request, batch))
    except ApiError as error:
        return anthropic_response(error)


async def retrieve(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        batch = _settled(request, state)
        return web.json_response(_batch(request, batch))
    except ApiError as error:
        return anthropic_response(error)


async def cancel(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        batch = _owned(request, state)
        state.batches.cancel(batch)
        return web.json_response(_batch(request, batch))
    except ApiError as error:
        return anthropic_response(error)


async def results(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        batch = _settled(request, state)
        if batch.status != "ended":
            raise ApiError(400, f"Message Batch {batch.id} has not yet ended; results are available once it has.")
        lines = [
            json.dumps({"custom_id": o.custom_id, "result": {"type": o.kind, **o.payload}}) for o in batch.outcomes
        ]
        return web.Response(body=("\n".join(lines) + "\n").encode(), content_type="application/binary")
    except ApiError as error:
        return anthropic_response(error)


def _items(requests: Any) -> list[tuple[str, dict[str, Any]]]:
    if requests is None:
        raise invalid("requests: Field required")
    if not isinstance(requests, list):
        raise invalid("requests: Input should be a valid list")
    if not requests:
        raise invalid("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > MAX_REQUESTS:
        raise invalid(f"requests: List should have at most {MAX_REQUESTS} items after validation, not {len(requests)}")
    items, seen = [], set()
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            raise invalid(f"requests.{i}: Input should be a valid dictionary")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            raise invalid(f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if custom_id in seen:
            raise invalid(f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}; each must be unique")
        seen.add(custom_id)
        params = item.get("params")
        if not isinstance(params, dict):
            raise invalid(f"requests.{i}.params: Field required")
        items.append((custom_id, params))
    return items


def _owned(request: web.Request, state: SimState) -> SimBatch:
    key = api_key(request, state, ANTHROPIC_NO_KEY)
    batch = state.batches.get(key, request.match_info["batch_id"])
    if batch is None:
        raise ApiError(404, f"message_batch_id: {request.match_info['batch_id']} not found")
    return batch


def _settled(request: web.Request, state: SimState) -> SimBatch:
    batch = _owned(request, state)
    state.batches.settle(batch, lambda cid, params: _run(state, batch.owner, params))
    return batch


def _run(state: SimState, key: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One request of a batch, answered like `messages.create` (streaming is refused in batches)."""
    try:
        if params.get("stream"):
            raise invalid("stream: streaming is not supported in Message Batches")
        parsed = parse_messages_request(params, state.counter, state.schemas)
        usage, completion = answer(state, key, parsed)
        message = message_body(f"msg_{uuid.uuid4().hex[:24]}", parsed.model, completion, usage)
        message["usage"]["service_tier"] = "batch"
        return "succeeded", {"message": message}
    except ApiError as error:
        kind = ANTHROPIC_TYPES.get(error.status, "api_error")
        return "errored", {"error": {"type": "error", "error": {"type": kind, "message": error.message}}}


def _batch(request: web.Request, batch: SimBatch) -> dict[str, Any]:
    ended = batch.status == "ended"
    base = f"{request.scheme}://{request.host}"
    counts = {kind: batch.count(kind) for kind in ("succeeded", "errored", "canceled", "expired")}
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": batch.status,
        "request_counts": {"processing": 0 if ended else len(batch.items), **counts},
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.created_at + WINDOW_S),
        "ended_at": rfc3339(batch.ended_at),
        "cancel_initiated_at": rfc3339(batch.cancel_requested_at),
        "archived_at": None,
        "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if ended else None,
    }
