"""Catalog models the provider has deprecated are named in the providers service's start log."""

from __future__ import annotations

import json

from costmesh.config import Env
from costmesh.rpc.server import start_service
from costmesh.services.providers import service as providers_service
from costmesh.services.providers.deprecations import deprecated, sdk_deprecations

TABLE = {"claude-sonnet-4-5": "November 30th, 2026", "claude-2.1": "July 21st, 2025"}


def test_only_the_listed_models_are_deprecated():
    assert deprecated(["claude-haiku-4-5", "claude-sonnet-4-5", "gpt-5.1"], TABLE) == {
        "claude-sonnet-4-5": "November 30th, 2026"}
    assert deprecated([], TABLE) == {}
    installed = sdk_deprecations()  # the SDK's own table: model id -> end-of-life date
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in installed.items())


async def test_the_start_log_warns_of_each_served_deprecated_model(monkeypatch, capsys):
    monkeypatch.setattr(providers_service, "sdk_deprecations", lambda: TABLE)
    service = await start_service(providers_service.SPEC, Env({"COSTMESH_MESH_AUTH": "off", "COSTMESH_SIMULATOR_URL": "http://127.0.0.1:9"}),
                                  port=0)
    await service.stop(0)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    warned = [line for line in lines if line.get("event", "").startswith("catalog model is deprecated")]
    assert [(w["model"], w["end_of_life"], w["level"]) for w in warned] == [
        ("claude-sonnet-4-5", "November 30th, 2026", "warning")]  # claude-2.1 is not in the catalog
