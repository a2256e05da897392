"""One HTTP/1.1 client connection: connect, write a request, read an answer's head and body.

Responsibility: the wire format, for what an object store client needs: a TCP connection
(TLS-wrapped for ``https``, through an ``http://`` proxy's CONNECT tunnel if asked), requests
written in one ``sendall``, answers whose head is parsed by hand (status line and headers, with
limits on line length and header count) and whose body is read by ``Content-Length``, chunked
transfer coding or until the server closes. Body bytes go from the socket straight into the
caller's buffer. Errors are ``http.client``'s exception classes (``RemoteDisconnected``,
``BadStatusLine``, ``LineTooLong``, ``IncompleteRead``) and the socket's ``OSError``\\s.

It deliberately does not pool, retry or interpret answers (`ossfs.net.oss_http` does), send
``Expect: 100-continue`` (1xx answers are skipped), accept obsolete folded header lines, or
decode content encodings. It exists because ``http.client`` spends about as much CPU on a small
GET as everything else together (``email``-based header parsing, per-header validation).
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol, overload

__all__ = [
    "Connection",
    "Endpoint",
    "Headers",
    "ReadableBody",
    "SocketReader",
    "read_answer_head",
    "request_head",
]

_MAX_LINE: Final = 65536
_MAX_HEADERS: Final = 200
_READ_BUFFER: Final = 65536
# Control characters would let a header value end the line (header injection).
_BAD_HEADER_TEXT: Final = re.compile(r"[\x00-\x1f\x7f]")
_OWS_AND_EOL: Final = " \t\r\n"  # what surrounds a header's value on its line
_HEX_DIGITS: Final = re.compile(rb"[0-9A-Fa-f]+")


class Headers(dict[str, str]):
    """Answer headers by lower-case name; ``[]``, ``get`` and ``in`` ignore case.

    One value per name: a repeated header keeps its values joined by ", " (RFC 9110 5.3).
    """

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    @overload  # type: ignore[override]
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        return super().get(name.lower(), default)


class ReadableBody(Protocol):
    def readinto(self, buffer: memoryview, /) -> int:
        """Fill the start of ``buffer``; 0 once the body has ended."""
        ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests for one ``scheme://host:port`` go: straight there, or to ``proxy``."""

    scheme: str
    host: str
    port: int
    proxy: tuple[str, int] | None = None
    proxy_headers: tuple[tuple[str, str], ...] = ()

    @property
    def absolute_target(self) -> bool:
        """An ``http`` endpoint behind a proxy: the proxy reads an absolute-URI target
        (``https`` goes through a CONNECT tunnel and sees only the path)."""
        return self.proxy is not None and self.scheme == "http"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def request_head(
    method: str, target: str, endpoint: Endpoint, headers: Iterable[tuple[str, str]], length: int
) -> bytes:
    """The request line and headers (Host first; Content-Length when there is a body)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {endpoint.host_header}"]
    for name, value in headers:
        if _BAD_HEADER_TEXT.search(name) or _BAD_HEADER_TEXT.search(value) or ":" in name:
            raise ValueError(f"invalid HTTP header {name!r}")
        lines.append(f"{name}: {value}")
    if endpoint.absolute_target:
        lines.extend(f"{name}: {value}" for name, value in endpoint.proxy_headers)
    if length or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {length}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class Connection:
    """One open connection to an `Endpoint`. Not thread-safe: one request at a time, and the
    previous answer's body must be read to its end before the next request."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        ssl_context: Callable[[], ssl.SSLContext],
    ) -> None:
        address = endpoint.proxy or (endpoint.host, endpoint.port)
        sock = socket.create_connection(address, timeout=connect_timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.scheme == "https":
                if endpoint.proxy is not None:
                    _open_tunnel(sock, endpoint)
                sock = ssl_context().wrap_socket(sock, server_hostname=endpoint.host)
            self._kernel_timeouts = not isinstance(sock, ssl.SSLSocket)
            self._apply_read_timeout(sock, read_timeout_s)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._read_timeout_s = read_timeout_s
        self._reader = SocketReader(sock, waitall=self._kernel_timeouts)

    def set_read_timeout(self, seconds: float) -> None:
        if seconds != self._read_timeout_s:  # a syscall-free check: the usual case
            self._apply_read_timeout(self.sock, seconds)
            self._read_timeout_s = seconds

    def _apply_read_timeout(self, sock: socket.socket, seconds: float) -> None:
        """Each send and receive waits at most ``seconds``.

        A plain TCP socket is blocking with the kernel's own timeouts (SO_RCVTIMEO/SO_SNDTIMEO):
        Python's timeouts poll before every send and receive, and each of those two system
        calls lets go of the GIL and takes it back, which with many threads is a context switch
        each. TLS sockets keep Python's timeouts (the TLS layer needs them).
        """
        if not self._kernel_timeouts:
            sock.settimeout(seconds)
            return
        sock.settimeout(None)
        whole = int(seconds)
        timeval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)

    def exchange(self, data: bytes, method: str) -> tuple[int, Headers, ReadableBody | None, bool]:
        """Send one request (head and body, ``data``) and read the answer's head.

        Returns the status, the headers, the body to read (None for HEAD, 204 and 304: no
        body, whatever Content-Length says) and whether the connection can serve another
        request once that body has been read.
        """
        try:
            self.sock.sendall(data)
        except BlockingIOError:  # the kernel's send timeout
            raise TimeoutError("timed out sending the request") from None
        reader = self._reader
        status, keep_alive, headers = read_answer_head(reader)
        while 100 <= status < 200:  # interim answers (never asked for): skip them
            status, keep_alive, headers = read_answer_head(reader)
        body: ReadableBody | None
        if method == "HEAD" or status in (204, 304):
            body = None
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = _ChunkedBody(reader)
        elif "content-length" in headers:
            body = reader
        else:
            body, keep_alive = reader, False  # the body ends when the server closes
        return status, headers, body, keep_alive

    def close(self) -> None:
        self.sock.close()


