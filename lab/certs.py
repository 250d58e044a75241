"""Certificates for TLS peers in tests and benchmarks, made on the spot with `cryptography`
(already a dependency): a CA, leaves signed by it or self-signed, any validity window, any
names, written to PEM files a server context loads.

    ca = make_ca("fleetmon test CA")
    leaf = make_cert(["platform.example", "127.0.0.1"], issuer=ca, days=(−1, 20))
    context = server_context(leaf, tmp_path)       # an ssl.SSLContext for asyncio/aiohttp servers
    ca.write(tmp_path / "ca.pem")                    # what a client trusts (ca_file)

Keys are EC P-256: fast to make (a test makes dozens).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Cert:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(self, path: Path) -> Path:
        """The certificate alone, PEM (what a client trusts)."""
        path.write_bytes(self.pem())
        return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetmon lab")])


def make_ca(common_name: str = "fleetmon lab CA", days: tuple[float, float] = (-1, 3650)) -> Cert:
    """A self-signed CA certificate valid from now + days[0] to now + days[1]."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0])).not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Cert(cert, key)


def make_cert(
    names: Iterable[str], issuer: Cert | None = None, days: tuple[float, float] = (-1, 365),
    common_name: str | None = None, san: bool = True,
) -> Cert:
    """A server certificate for `names` (DNS names or IP addresses, as subjectAltNames unless
    `san` is False, then only the first as CN), signed by `issuer` or self-signed, valid from
    now + days[0] to now + days[1] (days may be fractions; an end in the past is expired)."""
    names = list(names)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = _name(common_name or names[0])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0])).not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if san:
        general: list[x509.GeneralName] = []
        for name in names:
            try:
                general.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                general.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Cert(cert, key)


def server_context(leaf: Cert, directory: Path, chain: Iterable[Cert] = ()) -> ssl.SSLContext:
    """A server-side SSLContext presenting `leaf` (and `chain` after it); files go to `directory`."""
    stem = f"cert-{leaf.cert.serial_number:x}"
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(leaf.pem() + b"".join(c.pem() for c in chain))
    key_file.write_bytes(leaf.key_pem())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context
