"""Tests of `ossfs.net.oss_http`: the pooled HTTP transport, against a scripted socket server."""

from __future__ import annotations

import base64
import http.client
import io
import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Final

import pytest

from ossfs.net.http_wire import Headers, SocketReader, read_answer_head
from ossfs.net.oss_http import HttpRequest, PooledTransport
from tests.support.http_server import Answer, Server, certificate, ok, serve

__all__ = ["certificate", "serve"]  # fixtures, used by name

TIMEOUTS = (2.0, 2.0)


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


_CHUNKED_HEAD: Final = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("chunks", "body"),
    [
        (b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n", b"helloabc"),
        (b"4;ext=1\r\nwiki\r\n0\r\nTrailer: x\r\n\r\n", b"wiki"),  # extension, trailer
    ],
)
def test_transport_reads_chunked_bodies(
    serve: Callable[..., Server], chunks: bytes, body: bytes
) -> None:
    server = serve(lambda head: Answer(_CHUNKED_HEAD + chunks))
    transport = PooledTransport(pool_size=4)
    assert get(transport, f"{server.url}/c") == body
    assert get(transport, f"{server.url}/c") == body
    assert server.connections == 1


def test_transport_read_timeout(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: None)
    transport = PooledTransport(pool_size=4)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        transport.send(HttpRequest("GET", f"{server.url}/slow"), (2.0, 0.3))
    assert time.monotonic() - began < 2.0


def test_transport_read_timeout_applies_to_a_kept_connection(
    serve: Callable[..., Server],
) -> None:
    answers = iter([ok(), None])
    server = serve(lambda head: next(answers))
    transport = PooledTransport(pool_size=4)
    assert get(transport, f"{server.url}/fast") == b"hello"
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        transport.send(HttpRequest("GET", f"{server.url}/slow"), (2.0, 0.3))
    assert time.monotonic() - began < 2.0
    assert server.connections == 1


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


# -- TLS and tunnels ------------------------------------------------------------------------------


def test_transport_https_verifies_against_the_ca_bundle(
    serve: Callable[..., Server], certificate: tuple[ssl.SSLContext, str]
) -> None:
    context, ca_bundle = certificate
    server = serve(lambda head: ok(b"secret"), tls=context)
    transport = PooledTransport(pool_size=2, ca_bundle=ca_bundle)
    assert [get(transport, f"{server.url}/t") for _ in range(2)] == [b"secret"] * 2
    assert server.connections == 1
    untrusting = PooledTransport(pool_size=2)  # the system's CAs: the certificate is unknown
    with pytest.raises(ssl.SSLCertVerificationError):
        get(untrusting, f"{server.url}/t")


def test_transport_https_through_a_connect_tunnel(
    serve: Callable[..., Server], certificate: tuple[ssl.SSLContext, str]
) -> None:
    context, ca_bundle = certificate
    proxy = serve(lambda head: ok(b"tunnelled"), tunnel_tls=context)
    port = proxy.url.rsplit(":", 1)[1]
    transport = PooledTransport(
        pool_size=2, proxies={"https": f"http://u:pw@{proxy.url[7:]}"}, ca_bundle=ca_bundle
    )
    # The tunnel leads to the proxy itself, which also holds the certificate for 127.0.0.1.
    assert get(transport, f"https://127.0.0.1:{port}/x?y=1") == b"tunnelled"
    connect, inner = proxy.heads[0].decode(), proxy.heads[1].decode()
    token = base64.b64encode(b"u:pw").decode()
    assert connect.startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n")
    assert f"Proxy-Authorization: Basic {token}" in connect
    assert inner.startswith("GET /x?y=1 HTTP/1.1\r\n") and "Proxy-Authorization" not in inner


