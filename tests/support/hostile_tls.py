"""The TLS side of the hostile-server battery (``tests/test_hostile_server.py``).

- `TunnelProxy`: a forward proxy (HTTP ``CONNECT``) that relays tunnels, or drops them.
- `make_tls`: a CA, and server contexts for a certificate naming 127.0.0.1 and one naming
  another host, both signed by that CA (`tests.hostile_proxy.MangleProxy` speaks TLS with
  either).

Deliberately test-only: a thread per tunnel direction, no proxy authentication.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.support import pem
from tests.support.hostile_proxy import Client, Listener, read_head

__all__ = ["TlsFiles", "TunnelProxy", "make_tls"]


class TunnelProxy(Listener):
    """A forward proxy: answers ``CONNECT host:port`` with 200 and relays bytes both ways.

    ``drop``: hang up right after the 200 instead (the tunnel is dropped before TLS starts);
    ``cut_after_bytes``: hang up once that many bytes went from the server to the client
    (mid-answer). Both may change while it runs; `cut_all` drops the open tunnels.
    ``tunnels`` counts the CONNECTs answered."""

    def __init__(self) -> None:
        self.drop = False
        self.cut_after_bytes: int | None = None
        self.tunnels = 0
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, client: Client) -> None:
        reader = client.sock.makefile("rb", buffering=0)
        try:
            lines = read_head(reader)
        finally:
            reader.close()
        if lines is None:
            return
        method, authority, _ = lines[0].decode("latin-1").split(" ", 2)
        if method != "CONNECT":
            client.send(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = authority.rpartition(":")
        with self._lock:
            self.tunnels += 1
        if self.drop:
            client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            return
        with socket.create_connection((host.strip("[]"), int(port)), timeout=30) as server:
            client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            upward = threading.Thread(target=_relay, args=(client.sock, server, None), daemon=True)
            upward.start()
            _relay(server, client.sock, self.cut_after_bytes)
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            upward.join(timeout=5)


def _relay(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
    """Copy ``source`` to ``sink`` until either ends (or ``limit`` bytes went), then hang up
    both."""
    sent = 0
    try:
        while limit is None or sent < limit:
            data = source.recv(65536 if limit is None else min(65536, limit - sent))
            if not data:
                break
            sink.sendall(data)
            sent += len(data)
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class TlsFiles:
    """``ca_file``: the PEM a client trusts; ``right``: a server context whose certificate
    names 127.0.0.1; ``wrong``: one whose certificate (from the same CA) names another host."""

    ca_file: Path
    right: ssl.SSLContext
    wrong: ssl.SSLContext


def make_tls(directory: Path) -> TlsFiles:
    """A CA and two server certificates in ``directory`` (``cryptography`` makes them)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ossfs test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def server_context(name: str, alt: x509.GeneralName) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return pem.server_context(cert, key, directory, name)[0]

    return TlsFiles(
        ca_file,
        right=server_context("127.0.0.1", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        wrong=server_context("wrong.example", x509.DNSName("wrong.example")),
    )
