"""A scripted HTTP/1.1 socket server for transport tests, and a TLS certificate for it."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.support import pem


@dataclass
class Answer:
    """What the server writes for one request; ``close`` hangs up right after it. With
    ``pace_s``, the bytes after the first ``paced_from`` are written one at a time, ``pace_s``
    apart (a trickle)."""

    raw: bytes
    close: bool = False
    pace_s: float = 0.0
    paced_from: int = 0


def ok(body: bytes = b"hello") -> Answer:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
    return Answer(head.encode() + body)


@dataclass
class Server:
    """A socket server answering each request head with ``script(request_head)``.

    ``tls``: speak TLS from the start; ``tunnel_tls``: answer CONNECT with 200 and speak TLS
    inside the tunnel (a proxy and its destination in one).
    """

    script: Callable[[bytes], Answer | None]
    tls: ssl.SSLContext | None = None
    tunnel_tls: ssl.SSLContext | None = None
    sock: socket.socket = field(default_factory=socket.socket)
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self._answer(conn)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):  # the client hung up
            pass
        finally:
            conn.close()

    def _answer(self, conn: socket.socket) -> None:
        buffered = b""
        while True:
            while b"\r\n\r\n" not in buffered:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffered += chunk
            head, buffered = buffered.split(b"\r\n\r\n", 1)
            self.heads.append(head)
            if head.startswith(b"CONNECT ") and self.tunnel_tls is not None:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                conn = self.tunnel_tls.wrap_socket(conn, server_side=True)
                continue
            answer = self.script(head)
            if answer is None:
                # A silent server (the thing under test): hold the connection and answer
                # nothing, so that the client's read timeout fires.
                time.sleep(5)
                return
            if answer.pace_s:
                conn.sendall(answer.raw[: answer.paced_from])
                for at in range(answer.paced_from, len(answer.raw)):
                    time.sleep(answer.pace_s)
                    conn.sendall(answer.raw[at : at + 1])
            else:
                conn.sendall(answer.raw)
            if answer.close:
                return


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(
        script: Callable[[bytes], Answer | None],
        *,
        tls: ssl.SSLContext | None = None,
        tunnel_tls: ssl.SSLContext | None = None,
    ) -> Server:
        server = Server(script, tls=tls, tunnel_tls=tunnel_tls)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.sock.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    """A server context with a self-signed certificate for 127.0.0.1, and that certificate's
    PEM file (the CA bundle a client must be given to trust it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    context, cert_file = pem.server_context(cert, key, directory, "cert")
    return context, str(cert_file)
