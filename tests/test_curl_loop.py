"""Tests of `ossfs.net.curl_loop`: many GETs on one thread, against a scripted socket server."""

from __future__ import annotations

import queue
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator

import pytest

from ossfs.core.object_store import Piece
from ossfs.net.curl_loop import CurlLoop, FetchLoopClosedError
from ossfs.net.curl_setup import EngineSettings
from ossfs.net.http_api import Headers, HttpRequest, TransferError
from tests.support.http_server import Answer, Server, certificate, serve

__all__ = ["certificate", "serve"]  # fixtures, used by name

WAIT_S = 10.0


def body_of(key: str, size: int) -> bytes:
    return bytes((len(key) * 7 + i) % 251 for i in range(size))


def answer_for(head: bytes, *, extra_headers: str = "", status: str = "206 Partial") -> Answer:
    """The whole body of the requested key (its size in the ``X-Size`` request header)."""
    lines = head.decode("latin-1").split("\r\n")
    key = urllib.parse.unquote(lines[0].split(" ")[1].lstrip("/"))
    size = int(next(line.split(": ")[1] for line in lines if line.startswith("X-Size:")))
    text = f"HTTP/1.1 {status}\r\nContent-Length: {size}\r\n{extra_headers}\r\n"
    return Answer(text.encode() + body_of(key, size))


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
def make_loop() -> Iterator[Callable[..., CurlLoop]]:
    loops: list[CurlLoop] = []

    def make(
        server: Server,
        *,
        accept: Callable[[str, str, int, int, Headers], None] | None = None,
        ca_bundle: str | None = None,
        max_connections: int = 8,
        received: Callable[[int], None] = lambda n: None,
        low_speed_time_s: int = 10,
        deadline_s: float = WAIT_S,
    ) -> CurlLoop:
        def prepare(key: str, etag: str, size: int) -> HttpRequest:
            if key == "unsendable":
                raise ValueError("cannot sign this key")
            headers = {"X-Size": str(size), "If-Match": etag}
            return HttpRequest("GET", f"{server.url}/{urllib.parse.quote(key)}", headers)

        def accept_206(key: str, etag: str, size: int, status: int, headers: Headers) -> None:
            if status != 206:
                raise OSError(f"HTTP {status}")

        loop = CurlLoop(
            prepare,
            accept or accept_206,
            settings=EngineSettings(ca_bundle=ca_bundle, low_speed_time_s=low_speed_time_s),
            take_buffer=bytearray,
            received=received,
            deadline_s=deadline_s,
            max_connections=max_connections,
        )
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.close()


def test_curl_loop_runs_many_gets_at_once_over_kept_connections(
    serve: Callable[..., Server], make_loop: Callable[..., CurlLoop]
) -> None:
    server = serve(answer_for)
    got_bytes: list[int] = []
    loop = make_loop(server, max_connections=6, received=got_bytes.append)
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
    assert opened <= 6  # the cap: more GETs waited for a connection
    for key, size in sizes.items():  # a second round reuses the kept connections
        loop.submit(key, "e1", size, results.done(key))
    assert all(isinstance(body, bytearray) for body in results.wait(len(sizes)).values())
    assert server.connections == opened
    assert all(b"If-Match: e1" in head for head in server.heads)


