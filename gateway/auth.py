"""Per-tenant API keys and admin keys: a key store of SHA-256 hashes, and the bearer-token check.

A key looks like `cm_<key id>_<secret>`; only its SHA-256 hash is stored, next to the tenant
it belongs to and its role: `tenant` (the default, and what a key of a file written before
roles existed is) makes requests for its tenant; `admin` (`costmesh keys create --admin`)
belongs to no tenant and only administers the gateway (the dashboard and its API,
`gateway.admin`): it is refused, PERMISSION_DENIED / HTTP 403, for completions, models,
batches and feedback, so a leaked tenant key never reads another tenant's spend and an admin
key never runs up a bill nobody owns. The key store is a JSON file (`COSTMESH_API_KEYS_FILE`), rewritten atomically
on every change and re-read by the gateway when it changes, so a revoked key stops working
on the next request without a restart. The tenant of a request always comes from its key.

No gRPC or HTTP here: both front doors hand `authenticate` the `Authorization` value.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog

from costmesh.config import Env
from costmesh.cost_records import bind_key_id
from costmesh.errors import ConfigError, InvalidRequest, NotFound, PermissionDenied, Unauthenticated
from costmesh.gateway.settings import GatewayConfig
from costmesh.server_settings import ServerSettings

log = structlog.get_logger()

KEY_PREFIX = "cm_"
TENANT_ROLE, ADMIN_ROLE = "tenant", "admin"
ROLES = (TENANT_ROLE, ADMIN_ROLE)
AUTH_DISABLED = "off"  # COSTMESH_AUTH=off: explicit development mode, no keys


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    tenant: str
    sha256: str
    created_at: float
    revoked_at: float | None = None
    name: str = ""
    role: str = TENANT_ROLE  # absent from key files written before roles: a tenant key

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"key {self.key_id}: role must be one of {', '.join(ROLES)}, not {self.role!r}")

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def admin(self) -> bool:
        return self.role == ADMIN_ROLE

    def to_json(self) -> dict:
        """As the file keeps it; `role` only for admin keys, so that a file of tenant keys stays
        readable by a gateway that predates roles."""
        out = asdict(self)
        if self.role == TENANT_ROLE:
            del out["role"]
        return out


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant of the key (or, in dev mode, the tenant the caller names)."""

    tenant: str
    key_id: str


