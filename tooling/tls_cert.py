"""`costmesh tls-cert DIR`: a private CA and a gateway certificate it signed, for TLS at the gateway
without a public CA (development, compose, a first cluster).

Writes `ca.pem` (give it to clients: `Client(..., ca_file=...)`, `curl --cacert`, Node's `ca`),
`cert.pem` and `key.pem` (the gateway's `COSTMESH_TLS_CERT_FILE` / `COSTMESH_TLS_KEY_FILE`, key
mode 0600). The certificate names `localhost`, 127.0.0.1, ::1 and each `--host`; it is valid for
`--days` (default 365). An existing cert.pem and key.pem are kept unless `--force`: the gateway reloads the pair
when it changes, so `--force` rotates it without a restart (the CA is kept when present).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically (a reader never sees half a file), with `mode` from the start."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _subject_names(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _ca(directory: Path, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_file, ca_key_file = directory / "ca.pem", directory / "ca-key.pem"
    if ca_file.exists() and ca_key_file.exists():
        key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
        return x509.load_pem_x509_certificate(ca_file.read_bytes()), key  # type: ignore[return-value]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "costmesh private CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(ca_key_file, _pem_key(key), 0o600)
    _write(ca_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def make_tls_files(directory: str | os.PathLike, hosts: tuple[str, ...] = (), *, days: int = 365,
                   force: bool = False) -> TlsFiles:
    """The CA and the gateway's certificate and key in `directory` (made unless they exist, or `force`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    if not force and files.cert_file.exists() and files.key_file.exists():
        return files  # made before, or brought by you: never replaced
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_cert, ca_key = _ca(directory, now)
    key = ec.generate_private_key(ec.SECP256R1())
    all_hosts = (*DEFAULT_HOSTS, *hosts)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "localhost")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(_subject_names(all_hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    # The key first, then the certificate: a gateway reloading in between keeps the old pair
    # (the new key does not match the old certificate) and takes the new one on its next look.
    _write(files.key_file, _pem_key(key), 0o600)
    _write(files.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def add_arguments(parser) -> None:
    parser.add_argument("directory", help="where ca.pem, cert.pem and key.pem go (made if missing)")
    parser.add_argument("--host", action="append", default=[],
                        help="a name or address the gateway is reached at (repeat; localhost and 127.0.0.1 always)")
    parser.add_argument("--days", type=int, default=365, help="the certificate's validity (default 365)")
    parser.add_argument("--force", action="store_true", help="a new certificate and key even if they exist")


def run(args) -> int:
    files = make_tls_files(args.directory, tuple(args.host), days=args.days, force=args.force)
    print(f"gateway: COSTMESH_TLS_CERT_FILE={files.cert_file} COSTMESH_TLS_KEY_FILE={files.key_file}")
    print(f"clients: trust {files.ca_file} (Python: Client(..., ca_file=...); curl --cacert; Node: ca)")
    return 0
