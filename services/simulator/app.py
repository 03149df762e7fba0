"""The aiohttp application: routes and state."""

from __future__ import annotations

from aiohttp import web

from costmesh.services.simulator import (
    admin,
    anthropic_api,
    anthropic_batches,
    models_api,
    openai_api,
    openai_batches,
)
from costmesh.services.simulator.config import SimulatorConfig
from costmesh.services.simulator.state import STATE_KEY, SimState

MAX_BODY_BYTES = 64 * 1024 * 1024


def create_app(config: SimulatorConfig | None = None, state: SimState | None = None) -> web.Application:
    """The simulator app for `config` (defaults when None); `state` lets a caller share or inspect one."""
    config = config or SimulatorConfig()
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = state or SimState.build(config)
    app.add_routes(
        [
            web.post("/v1/messages", anthropic_api.create_message),
            web.post("/v1/messages/count_tokens", anthropic_api.count_tokens),
            web.post("/v1/messages/batches", anthropic_batches.create),
            web.get("/v1/messages/batches/{batch_id}", anthropic_batches.retrieve),
            web.post("/v1/messages/batches/{batch_id}/cancel", anthropic_batches.cancel),
            web.get("/v1/messages/batches/{batch_id}/results", anthropic_batches.results),
            web.post("/v1/chat/completions", openai_api.chat_completions),
            web.post("/v1/files", openai_batches.upload_file),
            web.get("/v1/files/{file_id}", openai_batches.retrieve_file),
            web.get("/v1/files/{file_id}/content", openai_batches.file_content),
            web.post("/v1/batches", openai_batches.create_batch),
            web.get("/v1/batches/{batch_id}", openai_batches.retrieve_batch),
            web.post("/v1/batches/{batch_id}/cancel", openai_batches.cancel_batch),
            web.get("/v1/models", models_api.list_models),
            web.get("/v1/models/{model}", models_api.get_model),
            web.post("/_sim/faults", admin.add_fault),
            web.get("/_sim/faults", admin.list_faults),
            web.post("/_sim/reset", admin.reset),
            web.get("/_sim/stats", admin.stats),
            web.post("/_sim/clock", admin.advance_clock),
            web.get("/_sim/health", admin.health),
        ]
    )
    return app
