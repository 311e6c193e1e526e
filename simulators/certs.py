"""Self-signed OPC UA application certificates for one run, made with ``cryptography``.

The PLC gets a server certificate, and the run folder also gets a client
certificate the edge agent (or a test) can present; both are fresh per run, so
nothing secret lives in the repository.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_URI = "urn:takt:sim:plc"
CLIENT_URI = "urn:takt:sim:client"


@dataclass(frozen=True)
class CertPair:
    cert: Path  # DER, as OPC UA stacks expect
    key: Path  # PEM, unencrypted, readable by the owner only
    uri: str


def make_cert(folder: Path, name: str, uri: str, *, server: bool) -> CertPair:
    """An RSA-2048 self-signed application instance certificate with the OPC UA extensions."""
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"takt-sim {name}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Takt simulator"),
        ]
    )
    now = datetime.now(UTC)
    eku = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(uri),
                    x509.DNSName("localhost"),
                    x509.DNSName(socket.gethostname()),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / f"{name}-cert.der"
    key_path = folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return CertPair(cert_path, key_path, uri)


def make_run_pki(folder: Path) -> tuple[CertPair, CertPair]:
    """(server, client) certificates in ``folder``."""
    return (
        make_cert(folder, "server", SERVER_URI, server=True),
        make_cert(folder, "client", CLIENT_URI, server=False),
    )
