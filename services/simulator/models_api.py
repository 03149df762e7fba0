"""GET /v1/models and /v1/models/{id}, in Anthropic's shape when the caller is the Anthropic SDK."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from costmesh.catalog import ModelSpec
from costmesh.services.simulator.errors import ApiError, anthropic_response, openai_response
from costmesh.services.simulator.gate import ANTHROPIC_NO_KEY, OPENAI_NO_KEY, api_key
from costmesh.services.simulator.state import STATE_KEY

CREATED = 1_735_689_600  # 2025-01-01T00:00:00Z
CREATED_ISO = "2025-01-01T00:00:00Z"


def _is_anthropic(request: web.Request) -> bool:
    return "anthropic-version" in request.headers


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    anthropic = _is_anthropic(request)
    try:
        api_key(request, state, ANTHROPIC_NO_KEY if anthropic else OPENAI_NO_KEY)
    except ApiError as error:
        return anthropic_response(error) if anthropic else openai_response(error)
    specs = [s for s in state.catalog.models.values() if (s.provider == "anthropic") == anthropic]
    if anthropic:
        data = [_anthropic_model(s) for s in specs]
        return web.json_response(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )
    return web.json_response({"object": "list", "data": [_openai_model(s) for s in specs]})


async def get_model(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    anthropic = _is_anthropic(request)
    model_id = request.match_info["model"]
    try:
        if anthropic:
            api_key(request, state, ANTHROPIC_NO_KEY)
            return web.json_response(_anthropic_model(state.anthropic_model(model_id)))
        api_key(request, state, OPENAI_NO_KEY)
        return web.json_response(_openai_model(state.openai_model(model_id)))
    except ApiError as error:
        return anthropic_response(error) if anthropic else openai_response(error)


def _anthropic_model(spec: ModelSpec) -> dict[str, Any]:
    return {"type": "model", "id": spec.id, "display_name": spec.id, "created_at": CREATED_ISO}


def _openai_model(spec: ModelSpec) -> dict[str, Any]:
    return {"id": spec.id, "object": "model", "created": CREATED, "owned_by": spec.provider}
