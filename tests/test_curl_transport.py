"""Tests of `ossfs.net.curl_transport`: the engine under oss2, against a scripted socket server.

Every bound is checked by what ended the transfer (libcurl's error and message), never by how
long it took: the stall rule, the operation's deadline, the cap on interim answers, and the
framing surprises after which a connection is never reused.
"""

from __future__ import annotations

import base64
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from ossfs.core.deadline import deadline_scope
from ossfs.net.curl_setup import EngineSettings
from ossfs.net.curl_transport import CurlTransport
from ossfs.net.http_api import HttpRequest, TransferError
from tests.support.http_server import Answer, Server, certificate, ok, serve

__all__ = ["certificate", "serve"]  # fixtures, used by name

BODY = bytes(range(256)) * 4096  # 1 MiB


def make(**settings: object) -> CurlTransport:
    return CurlTransport(EngineSettings(**settings), max_idle=4)  # type: ignore[arg-type]


def get(transport: CurlTransport, url: str, method: str = "GET") -> bytes:
    response = transport.send(HttpRequest(method, url))
    try:
        return response.read()
    finally:
        response.close()


def by_path(answers: dict[bytes, Callable[[], Answer | None]]) -> Callable[[bytes], Answer | None]:
    """A script answering by the request's path (the second word of its request line)."""

    def script(head: bytes) -> Answer | None:
        return answers[head.split(b" ", 2)[1]]()

    return script


def test_curl_transport_keeps_one_connection_for_many_requests(
    serve: Callable[..., Server],
) -> None:
    def script(head: bytes) -> Answer:
        if head.startswith(b"HEAD "):  # the head of the answer a GET would get
            return Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        return ok(BODY if head.startswith(b"GET /big ") else b"alpha")

    server = serve(script)
    transport = make()
    for _ in range(5):
        assert get(transport, f"{server.url}/a") == b"alpha"
        assert get(transport, f"{server.url}/a", "HEAD") == b""
    response = transport.send(HttpRequest("GET", f"{server.url}/big"))
    assert response.status == 200 and response.headers["Content-Length"] == str(len(BODY))
    buffer = bytearray(len(BODY))
    view, filled = memoryview(buffer), 0
    while got := response.readinto(view[filled : filled + 100_000]):  # smaller than it comes
        filled += got
    response.close()
    assert bytes(buffer) == BODY
    assert get(transport, f"{server.url}/a") == b"alpha"
    assert server.connections == 1
    assert all(b"HEAD /a" in h or b"GET /" in h for h in server.heads)


def test_curl_transport_sends_the_headers_it_is_given(serve: Callable[..., Server]) -> None:
    server = serve(lambda head: ok())
    transport = make()
    request = HttpRequest("GET", f"{server.url}/k?symlink=", {"X-Oss-A": "1", "X-Empty": ""})
    transport.send(request).close()
    head = server.heads[0].decode("latin-1")
    assert head.startswith("GET /k?symlink= HTTP/1.1\r\n")
    assert "\r\nX-Oss-A: 1" in head and "\r\nX-Empty:" in head
    # Nothing that changes the body's bytes (no Accept-Encoding) and nothing unsigned added.
    assert "Accept-Encoding" not in head and "Accept:" not in head and "Expect" not in head
    with pytest.raises(ValueError, match="invalid HTTP header"):
        transport.send(HttpRequest("GET", f"{server.url}/k", {"X-Bad": "a\r\nX-Smuggled: 1"}))
    assert get(transport, f"{server.url}/k") == b"hello"  # the channel is still good


def test_curl_transport_stall_rule_abandons_a_trickle(serve: Callable[..., Server]) -> None:
    """A server that sends its body a byte at a time (a trickle, never silent) is abandoned by
    the stall rule, and the next request gets its answer on a fresh connection."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    trickle = Answer(head + b"x" * 1000, pace_s=0.1, paced_from=len(head))
    server = serve(by_path({b"/slow": lambda: trickle, b"/a": lambda: ok(b"alpha")}))
    transport = make(low_speed_limit_bytes=1024, low_speed_time_s=1)
    with pytest.raises(TransferError, match="too slow") as info:
        get(transport, f"{server.url}/slow")
    assert info.value.code == 28 and info.value.transient
    assert get(transport, f"{server.url}/a") == b"alpha"
    assert server.connections == 2


def test_curl_transport_stall_rule_covers_silence_and_slow_interim_answers(
    serve: Callable[..., Server],
) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" * 1000
    server = serve(
        by_path(
            {
                b"/silent": lambda: None,
                b"/interim": lambda: Answer(interim, pace_s=0.05),  # header bytes: no progress
            }
        )
    )
    transport = make(low_speed_limit_bytes=1024, low_speed_time_s=1)
    for path in ("/silent", "/interim"):
        with pytest.raises(TransferError, match="too slow"):
            get(transport, server.url + path)


def test_curl_transport_deadline_ends_a_transfer_the_stall_rule_allows(
    serve: Callable[..., Server],
) -> None:
    """A body fast enough for the stall rule but too slow for the operation's deadline."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    steady = Answer(head + b"y" * 100_000, pace_s=0.0002, paced_from=len(head))
    server = serve(by_path({b"/steady": lambda: steady, b"/silent": lambda: None}))
    transport = make(low_speed_limit_bytes=1, low_speed_time_s=30)
    for path in ("/steady", "/silent"):
        with deadline_scope(0.5), pytest.raises(TransferError, match="time budget") as info:
            get(transport, server.url + path)
        assert info.value.code == 28