class SocketReader:
    """Buffered reading from a socket: lines (answer heads, chunk sizes) through a buffer, body
    bytes straight into the caller's buffer once the buffered ones are used up.

    ``waitall``: the socket is blocking (kernel timeouts), so a body read asks the kernel for
    the whole buffer at once (MSG_WAITALL): one system call, and one GIL release, where reading
    what has arrived so far would take several. A kernel timeout becomes ``TimeoutError``.
    """

    def __init__(self, sock: socket.socket, *, waitall: bool, size: int = _READ_BUFFER) -> None:
        self._sock = sock
        self._flags = socket.MSG_WAITALL if waitall else 0
        self._buffer = bytearray(size)
        self._view = memoryview(self._buffer)
        self._start = 0  # buffered bytes are self._buffer[self._start:self._end]
        self._end = 0

    def readline(self, limit: int = -1, /) -> bytes:
        """The next line, ``\\n`` included; at most ``limit`` bytes (a longer line comes back
        cut at ``limit``); ``b""`` at the end of the stream."""
        left = sys.maxsize if limit < 0 else limit
        parts: list[bytes] = []
        while True:
            newline = self._buffer.find(b"\n", self._start, self._end)
            stop = self._end if newline < 0 else newline + 1
            stop = min(stop, self._start + left)
            if stop > self._start:
                parts.append(bytes(self._view[self._start : stop]))
                left -= stop - self._start
                self._start = stop
            if (newline >= 0 and stop == newline + 1) or left == 0:
                return b"".join(parts)
            # Everything buffered is taken and the line goes on: receive more.
            got = self._recv(self._view, 0)
            self._start, self._end = 0, got
            if not got:
                return b"".join(parts)

    def readinto(self, buffer: memoryview, /) -> int:
        """Fill the start of ``buffer``: with buffered bytes if there are any, else from the
        socket (all of it, where the socket allows); 0 at the end of the stream."""
        if self._start < self._end:
            count = min(len(buffer), self._end - self._start)
            buffer[:count] = self._view[self._start : self._start + count]
            self._start += count
            return count
        if not buffer:
            return 0
        return self._recv(buffer, self._flags)

    def _recv(self, buffer: memoryview, flags: int) -> int:
        try:
            return self._sock.recv_into(buffer, len(buffer), flags)
        except BlockingIOError:  # the kernel's receive timeout
            raise TimeoutError("timed out waiting for the server") from None


