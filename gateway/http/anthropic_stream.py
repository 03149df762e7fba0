"""The pipeline's stream events -> Anthropic Messages API server-sent events, as Anthropic
sends them: `message_start` (and a `ping`), then for each content block `content_block_start`,
its deltas (`text_delta` for text, `input_json_delta` with `partial_json` for a `tool_use`
block) and `content_block_stop`, then `message_delta` (stop reason, usage, costmesh's extras)
and `message_stop`. One block is open at a time: text first, then one block per tool call.

With `model: auto` the model is only known at the end: `message_start` names the model asked
for, and `message_delta`'s `costmesh` object the one that answered (`costmesh.model`).
"""

from __future__ import annotations

from typing import Any

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.gateway.http import anthropic_replies as replies
from costmesh.gateway.http.costmesh_options import extras

Event = tuple[str, dict[str, Any]]  # (the SSE `event:` name, its data)


class MessageEvents:
    """One streamed message's events; feed it the pipeline's events in order."""

    def __init__(self, model: str, request_id: str):
        self._model = model
        self._request_id = request_id
        self._started = False
        self._blocks = 0  # blocks started so far
        self._open: int | None = None  # the block now open
        self._text_block: int | None = None  # the open text block
        self._call_blocks: dict[int, int] = {}  # tool call index -> its block

    def events(self, event: gw.StreamCompleteResponse) -> list[Event]:
        out: list[Event] = []
        if not self._started:
            self._started = True
            out.append(("message_start", {"type": "message_start", "message": {
                "id": replies.message_id(self._request_id), "type": "message", "role": "assistant",
                "model": self._model, "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0},
            }}))
            out.append(("ping", {"type": "ping"}))
        kind = event.WhichOneof("event")
        if kind == "text_delta" and event.text_delta:
            out.extend(self._text(event.text_delta))
        elif kind == "tool_call_delta":
            out.extend(self._call(event.tool_call_delta))
        elif kind == "final":
            out.extend(self._final(event.final))
        return out

    def _text(self, text: str) -> list[Event]:
        out = []
        if self._text_block is None:
            out.extend(self._close())
            self._text_block = self._start({"type": "text", "text": ""}, out)
        out.append(_delta(self._text_block, {"type": "text_delta", "text": text}))
        return out

    def _call(self, delta: common.ToolCallDelta) -> list[Event]:
        out = []
        block = self._call_blocks.get(delta.index)
        if block is None:
            out.extend(self._close())
            block = self._start({"type": "tool_use", "id": delta.id, "name": delta.name, "input": {}}, out)
            self._call_blocks[delta.index] = block
        if delta.arguments_delta:  # a late piece of an earlier call still names its own block
            out.append(_delta(block, {"type": "input_json_delta", "partial_json": delta.arguments_delta}))
        return out

    def _final(self, final: gw.CompleteResponse) -> list[Event]:
        out = []
        for i, call in enumerate(final.tool_calls):  # calls the stream did not carry as deltas
            if i not in self._call_blocks:
                out.extend(self._call(common.ToolCallDelta(index=i, id=call.id, name=call.name,
                                                           arguments_delta=call.arguments_json)))
        out.extend(self._close())
        out.append(("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": replies.stop_reason(final), "stop_sequence": None},
            "usage": replies.usage(final),
            "costmesh": {**extras(final), "model": final.model or self._model},
        }))
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    def _start(self, block: dict[str, Any], out: list[Event]) -> int:
        index = self._blocks
        self._blocks += 1
        self._open = index
        out.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        return index

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        index, self._open, self._text_block = self._open, None, None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]


def _delta(index: int, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
