"""Chaos (#19): kill -9 under load. The launcher starts a killed embedded Redis again on its port
with its data (it was never restarted), and a short run of the bench's `chaos` section (the
classifier and Redis killed under 32 concurrent requests) shows that each comes back by itself,
that no request fails, and that the batch job, the budget counter and the cache entries survive.
The whole section (every service, the gateway and Redis): `costmesh bench --section chaos`."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import redis

from costmesh.tooling.bench import chaos
from costmesh.tooling.bench.chaos import Outcome, window
from costmesh.tooling.launcher import Supervisor, start_mesh
from costmesh.tooling.redis_embedded import EmbeddedRedis, SupervisedRedis


def test_a_killed_embedded_redis_comes_back_on_its_port_with_its_data(tmp_path):
    server = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    reports: list[str] = []
    supervisor = Supervisor({"redis": SupervisedRedis(server)}, reports.append, poll_s=0.02, base_delay_s=0.1)
    supervisor.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("costmesh:batch:job", "{}")
        client.incrby("costmesh:limits:{t}:spend:day", 1234)
        url, pid = server.url, server.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while server.restarts < 1:
            assert time.monotonic() < deadline, "Redis was not started again"
            time.sleep(0.02)
        assert server.url == url and server.pid != pid and server.running
        # The same client reconnects to the same URL and reads what was written before the kill.
        assert client.get("costmesh:batch:job") == b"{}"
        assert client.get("costmesh:limits:{t}:spend:day") == b"1234"
        client.close()
        assert any(line.startswith("redis exited with code -9") for line in reports)
        assert "redis restarted by the launcher" in server.log_path.read_text()
        server.stop()  # stopped on purpose: not started again
        time.sleep(0.3)
        assert server.restarts == 1 and not server.running
    finally:
        supervisor.stop()
        server.stop()


def test_a_kill_window_counts_failures_by_when_they_ended():
    outcomes = [Outcome(0.0, 0.5), Outcome(0.9, 1.5, "UNAVAILABLE"), Outcome(1.2, 2.0, "UNAVAILABLE"),
                Outcome(2.6, 3.1, "UNAVAILABLE"), Outcome(3.0, 3.5, uncached=True), Outcome(3.9, 5.5, "INTERNAL")]
    assert window(outcomes, 1.0, 5.0, healthy=2.5) == {
        "requests": 4, "failed": 3, "failed_by_code": {"UNAVAILABLE": 3}, "failed_after_healthy": 1,
        "ok_again_s": 2.1, "answered_uncached": 1}


@pytest.mark.e2e
async def test_classifier_and_redis_killed_under_load(tmp_path):
    mesh = await asyncio.to_thread(start_mesh, tmp_path, chaos.mesh_env(), startup_timeout_s=300)
    try:
        result = await chaos.chaos(mesh, ("classifier", "redis"), settle_s=2.0, baseline_s=1.0)
    finally:
        await asyncio.to_thread(mesh.stop)
    kills = {k["target"]: k for k in result["kills"]}
    assert list(kills) == ["classifier", "redis"]
    for target, kill in kills.items():
        # Back by itself: the supervisor started it again (once), and it answers its health check.
        assert kill["back"] and kill["restarts"] == 1 and kill["new_pid"] != kill["pid"], kill
        assert kill["healthy_s"] < 60, kill
        assert kill["requests"] > 0, kill  # the load ran through the window
    # The bound is 0 failed requests: the classifier and Redis are dependencies the gateway fails
    # open on (no classifier: the cascade starts at its fallback tier; no Redis: uncached, and the
    # limits admit without counting), so their death costs savings, never a request. The kills
    # that do fail requests (router, providers, gateway) are the full section's.
    assert result["baseline"]["failed"] == 0 and result["failed"] == 0, result
    # The batch job was in progress through both kills and ends with every item answered.
    batch = result["batch"]
    assert batch["status_after_each_kill"] == ["BATCH_STATUS_IN_PROGRESS"] * 2
    assert batch["status_at_end"] == "BATCH_STATUS_ENDED" and batch["succeeded"] == batch["items"], batch
    # The budget counter kept at least what was billed before Redis was killed, and the limits.
    budget = result["budget"]
    assert budget["billed_before_kill_micro_usd"] > 0
    assert budget["spent_after_restart_micro_usd"] >= budget["billed_before_kill_micro_usd"], budget
    assert budget["kept"] and budget["limits_kept"], budget
    # Cache entries written before the chaos are exact hits after the Redis kill.
    assert result["cache"]["exact_hits"] == result["cache"]["probes"], result["cache"]
