"""What the launcher (`costmesh serve`, the demo, the bench) reads beyond the services' own settings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from costmesh.settings import Settings

DEFAULT_REDIS_MAXMEMORY = "1gb"


class LauncherSettings(Settings):
    used_by: ClassVar[str] = "launcher (embedded Redis), compose"

    redis_data_dir: str | None = Field(None, description="where the embedded Redis keeps its AOF (default: the "
                                       "run directory's `redis/`)")
    redis_maxmemory: str = Field(DEFAULT_REDIS_MAXMEMORY, min_length=1, description="the embedded Redis's memory "
                                 "cap (evicting `volatile-ttl`)")