class KeyStore:
    """The key file. Reads are cached and refreshed when the file changes on disk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._by_hash: dict[str, KeyRecord] = {}
        self._records: list[KeyRecord] = []

    # -- reading -----------------------------------------------------------------------

    def records(self) -> list[KeyRecord]:
        self._refresh()
        return list(self._records)

    def lookup(self, key: str) -> KeyRecord | None:
        self._refresh()
        record = self._by_hash.get(hash_key(key))
        return record if record is not None and record.active else None

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise ConfigError(
                f"API key file {self.path} does not exist; create keys with `costmesh keys create`"
            ) from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        self._records = self._read()
        self._by_hash = {r.sha256: r for r in self._records}
        self._stamp = stamp

    def _read(self) -> list[KeyRecord]:
        try:
            raw = json.loads(self.path.read_text() or '{"keys": []}')
            return [KeyRecord(**item) for item in raw.get("keys", [])]
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"API key file {self.path} is unreadable: {exc}") from exc

    # -- writing -----------------------------------------------------------------------

    def create(self, tenant: str, name: str = "", *, role: str = TENANT_ROLE) -> tuple[str, KeyRecord]:
        """Mint a key for `tenant` (an admin key: for no tenant, `tenant` ""); returns the key
        (shown once, never stored) and its record."""
        tenant = tenant.strip()
        if role not in ROLES:
            raise InvalidRequest(f"role: one of {', '.join(ROLES)}")
        if role == TENANT_ROLE and not tenant:
            raise InvalidRequest("tenant: required")
        if role == ADMIN_ROLE and tenant:
            raise InvalidRequest("tenant: an admin key belongs to no tenant; leave it out")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = KeyRecord(key_id=key_id, tenant=tenant, sha256=hash_key(key), created_at=time.time(), name=name,
                           role=role)
        with self._locked():
            self._write([*self._existing(), record])
        return key, record

    def ensure_file(self) -> None:
        """Create an empty key file if there is none (a gateway refuses to start without one)."""
        with self._locked():
            if not self.path.exists():
                self._write([])

    def revoke(self, key_id: str) -> KeyRecord:
        with self._locked():
            records = self._existing()
            for i, record in enumerate(records):
                if record.key_id == key_id:
                    if record.active:
                        records[i] = KeyRecord(**{**asdict(record), "revoked_at": time.time()})
                        self._write(records)
                    return records[i]
        raise NotFound(f"key_id: no key {key_id!r} in {self.path}")

    @contextlib.contextmanager
    def _locked(self):
        """Writers (CLI, launcher, tests) serialise on a lock file beside the key file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _existing(self) -> list[KeyRecord]:
        return self._read() if self.path.exists() else []

    def _write(self, records: list[KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"keys": [r.to_json() for r in records]}, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(body)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)  # a new inode: readers notice the change
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class Authenticator:
    """Turns an `Authorization` header value into a `Principal`, or raises `Unauthenticated`."""

    def __init__(self, store: KeyStore | None):
        self.store = store  # None: development mode, authentication off

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def authenticate(self, authorization: str | None, claimed_tenant: str = "") -> Principal:
        """`claimed_tenant` is the tenant a request body names: it must be empty or the key's own.
        The key's id (never the key) is bound for the call's cost record (`bind_key_id`). An admin
        key is refused (PermissionDenied): it makes no requests for a tenant."""
        bind_key_id("")
        if self.store is None:
            if not claimed_tenant.strip():
                raise InvalidRequest("tenant_id: required (authentication is off, so the request names its tenant)")
            return Principal(claimed_tenant, "")
        key = bearer_token(authorization)
        record = self.store.lookup(key)
        if record is None:
            raise Unauthenticated("the API key is unknown or revoked")
        if record.admin:
            raise PermissionDenied("an admin key administers the gateway (/dashboard) and makes no requests; "
                                   "use a tenant's key")
        if claimed_tenant and claimed_tenant != record.tenant:
            raise InvalidRequest("tenant_id: does not match the API key's tenant; leave it empty, the key decides")
        bind_key_id(record.key_id)
        return Principal(record.tenant, record.key_id)

    def authenticate_admin(self, authorization: str | None) -> KeyRecord:
        """The admin key of `Authorization: Bearer <key>`: Unauthenticated without a known, active
        key; PermissionDenied for a tenant's key, or when authentication is off (there are no admin
        keys then, and the admin API never runs open)."""
        if self.store is None:
            raise PermissionDenied("the admin API needs admin keys, and authentication is off (COSTMESH_AUTH=off)")
        record = self.store.lookup(bearer_token(authorization))
        if record is None:
            raise Unauthenticated("the API key is unknown or revoked")
        if not record.admin:
            raise PermissionDenied("a tenant's key cannot use the admin API: it needs an admin key "
                                   "(`costmesh keys create --admin`)")
        return record


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing API key: send `authorization: Bearer <key>`")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("malformed authorization: expected `Bearer <key>`")
    return token.strip()


def authenticator_from_env(env: Env) -> Authenticator:
    """The authenticator the environment asks for (`COSTMESH_AUTH`, `COSTMESH_API_KEYS_FILE`)."""
    return authenticator(ServerSettings.load(env).auth, GatewayConfig.load(env).api_keys_file)


def authenticator(mode: str, path: str | None) -> Authenticator:
    """`path` (the API key file) is required unless `mode` is `off`: development mode."""
    if mode == AUTH_DISABLED:
        log.warning(
            "AUTHENTICATION IS OFF (COSTMESH_AUTH=off): any caller may act as any tenant. "
            "Development only; never deploy like this."
        )
        return Authenticator(None)
    if mode != "on":
        raise ConfigError(f"COSTMESH_AUTH must be 'on' or 'off', got {mode!r}")
    if path is None:
        raise ConfigError(
            "COSTMESH_API_KEYS_FILE is required (create keys with `costmesh keys create --tenant NAME`); "
            "set COSTMESH_AUTH=off only for local development"
        )
    store = KeyStore(path)
    active = sum(r.active for r in store.records())  # fails at start if the file is missing or bad
    log.info("api keys loaded", file=str(path), active_keys=active)
    return Authenticator(store)
