"""Every field bounded and checked at the edge (issue #19): the inputs that hung a call, made a
500 with a traceback, or were accepted unbounded, through the real gateway (in-process mesh,
real Redis, the simulator) over gRPC and HTTP; property-based fuzzing of the request through
`validate`, the HTTP parser and both wires; the simulator's prompt parsing in linear time."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import subprocess
import sys
import textwrap
import time

import aiohttp
import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider

from costmesh.api.common.v1 import common_pb2 as common
from costmesh.api.gateway.v1 import gateway_pb2 as gw
from costmesh.catalog import load_catalog
from costmesh.errors import InvalidRequest
from costmesh.gateway.http import openai_format as fmt
from costmesh.gateway.validation import Limits, validate
from costmesh.rpc import interceptors
from costmesh.rpc.decode import Undecodable, describe, lenient
from costmesh.services.simulator import start_simulator
from costmesh.tooling.mesh_client import GatewayClient, build_request

from inprocess_mesh import start_inprocess_mesh

COMPLETE = "/costmesh.gateway.v1.GatewayService/Complete"
STREAM = "/costmesh.gateway.v1.GatewayService/StreamComplete"
LIMITS = Limits()
SECRET = "zebra-secret-prompt-7731"  # must never reach a log line


@pytest.fixture(scope="module")
async def simulator():
    sim = await start_simulator(port=0)
    yield sim
    await sim.stop()


@pytest.fixture(scope="module")
async def mesh(redis_url, simulator):
    mesh = await start_inprocess_mesh(redis_url, simulator.url, TracerProvider())
    yield mesh
    await mesh.stop()


@pytest.fixture(scope="module")
async def client(mesh):
    client = GatewayClient(mesh.gateway, mesh.api_key("edge"))
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def raw(mesh):
    """Calls that send bytes as they are: a channel with no serializer."""
    channel = grpc.aio.insecure_channel(mesh.gateway)
    metadata = (("authorization", f"Bearer {mesh.api_key('edge')}"),)

    async def call(method: str, payload: bytes) -> grpc.StatusCode:
        try:
            if method == STREAM:
                async for _ in channel.unary_stream(method)(payload, timeout=20, metadata=metadata):
                    pass
            else:
                await channel.unary_unary(method)(payload, timeout=20, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            call.details = exc.details()
            return exc.code()
        call.details = ""
        return grpc.StatusCode.OK

    yield call
    await channel.close()


def request(prompt: str = "What is 2 + 2?", **fields) -> gw.CompleteRequest:
    built = build_request(prompt, max_tokens=32)
    for name, value in fields.items():
        setattr(built, name, value)
    return built


async def post(mesh, body, headers: dict[str, str] | None = None, raw: bytes | None = None):
    headers = {"Authorization": f"Bearer {mesh.api_key('edge')}", "Content-Type": "application/json",
               **(headers or {})}
    data = raw if raw is not None else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{mesh.http_url}/chat/completions", data=data, headers=headers) as response:
            return response.status, await response.json(content_type=None)


def _nested(value, depth: int):
    for _ in range(depth):
        value = [value]
    return value


def chat(content="What is 2 + 2?", **extra):
    return {"model": "auto", "max_tokens": 32, "messages": [{"role": "user", "content": content}], **extra}


# -- gRPC: request_id never hangs a call ------------------------------------------------------


@pytest.mark.parametrize("request_id", ["ü", "a\nb", "a\x00b", "a b", "x" * 129, "x" * 9_000, "x" * 17_000])
async def test_a_bad_grpc_request_id_is_refused_at_once(client, request_id):
    started = time.perf_counter()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.stub.Complete(request(request_id=request_id), timeout=20)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert error.value.details().startswith("request_id: ")
    assert time.perf_counter() - started < 5  # refused, not a deadline running out

    call = client.stub.StreamComplete(gw.StreamCompleteRequest(request=request(request_id=request_id)), timeout=20)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in call:
            pass
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_good_request_id_is_answered_and_echoed(client):
    reply = await client.stub.Complete(request(request_id="edge-ok.1:a_B"), timeout=30)
    assert reply.request_id == "edge-ok.1:a_B" and reply.text


# -- gRPC: bytes that do not parse -------------------------------------------------------------


async def test_invalid_utf8_over_grpc_is_invalid_argument_naming_the_field(raw):
    payload = request("What is 2 + 2?").SerializeToString().replace(b"2 + 2", b"2 \xff 2")
    assert await raw(COMPLETE, payload) == grpc.StatusCode.INVALID_ARGUMENT
    assert raw.details == "messages[0].content[0].text: not valid UTF-8"
    streamed = gw.StreamCompleteRequest(request=request("What is 2 + 2?")).SerializeToString()
    assert await raw(STREAM, streamed.replace(b"2 + 2", b"2 \xff 2")) == grpc.StatusCode.INVALID_ARGUMENT
    assert raw.details == "request.messages[0].content[0].text: not valid UTF-8"
    nested = gw.StreamCompleteRequest(request=request(session_id="s-\u00e9")).SerializeToString()
    assert await raw(STREAM, nested.replace("\u00e9".encode(), b"\xc3\x28")) == grpc.StatusCode.INVALID_ARGUMENT
    assert raw.details == "request.session_id: not valid UTF-8"


async def test_garbage_bytes_are_invalid_argument(raw):
    assert await raw(COMPLETE, b"\x0a\xff\xff\xff\xff\xff\xff") == grpc.StatusCode.INVALID_ARGUMENT
    assert raw.details == "request: not a valid costmesh.gateway.v1.CompleteRequest message"


def test_decode_finds_the_field_and_passes_good_bytes_through():
    good = request().SerializeToString()
    assert lenient(gw.CompleteRequest.FromString)(good) == gw.CompleteRequest.FromString(good)
    bad = lenient(gw.CompleteRequest.FromString)(request(tenant_id="t\u00e9").SerializeToString()
                                                 .replace("\u00e9".encode(), b"\xe9"))
    assert isinstance(bad, Undecodable) and bad.problem == "tenant_id: not valid UTF-8"
    assert describe(b"\x12\x05\x12", gw.CompleteRequest.DESCRIPTOR).startswith("request: not a valid")


# -- gRPC: every field bounded -----------------------------------------------------------------


def _tags(r, n, size):
    r.cache.tags.extend(f"{i:0{size}d}" for i in range(n))


def _image(r, **fields):
    r.messages[-1].content.add(image=common.Image(**fields))


UNBOUNDED = [
    (lambda r: setattr(r, "session_id", "s" * 1_000_000), "session_id"),
    (lambda r: setattr(r, "session_id", "a\nb"), "session_id"),
    (lambda r: r.sampling.stop.extend(["x"] * 10_000), "sampling.stop"),
    (lambda r: r.sampling.stop.append("x" * 10_000), "sampling.stop[0]"),
    (lambda r: setattr(r.cache, "ttl_seconds", 2**31 - 1), "cache.ttl_seconds"),
    (lambda r: _tags(r, 5_000, 8), "cache.tags"),
    (lambda r: _tags(r, 1, 10_000), "cache.tags[0]"),
    (lambda r: _image(r, media_type="text/x-evil", data=b"\x89PNG"), "messages[0].content[1].image.media_type"),
    (lambda r: _image(r, url="file:///etc/passwd"), "messages[0].content[1].image.url"),
    (lambda r: _image(r, url="https://example.com/cat.png"), "messages[0].content[1].image.url"),
    (lambda r: _image(r, url="data:text/x-evil;base64,aGk="), "messages[0].content[1].image.url"),
    (lambda r: _image(r), "messages[0].content[1].image"),
    (lambda r: setattr(r.routing, "min_tier", 42), "routing.min_tier"),
    (lambda r: setattr(r.routing, "model", "m" * 10_000), "routing.model"),
    (lambda r: setattr(r, "tenant_id", "t" * 10_000), "tenant_id"),
]


@pytest.mark.parametrize(("mutate", "field"), UNBOUNDED)
async def test_unbounded_fields_are_refused_over_grpc(client, mutate, field):
    bad = request()
    mutate(bad)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.stub.Complete(bad, timeout=20)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field + ": "), error.value.details()
    assert len(error.value.details()) < 200  # the value is never echoed back


def test_limits_are_configurable_and_bounds_are_inclusive():
    at_bounds = request(session_id="s" * LIMITS.max_session_id_bytes, request_id="r" * LIMITS.max_request_id_chars)
    at_bounds.tenant_id = "acme"
    at_bounds.cache.ttl_seconds = LIMITS.max_ttl_seconds
    at_bounds.cache.tags.extend(["t" * LIMITS.max_tag_bytes] * LIMITS.max_tags)
    at_bounds.sampling.stop.extend(["s" * LIMITS.max_stop_bytes] * LIMITS.max_stop_sequences)
    at_bounds.messages[0].content.add(image=common.Image(media_type="image/webp", data=b"RIFF"))
    at_bounds.messages[0].content.add(image=common.Image(url="data:image/png;base64,AA=="))
    validate(at_bounds, LIMITS)

    fetched = request(tenant_id="acme")
    fetched.messages[0].content.add(image=common.Image(url="https://example.com/cat.png"))
    with pytest.raises(InvalidRequest, match=r"^messages\[0\]\.content\[1\]\.image\.url: scheme not allowed"):
        validate(fetched, LIMITS)
    from costmesh.config import Env
    configured = Limits.load(Env({"COSTMESH_IMAGE_URL_SCHEMES": "data,https", "COSTMESH_MAX_TTL_S": "60"}))
    validate(fetched, configured)
    assert configured.max_ttl_seconds == 60 and configured.image_url_schemes == ("data", "https")


# -- HTTP: no 500, no traceback, the parameter named -------------------------------------------


HTTP_CASES = [
    (chat(max_tokens=2**40), "max_tokens"),
    (chat(max_completion_tokens=2**31), "max_completion_tokens"),
    (chat(seed=2**70), "seed"),
    (chat(temperature=10**400), "temperature"),
    (chat(costmesh={"cache": {"ttl_seconds": 2**31 - 1}}), "costmesh.cache.ttl_seconds"),
    (chat(costmesh={"cache": {"ttl_seconds": 2**40}}), "costmesh.cache.ttl_seconds"),
    (chat(costmesh={"cache": {"tags": [f"t{i}" for i in range(5_000)]}}), "costmesh.cache.tags"),
    (chat(costmesh={"cache": {"tags": ["x" * 10_000]}}), "costmesh.cache.tags[0]"),
    (chat(costmesh={"session_id": "s" * 1_000_000}), "costmesh.session_id"),
    (chat(costmesh={"request_id": "abc\ndef"}), "costmesh.request_id"),
    (chat(costmesh={"request_id": "ü"}), "costmesh.request_id"),
    (chat(stop=["x" * 10_000]), "stop[0]"),
    (chat(model="m" * 100_000), "model"),
    (chat([{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]),
     "messages[0].content[1].image_url.url"),
    (chat([{"type": "text", "text": "hi"},
           {"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,AA=="}}]),
     "messages[0].content[1].image_url.url"),
    (chat([{"type": "image_url", "image_url": {"url": "data:text/x-evil;base64,aGk="}}]),
     "messages[0].content[0].image_url.url"),
]


@pytest.mark.parametrize(("body", "param"), HTTP_CASES)
async def test_http_bad_fields_are_a_400_naming_the_parameter(mesh, body, param):
    status, reply = await post(mesh, body)
    assert status == 400, reply
    assert reply["error"]["param"] == param, reply["error"]["message"][:200]
    assert len(reply["error"]["message"]) < 200


async def test_http_lone_surrogates_are_a_400_and_the_prompt_is_never_logged(mesh, capfd, caplog):
    body = json.dumps(chat(f"{SECRET} \ud800 and more")).encode()  # json.dumps writes "\ud800"
    assert b"\\ud800" in body
    status, reply = await post(mesh, None, raw=body)
    assert status == 400 and reply["error"]["param"] == "messages[0].content"
    key = json.dumps(chat("hi", costmesh={"\udfff": 1})).encode()
    status, reply = await post(mesh, None, raw=key)
    assert status == 400 and reply["error"]["param"] == "costmesh"
    err = capfd.readouterr().err + caplog.text
    assert SECRET not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("data", "start"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "body: JSON nested deeper than"),
        (json.dumps(chat(costmesh={"cache": {"tags": [_nested("deep", 32)]}})).encode(),
         "costmesh.cache.tags[0][0]"),
        (b'{"model": "auto", "max_tokens": NaN}', "body: NaN is not valid JSON"),
        (b'{"model": "auto", "seed": ' + b"9" * 5_000 + b"}", "body: not valid JSON"),
        (b'{"model": "auto", "messages": "\xff\xfe"}', "body: not valid JSON"),
        (b"not json at all", "body: not valid JSON"),
    ],
)
async def test_http_bodies_that_are_not_sane_json_are_a_400(mesh, data, start, capfd):
    status, reply = await post(mesh, None, raw=data)
    assert status == 400, reply
    assert reply["error"]["message"].startswith(start), reply["error"]["message"][:200]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "1e9", "soon"])
async def test_http_timeout_header_is_bounded(mesh, timeout):
    status, reply = await post(mesh, chat(), headers={"x-costmesh-timeout-s": timeout})
    assert status == 400 and reply["error"]["param"] == "x-costmesh-timeout-s"


async def test_http_request_id_with_a_newline_is_refused_before_anything_is_billed(mesh, client):
    before = (await client.stats()).requests
    status, reply = await post(mesh, chat("Bill me?", costmesh={"request_id": "a\r\nx-evil: 1"}))
    assert status == 400 and reply["error"]["param"] == "costmesh.request_id"
    assert (await client.stats()).requests == before
    status, reply = await post(mesh, chat(costmesh={"request_id": "http-edge-1"}))
    assert status == 200 and reply["costmesh"]["request_id"] == "http-edge-1"


def test_an_unexpected_error_is_logged_by_type_and_place_never_by_its_message():
    from costmesh.observability.error_fields import error_fields

    try:
        f"{SECRET} \ud800".encode()
    except UnicodeEncodeError as exc:
        fields = error_fields(exc)
    assert fields["error"] == "UnicodeEncodeError" and "test_edge_bounds.py:" in fields["at"]
    assert SECRET not in repr(fields)


# -- client cancellation: one line, no traceback ----------------------------------------------


async def test_client_cancelled_streams_leave_no_traceback(client, capfd, caplog):
    caplog.set_level(logging.WARNING)
    for i in range(12):
        call = client.stub.StreamComplete(gw.StreamCompleteRequest(request=build_request(
            f"Explain B-trees in detail, take {i}", max_tokens=400, bypass_cache=True)), timeout=20)
        if i % 3 == 0:
            await asyncio.sleep(0.01 * i)
        else:
            async for _ in call:
                break
        call.cancel()
    await asyncio.sleep(1.0)
    gc.collect()
    await asyncio.sleep(0.5)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Failed to detach context" not in err, err[-3000:]
    assert not [r for r in caplog.records if r.exc_info or "never retrieved" in r.getMessage()], caplog.text[-3000:]


async def test_a_cancelled_stream_is_one_rpc_line(monkeypatch):
    lines = []

    class Log:
        def info(self, event, **fields):
            lines.append((event, fields))

        error = info

    monkeypatch.setattr(interceptors, "log", Log())

    async def slow(request, context):
        yield "first"
        await asyncio.sleep(60)
        yield "never"

    handler = interceptors._wrap_stream("/x.Y/Z", slow)

    async def consume():
        async for _ in handler(request(), None):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lines == [("rpc", {"method": "/x.Y/Z", "code": "CANCELLED", "duration_ms": lines[0][1]["duration_ms"]})]


# -- property-based fuzzing: only InvalidRequest / INVALID_ARGUMENT / 400 come out --------------

_texts = st.text(max_size=40) | st.sampled_from(["", " ", "ü", "a\nb", "\x00", "x" * 300, "ok-id.1"])
_images = st.builds(
    common.Image,
    media_type=st.sampled_from(["", "image/png", "image/webp", "text/x-evil"]) | st.text(max_size=12),
    data=st.binary(max_size=16),
    url=st.sampled_from(["", "data:image/png;base64,AA==", "file:///etc/passwd", "https://x.test/a.png",
                         "data:", "DATA:image/gif;base64,"]) | st.text(max_size=20),
)
_parts = st.one_of(st.builds(lambda t: common.ContentPart(text=t), _texts),
                   st.builds(lambda i: common.ContentPart(image=i), _images))
_messages = st.lists(st.builds(lambda role, parts: common.Message(role=role, content=parts),
                               st.integers(-2, 6), st.lists(_parts, max_size=3)), max_size=4)
_floats = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def complete_requests(draw):
    r = gw.CompleteRequest(tenant_id=draw(_texts), request_id=draw(_texts), session_id=draw(_texts))
    r.messages.extend(draw(_messages))
    if draw(st.booleans()):
        s = r.sampling
        s.max_tokens = draw(st.integers(-(2**31), 2**31 - 1))
        if draw(st.booleans()):
            s.temperature = draw(_floats)
        if draw(st.booleans()):
            s.top_p = draw(_floats)
        s.stop.extend(draw(st.lists(_texts, max_size=20)))
        if draw(st.booleans()):
            s.seed = draw(st.integers(-(2**63), 2**63 - 1))
    r.cache.ttl_seconds = draw(st.integers(-(2**31), 2**31 - 1))
    r.cache.tags.extend(draw(st.lists(_texts, max_size=70)))
    r.cache.session_scoped = draw(st.booleans())
    r.routing.min_tier = draw(st.integers(-3, 9))
    r.routing.max_tier = draw(st.integers(-3, 9))
    r.routing.model = draw(_texts)
    return r


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(complete_requests())
def test_fuzzed_requests_through_validate_only_raise_invalid_request(r):
    try:
        validate(r, LIMITS)
    except InvalidRequest as exc:
        assert ": " in str(exc) and len(str(exc)) < 300


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["\ud800", "a\udfffb", 2**70, -(2**64), 10**400]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_known = st.sampled_from(sorted(fmt.KNOWN))
_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["auto", "gpt-5-nano", "nope", ""]) | _json,
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "tool"]) | _json,
                                                  "content": _json}), max_size=3) | _json},
    optional={"max_tokens": _json, "seed": _json, "stop": _json, "temperature": _json, "top_p": _json,
              "stream": _json, "n": _json,
              "costmesh": st.fixed_dictionaries({}, optional={
                  "cache": st.dictionaries(st.sampled_from(["ttl_seconds", "tags", "bypass", "session_scoped"]),
                                           _json, max_size=4),
                  "routing": st.dictionaries(st.sampled_from(["min_tier", "max_tier"]), _json, max_size=2),
                  "session_id": _json, "request_id": _json}) | _json},
) | st.dictionaries(_known | st.text(max_size=8), _json, max_size=5) | _json
CATALOG = load_catalog()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies)
def test_fuzzed_http_bodies_through_the_parser_and_validate_only_raise_invalid_request(body):
    try:
        parsed = fmt.parse_chat_request(body, CATALOG)
        parsed.request.tenant_id = "fuzz"
        validate(parsed.request, LIMITS)
    except InvalidRequest as exc:
        assert ": " in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_bodies, cut=st.integers(0, 400), junk=st.binary(max_size=8))
async def test_fuzzed_http_bodies_over_the_wire_are_200_or_400(mesh, body, cut, junk):
    try:
        data = json.dumps(body).encode()
    except (ValueError, TypeError):
        data = b"{}"
    if cut % 3 == 0:  # and some that are not JSON at all
        data = data[:cut] + junk
    status, reply = await post(mesh, None, raw=data)
    assert status in (200, 400), reply


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(r=complete_requests(), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
async def test_fuzzed_grpc_requests_over_the_wire_are_ok_or_invalid_argument(raw, r, flips):
    r.tenant_id = ""
    payload = bytearray(r.SerializeToString())
    for at, byte in flips:  # corrupt a few bytes: invalid UTF-8, bad lengths, unknown fields
        if payload:
            payload[at % len(payload)] = byte
    assert await raw(COMPLETE, bytes(payload)) in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), raw.details


# -- the simulator reads a prompt in linear time ----------------------------------------------


def test_the_simulators_prompt_parsing_is_linear():
    """Prompts that made the old patterns quadratic: 1 MB in well under a minute (minutes before)."""
    script = textwrap.dedent("""
        from costmesh.services.simulator.text import generated_answer, stream_chunks
        n = 1_000_000
        for prompt in ("x" * n, "word " * (n // 5), "\\n" * n, " " * n, "A. x" + " " * n + "y", "(B)" + "\\t" * n):
            generated_answer(prompt, "m", "strong")
            stream_chunks(prompt)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_linear_parsing_keeps_the_answers():
    from costmesh.services.simulator.text import _topic, generated_answer, stream_chunks

    assert _topic("Some context. Why is the sky blue? Thanks.") == "Why is the sky blue?"
    assert _topic("no question here") == "no question here"
    assert generated_answer("Pick one?\nA. red\n(B) green \nC) blue", "m", "strong").startswith("The answer is ")
    assert stream_chunks("  a bc\n d  ") == ["  a", " bc", "\n d", "  "]
    assert math.isclose(len("".join(stream_chunks("x " * 1000))), 2000)
