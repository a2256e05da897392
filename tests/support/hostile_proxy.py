"""Hostile servers for the hostile-server battery (``tests/test_hostile_server.py``).

- `MangleProxy`: a reverse proxy in front of the emulator (plain HTTP, or TLS with a certificate
  that can be swapped while it runs) that forwards every request and answers GETs of chosen keys
  with one kind of bad answer each (`Mode`), without the CRC-64 header (for their HEADs too);
  every other answer goes back as the emulator sent it, so other objects stay readable through
  the same mount.

The TLS side (a ``CONNECT`` proxy and certificates) is in `tests.hostile_tls`; `Listener` is
the base of both servers.

Deliberately test-only and simple: a thread per connection, whole upstream bodies in memory
(the objects are small), no pipelining. Nothing here checks what the client did with the bad
answers: the tests do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import gzip
import http.client
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

__all__ = ["Client", "Listener", "MangleProxy", "Mode", "read_head"]

CONTINUE_EVERY_S: Final = 0.2  # how often ENDLESS_CONTINUE sends another interim answer
# More than a daemon's RSS may grow to in the battery: a client that kept the header whole
# would break that bound (one that stops reading costs nothing: the rest is never sent).
HUGE_HEADER_BYTES: Final = 512 << 20
MANY_HEADERS: Final = 100_000
# Dropped from the emulator's answers and set again here: the framing is this proxy's.
_HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})
_CRC_HEADER: Final = "x-oss-hash-crc64ecma"
_RANGE_RE: Final = re.compile(r"^bytes=(\d+)-(\d*)$")
# What EXTRA_ANSWER writes after the real answer: a whole second answer nobody asked for.
FAKE_ANSWER: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nx-oss-request-id: not-asked-for\r\n\r\n0123456789"
)


class Mode(enum.Enum):
    """One kind of bad answer to a GET. The value names the case in test ids."""

    ENDLESS_CONTINUE = "endless-100-continue"
    """``100 Continue`` every `CONTINUE_EVERY_S`, never a final answer."""
    TRICKLE = "trickle"
    """The real head, then the body one byte every ``trickle_s``."""
    EXTRA_ANSWER = "extra-answer"
    """The real answer, then `FAKE_ANSWER` on the same kept connection."""
    CL_AND_CHUNKED = "cl-and-chunked"
    """``Content-Length`` and ``Transfer-Encoding: chunked`` together (body chunked)."""
    DUPLICATE_CL = "duplicate-cl"
    """Two ``Content-Length`` headers: the body's length and one more."""
    NEGATIVE_CL = "negative-cl"
    """``Content-Length: -1``, then the body."""
    HUGE_HEADER = "huge-header"
    """A header line of `HUGE_HEADER_BYTES`."""
    MANY_HEADERS = "many-headers"
    """`MANY_HEADERS` headers before the real ones."""
    GARBAGE_STATUS = "garbage-status"
    """Binary garbage where the status line goes, then the real headers and body."""
    WRONG_CONTENT_RANGE = "wrong-content-range"
    """A 206 for the range one byte later than asked, its bytes and its Content-Range."""
    GZIP = "gzip"
    """The body gzip-compressed, with ``Content-Encoding: gzip`` and its compressed length."""
    SHORT_KEEPALIVE = "short-keepalive"
    """Half the body, then silence on an open connection."""
    LF_ONLY = "lf-only"
    """The real answer with bare LF line endings in its head."""
    BAD_CHUNK_SIZE = "bad-chunk-size"
    """``Transfer-Encoding: chunked`` whose first chunk size is not hexadecimal."""
    NEGATIVE_CHUNK_SIZE = "negative-chunk-size"
    """``Transfer-Encoding: chunked`` with a chunk of size ``-1`` before the body's chunks."""
    WHOLE_FOR_RANGE = "200-for-206"
    """200 and the whole object, whatever range was asked for."""


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name), None)

    @property
    def path(self) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(self.target).path)


