"""A throw-away self-signed TLS certificate for local fakes on 127.0.0.1.

Gemini Live's SDK always dials ``wss://``, so a local fake has to speak TLS; the client then has to
trust this certificate (see :meth:`LocalCert.client_context`, or point ``SSL_CERT_FILE`` at
``cert_path``). The key is EC P-256: generated in about a millisecond, unlike RSA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class LocalCert:
    """Paths of a self-signed certificate (valid for 127.0.0.1 and localhost) and its private key."""

    cert_path: Path
    key_path: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that verifies hostnames and trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting this certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx


def write_self_signed_cert(directory: Path, *, common_name: str = "sam2voice test fake") -> LocalCert:
    """Write ``cert.pem`` and ``key.pem`` for 127.0.0.1 / localhost into ``directory`` (valid one day)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A little slack backwards so a clock a few seconds off does not make it "not yet valid".
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        # A self-signed leaf must say it may act as its own CA or OpenSSL refuses it as a trust anchor.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return LocalCert(cert_path=cert_path, key_path=key_path)
