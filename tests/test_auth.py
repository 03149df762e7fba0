"""API keys: the key store (hashed, revocable, re-read on change), the bearer check, the CLI."""

import json
import subprocess
import sys

import pytest

from costmesh.config import Env
from costmesh.errors import ConfigError, InvalidRequest, NotFound, Unauthenticated
from costmesh.gateway.auth import Authenticator, KeyStore, authenticator_from_env, bearer_token, hash_key


@pytest.fixture
def store(tmp_path):
    return KeyStore(tmp_path / "keys.json")


def test_a_created_key_authenticates_as_its_tenant_and_is_stored_only_as_a_hash(store):
    key, record = store.create("acme", "billing app")
    auth = Authenticator(store)
    principal = auth.authenticate(f"Bearer {key}")
    assert principal.tenant == "acme" and principal.key_id == record.key_id
    text = store.path.read_text()
    assert key not in text and key.split("_")[-1] not in text
    assert json.loads(text)["keys"][0]["sha256"] == hash_key(key)
    assert store.path.stat().st_mode & 0o777 == 0o600


def test_unknown_missing_and_malformed_keys_are_refused(store):
    key, _ = store.create("acme")
    auth = Authenticator(store)
    for header in (None, "", "Bearer", f"Basic {key}", "Bearer cm_nope_nope", key):
        with pytest.raises(Unauthenticated):
            auth.authenticate(header)


def test_a_revoked_key_stops_working_without_a_restart(store):
    key, record = store.create("acme")
    other, _ = store.create("acme")
    auth = Authenticator(KeyStore(store.path))  # the gateway's own instance, reading the same file
    assert auth.authenticate(f"Bearer {key}").tenant == "acme"
    store.revoke(record.key_id)
    with pytest.raises(Unauthenticated):
        auth.authenticate(f"Bearer {key}")
    assert auth.authenticate(f"Bearer {other}").tenant == "acme"
    with pytest.raises(NotFound):
        store.revoke("no-such-id")


def test_a_key_created_after_start_works_at_once(store):
    store.ensure_file()
    auth = Authenticator(KeyStore(store.path))
    with pytest.raises(Unauthenticated):
        auth.authenticate("Bearer cm_x_y")
    key, _ = store.create("globex")
    assert auth.authenticate(f"Bearer {key}").tenant == "globex"


def test_the_tenant_comes_from_the_key_never_from_the_body(store):
    key, _ = store.create("acme")
    auth = Authenticator(store)
    assert auth.authenticate(f"Bearer {key}", "acme").tenant == "acme"
    with pytest.raises(InvalidRequest, match="^tenant_id:"):
        auth.authenticate(f"Bearer {key}", "globex")


def test_bearer_scheme_is_case_insensitive():
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("  Bearer   abc ") == "abc"


def test_auth_cannot_be_silently_off(tmp_path):
    with pytest.raises(ConfigError, match="COSTMESH_API_KEYS_FILE"):
        authenticator_from_env(Env({}))
    with pytest.raises(ConfigError, match="does not exist"):
        authenticator_from_env(Env({"COSTMESH_API_KEYS_FILE": str(tmp_path / "missing.json")}))
    with pytest.raises(ConfigError, match="COSTMESH_AUTH"):
        authenticator_from_env(Env({"COSTMESH_AUTH": "maybe"}))
    dev = authenticator_from_env(Env({"COSTMESH_AUTH": "off"}))
    assert not dev.enabled
    assert dev.authenticate(None, "acme").tenant == "acme"
    with pytest.raises(InvalidRequest, match="^tenant_id:"):
        dev.authenticate(None, "")


def test_the_cli_creates_lists_and_revokes(tmp_path):
    path = tmp_path / "keys.json"

    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "costmesh.tooling.cli", "keys", "--file", str(path), *args],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    out = cli("create", "--tenant", "acme", "--name", "web")
    key_id = out.split()[1]
    key = out.splitlines()[1]
    assert Authenticator(KeyStore(path)).authenticate(f"Bearer {key}").tenant == "acme"
    assert f"{key_id}  acme" in cli("list") and "active" in cli("list")
    cli("revoke", key_id)
    assert "revoked" in cli("list")
    with pytest.raises(Unauthenticated):
        Authenticator(KeyStore(path)).authenticate(f"Bearer {key}")
