"""Key creation, revocation and listing for the admin API, through the gateway's own key store
(`costmesh.gateway.auth.KeyStore`: the file every gateway replica re-reads on change, so a key
made or revoked here works, or stops working, on the next request).

A key file the gateway cannot write (a Kubernetes Secret is mounted read-only) is listed but not
managed here: `managed` is false, and creating or revoking answers 403 naming the file's owner."""

from __future__ import annotations

import os
import re

from costmesh.errors import InvalidRequest, PermissionDenied
from costmesh.gateway.auth import ADMIN_ROLE, ROLES, TENANT_ROLE, KeyRecord, KeyStore

MAX_TENANT_CHARS = 64
MAX_NAME_CHARS = 100
MAX_LISTED = 500
TENANT_CHARS = re.compile(r"[A-Za-z0-9._:@-]+")
KEY_ID_CHARS = re.compile(r"[0-9a-f]{1,64}")
CREATE_FIELDS = ("tenant", "name", "role")


def check_tenant(tenant: object, field: str = "tenant") -> str:
    """A tenant name as the admin API takes it; InvalidRequest naming `field` otherwise."""
    if not isinstance(tenant, str) or not tenant.strip():
        raise InvalidRequest(f"{field}: required, a tenant name")
    tenant = tenant.strip()
    if len(tenant) > MAX_TENANT_CHARS or not TENANT_CHARS.fullmatch(tenant):
        raise InvalidRequest(f"{field}: at most {MAX_TENANT_CHARS} of A-Z a-z 0-9 . _ : @ -")
    return tenant


def check_key_id(key_id: str) -> str:
    if not KEY_ID_CHARS.fullmatch(key_id):
        raise InvalidRequest("key_id: the hexadecimal id `costmesh keys list` shows")
    return key_id


def writable(store: KeyStore) -> bool:
    """Whether this process can rewrite the key file (atomically: a new file in its directory)."""
    directory = store.path.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    return not store.path.exists() or os.access(store.path, os.W_OK)


def key_json(record: KeyRecord) -> dict:
    """A key's public fields: never its hash, never the key."""
    return {"key_id": record.key_id, "tenant": record.tenant, "name": record.name, "role": record.role,
            "created_at": record.created_at, "revoked_at": record.revoked_at, "active": record.active}


def list_keys(store: KeyStore) -> dict:
    """The newest `MAX_LISTED` keys, active ones first."""
    records = sorted(store.records(), key=lambda r: (not r.active, -r.created_at))
    return {"keys": [key_json(r) for r in records[:MAX_LISTED]], "total": len(records),
            "active": sum(r.active for r in records), "managed": writable(store), "file": store.path.name}


def _managed(store: KeyStore) -> None:
    if not writable(store):
        raise PermissionDenied(f"keys: the key file {store.path.name} is read-only for the gateway (managed: "
                               "false, e.g. a Kubernetes Secret); make and revoke keys where the file is made")


def create_key(store: KeyStore, body: object) -> dict:
    """`{"tenant": ..., "name": ..., "role": "tenant"|"admin"}` -> the record and the key, which is
    shown this once. An admin key names no tenant."""
    if not isinstance(body, dict):
        raise InvalidRequest("body: a JSON object with tenant and name")
    unknown = sorted(set(body) - set(CREATE_FIELDS))
    if unknown:
        raise InvalidRequest(f"{unknown[0][:64]}: unknown field (known: {', '.join(CREATE_FIELDS)})")
    role, name = body.get("role", TENANT_ROLE), body.get("name", "")
    if role not in ROLES:
        raise InvalidRequest(f"role: one of {', '.join(ROLES)}")
    if role == ADMIN_ROLE:
        if body.get("tenant"):
            raise InvalidRequest("tenant: an admin key belongs to no tenant; leave it out")
        tenant = ""
    else:
        tenant = check_tenant(body.get("tenant"))
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidRequest(f"name: printable text of at most {MAX_NAME_CHARS} characters")
    _managed(store)
    key, record = store.create(tenant, name.strip(), role=role)
    return {**key_json(record), "key": key}


def revoke_key(store: KeyStore, key_id: str, caller: KeyRecord) -> dict:
    """Revoke `key_id`; not the admin key making the call (that would lock its holder out mid-session)."""
    check_key_id(key_id)
    if key_id == caller.key_id:
        raise InvalidRequest("key_id: that is the admin key of this session; revoke it with another admin key "
                             "or `costmesh keys revoke`")
    _managed(store)
    return key_json(store.revoke(key_id))
