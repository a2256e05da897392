"""Tests of `ossfs.net.fetch_loop`: many GETs on one thread, against a scripted socket server."""

from __future__ import annotations

import http.client
import queue
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ossfs.core.object_store import Piece
from ossfs.net.fetch_loop import FetchLoop, FetchLoopClosedError, PreparedGet
from ossfs.net.http_wire import Endpoint, Headers
from tests.support.http_server import Answer, Server, certificate, serve
from tests.support.waiting import wait_until

__all__ = ["certificate", "serve"]  # fixtures, used by name

WAIT_S = 10.0


def body_of(key: str, size: int) -> bytes:
    return bytes((len(key) * 7 + i) % 251 for i in range(size))


def answer_for(head: bytes, *, extra_headers: str = "", status: str = "206 Partial") -> Answer:
    """The whole body of the requested key (its size in the ``X-Size`` request header)."""
    lines = head.decode("latin-1").split("\r\n")
    key = urllib.parse.unquote(lines[0].split(" ")[1].lstrip("/"))
    size = int(next(line.split(": ")[1] for line in lines if line.startswith("X-Size:")))
    data = body_of(key, size)
    text = f"HTTP/1.1 {status}\r\nContent-Length: {size}\r\n{extra_headers}\r\n"
    return Answer(text.encode() + data)


