"""The dashboard as deployed: docker-compose's one-shot keys service mints the first tenant key and
an admin key (the dashboard's) once; a key file the gateway cannot write (Kubernetes mounts the
Secret read-only) is listed by the admin API with `managed: false`, and making or revoking a key
there is refused (403) instead of failing half-way. The read-only case runs as an unprivileged
user (root may write anything), through the functions the admin API's handlers call."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from costmesh.gateway.auth import KeyStore

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


def test_the_compose_keys_service_mints_a_tenant_key_and_an_admin_key_once(tmp_path):
    keys = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["keys"]
    command = [part.replace("$$", "$") for part in keys["command"]]
    costmesh = Path(sys.executable).parent / "costmesh"
    env = {**os.environ, "PATH": f"{costmesh.parent}:{os.environ['PATH']}",
           "COSTMESH_API_KEYS_FILE": str(tmp_path / "api-keys.json"), "COSTMESH_TENANT": "demo"}
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert len(re.findall(r"^cm_\S+$", first.stdout, re.M)) == 2
    assert "tenant demo" in first.stdout and "admin (the dashboard" in first.stdout
    assert sorted(r.role for r in KeyStore(tmp_path / "api-keys.json").records()) == ["admin", "tenant"]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "cm_" not in again.stdout
    assert len(KeyStore(tmp_path / "api-keys.json").records()) == 2


CHECK = """
import json, sys
from costmesh.errors import PermissionDenied
from costmesh.gateway.admin.keys import create_key, list_keys, revoke_key
from costmesh.gateway.auth import KeyStore
store = KeyStore(sys.argv[1])
listed = list_keys(store)
out = {"managed": listed["managed"], "active": listed["active"], "refused": []}
admin = next(r for r in store.records() if r.admin)
for attempt in (lambda: create_key(store, {"tenant": "acme"}),
                lambda: revoke_key(store, next(r.key_id for r in store.records() if not r.admin), admin)):
    try:
        attempt()
    except PermissionDenied as exc:
        out["refused"].append(str(exc))
print(json.dumps(out))
"""


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0,
                    reason="needs root and setpriv to run the gateway's side as an unprivileged user")
def test_a_read_only_key_file_is_listed_but_not_managed():
    directory = Path(tempfile.mkdtemp(prefix="costmesh-secret-"))  # outside pytest's root-only tmp dirs
    try:
        store = KeyStore(directory / "api-keys.json")
        store.create("acme", "web")
        store.create("", "ops", role="admin")
        directory.chmod(0o755)  # as a Secret volume: readable, not writable, by the gateway's user
        store.path.chmod(0o644)
        made = store.path.read_bytes()
        result = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c", CHECK,
             str(store.path)], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["managed"] is False and out["active"] == 2
        assert len(out["refused"]) == 2 and all("read-only for the gateway (managed: false" in m
                                                for m in out["refused"])
        assert store.path.read_bytes() == made  # nothing was written
    finally:
        shutil.rmtree(directory, ignore_errors=True)