@dataclass(frozen=True, slots=True)
class _Answer:
    """The emulator's answer, its framing headers dropped (``length``: its Content-Length)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    length: str | None


def _head(status: int, reason: str, headers: list[tuple[str, str]], eol: bytes = b"\r\n") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}".encode("latin-1")]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    return eol.join([*lines, b"", b""])


def _chunked(body: bytes, size: int = 65536) -> bytes:
    pieces = (body[i : i + size] for i in range(0, len(body), size))
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


class Client:
    """One accepted connection: its socket and the key whose bad answer it is carrying."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.key: str | None = None
        self.stop = threading.Event()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False if the connection was cut meanwhile."""
        return not self.stop.wait(seconds)

    def cut(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class Listener:
    """Accepts connections on 127.0.0.1 and serves each on its own thread; `cut_all` and
    `close` hang up on every open one."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._clients: set[Client] = set()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            client = Client(sock)
            with self._lock:
                self._clients.add(client)
                self.connections += 1
            threading.Thread(target=self._run, args=(client,), daemon=True).start()

    def _run(self, client: Client) -> None:
        try:
            self.serve(client)
        except (OSError, http.client.HTTPException, ValueError):
            pass  # the client hung up, or sent what this test server does not speak
        finally:
            client.cut()
            client.sock.close()
            with self._lock:
                self._clients.discard(client)

    def serve(self, client: Client) -> None:
        raise NotImplementedError

    def clients(self) -> list[Client]:
        with self._lock:
            return list(self._clients)

    def cut_all(self) -> None:
        """Hang up on every open connection (new ones are still accepted)."""
        for client in self.clients():
            client.cut()

    def close(self) -> None:
        self._sock.close()
        self.cut_all()


class Lines(Protocol):
    def readline(self, limit: int = -1, /) -> bytes: ...


def read_head(reader: Lines) -> list[bytes] | None:
    """The lines of the next request head (without line ends); None at the end of the stream."""
    lines: list[bytes] = []
    while True:
        line = reader.readline(65537)
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        if not line:
            if lines:
                return lines
            continue
        lines.append(line)


