"""Container health check for costmesh images (Docker HEALTHCHECK, docker-compose).

Default: the standard gRPC health protocol (grpc.health.v1.Health/Check) against
127.0.0.1:$COSTMESH_PORT; exit 0 only when the answer is SERVING.
--tcp: a plain TCP connect, for the simulator's HTTP port.
TLS (the gateway with COSTMESH_TLS_CERT_FILE, unless COSTMESH_TLS=off): the check speaks TLS,
trusting COSTMESH_TLS_CA_FILE (the CA that signed the certificate) or else the public roots, and
names the certificate's first DNS name when it does not name the address checked.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys


def _tls_channel(host: str, port: int, cert_file: str):
    import ipaddress

    import grpc
    from cryptography import x509

    ca_file = os.environ.get("COSTMESH_TLS_CA_FILE")
    root = open(ca_file, "rb").read() if ca_file and os.path.exists(ca_file) else None  # None: public roots
    with open(cert_file, "rb") as cert:
        names = x509.load_pem_x509_certificate(cert.read()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    options = []
    try:
        named = ipaddress.ip_address(host) in names.get_values_for_type(x509.IPAddress)
    except ValueError:
        named = host in names.get_values_for_type(x509.DNSName)
    dns = names.get_values_for_type(x509.DNSName)
    if not named and dns:
        options.append(("grpc.ssl_target_name_override", dns[0].replace("*", "health")))
    return grpc.secure_channel(f"{host}:{port}", grpc.ssl_channel_credentials(root), options=options)


def check_grpc(host: str, port: int, service: str, timeout: float) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    cert_file = os.environ.get("COSTMESH_TLS_CERT_FILE")
    tls = bool(cert_file) and os.environ.get("COSTMESH_TLS", "auto").lower() != "off"
    with _tls_channel(host, port, cert_file) if tls else grpc.insecure_channel(f"{host}:{port}") as channel:
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
