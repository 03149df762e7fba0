"""Upstream selection from the environment, and the adapter registry."""

from __future__ import annotations

import pytest

from costmesh import errors
from costmesh.catalog import load_catalog
from costmesh.config import Env
from costmesh.domain import Generation, Message, Role, Sampling
from costmesh.rpc.server import start_service
from costmesh.services.providers.config import SIMULATOR_API_KEY, ProvidersConfig, Upstream
from costmesh.services.providers.registry import AdapterRegistry
from costmesh.services.providers.service import SPEC

HELLO = (Message.of(Role.USER, "hello"),)


def test_simulator_url_points_both_sdks_at_the_simulator():
    config = ProvidersConfig.from_env(Env({"COSTMESH_SIMULATOR_URL": "http://127.0.0.1:8089/"}))
    assert config.anthropic == Upstream(SIMULATOR_API_KEY, "http://127.0.0.1:8089")
    assert config.openai == Upstream(SIMULATOR_API_KEY, "http://127.0.0.1:8089/v1")
    assert config.enabled == ("anthropic", "openai")
    config = ProvidersConfig.from_env(Env({"COSTMESH_SIMULATOR_URL": "http://sim", "OPENAI_API_KEY": "sk-x"}))
    assert config.openai == Upstream("sk-x", "http://sim/v1")


def test_keys_enable_providers_with_default_or_given_base_urls():
    config = ProvidersConfig.from_env(Env({"ANTHROPIC_API_KEY": "a-key"}))
    assert config.anthropic == Upstream("a-key", None) and config.openai is None
    assert config.enabled == ("anthropic",)
    config = ProvidersConfig.from_env(Env({"OPENAI_API_KEY": "o-key", "OPENAI_BASE_URL": "http://proxy/v1",
                                           "COSTMESH_INFERENCE_ADDRS": "a:1, b:2", "COSTMESH_PROVIDER_TIMEOUT_S": "9"}))
    assert config.openai == Upstream("o-key", "http://proxy/v1") and config.anthropic is None
    assert config.inference_addrs == ("a:1", "b:2") and config.timeout_s == 9.0
    assert config.enabled == ("openai", "vllm")


def test_no_upstream_fails_at_start_saying_what_to_set():
    with pytest.raises(errors.ConfigError) as caught:
        ProvidersConfig.from_env(Env({}))
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "COSTMESH_SIMULATOR_URL", "COSTMESH_INFERENCE_ADDRS"):
        assert name in str(caught.value)


async def test_service_refuses_to_start_without_upstream():
    with pytest.raises(errors.ConfigError, match="no upstream configured"):
        await start_service(SPEC, Env({"COSTMESH_MESH_AUTH": "off"}), port=0)


class Recorder:
    """A stand-in adapter that answers with what it was asked."""

    name = "openai"

    def __init__(self):
        self.closed = False

    async def generate(self, model, messages, sampling, tenant_id, *, output=None, timeout_s=None):
        return Generation(text=f"{model.id}/{tenant_id}/{timeout_s}", model=model.id, provider=self.name)

    async def stream(self, model, messages, sampling, tenant_id, *, output=None, timeout_s=None):
        yield "x"
        yield Generation(text="", model=model.id, provider=self.name)

    async def close(self):
        self.closed = True


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def registry(recorder):
    return AdapterRegistry(load_catalog(), {"openai": recorder})


async def test_registry_routes_by_catalog_provider(registry, recorder):
    generation = await registry.generate("gpt-5-nano", HELLO, Sampling(), "acme", timeout_s=3.0)
    assert generation.text == "gpt-5-nano/acme/3.0"
    events = [e async for e in registry.stream("gpt-5.1", HELLO, Sampling(), "acme")]
    assert events[0] == "x" and events[-1].model == "gpt-5.1"
    assert sorted(m.id for m in registry.served_models()) == ["gpt-5-mini", "gpt-5-nano", "gpt-5.1"]
    await registry.close()
    assert recorder.closed


async def test_registry_unconfigured_provider_says_how_to_configure(registry):
    with pytest.raises(errors.Unavailable) as caught:
        await registry.generate("claude-haiku-4-5", HELLO, Sampling(), "t")
    assert "'anthropic'" in str(caught.value) and "ANTHROPIC_API_KEY" in str(caught.value)


@pytest.mark.parametrize("model, messages, sampling, field", [
    ("no-such-model", HELLO, Sampling(), "model"),
    ("", HELLO, Sampling(), "model"),
    ("gpt-5-mini", (), Sampling(), "messages"),
    ("gpt-5-mini", (Message(Role.USER, ()),), Sampling(), "messages[0].content"),
    ("gpt-5-mini", HELLO, Sampling(max_tokens=0), "sampling.max_tokens"),
])
async def test_registry_rejects_bad_requests_naming_the_field(registry, model, messages, sampling, field):
    with pytest.raises(errors.InvalidRequest) as caught:
        await registry.generate(model, messages, sampling, "t")
    assert str(caught.value).startswith(field)
    with pytest.raises(errors.InvalidRequest):
        [e async for e in registry.stream(model, messages, sampling, "t")]



def test_prompt_caching_policy_from_env():
    from costmesh.services.providers.cache_breakpoints import AutoBreakpoints, ClientBreakpoints

    base = {"COSTMESH_SIMULATOR_URL": "http://sim"}
    assert isinstance(ProvidersConfig.from_env(Env(base)).breakpoint_policy(), AutoBreakpoints)
    config = ProvidersConfig.from_env(Env({**base, "COSTMESH_PROMPT_CACHING": "client"}))
    assert isinstance(config.breakpoint_policy(), ClientBreakpoints)
    with pytest.raises(errors.ConfigError, match="COSTMESH_PROMPT_CACHING"):
        ProvidersConfig.from_env(Env({**base, "COSTMESH_PROMPT_CACHING": "sometimes"}))
