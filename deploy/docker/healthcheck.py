"""Container health check for costmesh images (Docker HEALTHCHECK, docker-compose).

Default: the standard gRPC health protocol (grpc.health.v1.Health/Check) against
127.0.0.1:$COSTMESH_PORT; exit 0 only when the answer is SERVING.
--tcp: a plain TCP connect, for the simulator's HTTP port.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys


def check_grpc(host: str, port: int, service: str, timeout: float) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            print(f"unhealthy: {host}:{port}: {exc.code().name}", file=sys.stderr)
            return 1
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"unhealthy: {host}:{port}: {name}", file=sys.stderr)
        return 1
    return 0


def check_tcp(host: str, port: int, timeout: float) -> int:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return 0
    except OSError as exc:
        print(f"unhealthy: {host}:{port}: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: $COSTMESH_PORT")
    parser.add_argument("--service", default="", help="gRPC service name; '' is the whole server")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--tcp", action="store_true", help="TCP connect instead of gRPC health")
    args = parser.parse_args(argv)
    port = args.port if args.port is not None else os.environ.get("COSTMESH_PORT")
    if not port:
        print("unhealthy: no --port and no COSTMESH_PORT", file=sys.stderr)
        return 1
    if args.tcp:
        return check_tcp(args.host, int(port), args.timeout)
    return check_grpc(args.host, int(port), args.service, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
