"""TLS at the public edge: the gateway's gRPC and HTTP ports, certificate and key from files,
read again when they change (a renewed certificate is served without a restart).

Settings (`EdgeTls.from_env`):

    COSTMESH_TLS            auto (default): TLS when the files are given; without them, plaintext
                            on a loopback address only, and a non-loopback bind refuses to start
                            on: the files are required
                            off: plaintext, explicitly (development, or TLS ended in front of it)
    COSTMESH_TLS_CERT_FILE  the certificate chain (PEM, the server's certificate first)
    COSTMESH_TLS_KEY_FILE   its private key (PEM, unencrypted)

Reloading: the files are checked (a `stat`) at most once a second, on a new connection; when
they changed and the new key matches the new certificate, new connections get the new pair,
connections already open keep theirs. A half-written pair (the certificate replaced, not yet the
key) is skipped and the pair in use kept, so rotating the two files one after the other is safe.
gRPC: `grpc.dynamic_ssl_server_credentials` with a certificate configuration fetcher; HTTP: an
`ssl.SSLContext` whose SNI callback (called on every handshake, with or without a server name)
moves the connection onto a context made from the new files.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import grpc
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import Field

from costmesh.config import Env
from costmesh.errors import ConfigError
from costmesh.settings import Lowercase, Settings

log = structlog.get_logger()

MODES = ("auto", "on", "off")


class TlsSettings(Settings):
    """TLS on a public service's ports (the gateway's gRPC and HTTP)."""

    used_by: ClassVar[str] = "gateway"

    tls: Annotated[Literal["auto", "on", "off"], Lowercase] = Field(
        "auto", description="`auto`: TLS with the files; without them plaintext on loopback only, any other "
        "address refuses to start; `on`: files required; `off`: plaintext, explicitly")
    tls_cert_file: str | None = Field(None, description="the certificate chain (PEM), read again when it changes "
                                      "(`costmesh tls-cert DIR` makes a pair)")
    tls_key_file: str | None = Field(None, description="its private key (PEM)")
    tls_ca_file: str | None = Field(None, description="the CA that the container health check and the launcher "
                                    "trust for the gateway's certificate (default: the public roots)")
CHECK_INTERVAL_S = 1.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes
    generation: int  # grows each time new files are taken


def check_pair(cert_pem: bytes, key_pem: bytes) -> None:
    """ValueError unless `cert_pem` holds a certificate and `key_pem` its private key."""
    certificates = x509.load_pem_x509_certificates(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (certificates[0].public_key().public_bytes(serialization.Encoding.DER, public)
            != key.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise ValueError("the private key does not match the certificate")


class CertificateFiles:
    """The certificate chain and key files, read again when they change (checked at most every
    `check_interval_s`). Thread-safe: gRPC's fetcher runs on gRPC's own threads."""

    def __init__(self, cert_file: str | os.PathLike, key_file: str | os.PathLike, *,
                 check_interval_s: float = CHECK_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._interval = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        signature = self._signature()
        try:
            pair = self._read(0)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"TLS certificate {self.cert_file} and key {self.key_file}: "
                              f"{type(exc).__name__}: {exc}") from None
        self._pair, self._signature_seen = pair, signature
        self._checked_at = self._clock()

    def _signature(self) -> tuple:
        out = []
        for path in (self.cert_file, self.key_file):
            try:
                st = path.stat()  # follows symbolic links: a Kubernetes Secret update swaps one
            except OSError:
                out.append(None)
            else:
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def _read(self, generation: int) -> KeyPair:
        cert_pem, key_pem = self.cert_file.read_bytes(), self.key_file.read_bytes()
        check_pair(cert_pem, key_pem)
        return KeyPair(cert_pem, key_pem, generation)

    def current(self) -> KeyPair:
        """The pair to serve now: the files as they are, when they changed and hold a valid pair."""
        with self._lock:
            now = self._clock()
            if now - self._checked_at < self._interval:
                return self._pair
            self._checked_at = now
            signature = self._signature()
            if signature == self._signature_seen:
                return self._pair
            try:
                pair = self._read(self._pair.generation + 1)
            except (OSError, ValueError) as exc:  # mid-rotation, or a bad file: keep serving the pair in use
                log.warning("tls: new certificate files not taken", cert_file=str(self.cert_file),
                            error=f"{type(exc).__name__}: {exc}")
                return self._pair
            self._pair, self._signature_seen = pair, signature
            log.info("tls: certificate reloaded", cert_file=str(self.cert_file), generation=pair.generation)
            return pair


class _Fetcher:
    """gRPC's certificate configuration fetcher: a new configuration when the files changed, else None."""

    def __init__(self, files: CertificateFiles):
        self._files = files
        self._served = files.current().generation

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            pair = self._files.current()
        except Exception as exc:  # noqa: BLE001 - never break a handshake over a reload
            log.warning("tls: reload failed", error=type(exc).__name__)
            return None
        if pair.generation == self._served:
            return None
        self._served = pair.generation
        return grpc.ssl_server_certificate_configuration([(pair.key_pem, pair.cert_pem)])


