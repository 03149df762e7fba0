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
    done: set[tuple[str, str]] = set()  # (distribution, extra) pairs followed; "" is its base
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
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                if req.marker is not None and extra and req.marker.evaluate({"extra": ""}):
                    continue  # a base requirement, followed with the base
                todo.extend((canonicalize_name(req.name), inner) for inner in ("", *req.extras))
    return found
