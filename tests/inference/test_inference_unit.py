"""Inference core pieces that need no engine: settings, stats, chat messages, the engine slot."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from types import SimpleNamespace

import pytest

from costmesh.api.inference.v1 import inference_pb2
from costmesh.config import Env
from costmesh.domain import Image, Message, Part, Role
from costmesh.errors import ConfigError, InvalidRequest, Unavailable
from costmesh.services.inference.engine import chat_messages
from costmesh.services.inference.servicer import _inputs
from costmesh.services.inference.settings import CPU_DEFAULTS, EngineSettings, parse_engine_args
from costmesh.services.inference.slot import EngineSlot
from costmesh.services.inference.stats import StatsCollector


class _Log:
    def __init__(self):
        self.events: list[tuple[str, dict]] = []

    def info(self, event, **kw):
        self.events.append((event, kw))

    error = info


def test_engine_args_parse_from_json_and_from_cli_style():
    assert parse_engine_args('{"max_model_len": 2048, "block-size": 32, "dtype": "float32"}') == {
        "max_model_len": 2048, "block_size": 32, "dtype": "float32"}
    assert parse_engine_args(
        "--max-model-len 2048 --block-size=32 --enforce-eager --no-trust-remote-code "
        "--prefix-caching-hash-algo sha256 --gpu-memory-utilization 0.5 --tensor-parallel-size 2"
    ) == {
        "max_model_len": 2048, "block_size": 32, "enforce_eager": True, "trust_remote_code": False,
        "prefix_caching_hash_algo": "sha256", "gpu_memory_utilization": 0.5, "tensor_parallel_size": 2,
    }
    assert parse_engine_args(None) == {} and parse_engine_args("  ") == {}


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "max_model_len 2048", "--a 'unclosed"])
def test_malformed_engine_args_are_config_errors(raw):
    with pytest.raises(ConfigError, match="COSTMESH_VLLM_ARGS"):
        parse_engine_args(raw)


def test_settings_require_a_model_and_enable_prefix_caching_by_default():
    with pytest.raises(ConfigError, match="COSTMESH_VLLM_MODEL"):
        EngineSettings.load(Env({})).require("model")
    settings = EngineSettings.load(Env({"COSTMESH_VLLM_MODEL": "/m", "COSTMESH_VLLM_ARGS": "--block-size 16"}))
    args = settings.resolved_args(on_cpu=True, cpu_kv_env_set=False)
    assert args == {**CPU_DEFAULTS, "block_size": 16, "model": "/m", "enable_prefix_caching": True,
                    "disable_log_stats": False}
    assert "kv_cache_memory_bytes" not in settings.resolved_args(on_cpu=True, cpu_kv_env_set=True)
    assert "kv_cache_memory_bytes" not in settings.resolved_args(on_cpu=False, cpu_kv_env_set=False)
    own = EngineSettings(model="/m", args={"kv_cache_memory_bytes": 123})
    assert own.resolved_args(on_cpu=True, cpu_kv_env_set=False)["kv_cache_memory_bytes"] == 123
    with pytest.raises(ConfigError, match="disable_log_stats"):
        EngineSettings(model="/m", args={"disable_log_stats": True}).resolved_args(on_cpu=False, cpu_kv_env_set=False)
    # Only an explicit `false` turns prefix caching off (the benchmark's baseline).
    for given, on in (({"enable_prefix_caching": False}, False), ({"enable_prefix_caching": None}, True)):
        settings = EngineSettings(model="/m", args=given)
        assert settings.resolved_args(on_cpu=False, cpu_kv_env_set=False)["enable_prefix_caching"] is on


def _scheduler_stats(running, waiting, usage, queries, hits, skipped=0):
    return SimpleNamespace(
        num_running_reqs=running, num_waiting_reqs=waiting, num_skipped_waiting_reqs=skipped,
        kv_cache_usage=usage, prefix_cache_stats=SimpleNamespace(queries=queries, hits=hits),
    )


def test_stats_keep_latest_gauges_and_sum_prefix_cache_counters():
    collector = StatsCollector()
    assert collector.snapshot("m").prefix_cache_hit_rate == 0.0
    collector.record(_scheduler_stats(2, 1, 0.5, queries=600, hits=0))
    collector.record(None)
    collector.record(_scheduler_stats(1, 0, 0.25, queries=600, hits=512, skipped=2))
    snap = collector.snapshot("m")
    assert (snap.running_requests, snap.waiting_requests, snap.kv_cache_usage) == (1, 2, 0.25)
    assert (snap.prefix_cache_queries, snap.prefix_cache_hits) == (1200, 512)
    assert snap.prefix_cache_hit_rate == pytest.approx(512 / 1200)
    collector.record(_scheduler_stats(3, 0, 0.75, queries=0, hits=0), engine_idx=1)  # a second engine core
    snap = collector.snapshot("m")
    assert (snap.running_requests, snap.kv_cache_usage) == (4, 0.5)


def test_chat_messages_are_text_only_and_not_empty():
    messages = (Message.of(Role.SYSTEM, "be brief"), Message.of(Role.USER, "hi"), Message.of(Role.ASSISTANT, "yo"))
    assert chat_messages(messages) == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"}]
    with pytest.raises(InvalidRequest, match="must not be empty"):
        chat_messages(())
    with pytest.raises(InvalidRequest, match="all messages are empty"):
        chat_messages((Message.of(Role.USER, "  "),))
    with pytest.raises(InvalidRequest, match=r"messages\[0\]: images"):
        chat_messages((Message(Role.USER, (Part(image=Image("image/png", b"x")),)),))


def test_a_request_needs_a_prompt_or_chat():
    with pytest.raises(InvalidRequest, match="input"):
        _inputs(inference_pb2.GenerateRequest())
    prompt, sampling = _inputs(inference_pb2.GenerateRequest(prompt="hi"))
    assert prompt == "hi" and sampling.max_tokens > 0  # 0 (unset) takes the default


async def test_slot_is_unavailable_while_loading_then_serves_then_closes_the_engine():
    class FakeEngine:
        model = "fake"
        closed = False

        async def close(self):
            self.closed = True

    release = asyncio.Event()
    engine = FakeEngine()
    ready = []

    async def start():
        await release.wait()
        return engine

    async def on_ready():
        ready.append(True)

    slot = EngineSlot(_Log())
    slot.start_loading(start, on_ready)
    with pytest.raises(Unavailable, match="engine loading"):
        slot.get()
    release.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert slot.get() is engine and ready == [True]
    await slot.close()
    assert engine.closed
    with pytest.raises(Unavailable, match="engine stopped"):
        slot.get()


async def test_slot_reports_why_the_engine_failed_to_load():
    async def start():
        raise ConfigError("COSTMESH_VLLM_ARGS: unexpected keyword 'nope'")

    async def on_ready():
        raise AssertionError("must not be called")

    log = _Log()
    slot = EngineSlot(log)
    slot.start_loading(start, on_ready)
    await slot.close()
    with pytest.raises(Unavailable, match="failed to load: ConfigError: .*nope"):
        slot.get()
    assert log.events[-1][0] == "engine failed to load"


def test_the_service_modules_import_without_vllm():
    code = (
        "import sys\n"
        "import costmesh.services.inference.service, costmesh.services.inference.servicer\n"
        "assert not [m for m in sys.modules if m == 'vllm' or m.startswith('vllm.')], 'vllm imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
