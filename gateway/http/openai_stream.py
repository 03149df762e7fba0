"""The pipeline's stream events -> OpenAI `chat.completion.chunk` objects, as OpenAI sends them.

The first chunk gives the role (with `content: null` when the answer starts with a tool call,
`""` otherwise); each text delta is a `content` chunk; each tool-call piece a `tool_calls`
chunk (a call's first piece carries index, id, type and name, the next ones more `arguments`);
the last choice chunk has the `finish_reason` and costmesh's extras, and with
`stream_options.include_usage` a final chunk with no choices carries `usage`.
"""

from __future__ import annotations

import time
from typing import Any

from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDelta

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.gateway.http import openai_format as fmt
from costmesh.gateway.http.openai_tools import tool_call_delta_out


class ChunkStream:
    """One streamed answer's chunks; feed it the pipeline's events in order."""

    def __init__(self, chat: fmt.ChatRequest, request_id: str, created: int | None = None):
        self._chat = chat
        self._request_id = request_id
        self._created = created or int(time.time())
        self._started = False
        self._calls_sent: set[int] = set()

    def chunks(self, event: gw.StreamCompleteResponse) -> list[dict[str, Any]]:
        """The chunks of one event, as JSON."""
        return [fmt.wire(chunk) for chunk in self._chunks(event)]

    def _chunks(self, event: gw.StreamCompleteResponse) -> list[ChatCompletionChunk]:
        kind = event.WhichOneof("event")
        out = []
        if not self._started:
            self._started = True
            calls_first = kind == "tool_call_delta" or (kind == "final" and bool(event.final.tool_calls))
            out.append(self._chunk(ChoiceDelta(role="assistant", content=None if calls_first else "")))
        if kind == "text_delta":
            if event.text_delta:
                out.append(self._chunk(ChoiceDelta(content=event.text_delta)))
        elif kind == "tool_call_delta":
            self._calls_sent.add(event.tool_call_delta.index)
            out.append(self._chunk(ChoiceDelta(tool_calls=[tool_call_delta_out(event.tool_call_delta)])))
        elif kind == "final":
            out.extend(self._final(event.final))
        return out

    def _final(self, final: gw.CompleteResponse) -> list[ChatCompletionChunk]:
        out = []
        for i, call in enumerate(final.tool_calls):  # calls the stream did not carry as deltas
            if i not in self._calls_sent:
                delta = common.ToolCallDelta(index=i, id=call.id, name=call.name, arguments_delta=call.arguments_json)
                out.append(self._chunk(ChoiceDelta(tool_calls=[tool_call_delta_out(delta)])))
        request_id, model = final.request_id or self._request_id, final.model or self._chat.model
        out.append(fmt.chunk(request_id, model, self._created, ChoiceDelta(), fmt.finish_reason(final),
                             costmesh=fmt.extras(final)))
        if self._chat.include_usage:
            out.append(fmt.chunk(request_id, model, self._created, usage=fmt.usage(final)))
        return out

    def _chunk(self, delta: ChoiceDelta) -> ChatCompletionChunk:
        return fmt.chunk(self._request_id, self._chat.model, self._created, delta)
