"""The mesh secret: the key every service signs and checks service tokens with (`mesh_auth`).

A text file, one key per line (at least 32 characters each): the first signs, every one is
accepted, so a key is rotated by adding the new one on a second line, restarting the services,
then moving it first, restarting again and dropping the old one. `costmesh serve`, the demo and
the launcher make one in their run directory; `costmesh mesh-secret FILE` makes one for compose
or a Kubernetes Secret. Written with mode 0600 and never logged.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from costmesh.errors import ConfigError

MIN_KEY_CHARS = 32


def read_secret(path: str | os.PathLike) -> tuple[bytes, ...]:
    """The keys of the secret file, the signing one first; ConfigError when missing or too weak."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"mesh secret file {path} does not exist; make one with `costmesh mesh-secret {path}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"mesh secret file {path} is unreadable: {type(exc).__name__}") from None
    keys = tuple(line.strip().encode() for line in text.splitlines() if line.strip())
    if not keys:
        raise ConfigError(f"mesh secret file {path} is empty")
    if any(len(key) < MIN_KEY_CHARS for key in keys):
        raise ConfigError(f"mesh secret file {path}: every key must be at least {MIN_KEY_CHARS} characters")
    return keys


def new_key() -> str:
    return secrets.token_urlsafe(48)  # 384 random bits, 64 characters


def ensure_secret(path: str | os.PathLike) -> Path:
    """Make the secret file (mode 0600) unless it exists; safe when several processes race."""
    path = Path(path)
    if path.exists():
        read_secret(path)  # fails now if it is unusable, rather than in every service
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(new_key() + "\n")
        try:
            os.link(tmp, path)  # atomic, and never replaces a secret another process just made
        except FileExistsError:
            pass
    finally:
        Path(tmp).unlink(missing_ok=True)
    read_secret(path)
    return path
