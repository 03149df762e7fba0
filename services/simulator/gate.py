"""What every API request passes first: auth, a JSON body, and fault injection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from costmesh.catalog import ModelSpec
from costmesh.services.simulator.errors import ApiError, invalid
from costmesh.services.simulator.state import SimState

ANTHROPIC_NO_KEY = "x-api-key header is required"
OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


def api_key(request: web.Request, state: SimState, missing_message: str) -> str:
    """The caller's key (any value is accepted); 401 when there is none."""
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else ""
    if not key and state.config.require_auth:
        raise ApiError(401, missing_message)
    return key


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise invalid("There was an error parsing the body of your request: it is not valid JSON.") from None
    except RecursionError:
        raise invalid("There was an error parsing the body of your request: it is nested too deeply.") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


async def inject_fault(request: web.Request, state: SimState, spec: ModelSpec) -> None:
    """Raise the fault chosen for this request, if any (a timeout holds the request first)."""
    fault = state.faults.pick(spec.id, spec.provider, request.headers)
    if fault is None:
        return
    state.stats.model(spec.id).faults += 1
    state.log.info("fault injected", model=spec.id, fault=fault.kind)
    if fault.kind == "timeout":
        await asyncio.sleep(state.config.timeout_fault_s)
    raise fault.error()