def test_curl_loop_failures_reach_done_and_never_become_bodies(
    serve: Callable[..., Server], make_loop: Callable[..., CurlLoop]
) -> None:
    def script(head: bytes) -> Answer | None:
        if b"/short " in head:  # fewer bytes than announced, then hang up
            return Answer(b"HTTP/1.1 206 P\r\nContent-Length: 5\r\n\r\nabc", close=True)
        if b"/chunked " in head:  # no length announced
            return Answer(
                b"HTTP/1.1 206 P\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            )
        if b"/long " in head:  # more than the listing said
            return Answer(b"HTTP/1.1 206 P\r\nContent-Length: 9\r\n\r\n123456789")
        return answer_for(head)

    server = serve(script)
    loop = make_loop(server)
    results = Results()
    for key in ("short", "chunked", "long", "unsendable", "fine"):
        loop.submit(key, "e", 5, results.done(key))
    got = results.wait(5)
    assert isinstance(got["short"], TransferError) and got["short"].code == 18
    assert isinstance(got["chunked"], TransferError)
    assert isinstance(got["long"], TransferError)
    assert isinstance(got["unsendable"], ValueError)
    assert bytes(got["fine"]) == body_of("fine", 5)  # type: ignore[arg-type]


def test_curl_loop_accept_decides_and_its_error_is_the_result(
    serve: Callable[..., Server], make_loop: Callable[..., CurlLoop]
) -> None:
    server = serve(lambda head: answer_for(head, status="200 OK"))
    loop = make_loop(server)
    results = Results()
    loop.submit("k", "e", 5, results.done("k"))
    got = results.wait(1)["k"]
    assert isinstance(got, OSError) and "HTTP 200" in str(got)


def test_curl_loop_stall_rule_abandons_a_trickle(
    serve: Callable[..., Server], make_loop: Callable[..., CurlLoop]
) -> None:
    head = b"HTTP/1.1 206 P\r\nContent-Length: 100\r\n\r\n"
    server = serve(lambda h: Answer(head + b"z" * 100, pace_s=0.1, paced_from=len(head)))
    loop = make_loop(server, low_speed_time_s=1)
    results = Results()
    loop.submit("k", "e", 100, results.done("k"))
    got = results.wait(1)["k"]
    assert isinstance(got, TransferError) and got.code == 28 and "too slow" in str(got)


def test_curl_loop_deadline_ends_a_gets_that_the_stall_rule_allows(
    serve: Callable[..., Server], make_loop: Callable[..., CurlLoop]
) -> None:
    head = b"HTTP/1.1 206 P\r\nContent-Length: 100000\r\n\r\n"
    server = serve(lambda h: Answer(head + b"z" * 100_000, pace_s=0.0002, paced_from=len(head)))
    loop = make_loop(server, deadline_s=0.5)
    results = Results()
    loop.submit("k", "e", 100_000, results.done("k"))
    got = results.wait(1)["k"]
    assert isinstance(got, TransferError) and got.code == 28 and "too slow" not in str(got)


def test_curl_loop_speaks_tls_verified_against_the_ca_bundle(
    serve: Callable[..., Server],
    make_loop: Callable[..., CurlLoop],
    certificate: tuple[ssl.SSLContext, str],
) -> None:
    context, ca_bundle = certificate
    server = serve(answer_for, tls=context)
    results = Results()
    make_loop(server, ca_bundle=ca_bundle).submit("t", "e", 50, results.done("t"))
    assert bytes(results.wait(1)["t"]) == body_of("t", 50)  # type: ignore[arg-type]
    make_loop(server).submit("u", "e", 50, results.done("u"))  # certifi's CAs: unknown
    refused = results.wait(1)["u"]
    assert isinstance(refused, TransferError) and refused.code == 60


def test_curl_loop_close_fails_what_is_in_flight_and_later_submits(
    serve: Callable[..., Server], make_loop: Callable[..., CurlLoop]
) -> None:
    answered = threading.Event()

    def silent(head: bytes) -> Answer | None:
        answered.set()
        return None  # never answers

    server = serve(silent)
    loop = make_loop(server)
    results = Results()
    loop.submit("k", "e", 5, results.done("k"))
    assert answered.wait(WAIT_S)
    loop.close()
    assert isinstance(results.wait(1)["k"], FetchLoopClosedError)
    loop.submit("late", "e", 5, results.done("late"))
    assert isinstance(results.wait(1)["late"], FetchLoopClosedError)


def test_curl_loop_survives_a_failing_callback(
    serve: Callable[..., Server], make_loop: Callable[..., CurlLoop]
) -> None:
    server = serve(answer_for)
    loop = make_loop(server)
    results = Results()

    def explode(result: Piece | BaseException, seconds: float) -> None:
        raise RuntimeError("a bug in a callback")

    loop.submit("boom", "e", 5, explode)
    loop.submit("ok", "e", 5, results.done("ok"))
    assert bytes(results.wait(1)["ok"]) == body_of("ok", 5)  # type: ignore[arg-type]


def test_curl_loop_rejects_an_empty_get(
    serve: Callable[..., Server], make_loop: Callable[..., CurlLoop]
) -> None:
    loop = make_loop(serve(answer_for))
    with pytest.raises(ValueError):
        loop.submit("k", "e", 0, lambda result, seconds: None)
