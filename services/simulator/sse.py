"""Server-sent events over an aiohttp StreamResponse."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web


async def open_stream(request: web.Request, headers: Mapping[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", **headers},
    )
    await response.prepare(request)
    return response


async def send(response: web.StreamResponse, data: Mapping[str, Any] | str, event: str | None = None) -> None:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    await response.write(f"{head}data: {payload}\n\n".encode())
