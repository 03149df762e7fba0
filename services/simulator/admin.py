"""Admin endpoints for tests and benchmarks, under /_sim (no auth).

POST /_sim/faults  {"status": 429|500|503|529|"timeout", "model"?: id, "provider"?: name,
                    "count"?: N, "rate"?: p, "retry_after"?: s}   fail matching requests
GET  /_sim/faults  the rules still armed
POST /_sim/reset   clear prompt caches, fault rules, stats and clock moves
GET  /_sim/stats   request and token counts per model and endpoint
POST /_sim/clock   {"advance_s": s}   move the cache clock forward (TTL tests)
GET  /_sim/health  {"status": "ok", "books": prompts loaded}
"""

from __future__ import annotations

import json

from aiohttp import web

from costmesh.services.simulator.errors import ApiError, invalid
from costmesh.services.simulator.faults import FaultRule
from costmesh.services.simulator.gate import json_body
from costmesh.services.simulator.state import STATE_KEY


async def add_fault(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        rule = FaultRule.parse(await json_body(request))
    except ApiError as error:
        return _error(error)
    if rule.model is not None and rule.model not in state.catalog.models:
        return _error(invalid(f"unknown model {rule.model!r}", "model"))
    state.faults.add(rule)
    state.log.info("fault rule armed", **rule.as_dict())
    return web.json_response({"armed": rule.as_dict(), "rules": len(state.faults.rules)})


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"rules": [r.as_dict() for r in request.app[STATE_KEY].faults.rules]})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"reset": True})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats.snapshot())


async def advance_clock(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await json_body(request)
    except ApiError as error:
        return _error(error)
    seconds = body.get("advance_s")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return _error(invalid("advance_s must be a non-negative number of seconds", "advance_s"))
    state.clock.advance(float(seconds))
    return web.json_response({"offset_s": state.clock.offset})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "books": len(request.app[STATE_KEY].books)})


def _error(error: ApiError) -> web.Response:
    return web.Response(status=error.status, text=json.dumps({"error": error.message}), content_type="application/json")
