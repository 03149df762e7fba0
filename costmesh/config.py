"""The environment a service is configured from: a mapping (os.environ by default).

Nothing reads it by hand: each concern's settings class (`costmesh.settings.Settings`) reads its
typed fields from it with `load(env)`, and fails at start on a value it cannot take.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


class Env:
    """A snapshot of environment variables (tests pass their own)."""

    def __init__(self, values: Mapping[str, str] | None = None):
        self._values = dict(os.environ if values is None else values)

    def as_dict(self) -> dict[str, str]:
        return dict(self._values)
