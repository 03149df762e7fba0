"""The dashboard's admin credential: one bearer token, from a file or the environment.

The dashboard never runs open: without a token it refuses to start. `--admin-token-file PATH`
(or COSTMESH_ADMIN_TOKEN_FILE) names a file holding the token, made (mode 0600, a fresh random
token) when it does not exist yet; COSTMESH_ADMIN_TOKEN gives the token itself. Only the
token's SHA-256 is kept in memory, and a presented token is compared in constant time. The
token is never logged and never travels in a URL the server sees.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from costmesh.errors import ConfigError, Unauthenticated
from costmesh.gateway.auth import bearer_token

MIN_TOKEN_CHARS = 32
MAX_TOKEN_CHARS = 512


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AdminToken:
    def __init__(self, token: str, source: str):
        token = token.strip()
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(f"the admin token ({source}) must be at least {MIN_TOKEN_CHARS} characters")
        if len(token) > MAX_TOKEN_CHARS:
            raise ConfigError(f"the admin token ({source}) must be at most {MAX_TOKEN_CHARS} characters")
        self._sha256 = _digest(token)
        self.source = source

    def check(self, authorization: str | None) -> None:
        """Raises `Unauthenticated` unless `authorization` is `Bearer <the admin token>`."""
        token = bearer_token(authorization)
        if len(token) > MAX_TOKEN_CHARS or not hmac.compare_digest(_digest(token), self._sha256):
            raise Unauthenticated("the admin token is wrong")


def write_new_token(path: Path) -> None:
    """A fresh token in a new file of mode 0600 (refuses to overwrite one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")


def load_admin_token(file: str | None, env_token: str | None) -> tuple[AdminToken, bool]:
    """(the token, whether its file was made now). `file` wins over `env_token`."""
    if file:
        path = Path(file)
        created = False
        if not path.exists():
            write_new_token(path)
            created = True
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"admin token file {path} is unreadable: {type(exc).__name__}") from None
        return AdminToken(text, f"file {path}"), created
    if env_token:
        return AdminToken(env_token, "$COSTMESH_ADMIN_TOKEN"), False
    raise ConfigError("the dashboard needs an admin token: --admin-token-file PATH (made if missing), "
                      "$COSTMESH_ADMIN_TOKEN_FILE, or $COSTMESH_ADMIN_TOKEN; it never runs open")
