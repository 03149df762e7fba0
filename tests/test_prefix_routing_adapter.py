"""The vLLM adapter with prefix-aware routing over fake replicas (real grpc.aio servers with the
standard health service): the tiny model's real tokenizer, real block-hash chains."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from costmesh.api.inference.v1 import inference_pb2, inference_pb2_grpc
from costmesh.catalog import ModelSpec
from costmesh.convert import messages_from_pb
from costmesh.domain import Message, Role, Sampling
from costmesh.services.inference.tiny_model import build_tiny_tokenizer
from costmesh.services.providers.prefix_routing.block_hash import BlockHasher
from costmesh.services.providers.prefix_routing.health import INFERENCE_SERVICE
from costmesh.services.providers.prefix_routing.prompt_tokens import ChatTokenizer
from costmesh.services.providers.prefix_routing.router import PrefixAwarePicker
from costmesh.services.providers.vllm_adapter import VLLMAdapter

TINY = ModelSpec(id="tiny-llama", provider="vllm", input=0.10, output=0.40, cache_read=0.1)
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar".split()


def chat(prefix: int, question: int) -> tuple[Message, ...]:
    system = " ".join(WORDS[(prefix * 7 + i) % len(WORDS)] for i in range(200)) + f" document {prefix}"
    return (Message.of(Role.SYSTEM, system), Message.of(Role.USER, f"question {question}: what is item {question}?"))


class Replica(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, name: str):
        self.name = name
        self.served: list[str] = []  # system prompt's last word of each request
        self.hold: asyncio.Event | None = None  # set: requests wait for it (to keep them in flight)
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def Generate(self, request, context):
        self.served.append(messages_from_pb(request.chat.messages)[0].text.rsplit(" ", 1)[-1])
        if self.hold is not None:
            await self.hold.wait()
        return inference_pb2.GenerateResponse(text=self.name, prompt_tokens=10, output_tokens=1, finish_reason="stop")

    async def StreamGenerate(self, request, context):
        self.served.append(messages_from_pb(request.chat.messages)[0].text.rsplit(" ", 1)[-1])
        yield inference_pb2.StreamGenerateResponse(text_delta=self.name)
        yield inference_pb2.StreamGenerateResponse(
            final=inference_pb2.GenerateResponse(prompt_tokens=10, output_tokens=1, finish_reason="stop")
        )

    async def start(self) -> None:
        server = grpc.aio.server()
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(self, server)
        checker = health.aio.HealthServicer()
        await checker.set(INFERENCE_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self.server = server

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def chat_tokenizer(tmp_path_factory) -> ChatTokenizer:
    path = tmp_path_factory.mktemp("tokenizer")
    build_tiny_tokenizer(path)
    return ChatTokenizer.load(str(path))


@pytest.fixture
async def mesh(chat_tokenizer):
    replicas = [Replica("r0"), Replica("r1")]
    for r in replicas:
        await r.start()
    picker = PrefixAwarePicker(
        [r.address for r in replicas], chat_tokenizer, BlockHasher(16), max_blocks=4096, max_in_flight=1
    )
    adapter = VLLMAdapter(picker, grpc.aio.insecure_channel, health_interval_s=0.1)
    yield adapter, replicas
    await adapter.close()
    for r in replicas:
        if r.server is not None:
            await r.server.stop(0)


async def ask(adapter: VLLMAdapter, prefix: int, question: int) -> str:
    return (await adapter.generate(TINY, chat(prefix, question), Sampling(max_tokens=4), "t", timeout_s=10)).text


def test_chat_tokens_follow_the_chat_template(chat_tokenizer):
    ids = chat_tokenizer(chat(1, 1))
    assert ids[0] == 101 and len(ids) > 200  # [CLS] as BOS, once
    assert chat_tokenizer(chat(1, 2))[:200] == ids[:200]
    assert chat_tokenizer(chat(2, 1))[:16] != ids[:16]


async def test_each_prefix_sticks_to_the_replica_that_served_it(mesh):
    adapter, replicas = mesh
    homes = {k: await ask(adapter, k, 0) for k in range(4)}
    assert sorted(homes.values()) == ["r0", "r0", "r1", "r1"]  # new prefixes spread over idle replicas
    for question in range(1, 4):
        for k in range(4):
            assert await ask(adapter, k, question) == homes[k]
    for r in replicas:
        assert sorted(set(r.served)) == sorted(str(k) for k, home in homes.items() if home == r.name)


async def test_saturated_replica_spills_over(mesh):
    adapter, replicas = mesh
    home = await ask(adapter, 5, 0)
    held = next(r for r in replicas if r.name == home)
    held.hold = asyncio.Event()
    first = asyncio.create_task(ask(adapter, 5, 1))  # stays in flight on its home: max_in_flight=1
    while len(held.served) < 2:
        await asyncio.sleep(0.01)
    assert await ask(adapter, 5, 2) != home  # spilled to the other replica
    held.hold.set()
    assert await first == home
    assert await ask(adapter, 5, 3) == home  # room again: back to the longest match


async def test_dead_replica_is_skipped_and_brought_back(mesh):
    adapter, replicas = mesh
    homes = {k: await ask(adapter, k, 0) for k in (10, 11)}
    dead = next(r for r in replicas if r.name == homes[10])
    await dead.server.stop(0)
    dead.server = None
    # The next call to it fails UNAVAILABLE: it is taken out and the request goes to the other one.
    assert await ask(adapter, 10, 1) != dead.name
    assert not adapter.picker.health.is_up(dead.address)
    assert {await ask(adapter, k, 2) for k in (10, 11, 12)} == {"r0", "r1"} - {dead.name}
    await dead.start()  # same port
    for _ in range(100):  # the health monitor (every 0.1 s) brings it back
        if adapter.picker.health.is_up(dead.address):
            break
        await asyncio.sleep(0.05)
    assert adapter.picker.health.is_up(dead.address)
    # A new prefix reaches it again (idle both, it remembers fewer blocks than the one that stood in).
    assert await ask(adapter, 20, 3) == dead.name


async def test_a_stream_to_a_replica_that_went_away_is_served_by_another(chat_tokenizer):
    replicas = [Replica("r0"), Replica("r1")]
    for r in replicas:
        await r.start()
    picker = PrefixAwarePicker([r.address for r in replicas], chat_tokenizer, BlockHasher(16), max_in_flight=4)
    adapter = VLLMAdapter(picker, grpc.aio.insecure_channel, health_interval_s=None)  # no monitor: the call finds out
    try:
        home = await ask(adapter, 30, 0)
        dead = next(r for r in replicas if r.name == home)
        await dead.server.stop(0)
        dead.server = None
        events = [e async for e in adapter.stream(TINY, chat(30, 1), Sampling(max_tokens=4), "t", timeout_s=10)]
        assert events[0] == ({"r0", "r1"} - {home}).pop()  # the other replica answered
        assert events[-1].usage.input_tokens == 10
        assert not picker.health.is_up(dead.address) and picker.health.in_flight == {r.address: 0 for r in replicas}
    finally:
        await adapter.close()
        for r in replicas:
            if r.server is not None:
                await r.server.stop(0)