class MangleProxy(Listener):
    """A reverse proxy to ``upstream`` (``host, port``) answering GETs of keys given to
    `mangle` badly, and without their CRC-64 header. ``tls``: speak TLS with this context
    (reassign it to change the certificate new connections get). `mangled` counts the bad
    answers sent, per key."""

    def __init__(self, upstream: tuple[str, int], *, tls: ssl.SSLContext | None = None) -> None:
        self._upstream = upstream
        self.tls = tls
        self._modes: dict[str, tuple[Mode, bytes]] = {}
        self.mangled: dict[str, int] = {}
        self.crc_hidden: set[str] = set()
        """Keys whose answers lose their CRC-64 header, mangled or not."""
        self.trickle_s = 1.0
        super().__init__()

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def mangle(self, key: str, mode: Mode, data: bytes) -> None:
        """Answer every GET of ``key`` (whose whole content is ``data``) with ``mode``."""
        with self._lock:
            self._modes[key] = (mode, data)
            self.mangled.setdefault(key, 0)

    def release(self, key: str) -> None:
        """Answer GETs of ``key`` faithfully again, and hang up on any bad answer to it still
        being sent (an endless or trickling one)."""
        with self._lock:
            self._modes.pop(key, None)
        for client in self.clients():
            if client.key == key:
                client.cut()

    def serve(self, client: Client) -> None:
        tls = self.tls
        if tls is not None:
            try:
                client.sock = tls.wrap_socket(client.sock, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused the certificate
        reader = client.sock.makefile("rb")
        upstream = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            while (request := self._read_request(reader)) is not None:
                answer = self._forward(upstream, request)
                if not self._answer(client, request, answer):
                    return
        finally:
            upstream.close()
            reader.close()

    @staticmethod
    def _read_request(reader: BinaryIO) -> _Request | None:
        lines = read_head(reader)
        if lines is None:
            return None
        method, target, _ = lines[0].decode("latin-1").split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        length = next((int(v) for n, v in headers if n.lower() == "content-length"), 0)
        body = reader.read(length) if length else b""
        return _Request(method, target, headers, body)

    def _forward(self, upstream: http.client.HTTPConnection, request: _Request) -> _Answer:
        upstream.putrequest(
            request.method, request.target, skip_host=True, skip_accept_encoding=True
        )
        for name, value in request.headers:
            upstream.putheader(name, value)
        upstream.endheaders(request.body or None)
        response = upstream.getresponse()
        body = response.read()
        headers = [(n, v) for n, v in response.getheaders() if n.lower() not in _HOP_BY_HOP]
        return _Answer(
            response.status, response.reason, headers, body, response.getheader("Content-Length")
        )

    def _answer(self, client: Client, request: _Request, answer: _Answer) -> bool:
        """Send ``answer`` (mangled if its key is chosen); False: hang up."""
        hidden = any(request.path.endswith("/" + key) for key in self.crc_hidden)
        with self._lock:
            chosen = next(
                (
                    (key, mode, data)
                    for key, (mode, data) in self._modes.items()
                    if request.path.endswith("/" + key)
                ),
                None,
            )
        if chosen is not None or hidden:
            # No CRC-64 to check the bytes against: they are right or wrong by the HTTP
            # handling alone (ossfs's CRC check would turn some wrong bytes into EIO).
            headers = [(n, v) for n, v in answer.headers if n.lower() != _CRC_HEADER]
            answer = dataclasses.replace(answer, headers=headers)
        if chosen is None or request.method != "GET" or answer.status not in (200, 206):
            length = answer.length if request.method == "HEAD" else str(len(answer.body))
            framing = [] if length is None else [("Content-Length", length)]
            client.send(_head(answer.status, answer.reason, answer.headers + framing) + answer.body)
            return True
        key, mode, data = chosen
        client.key = key
        with self._lock:
            self.mangled[key] += 1
        try:
            return _MANGLERS[mode](self, client, request, answer, data)
        finally:
            client.key = None

    # -- one method per Mode: send the bad answer; False: hang up afterwards ------------------

    def _endless_continue(self, client: Client, *_: object) -> bool:
        while client.pause(CONTINUE_EVERY_S):
            client.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        return False

    def _trickle(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        client.send(_head(answer.status, answer.reason, _with_length(answer)))
        for i in range(len(answer.body)):
            if not client.pause(self.trickle_s):
                return False
            client.send(answer.body[i : i + 1])
        return True

    def _extra_answer(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        head = _head(answer.status, answer.reason, _with_length(answer))
        client.send(head + answer.body + FAKE_ANSWER)
        return True

    def _cl_and_chunked(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        headers = [*_with_length(answer), ("Transfer-Encoding", "chunked")]
        client.send(_head(answer.status, answer.reason, headers) + _chunked(answer.body))
        return True

    def _duplicate_cl(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        n = len(answer.body)
        headers = [*answer.headers, ("Content-Length", str(n)), ("Content-Length", str(n + 1))]
        client.send(_head(answer.status, answer.reason, headers) + answer.body)
        return True

    def _negative_cl(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        headers = [*answer.headers, ("Content-Length", "-1")]
        client.send(_head(answer.status, answer.reason, headers) + answer.body)
        return True

    def _huge_header(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        client.send(f"HTTP/1.1 {answer.status} {answer.reason}\r\nX-Huge: ".encode())
        piece = b"a" * 65536
        for _ in range(HUGE_HEADER_BYTES // len(piece)):
            if client.stop.is_set():
                return False
            client.send(piece)
        rest = _head(answer.status, answer.reason, _with_length(answer)).split(b"\r\n", 1)[1]
        client.send(b"\r\n" + rest + answer.body)
        return True

    def _many_headers(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        many = [(f"X-Hostile-{i}", str(i)) for i in range(MANY_HEADERS)]
        client.send(_head(answer.status, answer.reason, many + _with_length(answer)) + answer.body)
        return True

    def _garbage_status(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        rest = _head(answer.status, answer.reason, _with_length(answer)).split(b"\r\n", 1)[1]
        client.send(b"\x16\x03\x01\xff\xfe garbage \x00\r\n" + rest + answer.body)
        return True

    def _wrong_content_range(
        self, client: Client, request: _Request, answer: _Answer, data: bytes
    ) -> bool:
        first, last = _asked_range(request, len(data))
        first = min(first + 1, last)  # one byte later than asked, consistently labelled
        body = data[first : last + 1]
        headers = [(n, v) for n, v in answer.headers if n.lower() != "content-range"]
        headers += [
            ("Content-Range", f"bytes {first}-{last}/{len(data)}"),
            ("Content-Length", str(len(body))),
        ]
        client.send(_head(206, "Partial Content", headers) + body)
        return True

    def _gzip(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        body = gzip.compress(answer.body)
        headers = [
            *answer.headers,
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(body))),
        ]
        client.send(_head(answer.status, answer.reason, headers) + body)
        return True

    def _short_keepalive(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        head = _head(answer.status, answer.reason, _with_length(answer))
        client.send(head + answer.body[: len(answer.body) // 2])
        return True  # and wait for the next request, which will not come

    def _lf_only(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        head = _head(answer.status, answer.reason, _with_length(answer), eol=b"\n")
        client.send(head + answer.body)
        return True

    def _bad_chunk_size(self, client: Client, _r: _Request, answer: _Answer, _d: bytes) -> bool:
        headers = [*answer.headers, ("Transfer-Encoding", "chunked")]
        client.send(_head(answer.status, answer.reason, headers) + b"zz\r\n" + answer.body)
        return True

    def _negative_chunk_size(
        self, client: Client, _r: _Request, answer: _Answer, _d: bytes
    ) -> bool:
        headers = [*answer.headers, ("Transfer-Encoding", "chunked")]
        body = b"-1\r\n" + _chunked(answer.body)
        client.send(_head(answer.status, answer.reason, headers) + body)
        return True

    def _whole_for_range(self, client: Client, _r: _Request, answer: _Answer, data: bytes) -> bool:
        headers = [(n, v) for n, v in answer.headers if n.lower() != "content-range"]
        client.send(_head(200, "OK", [*headers, ("Content-Length", str(len(data)))]) + data)
        return True


def _with_length(answer: _Answer) -> list[tuple[str, str]]:
    return [*answer.headers, ("Content-Length", str(len(answer.body)))]


def _asked_range(request: _Request, size: int) -> tuple[int, int]:
    """The inclusive byte range a GET asked for (the whole object without a Range)."""
    match = _RANGE_RE.match(request.header("range") or "")
    if match is None:
        return 0, size - 1
    first = int(match.group(1))
    return first, min(int(match.group(2)), size - 1) if match.group(2) else size - 1


_Mangler = Callable[[MangleProxy, Client, _Request, _Answer, bytes], bool]
_MANGLERS: Final[dict[Mode, _Mangler]] = {
    Mode.ENDLESS_CONTINUE: MangleProxy._endless_continue,
    Mode.TRICKLE: MangleProxy._trickle,
    Mode.EXTRA_ANSWER: MangleProxy._extra_answer,
    Mode.CL_AND_CHUNKED: MangleProxy._cl_and_chunked,
    Mode.DUPLICATE_CL: MangleProxy._duplicate_cl,
    Mode.NEGATIVE_CL: MangleProxy._negative_cl,
    Mode.HUGE_HEADER: MangleProxy._huge_header,
    Mode.MANY_HEADERS: MangleProxy._many_headers,
    Mode.GARBAGE_STATUS: MangleProxy._garbage_status,
    Mode.WRONG_CONTENT_RANGE: MangleProxy._wrong_content_range,
    Mode.GZIP: MangleProxy._gzip,
    Mode.SHORT_KEEPALIVE: MangleProxy._short_keepalive,
    Mode.LF_ONLY: MangleProxy._lf_only,
    Mode.BAD_CHUNK_SIZE: MangleProxy._bad_chunk_size,
    Mode.NEGATIVE_CHUNK_SIZE: MangleProxy._negative_chunk_size,
    Mode.WHOLE_FOR_RANGE: MangleProxy._whole_for_range,
}
