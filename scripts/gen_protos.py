"""`make proto`: the Python modules of protos/, at costmesh.api.<domain>.v1.

The proto files sit where their packages say (protos/costmesh/<domain>/v1/<domain>.proto, package
costmesh.<domain>.v1: buf's PACKAGE_DIRECTORY_MATCH), so protoc writes modules named
costmesh.<domain>.v1, which would clash with costmesh's own packages (costmesh.gateway...). They
are generated into a temporary directory and moved to costmesh/api/<domain>/v1/, with their
imports of each other (`from costmesh.common.v1 import` -> `from costmesh.api.common.v1 import`)
and their module names rewritten to match. The wire (packages, services, messages) is the
protos'; only where the Python modules live differs.

    python scripts/gen_protos.py          # regenerate costmesh/api/
    python scripts/gen_protos.py --check  # exit 1 when costmesh/api/ differs from protos/
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
API = ROOT / "costmesh" / "api"
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def domains() -> list[str]:
    """The proto packages costmesh.<domain>.v1 of protos/."""
    return sorted(p.parent.name for p in (PROTOS / "costmesh").glob("*/v1"))


def _rewrite(text: str, names: list[str]) -> str:
    alternatives = "|".join(map(re.escape, names))
    # imports of another generated module: `from costmesh.common.v1 import common_pb2 as ...`
    text = re.sub(rf"^(from|import) costmesh\.({alternatives})\.v1\b", r"\1 costmesh.api.\2.v1", text, flags=re.M)
    # the module name the builder gives the message classes (their __module__)
    return re.sub(rf"'costmesh\.({alternatives})\.v1\.(\w+_pb2)'", r"'costmesh.api.\1.v1.\2'", text)


def generate() -> dict[str, str]:
    """Relative path under costmesh/api/ -> content, for every generated module."""
    from grpc_tools import protoc

    names = domains()
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as out:
        well_known = resources.files("grpc_tools") / "_proto"
        args = ["protoc", f"-I{PROTOS}", f"-I{well_known}", f"--python_out={out}", f"--pyi_out={out}",
                f"--grpc_python_out={out}", *files]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        generated = {}
        for path in sorted(Path(out, "costmesh").rglob("*")):
            if path.is_file() and path.name.endswith(GENERATED):
                generated[str(path.relative_to(Path(out, "costmesh")))] = _rewrite(path.read_text(), names)
    return generated


def _existing() -> dict[str, str]:
    return {str(p.relative_to(API)): p.read_text() for p in sorted(API.rglob("*"))
            if p.is_file() and p.name.endswith(GENERATED)}


def write(generated: dict[str, str]) -> None:
    for stale in set(_existing()) - set(generated):
        (API / stale).unlink()
    for relative, content in generated.items():
        target = API / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    for folder in [API, *(p for p in API.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        (folder / "__init__.py").touch()


def check(generated: dict[str, str]) -> list[str]:
    """The modules of costmesh/api/ that differ from what protos/ generates (or are missing, or stale)."""
    existing = _existing()
    return sorted(name for name in set(existing) | set(generated) if existing.get(name) != generated.get(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare costmesh/api/ with protos/, change nothing")
    generated = generate()
    if parser.parse_args().check:
        stale = check(generated)
        if stale:
            print("costmesh/api/ is not what protos/ generates (run `make proto`):", *stale, sep="\n  ")
            return 1
        return 0
    write(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
