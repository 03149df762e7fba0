"""Make the ONNX exports of the packaged models ahead of time, where torch is installed.

    python -m costmesh.tooling.onnx_export [DIR]

The services run MiniLM and the verifier's cross-encoder on ONNX Runtime; each export is made from
the torch weights the first time it is needed (`costmesh.onnx_models`), which needs torch,
sentence-transformers and onnx (the `models-export` extra). Made here instead, into DIR (default
`$COSTMESH_ONNX_CACHE`, else `~/.cache/costmesh/onnx`), a service pointed at that directory with
`COSTMESH_ONNX_CACHE` runs without those packages: the cache and classifier images make the
exports when they are built and ship no torch.

What it makes: MiniLM fp32 and int8 (every packaged embedding model) and the cross-encoder of
each packaged verifier artifact that has one, fp32 and int8. A model it does not know of (an
artifact trained here, with another cross-encoder) still needs an export where it is served.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def export_all(directory: Path | None = None) -> list[Path]:
    """The exports of the packaged models in `directory` (made where missing); their paths."""
    if directory is not None:
        os.environ["COSTMESH_ONNX_CACHE"] = str(directory)
    from costmesh import onnx_models
    from costmesh.model_files import default_model_path
    from costmesh.onnx_models import OnnxSentenceModel
    from costmesh.verification.artifact import ARTIFACT_DIR, VerifierArtifact
    from costmesh.verification.cross_encoder import OnnxCrossEncoder

    OnnxSentenceModel(default_model_path(), int8=True)  # the fp32 export, and the int8 copy quantised from it
    for path in sorted(ARTIFACT_DIR.glob("*.npz")):
        adapter = VerifierArtifact.load(path).cross_encoder
        if adapter is not None:
            OnnxCrossEncoder(adapter, int8=True)
    return sorted(onnx_models.cache_dir().glob("*.onnx"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m costmesh.tooling.onnx_export",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", type=Path, help="where to write them (default: COSTMESH_ONNX_CACHE)")
    args = parser.parse_args(argv)
    for path in export_all(args.directory):
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
