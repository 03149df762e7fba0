"""Engine settings from the environment (no vLLM import: parsing must work, and fail, at start).

- `COSTMESH_VLLM_MODEL` (required): a local model directory or a hub id.
- `COSTMESH_VLLM_ARGS` (optional): extra `AsyncEngineArgs`, either a JSON object
  (`{"max_model_len": 4096, "block_size": 32}`) or vLLM CLI style
  (`--max-model-len 4096 --block-size 32 --enforce-eager`).

Automatic prefix caching is on unless `enable_prefix_caching: false` is given explicitly (the
benchmark's baseline does that; a production deployment has no reason to).
"""

from __future__ import annotations

import json
import shlex
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from costmesh.errors import ConfigError
from costmesh.settings import Settings

GIB = 1024**3

# Applied on a CPU-only host unless the operator set them (vLLM's own CPU default takes ~90% of RAM for KV).
CPU_DEFAULTS: dict[str, Any] = {"kv_cache_memory_bytes": 2 * GIB}


class EngineSettings(Settings):
    """The vLLM engine the inference service runs (`COSTMESH_VLLM_*`)."""

    model_config = SettingsConfigDict(env_prefix="COSTMESH_VLLM_")
    used_by: ClassVar[str] = "inference"

    model: str | None = Field(None, description="the served model: a local model directory or a hub id (required)")
    args: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict, description='extra vLLM `AsyncEngineArgs`, a JSON object (`{"max_model_len": 4096, '
        '"block_size": 32}`) or vLLM CLI style (`--max-model-len 4096 --block-size 32 --enforce-eager`); automatic '
        "prefix caching is on unless `enable_prefix_caching: false` is given")

    @field_validator("args", mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        return parse_engine_args(value) if isinstance(value, str) else value

    def resolved_args(self, *, on_cpu: bool, cpu_kv_env_set: bool) -> dict[str, Any]:
        """The keyword arguments for `AsyncEngineArgs`: defaults, then the operator's, then the fixed ones."""
        args: dict[str, Any] = {}
        if on_cpu:
            args.update(CPU_DEFAULTS)
            if cpu_kv_env_set:  # VLLM_CPU_KVCACHE_SPACE wins over our default
                args.pop("kv_cache_memory_bytes")
        args.update(self.args)
        if args.get("disable_log_stats"):
            raise ConfigError("COSTMESH_VLLM_ARGS: disable_log_stats would blind GetStats")
        prefix_caching = args.get("enable_prefix_caching") is not False
        args.update(model=self.require("model"), enable_prefix_caching=prefix_caching, disable_log_stats=False)
        return args


def parse_engine_args(raw: str | None) -> dict[str, Any]:
    """`COSTMESH_VLLM_ARGS` as keyword arguments (names with underscores). Raises ConfigError."""
    if raw is None or not raw.strip():
        return {}
    text = raw.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"COSTMESH_VLLM_ARGS: invalid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ConfigError("COSTMESH_VLLM_ARGS: JSON must be an object")
        return {str(k).replace("-", "_"): v for k, v in value.items()}
    return _parse_cli(text)


def _parse_cli(text: str) -> dict[str, Any]:
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"COSTMESH_VLLM_ARGS: {exc}") from None
    args: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"COSTMESH_VLLM_ARGS: expected --name, got {token!r}")
        name, eq, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if eq:
            args[key] = _cli_value(value)
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            args[key] = _cli_value(tokens[i + 1])
            i += 1
        elif key.startswith("no_"):
            args[key[3:]] = False
        else:
            args[key] = True
        i += 1
    return args


def _cli_value(value: str) -> Any:
    """JSON scalars and objects as such (`2048`, `0.5`, `true`, `{"a": 1}`), anything else as text."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
