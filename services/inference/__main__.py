from costmesh.rpc.server import run

from .service import SPEC

# vLLM starts its engine core with multiprocessing "spawn", which re-imports the main module:
# without this guard the child would start a second server.
if __name__ == "__main__":
    run(SPEC)
