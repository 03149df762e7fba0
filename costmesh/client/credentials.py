"""How the clients reach a gateway that serves TLS (`COSTMESH_TLS_CERT_FILE`)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc


def channel_credentials(*, tls: bool = False, ca_file: str | os.PathLike | None = None,
                        credentials: grpc.ChannelCredentials | None = None) -> grpc.ChannelCredentials | None:
    """`credentials` as given; else TLS trusting `ca_file` (a PEM file: the CA of `costmesh tls-cert`,
    or your own) or, with `tls` alone, the public roots gRPC ships; else None (plaintext)."""
    if credentials is not None:
        return credentials
    if ca_file is not None:
        return grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes())
    if tls:
        return grpc.ssl_channel_credentials()
    return None