def test_curl_transport_bounds_a_flood_of_interim_answers(serve: Callable[..., Server]) -> None:
    flood = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" * 10_000 + b"HTTP/1.1 200 OK\r\n"
    server = serve(by_path({b"/flood": lambda: Answer(flood), b"/a": lambda: ok(b"alpha")}))
    transport = make()
    with pytest.raises(TransferError) as info:
        get(transport, f"{server.url}/flood")
    assert info.value.transient
    assert get(transport, f"{server.url}/a") == b"alpha"


def test_curl_transport_interim_answers_are_skipped(serve: Callable[..., Server]) -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nabc"
    )
    server = serve(lambda head: Answer(raw))
    response = make().send(HttpRequest("GET", f"{server.url}/k"))
    assert response.status == 206
    assert dict(response.headers) == {"content-length": "3", "x-a": "1, 2"}
    assert response.read() == b"abc"


FAKE_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Fake: 1\r\n\r\nEVIL!"


def test_curl_transport_never_reads_an_answer_sent_past_a_long_body(
    serve: Callable[..., Server],
) -> None:
    """A second answer right behind a long body: libcurl reads no further than the body's
    length and keeps the connection; the bytes waiting on it must never become the next
    request's answer (libcurl itself checks only connections idle for a second)."""
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
    answers = iter([Answer(head + BODY + FAKE_ANSWER), ok(b"right")])
    server = serve(lambda h: next(answers))
    transport = make()
    assert get(transport, f"{server.url}/first") == BODY
    response = transport.send(HttpRequest("GET", f"{server.url}/second"))
    assert "x-fake" not in response.headers and response.read() == b"right"
    assert server.connections == 2


@pytest.mark.parametrize(
    "surprise",
    [
        # Bytes past the body: a second answer smuggled behind the first.
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" + FAKE_ANSWER,
        # Chunked and a Content-Length: the chunks frame the body; nothing is left behind.
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
    ],
)
def test_curl_transport_framing_surprise_never_desynchronises_the_next_answer(
    serve: Callable[..., Server], surprise: bytes
) -> None:
    answers = iter([Answer(surprise), ok(b"right")])
    server = serve(lambda head: next(answers))
    transport = make()
    assert get(transport, f"{server.url}/first") == b"abc"
    assert get(transport, f"{server.url}/second") == b"right"


@pytest.mark.parametrize(
    "broken",
    [
        b"HTTP/1.1 2x6 Odd\r\nContent-Length: 3\r\n\r\nabc",  # a bad status line
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",  # an unknown coding
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",  # then the server hangs up
    ],
)
def test_curl_transport_broken_answers_fail_and_the_connection_is_dropped(
    serve: Callable[..., Server], broken: bytes
) -> None:
    answers = iter([Answer(broken, close=True), ok(b"right")])
    server = serve(lambda head: next(answers))
    transport = make()
    with pytest.raises(TransferError) as info:
        get(transport, f"{server.url}/first")
    assert info.value.transient
    assert get(transport, f"{server.url}/second") == b"right"
    assert server.connections == 2


def test_curl_transport_closing_an_unread_body_drops_its_connection(
    serve: Callable[..., Server],
) -> None:
    server = serve(lambda head: ok(BODY))
    transport = make()
    response = transport.send(HttpRequest("GET", f"{server.url}/big"))
    assert response.read(10) == BODY[:10]
    response.close()
    assert response.read(10) == b""
    assert get(transport, f"{server.url}/big") == BODY
    assert server.connections == 2


def test_curl_transport_connect_failure_is_transient() -> None:
    with pytest.raises(TransferError) as info:
        make(connect_timeout_s=2.0).send(HttpRequest("GET", "http://127.0.0.1:9/k"))
    assert info.value.code == 7 and info.value.transient


