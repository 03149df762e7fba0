"""Run inside a site-packages view holding only one image's packages (tests/test_packaging_extras.py):

    python -I -S tests/packaging_probe.py VIEW IMAGE

starts the image's service as its container would (the bootstrap, the mount: models, Redis, the
HTTP server), uses what it loaded, runs the image's own commands, stops it, and prints one JSON
line: the top-level modules loaded. Any import the image's packages cannot satisfy fails here.
Settings come from the environment the test gives (COSTMESH_*, REDIS_URL, PROBE_*).
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import json
import os
import site
import sys

faulthandler.dump_traceback_later(float(os.environ.get("PROBE_TIMEOUT_S", "150")), exit=True)  # where it hangs
view, image = sys.argv[1], sys.argv[2]
site.addsitedir(view)  # the view's .pth files too (an editable costmesh installs its finder from one)

GRPC = {
    "gateway": "costmesh.gateway.service",
    "cache": "costmesh.services.cache.service",
    "classifier": "costmesh.services.classifier.service",
    "router": "costmesh.services.router.service",
    "providers": "costmesh.services.providers.service",
    "batches": "costmesh.services.batches.service",
}


def instances(type_name: str, module: str) -> list:
    import importlib

    cls = getattr(importlib.import_module(module), type_name)
    return [obj for obj in gc.get_objects() if isinstance(obj, cls)]


async def use_models(name: str) -> None:
    """Run the models the service loaded (ONNX Runtime, the tokenizers), as its requests would."""
    if name == "cache":
        (embedder,) = instances("Embedder", "costmesh.embeddings")
        assert len(embedder.encode_full(["how do I reset my password"])) == 1
        crosses = instances("OnnxCrossEncoder", "costmesh.verification.cross_encoder")
        assert crosses, "the default verifier reads pairs with its cross-encoder"
        assert len(crosses[0].logits([("reset my password", "reset my passcode")])) == 1
    elif name == "classifier":
        (embedder,) = instances("LazyEmbedder", "costmesh.services.classifier.lazy_embedder")
        assert len(await embedder.embed_one("prove that there are infinitely many primes")) == embedder.dims
    elif name == "providers" and os.environ.get("PROBE_TOKENIZER"):
        from costmesh.domain import Message, Role
        from costmesh.services.providers.prefix_routing.prompt_tokens import ChatTokenizer

        tokens = ChatTokenizer.load(os.environ["PROBE_TOKENIZER"])([Message.of(Role.USER, "hello")])
        assert tokens, "no prompt tokens"


def commands() -> None:
    """The gateway image's own commands (docker-compose's keys, mesh-secret and gateway-tls services,
    `docker compose exec gateway costmesh report`)."""
    from costmesh.tooling.cli import main

    scratch = os.environ["PROBE_SCRATCH"]
    for argv in (["mesh-secret", f"{scratch}/mesh-secret"], ["tls-cert", f"{scratch}/tls", "--host", "gateway"],
                 ["keys", "--file", os.environ["COSTMESH_API_KEYS_FILE"], "create", "--tenant", "demo"],
                 ["report", "--records-dir", f"{scratch}/records", "--since", "24h", "--output", f"{scratch}/report"]):
        code = main(argv)
        assert code == 0, (argv, code)


async def main() -> None:
    if image == "simulator":
        from costmesh.services.simulator.server import start_simulator

        simulator = await start_simulator(0, "127.0.0.1")
        await simulator.stop()
        return
    import importlib

    from costmesh.config import Env
    from costmesh.rpc.server import start_service

    if image == "gateway":
        commands()  # the key file the gateway reads among them
    spec = importlib.import_module(GRPC[image]).SPEC
    service = await start_service(spec, Env(dict(os.environ)), port=0, host="127.0.0.1")
    try:
        await use_models(image)
    finally:
        await service.stop(0)


asyncio.run(main())
print(json.dumps({"modules": sorted({name.split(".")[0] for name in sys.modules})}))