def test_transport_reports_a_refused_tunnel(serve: Callable[..., Server]) -> None:
    proxy = serve(lambda head: Answer(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"))
    transport = PooledTransport(pool_size=2, proxies={"https": proxy.url})
    with pytest.raises(OSError, match="407"):
        get(transport, "https://oss.invalid/k")


# -- the wire format ------------------------------------------------------------------------------


def test_transport_rejects_header_injection(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: ok())
    transport = PooledTransport(pool_size=2)
    with pytest.raises(ValueError, match="invalid HTTP header"):
        transport.send(HttpRequest("GET", f"{server.url}/", {"X": "a\r\nEvil: 1"}), TIMEOUTS)
    assert server.heads == []


def test_transport_skips_interim_answers_and_reads_until_close(
    serve: Callable[..., Server],
) -> None:
    """A 100 Continue before the answer is skipped; an answer with neither a length nor
    chunks ends when the server closes, and that connection is not kept."""
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"
    server = serve(lambda head: Answer(raw, close=True))
    transport = PooledTransport(pool_size=2)
    assert get(transport, f"{server.url}/a") == b"all of it"
    assert get(transport, f"{server.url}/b") == b"all of it"
    assert server.connections == 2


def test_transport_http10_answers_close_unless_kept_alive(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: Answer(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    transport = PooledTransport(pool_size=2)
    assert get(transport, f"{server.url}/a") == b"ok"
    assert get(transport, f"{server.url}/b") == b"ok"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", http.client.RemoteDisconnected),
        (b"SPDY/3 200 OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nA: 1\r\n folded: 2\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nBad : 1\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 201 + b"\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", http.client.LineTooLong),
        (b"HTTP/1.1 200 OK\r\nX: y\r\n", http.client.IncompleteRead),
    ],
)
def test_read_answer_head_rejects_malformed_heads(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_answer_head(io.BufferedReader(io.BytesIO(raw)))


def test_read_answer_head_parses_status_headers_and_keep_alive() -> None:
    raw = b'HTTP/1.1 206 Partial Content\r\nETag: "e"\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody'
    status, keep_alive, headers = read_answer_head(io.BufferedReader(io.BytesIO(raw)))
    assert (status, keep_alive) == (206, True)
    assert headers == {"etag": '"e"', "x-a": "1, 2"}
    closing = b"HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n"
    assert read_answer_head(io.BufferedReader(io.BytesIO(closing)))[1] is False
    kept = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"
    assert read_answer_head(io.BufferedReader(io.BytesIO(kept)))[1] is True


def test_transport_broken_chunked_body_is_incomplete(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: Answer(_CHUNKED_HEAD + b"a\r\nonly5", close=True))
    transport = PooledTransport(pool_size=2)
    response = transport.send(HttpRequest("GET", f"{server.url}/c"), TIMEOUTS)
    with pytest.raises(http.client.IncompleteRead):
        response.read()


def test_socket_reader_lines_across_receives_then_body() -> None:
    client, server = socket.socketpair()
    with client, server:
        client.settimeout(None)
        reader = SocketReader(client, waitall=True, size=16)
        server.sendall(b"HTTP/1.1 200 OK\r\nX-Long: ")
        server.sendall(b"0123456789\r\n\r\n" + b"b" * 40)
        assert reader.readline(100) == b"HTTP/1.1 200 OK\r\n"
        assert reader.readline(100) == b"X-Long: 0123456789\r\n"  # longer than the buffer
        assert reader.readline(100) == b"\r\n"
        body = bytearray(40)
        got = 0
        while got < 40:
            got += reader.readinto(memoryview(body)[got:])
        assert body == b"b" * 40
        server.sendall(b"abcdefgh")
        assert reader.readline(4) == b"abcd"  # cut at the limit
        server.close()
        assert reader.readline(100) == b"efgh"  # the stream ended mid-line
        assert reader.readline(100) == b""
        assert reader.readinto(memoryview(bytearray(4))) == 0


def test_socket_reader_kernel_timeout_is_timeout_error() -> None:
    client, server = socket.socketpair()
    with client, server:
        client.settimeout(None)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 200_000))
        reader = SocketReader(client, waitall=True)
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            reader.readinto(memoryview(bytearray(10)))
        assert time.monotonic() - began < 2.0


def test_transport_rejects_an_overlong_header_line(serve: Callable[..., Server]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n"
    server = serve(lambda head: Answer(raw, close=True))
    with pytest.raises(http.client.LineTooLong):
        get(PooledTransport(pool_size=2), f"{server.url}/long")


def test_transport_reads_a_long_header_line_within_the_limit(
    serve: Callable[..., Server],
) -> None:
    """Longer than the read buffer but within the line limit: read whole, not cut."""
    value = "v" * 65_000
    raw = f"HTTP/1.1 200 OK\r\nX-Big: {value}\r\nContent-Length: 2\r\n\r\nok".encode()
    server = serve(lambda head: Answer(raw))
    response = PooledTransport(pool_size=2).send(HttpRequest("GET", f"{server.url}/b"), TIMEOUTS)
    assert response.headers["x-big"] == value and response.read() == b"ok"
