"""Configuration: one typed settings class per concern (pydantic-settings), the README's table generated from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.server_settings import ServerSettings
from costmesh.services.cache.config import CacheConfig
from costmesh.tooling import settings_doc

REPO = Path(__file__).resolve().parents[1]


def test_values_come_from_the_mapping_given_and_nothing_else(monkeypatch):
    monkeypatch.setenv("COSTMESH_PORT", "4242")
    assert ServerSettings.load({}).port is None  # os.environ is not read when a mapping is given
    assert ServerSettings.load().port == 4242  # ...and is by default
    assert ServerSettings.load(Env({"COSTMESH_PORT": "7"})).port == 7
    assert ServerSettings.load({"COSTMESH_PORT": ""}).port is None  # empty is unset
    assert ServerSettings.load({"costmesh_port": "8"}).port == 8  # as the environment, case-insensitive


def test_types_and_bounds_fail_at_start_naming_the_variable():
    with pytest.raises(ConfigError, match=r"COSTMESH_PORT: Input should be a valid integer.*'eighty'"):
        ServerSettings.load({"COSTMESH_PORT": "eighty"})
    with pytest.raises(ConfigError, match="COSTMESH_CACHE_CANDIDATES: Input should be greater than 0"):
        CacheConfig.load({"COSTMESH_CACHE_CANDIDATES": "0"})
    with pytest.raises(ConfigError, match="COSTMESH_LOG_LEVEL"):
        ServerSettings.load({"COSTMESH_LOG_LEVEL": "loud"})
    with pytest.raises(ConfigError, match="REDIS_URL is required"):
        CacheConfig.load({}).require("redis_url")
    assert ServerSettings.load({"COSTMESH_MESH_AUTH": "OFF"}).mesh_auth == "off"  # case of enumerations


def test_a_typo_in_code_is_an_error_not_a_silent_default():
    with pytest.raises(Exception, match="extra"):
        CacheConfig(ttl=5)  # the field is ttl_s


def test_nested_settings_are_not_read_as_a_variable():
    config = CacheConfig.from_env({"COSTMESH_CACHE_SHADOW": "{}", "COSTMESH_CACHE_SHADOW_MIN_VERDICTS": "7"})
    assert config.shadow.min_verdicts == 7
    assert "COSTMESH_CACHE_SHADOW" not in CacheConfig.variables()


def test_every_settings_class_is_documented():
    """Each class in the source is in the generator's list, and each of its variables has a description."""
    listed = {(module.rsplit(".", 1)[-1], name) for module, name in settings_doc.SETTINGS}
    found = set()
    for folder in ("costmesh", "services", "gateway", "tooling"):
        for path in (REPO / folder).rglob("*.py"):
            for name in re.findall(r"^class (\w+)\(Settings\):", path.read_text(encoding="utf-8"), re.M):
                found.add((path.stem, name))
    assert found and found <= listed, f"not in settings_doc.SETTINGS: {sorted(found - listed)}"
    for cls in settings_doc.settings_classes():
        for variable, field in cls.variables().items():
            assert field.description, f"{cls.__name__}: {variable} has no description"
        assert cls.used_by, f"{cls.__name__} does not say which service reads it"


def test_the_readme_table_is_the_generated_one():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings_doc.render(readme, settings_doc.table()) == readme, "run `costmesh settings-doc --write`"


def test_no_service_reads_the_environment_by_hand():
    """Every variable goes through a settings class: no `env.int(...)`-style reads are left."""
    pattern = re.compile(r"\benv\.(str|int|float|bool|list|optional)\(")
    offenders = [str(path.relative_to(REPO)) for folder in ("costmesh", "services", "gateway")
                 for path in (REPO / folder).rglob("*.py") if pattern.search(path.read_text(encoding="utf-8"))]
    assert not offenders, offenders


def test_provider_keys_never_show_in_a_repr_or_log_line():
    from costmesh.services.providers.config import ProvidersConfig

    config = ProvidersConfig.from_env({"OPENAI_API_KEY": "sk-very-secret", "ANTHROPIC_API_KEY": "sk-ant-secret"})
    assert "secret" not in repr(config) and "secret" not in str(config.model_dump())
    assert "secret" not in repr(config.openai) and "secret" not in repr(config.anthropic)
    assert (config.openai.api_key, config.anthropic.api_key) == ("sk-very-secret", "sk-ant-secret")