def _open_tunnel(sock: socket.socket, endpoint: Endpoint) -> None:
    """Ask the proxy on ``sock`` for a tunnel to the endpoint (CONNECT)."""
    authority = f"{endpoint.host_header.rsplit(':', 1)[0]}:{endpoint.port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    lines.extend(f"{name}: {value}" for name, value in endpoint.proxy_headers)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    # Unbuffered: the proxy sends nothing after its answer until the TLS handshake starts,
    # but a buffered reader could still hold bytes the TLS layer must see.
    reader = sock.makefile("rb", buffering=0)
    try:
        status, _, _ = read_answer_head(reader)
    finally:
        reader.close()
    if status != 200:
        raise OSError(f"the proxy refused a tunnel to {authority}: HTTP {status}")


class _LineReader(Protocol):
    def readline(self, limit: int = -1, /) -> bytes: ...


def read_answer_head(reader: _LineReader) -> tuple[int, bool, Headers]:
    """Status, keep-alive and headers of the next answer on ``reader``."""
    line = reader.readline(_MAX_LINE + 1)
    if not line:
        raise http.client.RemoteDisconnected("the server closed the connection without answering")
    if len(line) > _MAX_LINE:
        raise http.client.LineTooLong("status line")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise http.client.BadStatusLine(line.decode("latin-1").rstrip())
    status = int(parts[1])
    headers = Headers()
    for _ in range(_MAX_HEADERS + 1):
        line = reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise http.client.IncompleteRead(b"", None)
        name, colon, value = line.decode("latin-1").partition(":")
        name = name.lower()
        if not colon or not name or name != name.strip() or line[0] in b" \t":
            raise http.client.HTTPException(f"malformed header line {line[:80]!r}")
        value = value.strip(_OWS_AND_EOL)  # not str.strip(): NEL and NBSP are field bytes
        previous = headers.get(name)
        dict.__setitem__(headers, name, value if previous is None else f"{previous}, {value}")
    else:
        raise http.client.HTTPException(f"more than {_MAX_HEADERS} headers")
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (
        parts[0] != b"HTTP/1.0" or "keep-alive" in connection
    )
    return status, keep_alive, headers


class _ChunkedBody:
    """A chunked body (RFC 9112 7.1): chunk sizes, data, and trailers read and dropped."""

    def __init__(self, reader: SocketReader) -> None:
        self._reader = reader
        self._left = 0  # bytes of the current chunk not read yet
        self._ended = False

    def readinto(self, buffer: memoryview, /) -> int:
        if self._ended or not buffer:
            return 0
        if self._left == 0:
            self._left = self._chunk_size()
            if self._left == 0:
                self._end()
                return 0
        got = self._reader.readinto(buffer[: self._left])
        if not got:
            raise http.client.IncompleteRead(b"", self._left)
        self._left -= got
        if self._left == 0:
            self._crlf()
        return got

    def _chunk_size(self) -> int:
        line = self._reader.readline(_MAX_LINE + 1)
        if not line:
            raise http.client.IncompleteRead(b"", None)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("chunk size")
        text = line.split(b";", 1)[0].strip(b" \t\r\n")
        # Hex digits only: int(text, 16) alone also reads "-1", "+5", "0x10" and "1_0".
        if _HEX_DIGITS.fullmatch(text) is None:
            raise http.client.HTTPException(f"bad chunk size {text[:20]!r}")
        return int(text, 16)

    def _crlf(self) -> None:
        if self._reader.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n"):
            raise http.client.HTTPException("chunk data not followed by CRLF")

    def _end(self) -> None:
        for _ in range(_MAX_HEADERS + 1):  # trailer fields, up to the blank line
            line = self._reader.readline(_MAX_LINE + 1)
            if not line:
                raise http.client.IncompleteRead(b"", None)
            if line in (b"\r\n", b"\n"):
                self._ended = True
                return
        raise http.client.HTTPException(f"more than {_MAX_HEADERS} trailer lines")
