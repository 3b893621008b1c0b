"""TLS for the server: a CA and per-host server certificates generated on the controller (or files you
give), installed on the host, `ssl = on` with a protocol floor, and `hostssl` rules when required."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .paths import ROOT
from .target import Cluster

VALID_DAYS = 397
RENEW_DAYS = 30


class Tls(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    dir: str = ".hearthdb/tls"  # controller: generated ca.crt, ca.key and <host>.crt/.key (keys mode 600)
    cert_file: str | None = None  # your server certificate (controller path) instead of a generated one
    key_file: str | None = None  # its private key
    min_protocol: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    require: bool = False  # hba `host` rules become `hostssl`: no unencrypted TCP connections
    ciphers: Annotated[str, Field(pattern=r"^[A-Za-z0-9:!+@_-]{1,300}$")] = "HIGH:!aNULL:!MD5:!3DES:!RC4"

    @model_validator(mode="after")
    def _check(self) -> Tls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.require and not self.enabled:
            raise ValueError("require: needs enabled: true")
        for key in ("cert_file", "key_file"):
            path = getattr(self, key)
            if path and not Path(path).expanduser().is_file():
                raise ValueError(f"{key}: {path} is not a file")
        return self


def tls_dir(tls: Tls) -> Path:
    path = Path(tls.dir).expanduser()
    return path if path.is_absolute() else ROOT / path


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(pem, pkcs8, serialization.NoEncryption())


def ensure_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The controller's CA, generated once (clients verify the server with ca.crt)."""
    crt, key = folder / "ca.crt", folder / "ca.key"
    if crt.exists() and key.exists():
        loaded = serialization.load_pem_private_key(key.read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(crt.read_bytes()), loaded
    ca_key = ec.generate_private_key(ec.SECP256R1())
    # a name of its own, so that two installations' CAs are never mistaken for each other
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hearthdb CA {os.urandom(4).hex()}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(key, _key_pem(ca_key), 0o600)
    _write(crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, ca_key


def _names(host_names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in dict.fromkeys([*host_names, "localhost", "127.0.0.1"]):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _current(crt: Path, ca: x509.Certificate, names: list[x509.GeneralName]) -> bool:
    if not crt.exists():
        return False
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    fresh = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=RENEW_DAYS)
    return cert.issuer == ca.subject and set(san) == set(names) and fresh


def server_files(tls: Tls, host_name: str, addresses: list[str]) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for a host: yours, or generated and kept on the controller, renewed
    when its names change or it nears expiry."""
    if tls.cert_file and tls.key_file:
        return Path(tls.cert_file).expanduser().read_bytes(), Path(tls.key_file).expanduser().read_bytes()
    folder = tls_dir(tls)
    ca, ca_key = ensure_ca(folder)
    crt, key = folder / f"{host_name}.crt", folder / f"{host_name}.key"
    names = _names([host_name, *addresses])
    if not _current(crt, ca, names) or not key.exists():
        server_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)]))
            .issuer_name(ca.subject)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write(key, _key_pem(server_key), 0o600)
        _write(crt, cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM), 0o644)
    return crt.read_bytes(), key.read_bytes()


def tls_settings(tls: Tls, target: Cluster) -> dict[str, str | bool]:
    if not tls.enabled:
        return {}
    return {
        "ssl": True,
        "ssl_cert_file": target.tls_cert,
        "ssl_key_file": target.tls_key,
        "ssl_min_protocol_version": tls.min_protocol,
        "ssl_ciphers": tls.ciphers,
        "ssl_prefer_server_ciphers": True,
    }
