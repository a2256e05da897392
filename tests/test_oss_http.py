"""Tests of `ossfs.oss_http`: the pooled HTTP transport, against a scripted socket server."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from ossfs.oss_http import Headers, HttpRequest, PooledTransport

TIMEOUTS = (2.0, 2.0)


@dataclass
class Answer:
    """What the server writes for one request; ``close`` hangs up right after it."""

    raw: bytes
    close: bool = False


def ok(body: bytes = b"hello") -> Answer:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
    return Answer(head.encode() + body)


@dataclass
class Server:
    """A socket server answering each request line with ``script(request_head)``."""

    script: Callable[[bytes], Answer | None]
    sock: socket.socket = field(default_factory=socket.socket)
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

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
        with conn:
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    try:
                        chunk = conn.recv(65536)
                    except ConnectionResetError:  # the client dropped an unread body
                        return
                    if not chunk:
                        return
                    buffered += chunk
                head, buffered = buffered.split(b"\r\n\r\n", 1)
                self.heads.append(head)
                answer = self.script(head)
                if answer is None:  # never answer: the client's read timeout must fire
                    time.sleep(5)
                    return
                conn.sendall(answer.raw)
                if answer.close:
                    return


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[bytes], Answer | None]], Server]]:
    servers: list[Server] = []

    def start(script: Callable[[bytes], Answer | None]) -> Server:
        server = Server(script)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.sock.close()


def get(transport: PooledTransport, url: str, method: str = "GET") -> bytes:
    response = transport.send(HttpRequest(method, url, {"X-Test": "1"}), TIMEOUTS)
    assert response.status == 200
    return response.read()


def test_transport_keeps_a_connection_whose_body_was_read(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: ok())
    transport = PooledTransport(pool_size=4)
    assert [get(transport, f"{server.url}/k{i}") for i in range(3)] == [b"hello"] * 3
    assert server.connections == 1
    assert server.heads[0].startswith(b"GET /k0 HTTP/1.1\r\n")
    assert b"X-Test: 1" in server.heads[0]


def test_transport_drops_a_connection_whose_body_was_not_read(
    serve: Callable[..., Server],
) -> None:
    server = serve(lambda head: ok(b"x" * 100_000))
    transport = PooledTransport(pool_size=4)
    response = transport.send(HttpRequest("GET", f"{server.url}/a"), TIMEOUTS)
    assert response.read(10) == b"x" * 10
    response.close()
    assert get(transport, f"{server.url}/b") == b"x" * 100_000
    assert server.connections == 2


def test_transport_resends_once_when_a_kept_connection_was_closed(
    serve: Callable[..., Server],
) -> None:
    """The server hangs up after answering (as an idle timeout would): the next request on
    that kept connection gets no answer and goes out again on a new one."""
    server = serve(lambda head: Answer(ok().raw, close=True))
    transport = PooledTransport(pool_size=4)
    assert get(transport, f"{server.url}/1") == b"hello"
    time.sleep(0.05)  # the server's FIN arrives
    assert get(transport, f"{server.url}/2") == b"hello"
    assert server.connections == 2


def test_transport_does_not_resend_on_a_new_connection(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: Answer(b"", close=True))
    transport = PooledTransport(pool_size=4)
    with pytest.raises(http.client.RemoteDisconnected):
        get(transport, f"{server.url}/x")
    assert server.connections == 1


def test_transport_short_body_is_incomplete_read(serve: Callable[..., Server]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"
    server = serve(lambda head: Answer(raw, close=True))
    transport = PooledTransport(pool_size=4)
    response = transport.send(HttpRequest("GET", f"{server.url}/s"), TIMEOUTS)
    view = memoryview(bytearray(10))
    assert response.readinto(view) == 5
    with pytest.raises(http.client.IncompleteRead):
        response.readinto(view[5:])


def test_transport_head_frees_the_connection_at_once(serve: Callable[..., Server]) -> None:
    """A HEAD answer announces the object's length but has no body."""

    def script(head: bytes) -> Answer:
        if head.startswith(b"HEAD"):
            return Answer(b'HTTP/1.1 200 OK\r\nContent-Length: 12345\r\nETag: "e"\r\n\r\n')
        return ok(b"body")

    server = serve(script)
    transport = PooledTransport(pool_size=4)
    response = transport.send(HttpRequest("HEAD", f"{server.url}/h"), TIMEOUTS)
    assert response.headers["etag"] == '"e"' and response.read() == b""
    assert get(transport, f"{server.url}/g") == b"body"
    assert server.connections == 1


def test_transport_reads_chunked_bodies(serve: Callable[..., Server]) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    server = serve(lambda head: Answer(raw))
    transport = PooledTransport(pool_size=4)
    assert get(transport, f"{server.url}/c") == b"helloabc"
    assert get(transport, f"{server.url}/c") == b"helloabc"
    assert server.connections == 1


def test_transport_read_timeout(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: None)
    transport = PooledTransport(pool_size=4)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        transport.send(HttpRequest("GET", f"{server.url}/slow"), (2.0, 0.3))
    assert time.monotonic() - began < 2.0


def test_transport_keeps_at_most_pool_size_idle(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: ok())
    transport = PooledTransport(pool_size=1)
    open_ = [transport.send(HttpRequest("GET", f"{server.url}/{i}"), TIMEOUTS) for i in range(3)]
    for response in open_:
        assert response.read() == b"hello"
    assert server.connections == 3
    for i in range(3):
        assert get(transport, f"{server.url}/again{i}") == b"hello"
    assert server.connections == 3  # one was kept and serves every later request


def test_transport_proxies_http_with_absolute_uri_and_credentials(
    serve: Callable[..., Server],
) -> None:
    proxy = serve(lambda head: ok())
    address = proxy.url.removeprefix("http://")
    transport = PooledTransport(pool_size=2, proxies={"http": f"http://us%40r:p@ss@{address}"})
    assert get(transport, "http://bucket.oss.invalid:8080/key?x=1") == b"hello"
    head = proxy.heads[0].decode()
    assert head.startswith("GET http://bucket.oss.invalid:8080/key?x=1 HTTP/1.1\r\n")
    assert "Host: bucket.oss.invalid:8080" in head
    token = base64.b64encode(b"us@r:p@ss").decode()
    assert f"Proxy-Authorization: Basic {token}" in head


def test_transport_rejects_proxies_it_cannot_use() -> None:
    with pytest.raises(ValueError, match="http://host:port") as info:
        PooledTransport(pool_size=1, proxies={"https": "socks5://u:secret@h:1"})
    assert "secret" not in str(info.value)


def test_transport_closed_pool_closes_returned_connections(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: ok())
    transport = PooledTransport(pool_size=2)
    response = transport.send(HttpRequest("GET", f"{server.url}/a"), TIMEOUTS)
    transport.close()
    assert response.read() == b"hello"  # its connection is closed, not kept
    assert get(transport, f"{server.url}/b") == b"hello"
    assert server.connections == 2


def test_headers_ignore_case() -> None:
    headers = Headers([("etag", '"x"'), ("content-length", "5")])
    assert headers["ETag"] == '"x"' and headers.get("Content-Length") == "5"
    assert "ETAG" in headers and "x-oss-meta" not in headers
    assert headers.get("missing") is None
