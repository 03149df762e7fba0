"""Key creation, revocation and listing for the dashboard, through the gateway's own key store
(`costmesh.gateway.auth.KeyStore`: the file the gateway re-reads on change, so a key made or
revoked here works, or stops working, on the gateway's next request)."""

from __future__ import annotations

import re

from costmesh.errors import InvalidRequest
from costmesh.gateway.auth import KeyRecord, KeyStore

MAX_TENANT_CHARS = 64
MAX_NAME_CHARS = 100
MAX_LISTED = 500
TENANT_CHARS = re.compile(r"[A-Za-z0-9._:@-]+")
KEY_ID_CHARS = re.compile(r"[0-9a-f]{1,64}")


def key_json(record: KeyRecord) -> dict:
    """A key's public fields: never its hash, never the key."""
    return {"key_id": record.key_id, "tenant": record.tenant, "name": record.name,
            "created_at": record.created_at, "revoked_at": record.revoked_at, "active": record.active}


def list_keys(store: KeyStore) -> dict:
    """The newest `MAX_LISTED` keys, active ones first."""
    records = sorted(store.records(), key=lambda r: (not r.active, -r.created_at))
    return {"keys": [key_json(r) for r in records[:MAX_LISTED]], "total": len(records),
            "active": sum(r.active for r in records)}


def create_key(store: KeyStore, body: object) -> dict:
    """`{"tenant": ..., "name": ...}` -> the record and the key, which is shown this once."""
    if not isinstance(body, dict):
        raise InvalidRequest("body: a JSON object with tenant and name")
    tenant, name = body.get("tenant", ""), body.get("name", "")
    if not isinstance(tenant, str) or not tenant.strip():
        raise InvalidRequest("tenant: required")
    tenant = tenant.strip()
    if len(tenant) > MAX_TENANT_CHARS or not TENANT_CHARS.fullmatch(tenant):
        raise InvalidRequest(f"tenant: at most {MAX_TENANT_CHARS} of A-Z a-z 0-9 . _ : @ -")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidRequest(f"name: printable text of at most {MAX_NAME_CHARS} characters")
    key, record = store.create(tenant, name.strip())
    return {**key_json(record), "key": key}


def revoke_key(store: KeyStore, key_id: str) -> dict:
    if not KEY_ID_CHARS.fullmatch(key_id):
        raise InvalidRequest("key_id: the hexadecimal id `costmesh keys list` shows")
    return key_json(store.revoke(key_id))
