from costmesh.rpc.server import run

from .service import SPEC

run(SPEC)
