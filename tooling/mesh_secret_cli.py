"""`costmesh mesh-secret`: make the mesh secret the services sign their calls with, or print a
service token for a tool that calls a service directly (grpcurl, a debugging session)."""

from __future__ import annotations

import os

from costmesh.errors import ConfigError
from costmesh.rpc.mesh_auth import TOKEN_HEADER, ServiceTokens
from costmesh.rpc.mesh_secret import ensure_secret, read_secret


def add_arguments(parser) -> None:
    parser.add_argument("file", nargs="?", default=os.environ.get("COSTMESH_MESH_SECRET_FILE"),
                        help="the secret file: made (mode 0600) unless it exists (default: $COSTMESH_MESH_SECRET_FILE)")
    parser.add_argument("--token", metavar="SERVICE", default=None,
                        help="print a service token for this gRPC service instead, e.g. costmesh.cache.v1.CacheService "
                             f"(send it as `{TOKEN_HEADER}` metadata)")
    parser.add_argument("--tenant", default="", help="with --token: the tenant the calls act for")
    parser.add_argument("--ttl", type=float, default=300.0, help="with --token: seconds it is valid (default 300)")


def run(args) -> int:
    if not args.file:
        raise ConfigError("give the secret file or set COSTMESH_MESH_SECRET_FILE")
    if args.token:
        print(ServiceTokens(read_secret(args.file), "costmesh-cli", args.ttl).mint(args.token, args.tenant or None))
        return 0
    path = ensure_secret(args.file)
    print(f"mesh secret: {path} (mode 0600); give every service COSTMESH_MESH_SECRET_FILE={path}")
    return 0