def grpc_server_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    pair = files.current()
    first = grpc.ssl_server_certificate_configuration([(pair.key_pem, pair.cert_pem)])
    return grpc.dynamic_ssl_server_credentials(first, _Fetcher(files), require_client_authentication=False)


class _HttpContexts:
    """An SSLContext per certificate generation; the first one's SNI callback moves every new
    connection onto the newest."""

    def __init__(self, files: CertificateFiles):
        self._files = files
        self._generation = files.current().generation
        self.base = self._context()
        self.base.sni_callback = self._on_hello
        self._newest = self.base

    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._files.cert_file, self._files.key_file)
        return context

    def _on_hello(self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        try:
            pair = self._files.current()
            if pair.generation != self._generation:
                self._newest = self._context()
                self._generation = pair.generation
        except (OSError, ssl.SSLError) as exc:  # the files changed again meanwhile: next time
            log.warning("tls: reload failed", error=type(exc).__name__)
        if self._newest is not context:
            connection.context = self._newest
        return None


def http_ssl_context(files: CertificateFiles) -> ssl.SSLContext:
    """The context to listen with (aiohttp's `ssl_context`); it follows the files."""
    return _HttpContexts(files).base


@dataclass
class EdgeTls:
    """TLS of a public service's listening ports (the gateway's gRPC and HTTP)."""

    mode: str = "auto"
    cert_file: Path | None = None
    key_file: Path | None = None
    _files: CertificateFiles | None = None

    @classmethod
    def from_env(cls, env: Env) -> "EdgeTls":
        settings = TlsSettings.load(env)
        mode, cert, key = settings.tls, settings.tls_cert_file, settings.tls_key_file
        if mode != "off" and bool(cert) != bool(key):
            raise ConfigError("COSTMESH_TLS_CERT_FILE and COSTMESH_TLS_KEY_FILE go together: give both")
        if mode == "on" and not cert:
            raise ConfigError("COSTMESH_TLS=on needs COSTMESH_TLS_CERT_FILE and COSTMESH_TLS_KEY_FILE")
        return cls(mode, Path(cert) if cert else None, Path(key) if key else None)

    @property
    def enabled(self) -> bool:
        return self.mode != "off" and self.cert_file is not None

    def files(self) -> CertificateFiles:
        """The certificate files, read once here and shared by the gRPC and HTTP ports."""
        if self._files is None:
            assert self.cert_file is not None and self.key_file is not None
            self._files = CertificateFiles(self.cert_file, self.key_file)
        return self._files

    def check_plaintext(self, host: str, what: str) -> None:
        """Allow plaintext on `host`, or raise ConfigError: without TLS files, only loopback
        addresses serve plaintext, unless COSTMESH_TLS=off says so explicitly."""
        if self.mode == "off":
            if not is_loopback(host):
                log.warning("TLS IS OFF (COSTMESH_TLS=off): API keys and prompts cross the network in the clear",
                            port=what, host=host)
            return
        if not is_loopback(host):
            raise ConfigError(
                f"{what}: refusing plaintext on {host} (not a loopback address): give COSTMESH_TLS_CERT_FILE and "
                "COSTMESH_TLS_KEY_FILE (`costmesh tls-cert DIR` makes a self-signed pair), or set COSTMESH_TLS=off "
                "if TLS ends in front of the gateway")

    def grpc_credentials(self, host: str) -> grpc.ServerCredentials | None:
        """Credentials for the gRPC port on `host`; None: plaintext (checked)."""
        if self.enabled:
            return grpc_server_credentials(self.files())
        self.check_plaintext(host, "gRPC")
        return None

    def http_context(self, host: str) -> ssl.SSLContext | None:
        """The SSLContext of the HTTP port on `host`; None: plaintext (checked)."""
        if self.enabled:
            return http_ssl_context(self.files())
        self.check_plaintext(host, "HTTP")
        return None