class Results:
    """Collects ``done`` calls by key."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, Piece | BaseException]] = queue.Queue()

    def done(self, key: str) -> Callable[[Piece | BaseException, float], None]:
        def call(result: Piece | BaseException, seconds: float) -> None:
            assert seconds >= 0
            self.queue.put((key, result))

        return call

    def wait(self, count: int) -> dict[str, Piece | BaseException]:
        return dict(self.queue.get(timeout=WAIT_S) for _ in range(count))


@pytest.fixture
def make_loop() -> Iterator[Callable[..., FetchLoop]]:
    loops: list[FetchLoop] = []

    def make(
        server: Server,
        *,
        accept: Callable[[str, str, int, int, Headers], None] | None = None,
        ca_bundle: str | None = None,
        read_timeout_s: float = WAIT_S,
        max_idle: int = 8,
        received: Callable[[int], None] = lambda n: None,
    ) -> FetchLoop:
        parts = urllib.parse.urlsplit(server.url)
        assert parts.hostname is not None and parts.port is not None
        endpoint = Endpoint(parts.scheme, parts.hostname, parts.port)

        def prepare(key: str, etag: str, size: int) -> PreparedGet:
            if key == "unsendable":
                raise ValueError("cannot sign this key")
            head = f"GET /{urllib.parse.quote(key)} HTTP/1.1\r\nHost: x\r\nX-Size: {size}\r\n"
            return PreparedGet(endpoint, f"{head}If-Match: {etag}\r\n\r\n".encode(), size)

        def accept_206(key: str, etag: str, size: int, status: int, headers: Headers) -> None:
            if status != 206:
                raise OSError(f"HTTP {status}")

        context = ssl.create_default_context(cafile=ca_bundle)
        loop = FetchLoop(
            prepare,
            accept or accept_206,
            take_buffer=bytearray,
            received=received,
            ssl_context=lambda: context,
            connect_timeout_s=WAIT_S,
            read_timeout_s=read_timeout_s,
            max_idle=max_idle,
        )
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.close()


def test_fetch_loop_runs_many_gets_at_once_over_kept_connections(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    server = serve(answer_for)
    got_bytes: list[int] = []
    loop = make_loop(server, max_idle=32, received=got_bytes.append)
    results = Results()
    sizes = {f"k{i}": 1 + i * 3001 for i in range(24)}  # 1 byte .. ~70 KB
    for key, size in sizes.items():
        loop.submit(key, "e1", size, results.done(key))
    first = results.wait(len(sizes))
    assert {key: bytes(body) for key, body in first.items()} == {  # type: ignore[arg-type]
        key: body_of(key, size) for key, size in sizes.items()
    }
    assert sum(got_bytes) == sum(sizes.values())
    opened = server.connections
    assert opened <= len(sizes)
    for key, size in sizes.items():  # a second round reuses the kept connections
        loop.submit(key, "e1", size, results.done(key))
    assert all(isinstance(body, bytearray) for body in results.wait(len(sizes)).values())
    assert server.connections == opened
    assert all(b"If-Match: e1" in head for head in server.heads)


def test_fetch_loop_keeps_at_most_max_idle_connections(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    release = threading.Event()

    def slow(head: bytes) -> Answer:
        release.wait(WAIT_S)  # every GET in flight at once: one connection each
        return answer_for(head)

    server = serve(slow)
    loop = make_loop(server, max_idle=2)
    results = Results()

    def round_of_six(heads: int) -> None:
        release.clear()
        for i in range(6):
            loop.submit(f"k{i}", "e", 10, results.done(f"k{i}"))
        wait_until(lambda: len(server.heads) >= heads, WAIT_S, f"{heads} requests in flight")
        release.set()
        assert all(isinstance(body, bytearray) for body in results.wait(6).values())

    round_of_six(6)
    assert server.connections == 6
    round_of_six(12)
    assert server.connections == 6 + 4  # 2 were kept


def test_fetch_loop_resends_once_when_a_kept_connection_was_closed(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    def answer_then_hang_up(head: bytes) -> Answer:
        answer = answer_for(head)
        return Answer(answer.raw, close=True)  # no "Connection: close": the client keeps it

    server = serve(answer_then_hang_up)
    loop = make_loop(server)
    results: list[Piece | BaseException] = []
    finished = threading.Event()

    def chain(result: Piece | BaseException, seconds: float) -> None:
        results.append(result)
        if len(results) == 5:
            finished.set()
        else:  # at once, from the loop's thread: the kept connection is taken before the
            # loop can notice that the server closed it, so the request meets a closed socket
            loop.submit("k", "e", 100, chain)

    loop.submit("k", "e", 100, chain)
    assert finished.wait(WAIT_S)
    assert [bytes(body) for body in results] == [body_of("k", 100)] * 5  # type: ignore[arg-type]
    assert server.connections == 5
    assert len(server.heads) == 5  # the resent requests were never seen by the server


def test_fetch_loop_does_not_keep_a_connection_the_server_closes(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    server = serve(lambda head: answer_for(head, extra_headers="Connection: close\r\n"))
    loop = make_loop(server)
    results = Results()
    for _ in range(3):
        loop.submit("k", "e", 50, results.done("k"))
        assert bytes(results.wait(1)["k"]) == body_of("k", 50)  # type: ignore[arg-type]
    assert server.connections == 3


def test_fetch_loop_failures_reach_done_and_never_become_bodies(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    def script(head: bytes) -> Answer | None:
        full = answer_for(head).raw
        path = head.split(b" ")[1]
        if path == b"/short":  # the body stops halfway, then the server hangs up
            return Answer(full[: len(full) - 50], close=True)
        if path == b"/chunked":
            return Answer(
                b"HTTP/1.1 206 Partial\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            )
        if path == b"/missing":
            return Answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        if path == b"/garbage":
            return Answer(b"SSH-2.0-OpenSSH\r\n\r\n", close=True)
        if path == b"/silent":
            return None  # never answers
        return Answer(full)

    server = serve(script)
    loop = make_loop(server, read_timeout_s=0.5)
    results = Results()
    keys = ["short", "chunked", "missing", "garbage", "silent", "unsendable", "fine"]
    for key in keys:
        loop.submit(key, "e", 100, results.done(key))
    got = results.wait(len(keys))
    assert isinstance(got["short"], ConnectionResetError)
    assert isinstance(got["chunked"], ValueError)
    assert isinstance(got["missing"], OSError) and "404" in str(got["missing"])
    assert isinstance(got["garbage"], http.client.BadStatusLine)
    assert isinstance(got["silent"], TimeoutError)
    assert isinstance(got["unsendable"], ValueError)
    assert bytes(got["fine"]) == body_of("fine", 100)  # type: ignore[arg-type]


def test_fetch_loop_refuses_a_chunked_answer_whatever_its_length_says(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    """Chunks frame a body whatever Content-Length says: read by the length, the chunk sizes
    would become body bytes."""

    def chunked(head: bytes) -> Answer:
        body = answer_for(head).raw.split(b"\r\n\r\n", 1)[1]
        return Answer(
            b"HTTP/1.1 206 Partial\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), len(body), body)
        )

    loop = make_loop(serve(chunked))
    results = Results()
    loop.submit("k", "e", 100_000, results.done("k"))  # more than arrives with the head
    assert isinstance(results.wait(1)["k"], ValueError)


def test_fetch_loop_connect_failure_reaches_done(make_loop: Callable[..., FetchLoop]) -> None:
    unused = Server(lambda head: None)
    unused.sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    loop = make_loop(unused)
    results = Results()
    loop.submit("k", "e", 10, results.done("k"))
    assert isinstance(results.wait(1)["k"], ConnectionRefusedError)
    unused.sock.close()


def test_fetch_loop_skips_interim_answers(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    def with_interim(head: bytes) -> Answer:
        return Answer(b"HTTP/1.1 100 Continue\r\n\r\n" + answer_for(head).raw)

    loop = make_loop(serve(with_interim))
    results = Results()
    loop.submit("k", "e", 300, results.done("k"))
    assert bytes(results.wait(1)["k"]) == body_of("k", 300)  # type: ignore[arg-type]


def test_fetch_loop_accept_decides_and_its_error_is_the_result(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    seen: list[tuple[str, str, int, int, str | None]] = []

    class WrongVersionError(Exception):
        pass

    def accept(key: str, etag: str, size: int, status: int, headers: Headers) -> None:
        seen.append((key, etag, size, status, headers.get("content-length")))
        if key == "stale":
            raise WrongVersionError(key)

    server = serve(answer_for)
    loop = make_loop(server, accept=accept)
    results = Results()
    loop.submit("stale", "e9", 20, results.done("stale"))
    assert isinstance(results.wait(1)["stale"], WrongVersionError)
    loop.submit("good", "e9", 20, results.done("good"))
    assert bytes(results.wait(1)["good"]) == body_of("good", 20)  # type: ignore[arg-type]
    assert seen == [("stale", "e9", 20, 206, "20"), ("good", "e9", 20, 206, "20")]
    assert server.connections == 2  # a rejected answer's connection is not kept


def test_fetch_loop_speaks_tls_verified_against_the_ca_bundle(
    serve: Callable[..., Server],
    make_loop: Callable[..., FetchLoop],
    certificate: tuple[ssl.SSLContext, str],
) -> None:
    context, ca_bundle = certificate
    server = serve(answer_for, tls=context)
    loop = make_loop(server, ca_bundle=ca_bundle)
    results = Results()
    sizes = {f"t{i}": 40_000 + i for i in range(6)}  # bodies of many TLS records
    for key, size in sizes.items():
        loop.submit(key, "e", size, results.done(key))
    got = results.wait(len(sizes))
    assert {key: bytes(body) for key, body in got.items()} == {  # type: ignore[arg-type]
        key: body_of(key, size) for key, size in sizes.items()
    }
    opened = server.connections
    loop.submit("t0", "e", 10, results.done("t0"))
    assert bytes(results.wait(1)["t0"]) == body_of("t0", 10)  # type: ignore[arg-type]
    assert server.connections == opened  # kept

    untrusting = make_loop(server)  # the system's CAs: the certificate is unknown
    untrusting.submit("t0", "e", 10, results.done("t0"))
    assert isinstance(results.wait(1)["t0"], ssl.SSLCertVerificationError)


def test_fetch_loop_close_fails_what_is_in_flight_and_later_submits(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    started = threading.Event()

    def never(head: bytes) -> Answer | None:
        started.set()
        return None

    loop = make_loop(serve(never))
    results = Results()
    loop.submit("k", "e", 10, results.done("k"))
    assert started.wait(WAIT_S)
    loop.close()
    assert isinstance(results.wait(1)["k"], FetchLoopClosedError)
    loop.submit("late", "e", 10, results.done("late"))
    assert isinstance(results.wait(1)["late"], FetchLoopClosedError)
    loop.close()  # idempotent


def test_fetch_loop_survives_a_failing_callback(
    serve: Callable[..., Server],
    make_loop: Callable[..., FetchLoop],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A callback that raises is logged, and the loop goes on with the next GET.

    "b" is submitted only once "a"'s callback runs: callbacks run on the loop's one thread, so
    "b" can only finish after "a"'s failure was logged. (Submitted together, "b" could finish
    first on its own connection, and the log would be checked too early.)
    """
    loop = make_loop(serve(answer_for))
    results = Results()
    called = threading.Event()

    def broken(result: Piece | BaseException, seconds: float) -> None:
        called.set()
        raise RuntimeError("bug in a callback")

    loop.submit("a", "e", 10, broken)
    assert called.wait(WAIT_S)
    loop.submit("b", "e", 10, results.done("b"))
    assert bytes(results.wait(1)["b"]) == body_of("b", 10)  # type: ignore[arg-type]
    (record,) = [r for r in caplog.records if "completion of a failed" in r.getMessage()]
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_fetch_loop_rejects_an_empty_get(
    serve: Callable[..., Server], make_loop: Callable[..., FetchLoop]
) -> None:
    loop = make_loop(serve(answer_for))
    with pytest.raises(ValueError):
        loop.submit("k", "e", 0, lambda result, seconds: None)


