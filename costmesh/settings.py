"""Typed settings from environment variables, on pydantic-settings.

Each concern declares one `Settings` class: its fields, their types, bounds, defaults and a
description (the README's Configuration table is generated from them: `costmesh settings-doc`).
A field's variable is the class's `env_prefix` plus the field name in capitals
(`CacheConfig.ttl_s` -> `COSTMESH_CACHE_TTL_S`), or its `validation_alias` where the name is not
costmesh's own (`REDIS_URL`, `ANTHROPIC_API_KEY`). An empty value counts as unset.

`load(env)` reads the given mapping (an `Env`, a dict in tests, `os.environ` by default) and
never anything else; a value of the wrong type or out of bounds fails at start with a
`ConfigError` that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import BeforeValidator, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from costmesh.config import Env
from costmesh.errors import ConfigError

__all__ = ["CommaList", "Lowercase", "Settings", "SkipEnv", "split_commas"]

# A comma-separated list (`a, b,c`), not JSON: pair with a `split_commas` before-validator.
CommaList = Annotated[tuple[str, ...], NoDecode]
# An enumeration read whatever its case (`COSTMESH_TLS=OFF`): `Annotated[Literal[...], Lowercase]`.
Lowercase = BeforeValidator(lambda value: value.lower() if isinstance(value, str) else value)
_T = TypeVar("_T")
_SKIP_ENV = object()
# A field set by the code that loads the settings (a nested settings object), never from a variable.
SkipEnv = Annotated[_T, _SKIP_ENV]


def split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str]):
        self._values = values
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._values.items() if value != ""}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if _SKIP_ENV in field.metadata:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class Settings(BaseSettings):
    """Base of every settings class: frozen, read only through `load`."""

    model_config = SettingsConfigDict(env_prefix="COSTMESH_", frozen=True, extra="forbid", case_sensitive=False,
                                      validate_by_name=True, validate_by_alias=True)
    # The README's "used by" column.
    used_by: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_sources):  # type: ignore[override]
        return (init_settings,)  # the environment is read in `load`, from the mapping it is given

    @classmethod
    def load(cls, env: Env | Mapping[str, str] | None = None) -> Self:
        values = os.environ if env is None else env.as_dict() if isinstance(env, Env) else env
        try:
            return cls(**_MappingSource(cls, values)())
        except ValidationError as exc:
            raise ConfigError(cls._describe(exc)) from None

    @classmethod
    def env_name(cls, name: str) -> str:
        """The variable a field is read from."""
        field = cls.model_fields[name]
        if isinstance(field.validation_alias, str):
            return field.validation_alias
        return (cls.model_config.get("env_prefix") or "") + name.upper()

    @classmethod
    def variables(cls) -> dict[str, FieldInfo]:
        """Variable -> its field, for every field read from the environment."""
        return {cls.env_name(name): field for name, field in cls.model_fields.items()
                if _SKIP_ENV not in field.metadata}

    @classmethod
    def _describe(cls, exc: ValidationError) -> str:
        lines = []
        for error in exc.errors():
            loc = error.get("loc") or ()
            key = str(loc[0]) if loc else ""
            name = next((n for n, f in cls.model_fields.items() if key in (n, f.validation_alias)), None)
            variable = cls.env_name(name) if name else key or cls.__name__
            message = error.get("msg", "invalid")
            if message.startswith("Value error, "):
                message = message[len("Value error, "):]
            shown = f" (got {error['input']!r})" if isinstance(error.get("input"), str | int | float) else ""
            lines.append(f"environment variable {variable}: {message}{shown}")
        return "; ".join(lines)

    def require(self, name: str) -> Any:
        """A field that this use needs although the class lets it be unset."""
        value = getattr(self, name)
        if value is None or value == "":
            raise ConfigError(f"environment variable {self.env_name(name)} is required")
        return value