def test_curl_transport_tls_trusts_exactly_the_ca_bundle(
    serve: Callable[..., Server], certificate: tuple[ssl.SSLContext, str]
) -> None:
    context, ca_bundle = certificate
    server = serve(lambda head: ok(b"secret"), tls=context)
    assert get(make(ca_bundle=ca_bundle), f"{server.url}/k") == b"secret"
    with pytest.raises(TransferError) as info:  # certifi's bundle does not know this one
        get(make(), f"{server.url}/k")
    assert info.value.code == 60 and not info.value.transient


def test_curl_transport_goes_through_an_http_proxy_with_credentials(
    serve: Callable[..., Server],
) -> None:
    """A plain-HTTP endpoint through a forward proxy: the request names the whole URL."""
    proxy = serve(lambda head: ok(b"via proxy"))
    transport = make(proxy=f"http://us%40r:p%40ss@127.0.0.1:{proxy.url.rsplit(':', 1)[1]}")
    assert get(transport, "http://oss-test.invalid:8080/k") == b"via proxy"
    head = proxy.heads[0].decode("latin-1")
    assert head.startswith("GET http://oss-test.invalid:8080/k HTTP/1.1\r\n")
    token = base64.b64encode(b"us@r:p@ss").decode()
    assert f"\r\nProxy-Authorization: Basic {token}" in head


def test_curl_transport_tunnels_https_through_an_http_proxy(
    serve: Callable[..., Server], certificate: tuple[ssl.SSLContext, str]
) -> None:
    """An https endpoint through a proxy: CONNECT, then TLS verified end to end; the proxy's
    own answer to CONNECT is not taken for the endpoint's."""
    context, ca_bundle = certificate
    proxy = serve(lambda head: ok(b"inside the tunnel"), tunnel_tls=context)
    transport = make(proxy=proxy.url, ca_bundle=ca_bundle)
    response = transport.send(HttpRequest("GET", "https://127.0.0.1:8443/k"))
    assert response.status == 200 and response.read() == b"inside the tunnel"
    assert proxy.heads[0].startswith(b"CONNECT 127.0.0.1:8443 HTTP/1.1")


class Socks5Proxy:
    """A SOCKS5 proxy (no authentication) that relays each CONNECT to the asked port on
    127.0.0.1, whatever name it was given, and records what was asked (the name as sent:
    with ``socks5h`` the proxy resolves names)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.asked: list[tuple[str, int]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            _, methods = conn.recv(2)
            conn.recv(methods)
            conn.sendall(b"\x05\x00")  # no authentication
            _, _, _, kind = conn.recv(4)
            if kind == 3:  # a name
                host = conn.recv(conn.recv(1)[0]).decode()
            else:  # IPv4
                host = socket.inet_ntoa(conn.recv(4))
            (port,) = struct.unpack("!H", conn.recv(2))
            self.asked.append((host, port))
            with socket.create_connection(("127.0.0.1", port)) as upstream:
                conn.sendall(b"\x05\x00\x00\x01" + bytes(4) + bytes(2))
                threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
                _pipe(conn, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:  # the other side hung up
        pass


@pytest.fixture
def socks5() -> Iterator[Socks5Proxy]:
    proxy = Socks5Proxy()
    yield proxy
    proxy.sock.close()


def test_curl_transport_goes_through_a_socks5_proxy(
    serve: Callable[..., Server], socks5: Socks5Proxy
) -> None:
    """``socks5h://``: the proxy gets the endpoint's name (it resolves it), not an address."""
    server = serve(lambda head: ok(b"via socks"))
    port = int(server.url.rsplit(":", 1)[1])
    transport = make(proxy=f"socks5h://127.0.0.1:{socks5.port}")
    assert get(transport, f"http://oss-test.invalid:{port}/k") == b"via socks"
    assert socks5.asked == [("oss-test.invalid", port)]


def test_curl_transport_ignores_the_environments_proxies(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the settings say where to go: libcurl's own reading of proxy variables is off."""
    server = serve(lambda head: ok(b"direct"))
    for name in ("http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert get(make(), f"{server.url}/k") == b"direct"


@pytest.mark.parametrize("proxy", ["ftp://proxy:21", "gopher://u:secret@proxy:70"])
def test_engine_settings_refuse_an_unusable_proxy(proxy: str) -> None:
    with pytest.raises(ValueError, match="unsupported proxy") as info:
        EngineSettings(proxy=proxy)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [{"low_speed_limit_bytes": 0}, {"low_speed_time_s": 0}, {"connect_timeout_s": 0.0}],
)
def test_engine_settings_refuse_unbounded_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EngineSettings(**bad)  # type: ignore[arg-type]
