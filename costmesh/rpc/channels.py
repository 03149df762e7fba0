"""Channels between costmesh services, and the options every channel and server shares.

A service dials a peer with `peer_channel` (the bootstrap's `Runtime.channel` does): gRPC's
`round_robin` policy over every address the target resolves to. gRPC keeps one long-lived
HTTP/2 connection per channel, so with the default `pick_first` policy each client sticks to
one replica and replicas added later never see its calls. With `round_robin`, a
`dns:///cache:50052` target on a headless Kubernetes Service (or a scaled compose service)
gets a subchannel per replica and spreads calls over them; the servers' maximum connection
age (`server_options`) makes clients re-resolve, so replicas added later get traffic too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
]

ROUND_ROBIN = {"loadBalancingConfig": [{"round_robin": {}}]}
# A peer that went away (a restart, a crash the supervisor undoes) is dialled again within a
# second, not after gRPC's default backoff (1 s growing 1.6x up to 120 s), which left callers
# failing for ~10 s after the peer was back. Connections are cheap inside the mesh.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def service_config(method_config: Sequence[dict[str, Any]] = ()) -> str:
    """The JSON service config of a peer channel: round_robin, plus any methodConfig (retries, wait_for_ready)."""
    config: dict[str, Any] = dict(ROUND_ROBIN)
    if method_config:
        config["methodConfig"] = list(method_config)
    return json.dumps(config)


def peer_options(method_config: Sequence[dict[str, Any]] = ()) -> list[tuple[str, Any]]:
    """`CHANNEL_OPTIONS`, the reconnect backoff and the round_robin service config (and no
    DNS-provided one overriding it)."""
    return [
        *CHANNEL_OPTIONS,
        *RECONNECT_OPTIONS,
        ("grpc.service_config", service_config(method_config)),
        ("grpc.service_config_disable_resolution", 1),
    ]


def peer_channel(
    target: str,
    *,
    interceptors: Sequence[Any] | None = None,
    method_config: Sequence[dict[str, Any]] = (),
    own_connections: bool = False,
) -> grpc.aio.Channel:
    """An insecure aio channel to another costmesh service that round-robins over its replicas.

    `target`: `dns:///cache:50052` (every A record of the name), `ipv4:127.0.0.1:1,127.0.0.1:2`
    (a fixed list), or a plain `host:port` (resolved through DNS as well). gRPC shares connections
    between channels with the same target and options; `own_connections` gives this channel its
    own, so that several channels to one address open several connections (which SO_REUSEPORT
    spreads over a replica's worker processes, `costmesh.rpc.workers`).
    """
    options = peer_options(method_config)
    if own_connections:
        options.append(("grpc.use_local_subchannel_pool", 1))
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
