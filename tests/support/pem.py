"""Write a certificate and its key as PEM files, and the TLS server context that serves them."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec


def server_context(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, directory: Path, name: str
) -> tuple[ssl.SSLContext, Path]:
    """``directory/NAME.pem`` (the certificate) and ``NAME.key`` (its unencrypted PKCS#8 key), and
    a server context loaded from them; returns the context and the certificate's file."""
    from cryptography.hazmat.primitives import serialization

    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
