"""Server-sent events as both APIs frame them: OpenAI's `data: {...}` lines (ending in
`data: [DONE]`), Anthropic's `event: <type>` + `data: {...}` pairs."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

OPENAI_DONE = b"data: [DONE]\n\n"


def data_line(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def named_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def event_stream(headers: dict[str, str]) -> web.StreamResponse:
    return web.StreamResponse(status=200, headers={
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        **headers,
    })
