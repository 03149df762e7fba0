"""Admin keys (`costmesh keys create --admin`): a role in the gateway's key store. An admin key
opens the admin API and nothing else (no completions: PERMISSION_DENIED); a tenant's key never
opens the admin API; a key file written before roles existed loads as tenant keys, and a file of
tenant keys is written as before (no `role` field) so an older gateway still reads it."""

from __future__ import annotations

import json

import pytest

from costmesh.errors import ConfigError, InvalidRequest, PermissionDenied, Unauthenticated
from costmesh.gateway.auth import ADMIN_ROLE, Authenticator, KeyStore, hash_key
from costmesh.tooling.cli import main

OLD_FILE = {"keys": [  # as `costmesh keys create` wrote it before keys had a role
    {"key_id": "a1b2c3d4e5f6", "tenant": "acme", "sha256": hash_key("cm_a1b2c3d4e5f6_old-secret"),
     "created_at": 1764547200.0, "revoked_at": None, "name": "web"},
    {"key_id": "0a0b0c0d0e0f", "tenant": "globex", "sha256": hash_key("cm_0a0b0c0d0e0f_gone"),
     "created_at": 1764547300.0, "revoked_at": 1764550000.0, "name": ""},
]}


def test_keys_create_admin_makes_an_admin_key_that_only_administers(tmp_path, capsys):
    path = tmp_path / "keys.json"
    assert main(["keys", "--file", str(path), "create", "--admin", "--name", "ops"]) == 0
    first, key = capsys.readouterr().out.splitlines()
    key_id = first.split()[1]
    assert first == f"key_id {key_id}  admin (the dashboard; no requests)" and key.startswith(f"cm_{key_id}_")
    (record,) = KeyStore(path).records()
    assert record.role == ADMIN_ROLE and record.admin and record.tenant == "" and record.name == "ops"
    assert key not in path.read_text()  # only its hash is kept

    auth = Authenticator(KeyStore(path))
    assert auth.authenticate_admin(f"Bearer {key}").key_id == key_id
    for claimed in ("", "acme"):  # no completions, models, batches or feedback for any tenant
        with pytest.raises(PermissionDenied, match="admin key .* makes no requests"):
            auth.authenticate(f"Bearer {key}", claimed)

    assert main(["keys", "--file", str(path), "list"]) == 0
    assert f"{key_id}  (admin)" in capsys.readouterr().out
    assert main(["keys", "--file", str(path), "revoke", key_id]) == 0
    assert capsys.readouterr().out.strip() == f"revoked {key_id} (admin)"
    with pytest.raises(Unauthenticated):
        auth.authenticate_admin(f"Bearer {key}")


def test_keys_create_wants_a_tenant_or_admin_not_both(tmp_path, capsys):
    path = tmp_path / "keys.json"
    assert main(["keys", "--file", str(path), "create", "--admin", "--tenant", "acme"]) == 2
    assert "an admin key belongs to no tenant" in capsys.readouterr().err
    assert main(["keys", "--file", str(path), "create"]) == 2
    assert "--tenant NAME is required (or --admin" in capsys.readouterr().err
    assert not path.exists() or KeyStore(path).records() == []


def test_a_tenant_key_never_opens_the_admin_api(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.create("acme")
    auth = Authenticator(store)
    assert auth.authenticate(f"Bearer {key}").tenant == "acme"
    with pytest.raises(PermissionDenied, match="tenant's key cannot use the admin API"):
        auth.authenticate_admin(f"Bearer {key}")
    for authorization in (None, "", "Bearer ", "Basic abc", "Bearer cm_000000000000_nope"):
        with pytest.raises(Unauthenticated):
            auth.authenticate_admin(authorization)
    with pytest.raises(PermissionDenied, match="authentication is off"):
        Authenticator(None).authenticate_admin(f"Bearer {key}")


def test_an_old_key_file_loads_as_tenant_keys_and_stays_readable_as_before(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(OLD_FILE))
    store = KeyStore(path)
    records = {r.key_id: r for r in store.records()}
    assert {r.role for r in records.values()} == {"tenant"}
    auth = Authenticator(store)
    assert auth.authenticate("Bearer cm_a1b2c3d4e5f6_old-secret").tenant == "acme"
    with pytest.raises(Unauthenticated):  # revoked then, revoked now
        auth.authenticate("Bearer cm_0a0b0c0d0e0f_gone")

    admin_key, _ = store.create("", "ops", role=ADMIN_ROLE)  # a write keeps the old keys as they were
    written = json.loads(path.read_text())["keys"]
    assert written[:2] == OLD_FILE["keys"]  # no `role` added to a tenant key
    assert written[2]["role"] == "admin"
    assert Authenticator(KeyStore(path)).authenticate("Bearer cm_a1b2c3d4e5f6_old-secret").tenant == "acme"
    assert Authenticator(KeyStore(path)).authenticate_admin(f"Bearer {admin_key}").admin


def test_a_key_file_with_an_unknown_role_is_refused(tmp_path):
    path = tmp_path / "keys.json"
    bad = {"keys": [{**OLD_FILE["keys"][0], "role": "root"}]}
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="role must be one of tenant, admin"):
        KeyStore(path).records()


def test_the_store_refuses_an_admin_key_with_a_tenant_and_a_tenant_key_without(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    with pytest.raises(InvalidRequest, match="tenant: an admin key belongs to no tenant"):
        store.create("acme", role=ADMIN_ROLE)
    with pytest.raises(InvalidRequest, match="tenant: required"):
        store.create("  ")
    with pytest.raises(InvalidRequest, match="role: one of tenant, admin"):
        store.create("acme", role="owner")
