from costmesh.gateway.service import SPEC
from costmesh.rpc.server import run

run(SPEC)
