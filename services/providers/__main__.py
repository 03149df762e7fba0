from costmesh.rpc.server import run
from costmesh.services.providers.service import SPEC

run(SPEC)
