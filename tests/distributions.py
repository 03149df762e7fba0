"""The installed distributions a set of requirements pulls in (tests/test_packaging*.py)."""

from __future__ import annotations

from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(requirements: set[str]) -> set[str]:
    """Every distribution these pull in (names, or requirement lines with extras such as
    `openai[aiohttp]`), from the installed distributions' metadata."""
    found: set[str] = set()
    done: set[tuple[str, str]] = set()  # (distribution, extra) pairs followed; "" is the distribution itself
    todo = [(canonicalize_name(req.name), extra) for req in map(Requirement, requirements)
            for extra in ("", *req.extras)]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in done:
            continue
        done.add((name, extra))
        found.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is not installed here (make venv): cannot follow its requirements")
        for req in map(Requirement, requires):
            if _pulled_by(req, extra):
                todo.extend((canonicalize_name(req.name), inner) for inner in ("", *req.extras))
    return found


def _pulled_by(req: Requirement, extra: str) -> bool:
    """Whether `extra` of a distribution ("": the distribution itself) pulls `req` in."""
    if req.marker is None:
        return not extra
    base = req.marker.evaluate({"extra": ""})
    return base if not extra else req.marker.evaluate({"extra": extra}) and not base
