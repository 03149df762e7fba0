"""The HTTP app's streams against a scripted pipeline (no mesh): what each API sends when the
answer fails before its first event (an HTTP error in the API's shape) and after it (a last
SSE error event: OpenAI's `data: {"error": ...}` then `[DONE]`, Anthropic's `event: error`)."""

import json

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry.sdk.trace import TracerProvider

from costmesh import errors
from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import load_catalog
from costmesh.gateway.auth import Authenticator
from costmesh.gateway.http.app import HttpApi


class ScriptedPipeline:
    """Streams `events`, then raises `error` (if any); `complete` raises `error` at once."""

    def __init__(self, events, error=None):
        self.events, self.error = events, error

    async def stream(self, request, deadline_s=None):
        for event in self.events:
            yield event
        if self.error is not None:
            raise self.error

    async def complete(self, request, deadline_s=None):
        raise self.error


@pytest.fixture
async def serve():
    runners = []

    async def start(pipeline) -> str:
        api = HttpApi(pipeline, Authenticator(None), load_catalog(), TracerProvider().get_tracer("t"), 1 << 20)
        runner = web.AppRunner(api.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/v1"

    yield start
    for runner in runners:
        await runner.cleanup()


TOOL_CALL = gw.StreamCompleteResponse(tool_call_delta=common.ToolCallDelta(
    index=0, id="call_1", name="get_time", arguments_delta="{}"))
CHAT = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "auto", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def post(url: str, body: dict) -> tuple[int, str, CIMultiDict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers={"x-costmesh-tenant": "t"}) as reply:
            return reply.status, await reply.text(), CIMultiDict(reply.headers)


async def test_a_failure_mid_stream_is_the_last_event_of_each_api(serve):
    url = await serve(ScriptedPipeline([gw.StreamCompleteResponse(text_delta="Hel"), TOOL_CALL],
                                       errors.UpstreamError("the provider went away")))
    status, text, _ = await post(f"{url}/chat/completions", CHAT)
    lines = [line.removeprefix("data: ") for line in text.split("\n\n") if line]
    assert status == 200 and lines[-1] == "[DONE]"
    assert json.loads(lines[-2])["error"]["type"] == "api_error"
    assert json.loads(lines[2])["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_1"

    status, text, _ = await post(f"{url}/messages", MESSAGES)
    frames = [frame.split("\n") for frame in text.split("\n\n") if frame]
    assert status == 200 and frames[-1][0] == "event: error"
    body = json.loads(frames[-1][1].removeprefix("data: "))
    assert body == {"type": "error", "error": {"type": "api_error", "message": "the provider went away"}}
    assert [f[0] for f in frames[:3]] == ["event: message_start", "event: ping", "event: content_block_start"]


async def test_a_failure_before_the_first_event_is_an_http_error_in_each_apis_shape(serve):
    url = await serve(ScriptedPipeline([], errors.InvalidRequest("messages[1].content: the prompt is empty")))
    status, text, _ = await post(f"{url}/chat/completions", CHAT)
    assert status == 400 and json.loads(text)["error"]["param"] == "messages[1].content"
    status, text, _ = await post(f"{url}/messages", {**MESSAGES, "system": "Be brief."})
    assert status == 400
    assert json.loads(text)["error"] == {"type": "invalid_request_error",
                                         "message": "messages.0.content: the prompt is empty"}
    status, text, headers = await post(f"{url}/messages", {**MESSAGES, "stream": False, "system": "Be brief."})
    assert status == 400 and json.loads(text)["error"]["message"].startswith("messages.0.content: ")

    url = await serve(ScriptedPipeline([], errors.RateLimited("slow down", 1.5)))
    status, text, headers = await post(f"{url}/messages", MESSAGES)
    assert status == 429 and headers["retry-after"] == "2"
    assert json.loads(text)["error"]["type"] == "rate_limit_error"
    status, text, _ = await post(f"{url}/messages/batches", MESSAGES)
    assert status == 404 and json.loads(text)["error"]["type"] == "not_found_error"
