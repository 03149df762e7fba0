"""The inference service end to end: real vLLM engine (CPU) on a tiny Llama, real gRPC on port 0."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2

from costmesh.api.common.v1 import common_pb2
from costmesh.api.inference.v1 import inference_pb2
from costmesh.services.inference.service import FULL_NAME

from inference_helpers import BLOCK_SIZE, generate_request, streamed, text_of_tokens

STATS = inference_pb2.GetStatsRequest()


async def test_health_is_not_serving_until_the_engine_has_loaded(inference):
    assert inference.health_before_ready == {
        "": health_pb2.HealthCheckResponse.NOT_SERVING,
        FULL_NAME: health_pb2.HealthCheckResponse.NOT_SERVING,
    }
    assert inference.error_before_ready is not None
    assert inference.error_before_ready.code() == grpc.StatusCode.UNAVAILABLE
    assert "engine loading" in inference.error_before_ready.details()
    for name in ("", FULL_NAME):
        status = (await inference.health.Check(health_pb2.HealthCheckRequest(service=name))).status
        assert status == health_pb2.HealthCheckResponse.SERVING


async def test_second_request_sharing_a_512_token_prefix_reads_it_from_the_prefix_cache(inference):
    prefix = text_of_tokens(inference.tokenizer, 512, seed=1)  # 512 tokens with BOS
    first_prompt, second_prompt = prefix + " alpha bravo charlie", prefix + " delta echo foxtrot golf"
    first = await inference.stub.Generate(generate_request(first_prompt, max_tokens=4))
    second = await inference.stub.Generate(generate_request(second_prompt, max_tokens=4))

    assert first.prompt_tokens == len(inference.tokenizer(first_prompt)["input_ids"]) > 512
    assert first.cached_prompt_tokens < BLOCK_SIZE  # nothing of this prefix was cached before
    assert second.prompt_tokens == len(inference.tokenizer(second_prompt)["input_ids"]) > 512
    assert second.cached_prompt_tokens >= 480
    assert second.cached_prompt_tokens <= 512  # the differing suffix is never a hit
    assert second.output_tokens == 4 and second.finish_reason == "length"
    assert second.model == inference.model_dir


async def test_stream_yields_text_deltas_in_order_then_a_final_event_with_usage(inference):
    prompt = "write a short poem about the sea"  # shorter than a block: nothing cached, runs alike
    unary = await inference.stub.Generate(generate_request(prompt, max_tokens=12))

    events = [event async for event in inference.stub.StreamGenerate(streamed(generate_request(prompt, max_tokens=12)))]

    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[-1] == "final"
    assert set(kinds[:-1]) == {"text_delta"} and len(kinds) >= 3
    assert "".join(event.text_delta for event in events[:-1]) == unary.text
    final = events[-1].final
    assert final.text == ""
    assert final.prompt_tokens == unary.prompt_tokens == len(inference.tokenizer(prompt)["input_ids"])
    assert final.output_tokens == unary.output_tokens == 12
    assert final.finish_reason == "length"
    assert final.model == inference.model_dir


async def test_cancelling_a_stream_aborts_the_request_in_the_engine(inference):
    # 3,000 greedy tokens take tens of seconds here; only an abort ends the request sooner.
    call = inference.stub.StreamGenerate(streamed(generate_request("tell me everything about whales", max_tokens=3000)))
    deltas = 0
    async for event in call:
        deltas += event.HasField("text_delta")
        if deltas == 3:
            break
    during = await inference.stub.GetStats(STATS)
    assert during.running_requests == 1
    assert during.kv_cache_usage > 0

    call.cancel()
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    while loop.time() - cancelled_at < 5.0:
        after = await inference.stub.GetStats(STATS)
        if after.running_requests == 0:
            break
        await asyncio.sleep(0.05)
    assert after.running_requests == 0 and after.waiting_requests == 0
    assert after.kv_cache_usage == 0.0  # its KV blocks went back to the pool
    assert loop.time() - cancelled_at < 5.0


async def _wait_idle(inference, within_s: float) -> inference_pb2.GetStatsResponse:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        stats = await inference.stub.GetStats(STATS)
        if stats.running_requests == 0 or loop.time() > deadline:
            return stats
        await asyncio.sleep(0.05)


async def test_a_unary_call_past_its_deadline_aborts_its_engine_request(inference):
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await inference.stub.Generate(generate_request("tell me about dolphins", max_tokens=3000), timeout=1.0)
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (await _wait_idle(inference, within_s=5.0)).running_requests == 0


async def test_cancelling_one_stream_leaves_another_with_the_same_request_id_running(inference):
    doomed = inference.stub.StreamGenerate(streamed(_with_id(generate_request("whales whales", 3000), "same")))
    survivor = inference.stub.StreamGenerate(streamed(_with_id(generate_request("dolphins dolphins", 24), "same")))
    async for event in doomed:
        if event.HasField("text_delta"):
            break
    doomed.cancel()
    events = [event async for event in survivor]
    assert events[-1].final.output_tokens == 24 and events[-1].final.finish_reason == "length"
    assert (await _wait_idle(inference, within_s=5.0)).running_requests == 0


def _with_id(request: inference_pb2.GenerateRequest, request_id: str) -> inference_pb2.GenerateRequest:
    request.request_id = request_id
    return request


async def test_get_stats_reports_the_engine_prefix_cache_hit_rate(inference):
    before = await inference.stub.GetStats(STATS)
    prompt = text_of_tokens(inference.tokenizer, 300, seed=2)
    for _ in range(3):
        await inference.stub.Generate(generate_request(prompt, max_tokens=2))

    stats = await inference.stub.GetStats(STATS)
    assert stats.prefix_cache_queries - before.prefix_cache_queries == 3 * 300
    # the 2nd and 3rd reads hit every full block of the first: 9 blocks of 32 = 288 tokens each
    assert stats.prefix_cache_hits - before.prefix_cache_hits == 2 * (300 // BLOCK_SIZE) * BLOCK_SIZE
    assert 0.0 < stats.prefix_cache_hit_rate < 1.0
    assert stats.prefix_cache_hit_rate == pytest.approx(stats.prefix_cache_hits / stats.prefix_cache_queries)
    assert stats.running_requests == 0 and stats.waiting_requests == 0
    assert stats.model == inference.model_dir


async def test_chat_input_is_rendered_with_the_model_chat_template(inference):
    request = inference_pb2.GenerateRequest()
    for role, text in ((common_pb2.ROLE_SYSTEM, "answer briefly"), (common_pb2.ROLE_USER, "what is a whale")):
        request.chat.messages.add(role=role).content.add(text=text)
    request.sampling.max_tokens = 3
    request.sampling.temperature = 0.0

    response = await inference.stub.Generate(request)

    rendered = inference.tokenizer.apply_chat_template(
        [{"role": "system", "content": "answer briefly"}, {"role": "user", "content": "what is a whale"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert rendered.endswith("assistant:")
    assert response.prompt_tokens == len(inference.tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert response.output_tokens == 3


async def test_chat_ending_with_an_assistant_message_continues_it(inference):
    request = inference_pb2.GenerateRequest()
    for role, text in ((common_pb2.ROLE_USER, "what is a whale"), (common_pb2.ROLE_ASSISTANT, "a whale is")):
        request.chat.messages.add(role=role).content.add(text=text)
    request.sampling.max_tokens = 2

    response = await inference.stub.Generate(request)

    rendered = "[CLS]user: what is a whale\nassistant: a whale is"  # no newline, no new turn after the prefill
    assert response.prompt_tokens == len(inference.tokenizer(rendered, add_special_tokens=False)["input_ids"])


def _bad_requests() -> dict[str, inference_pb2.GenerateRequest]:
    no_input = inference_pb2.GenerateRequest()
    no_input.sampling.max_tokens = 4
    negative_tokens = generate_request("hello", max_tokens=4)
    negative_tokens.sampling.max_tokens = -1
    negative_temperature = generate_request("hello", max_tokens=4, temperature=-0.5)
    empty_chat = inference_pb2.GenerateRequest(chat=inference_pb2.ChatInput())
    too_long = generate_request("word " * 5000, max_tokens=4)
    return {
        "empty prompt": generate_request("", max_tokens=4),
        "blank prompt": generate_request("   \n", max_tokens=4),
        "no input": no_input,
        "negative max_tokens": negative_tokens,
        "negative temperature": negative_temperature,
        "empty chat": empty_chat,
        "prompt over max_model_len": too_long,
    }


@pytest.mark.parametrize("case", list(_bad_requests()))
async def test_bad_input_is_invalid_argument_on_both_rpcs(inference, case):
    request = _bad_requests()[case]
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await inference.stub.Generate(request)
    assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.aio.AioRpcError) as streamed_error:
        async for _ in inference.stub.StreamGenerate(streamed(request)):
            pass
    assert streamed_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await inference.stub.GetStats(STATS)).running_requests == 0
