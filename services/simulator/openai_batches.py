"""OpenAI Files (purpose "batch") and Batch API: upload, create, retrieve, cancel, output files.

Limits as documented: an input file of at most 50,000 requests and 200 MB, one model per
file, every line `{"custom_id", "method": "POST", "url": <endpoint>, "body"}`, and the "24h"
completion window. A file that breaks them makes a `failed` batch with `errors`, as upstream.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from costmesh.services.simulator.batch_store import WINDOW_S, SimBatch, SimFile
from costmesh.services.simulator.errors import ApiError, invalid, openai_response
from costmesh.services.simulator.gate import OPENAI_NO_KEY, api_key, json_body
from costmesh.services.simulator.openai_api import answer, completion_body
from costmesh.services.simulator.openai_request import parse_chat_request
from costmesh.services.simulator.state import STATE_KEY, SimState

ENDPOINT = "/v1/chat/completions"
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
WINDOW = "24h"


# -- files ---------------------------------------------------------------------------------------


async def upload_file(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        key = api_key(request, state, OPENAI_NO_KEY)
        form = await request.post()
        purpose, upload = form.get("purpose"), form.get("file")
        if not isinstance(purpose, str) or not purpose:
            raise invalid("Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter")
        if upload is None or isinstance(upload, str):
            raise invalid("Missing required parameter: 'file'.", "file", "missing_required_parameter")
        content = upload.file.read()
        if purpose == "batch" and len(content) > MAX_FILE_BYTES:
            raise invalid(f"File is too large: {len(content)} bytes; batch input files may be at most 200 MB.", "file")
        sim_file = state.batches.add_file(key, upload.filename or "upload.jsonl", purpose, content)
        state.stats.request("openai.files.create", None)
        return web.json_response(_file(sim_file))
    except ApiError as error:
        return openai_response(error)


async def retrieve_file(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        return web.json_response(_file(_owned_file(request, state)))
    except ApiError as error:
        return openai_response(error)


async def file_content(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        return web.Response(body=_owned_file(request, state).content, content_type="application/octet-stream")
    except ApiError as error:
        return openai_response(error)


def _owned_file(request: web.Request, state: SimState) -> SimFile:
    key = api_key(request, state, OPENAI_NO_KEY)
    sim_file = state.batches.file(key, request.match_info["file_id"])
    if sim_file is None:
        raise ApiError(404, f"No such File object: {request.match_info['file_id']}", param="id")
    return sim_file


def _file(sim_file: SimFile) -> dict[str, Any]:
    return {
        "id": sim_file.id,
        "object": "file",
        "bytes": len(sim_file.content),
        "created_at": sim_file.created_at,
        "filename": sim_file.filename,
        "purpose": sim_file.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


# -- batches -------------------------------------------------------------------------------------


async def create_batch(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        key = api_key(request, state, OPENAI_NO_KEY)
        body = await json_body(request)
        state.stats.request("openai.batches.create", None)
        endpoint = body.get("endpoint")
        if endpoint != ENDPOINT:
            raise invalid(f"Invalid value for 'endpoint': the simulator supports {ENDPOINT!r}.", "endpoint")
        if body.get("completion_window") != WINDOW:
            raise invalid("Invalid value for 'completion_window': supported values are: '24h'.", "completion_window")
        file_id = body.get("input_file_id")
        sim_file = state.batches.file(key, file_id) if isinstance(file_id, str) else None
        if sim_file is None:
            raise ApiError(404, f"No such File object: {file_id}", param="input_file_id")
        if sim_file.purpose != "batch":
            raise invalid("The input file must have purpose 'batch'.", "input_file_id")
        items, errors = _lines(sim_file.content)
        meta = {"input_file_id": file_id, "metadata": body.get("metadata"), "errors": errors}
        batch = state.batches.create("batch_", key, [] if errors else items, **meta)
        if errors:
            batch.status, batch.ended_at = "failed", time.time()
        state.log.info("openai batch created", batch=batch.id, requests=len(items), failed=bool(errors))
        return web.json_response(_batch(batch))
    except ApiError as error:
        return openai_response(error)


async def retrieve_batch(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        return web.json_response(_batch(_settled(request, state)))
    except ApiError as error:
        return openai_response(error)


async def cancel_batch(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        batch = _owned(request, state)
        state.batches.cancel(batch)
        return web.json_response(_batch(batch))
    except ApiError as error:
        return openai_response(error)


def _lines(content: bytes) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """The requests of an input file, or the errors that fail the batch."""
    items: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    models: set[str] = set()
    for n, raw in enumerate(content.decode("utf-8", errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            return [], [_error("invalid_json_line", f"Line {n} is not valid JSON.", n)]
        custom_id = line.get("custom_id") if isinstance(line, dict) else None
        if not isinstance(custom_id, str) or not custom_id:
            return [], [_error("missing_required_parameter", f"Line {n}: 'custom_id' is required.", n)]
        if custom_id in seen:
            return [], [_error("duplicate_custom_id", f"Line {n}: custom_id {custom_id!r} is not unique.", n)]
        if line.get("method") != "POST" or line.get("url") != ENDPOINT or not isinstance(line.get("body"), dict):
            return [], [_error("invalid_request", f"Line {n}: expected method POST, url {ENDPOINT} and a body.", n)]
        seen.add(custom_id)
        models.add(str(line["body"].get("model")))
        items.append((custom_id, line["body"]))
    if not items:
        return [], [_error("empty_file", "The input file has no requests.", None)]
    if len(items) > MAX_REQUESTS:
        return [], [
            _error("too_many_requests", f"The file has {len(items)} requests; the limit is {MAX_REQUESTS}.", None)
        ]
    if len(models) > 1:
        return [], [_error("mismatched_model", "Every request of a batch file must use the same model.", None)]
    return items, []


def _error(code: str, message: str, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


def _owned(request: web.Request, state: SimState) -> SimBatch:
    key = api_key(request, state, OPENAI_NO_KEY)
    batch = state.batches.get(key, request.match_info["batch_id"])
    if batch is None:
        raise ApiError(404, f"No such Batch object: {request.match_info['batch_id']}", param="id")
    return batch


def _settled(request: web.Request, state: SimState) -> SimBatch:
    batch = _owned(request, state)
    if batch.status == "failed":
        return batch
    was_ended = batch.status == "ended"
    state.batches.settle(batch, lambda cid, body: _run(state, batch.owner, body))
    if batch.status == "ended" and not was_ended:
        _write_outputs(state, batch)
    return batch


def _run(state: SimState, key: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    try:
        if body.get("stream"):
            raise invalid("Streaming is not supported in the Batch API.", "stream")
        parsed = parse_chat_request(body, state.schemas)
        completion, usage = answer(state, key, parsed)
        response = completion_body(f"chatcmpl-{uuid.uuid4().hex[:29]}", parsed.model, completion, usage)
        response["service_tier"] = "batch"
        return "succeeded", {"status_code": 200, "body": response}
    except ApiError as error:
        detail = {"message": error.message, "type": "invalid_request_error", "param": error.param, "code": error.code}
        return "errored", {"status_code": error.status, "body": {"error": detail}}


def _write_outputs(state: SimState, batch: SimBatch) -> None:
    """The output file (answers) and the error file (errored, expired or cancelled requests)."""
    output, errors = [], []
    for outcome in batch.outcomes:
        line: dict[str, Any] = {"id": f"batch_req_{uuid.uuid4().hex[:24]}", "custom_id": outcome.custom_id}
        if outcome.kind == "succeeded":
            output.append({**line, "response": {**outcome.payload, "request_id": f"req_{uuid.uuid4().hex}"},
                           "error": None})
        elif outcome.kind == "errored":
            errors.append({**line, "response": {**outcome.payload, "request_id": f"req_{uuid.uuid4().hex}"},
                           "error": None})
        else:
            code = "batch_expired" if outcome.kind == "expired" else "batch_cancelled"
            message = (
                "This request could not be executed before the completion window expired."
                if outcome.kind == "expired"
                else "This request was not executed because the batch was cancelled."
            )
            errors.append({**line, "response": None, "error": {"code": code, "message": message}})
    for kind, lines in (("output_file_id", output), ("error_file_id", errors)):
        if lines:
            content = "".join(json.dumps(x) + "\n" for x in lines).encode()
            batch.extra[kind] = state.batches.add_file(
                batch.owner, f"{batch.id}_{kind}.jsonl", "batch_output", content
            ).id


STATUS = {"canceling": "cancelling"}


def _batch(batch: SimBatch) -> dict[str, Any]:
    created = int(batch.created_at)
    ended = int(batch.ended_at) if batch.ended_at else None
    kinds = {o.kind for o in batch.outcomes}
    if batch.status == "ended":
        status = "cancelled" if "canceled" in kinds else "expired" if "expired" in kinds else "completed"
    else:
        status = STATUS.get(batch.status, batch.status)
    errors = batch.extra.get("errors")
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": ENDPOINT,
        "errors": {"object": "list", "data": errors} if errors else None,
        "input_file_id": batch.extra.get("input_file_id"),
        "completion_window": WINDOW,
        "status": status,
        "output_file_id": batch.extra.get("output_file_id"),
        "error_file_id": batch.extra.get("error_file_id"),
        "created_at": created,
        "in_progress_at": created if status != "failed" else None,
        "expires_at": created + int(WINDOW_S),
        "finalizing_at": ended if status == "completed" else None,
        "completed_at": ended if status == "completed" else None,
        "failed_at": ended if status == "failed" else None,
        "expired_at": ended if status == "expired" else None,
        "cancelling_at": int(batch.cancel_requested_at) if batch.cancel_requested_at else None,
        "cancelled_at": ended if status == "cancelled" else None,
        "request_counts": {
            "total": len(batch.items),
            "completed": batch.count("succeeded"),
            "failed": len(batch.outcomes) - batch.count("succeeded"),
        },
        "metadata": batch.extra.get("metadata"),
    }
