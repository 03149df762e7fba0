"""Configuration from environment variables. Missing required values fail at start."""

from __future__ import annotations

import os
from collections.abc import Mapping

from costmesh.errors import ConfigError


class Env:
    """Typed reads over an environment mapping (os.environ by default)."""

    def __init__(self, values: Mapping[str, str] | None = None):
        self._values = dict(os.environ if values is None else values)

    def str(self, name: str, default: str | None = None) -> str:
        value = self._values.get(name)
        if value is None or value == "":
            if default is None:
                raise ConfigError(f"environment variable {name} is required")
            return default
        return value

    def optional(self, name: str) -> str | None:
        value = self._values.get(name)
        return value if value else None

    def int(self, name: str, default: int) -> int:
        raw = self._values.get(name)
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None

    def float(self, name: str, default: float) -> float:
        raw = self._values.get(name)
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from None

    def bool(self, name: str, default: bool) -> bool:
        raw = self._values.get(name)
        if not raw:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"environment variable {name} must be a boolean, got {raw!r}")

    def list(self, name: str, default: list[str] | None = None) -> list[str]:
        raw = self._values.get(name)
        if not raw:
            return list(default or [])
        return [part.strip() for part in raw.split(",") if part.strip()]

    def as_dict(self) -> dict[str, str]:
        return dict(self._values)