def test_fetch_loop_resolves_an_endpoint_once_for_many_connections(
    serve: Callable[..., Server],
    make_loop: Callable[..., FetchLoop],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups: list[str] = []
    real = socket.getaddrinfo

    def counting(host: str, *args: Any, **kwargs: Any) -> Any:
        lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    release = threading.Event()

    def slow(head: bytes) -> Answer:
        release.wait(WAIT_S)
        return answer_for(head)

    server = serve(slow)
    loop = make_loop(server)
    results = Results()
    for i in range(5):
        loop.submit(f"k{i}", "e", 10, results.done(f"k{i}"))
    wait_until(lambda: server.connections >= 5, WAIT_S, "5 connections")
    release.set()
    assert len(results.wait(5)) == 5
    assert server.connections == 5
    assert lookups == ["127.0.0.1"]


def test_fetch_loop_falls_back_to_the_next_address_of_a_name(
    serve: Callable[..., Server],
    make_loop: Callable[..., FetchLoop],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name whose first address refuses connections: GETs reach the server at its second
    address (nothing was sent on the refused one), and later GETs go there directly."""
    refusing = Server(lambda head: None)
    refusing.sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    server = serve(answer_for)
    real = socket.getaddrinfo
    dead, live = (refusing.sock.getsockname(), urllib.parse.urlsplit(server.url).port)
    lookups: list[str] = []

    def two_addresses(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        lookups.append(host)
        first = real("127.0.0.1", dead[1], *args, **kwargs)[0]
        second = real("127.0.0.1", live, *args, **kwargs)[0]
        return [first, second]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    loop = make_loop(server)
    results = Results()
    for i in range(4):
        loop.submit(f"k{i}", "e", 10, results.done(f"k{i}"))
    got = results.wait(4)
    assert all(bytes(got[f"k{i}"]) == body_of(f"k{i}", 10) for i in range(4))  # type: ignore[arg-type]
    loop.submit("later", "e", 10, results.done("later"))
    assert bytes(results.wait(1)["later"]) == body_of("later", 10)  # type: ignore[arg-type]
    assert len(lookups) == 1
    refusing.sock.close()


def test_fetch_loop_fails_when_every_address_refuses(
    make_loop: Callable[..., FetchLoop], monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = [Server(lambda head: None) for _ in range(2)]
    for server in refusing:
        server.sock.bind(("127.0.0.1", 0))
    real = socket.getaddrinfo

    def both_refuse(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        return [real("127.0.0.1", s.sock.getsockname()[1], *args, **kwargs)[0] for s in refusing]

    monkeypatch.setattr(socket, "getaddrinfo", both_refuse)
    loop = make_loop(refusing[0])
    results = Results()
    loop.submit("k", "e", 10, results.done("k"))
    assert isinstance(results.wait(1)["k"], ConnectionRefusedError)
    for server in refusing:
        server.sock.close()
