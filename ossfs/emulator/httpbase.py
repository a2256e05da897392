"""HTTP plumbing shared by the OSS and S3 dialects: request parsing, responses, object bodies.

Handlers run one thread per connection with HTTP/1.1 keep-alive. Object bodies go out with
``socket.sendfile`` (zero copy) unless a fault plan needs Python-level streaming (bandwidth cap,
connection reset, truncation, corruption). This module knows no OSS semantics.
"""

from __future__ import annotations

import email.utils
import logging
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO, Final
from urllib.parse import unquote, unquote_plus, urlsplit

from ossfs.emulator.config import Context
from ossfs.emulator.faults import FaultPlan

log = logging.getLogger(__name__)

_STREAM_CHUNK: Final = 256 * 1024
CHUNKED_PIECE: Final = 1 << 20
"""The piece a ``chunked`` pacing writes at once before it sleeps to keep the rate."""
MAX_SMALL_BODY: Final = 1 << 20


def new_request_id() -> str:
    """24 upper-case hex digits, like OSS's ``x-oss-request-id``."""
    return os.urandom(12).hex().upper()


def http_date(epoch_s: float) -> str:
    """``Sat, 05 Dec 2015 11:10:29 GMT`` (two-digit day, as oss2's parser requires)."""
    return email.utils.formatdate(epoch_s, usegmt=True)


def parse_http_date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class ClientGoneError(Exception):
    """The peer closed the connection while we were sending or receiving."""


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request. ``bucket``/``key`` are decoded; ``key`` is None for bucket-level paths."""

    method: str
    raw_path: str
    bucket: str | None
    key: str | None
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    host: str

    def param(self, name: str) -> str | None:
        for k, v in self.query:
            if k == name:
                return v
        return None

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.query)


def parse_query(raw: str) -> tuple[tuple[str, str], ...]:
    """Decoded pairs in order; bare names get ``""`` (requests sends a space as ``+``)."""
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value)))
    return tuple(pairs)


def _is_ip_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost" or name.startswith("["):
        return True
    parts = name.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server carrying the shared `Context`."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], ctx: Context
    ) -> None:
        self.ctx = ctx
        super().__init__(address, handler)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        """A client that drops its connection is routine (a mount unmounting with idle
        keep-alive connections, a reader closing early): one DEBUG line, not a traceback on
        stderr. Anything else is still reported in full."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("client %s went away: %r", client_address, exc)
            return
        super().handle_error(request, client_address)


class BaseHandler(BaseHTTPRequestHandler):
    """Response helpers; subclasses implement ``dispatch``."""

    protocol_version = "HTTP/1.1"
    server_header = "AliyunOSS"
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and sendfile bodies go out as separate sends; Nagle would stall the second.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def ctx(self) -> Context:
        return self.server.ctx

    def version_string(self) -> str:
        return self.server_header

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self.dispatch()

    def do_HEAD(self) -> None:
        self.dispatch()

    def do_PUT(self) -> None:
        self.dispatch()

    def do_POST(self) -> None:
        self.dispatch()

    def do_DELETE(self) -> None:
        self.dispatch()

    def do_OPTIONS(self) -> None:
        self.dispatch()

    def dispatch(self) -> None:
        raise NotImplementedError

    # -- parsing ---------------------------------------------------------------------------------

    def parse_request_target(self, bucket_exists: Callable[[str], bool]) -> Request:
        """Split path-style ``/bucket/key`` or virtual-hosted (bucket from Host) requests.

        A Host whose first label is an existing bucket means virtual-hosted style.
        Absolute-URI request lines (as sent through a proxy) work too.
        """
        target = self.path
        host = self.headers.get("Host", "")
        if "://" in target.split("?", 1)[0]:
            parts = urlsplit(target)
            host = parts.netloc or host
            raw_path, raw_query = parts.path or "/", parts.query
        else:
            raw_path, _, raw_query = target.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        bucket: str | None = None
        key: str | None = None
        label = host.split(".", 1)[0] if "." in host else ""
        if label and not _is_ip_host(host) and bucket_exists(label):
            bucket = label
            rest = raw_path[1:] if raw_path.startswith("/") else raw_path
            key = unquote(rest) if rest else None
        else:
            stripped = raw_path.lstrip("/")
            if stripped:
                raw_bucket, _, rest = stripped.partition("/")
                bucket = unquote(raw_bucket)
                key = unquote(rest) if rest else None
        return Request(
            method=self.command,
            raw_path=raw_path,
            bucket=bucket,
            key=key,
            query=parse_query(raw_query),
            headers=headers,
            host=host,
        )

    def read_small_body(self, req: Request) -> bytes:
        """Read a (small) request body so the connection can be reused; close if it is large."""
        length = int(req.headers.get("content-length", "0") or 0)
        if length > MAX_SMALL_BODY:
            self.close_connection = True
            return b""
        return self.rfile.read(length) if length > 0 else b""

    # -- responses -------------------------------------------------------------------------------

    def start_response(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def respond(
        self, status: int, headers: list[tuple[str, str]], body: bytes = b"", *, head: bool = False
    ) -> int:
        """Send a whole response; return the body bytes sent."""
        all_headers = [*headers, ("Content-Length", str(len(body)))]
        self.start_response(status, all_headers)
        if body and not head:
            self.wfile.write(body)
            return len(body)
        return 0

    def delay(self, plan: FaultPlan) -> None:
        """Wait the plan's latency before answering (recorded as a ``latency`` fault)."""
        if plan.latency_s:
            self.ctx.log.record_fault("latency")
            time.sleep(plan.latency_s)

    def send_file_range(
        self, file: BinaryIO | None, start: int, length: int, plan: FaultPlan
    ) -> tuple[int, str | None]:
        """Send ``length`` bytes of ``file`` from ``start`` after the headers were sent.

        Returns (bytes sent, the body fault carried out or None). Raises `ClientGoneError`.
        """
        if length == 0 or file is None:
            return 0, None
        try:
            if not plan.needs_python_stream:
                sent = self.connection.sendfile(file, start, length)
                if sent != length:
                    self.close_connection = True
                return sent, None
            return self._stream(file, start, length, plan)
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.close_connection = True
            raise ClientGoneError(str(exc)) from exc

    def _stream(
        self, file: BinaryIO, start: int, length: int, plan: FaultPlan
    ) -> tuple[int, str | None]:
        position = min(length - 1, int(length * plan.cut_fraction))
        limit = length
        fault: str | None = None
        if plan.reset or plan.truncate:
            limit = position
            fault = "reset" if plan.reset else "truncate"
        elif plan.corrupt:
            fault = "corrupt"
        bps = plan.bandwidth_bytes_per_s
        chunk_size = stream_piece_bytes(plan)
        began = time.monotonic()
        sent = 0
        while sent < limit:
            size = min(chunk_size, limit - sent)
            if plan.corrupt and sent <= position < sent + size:
                file.seek(start + sent)
                buf = bytearray(file.read(size))
                if position - sent < len(buf):
                    buf[position - sent] ^= 0xFF
                self.wfile.write(buf)
                got = len(buf)
            else:
                # Zero copy, as an unpaced body: the server's own CPU is not what a paced
                # profile means to cost (a real server is elsewhere), and on a shared machine
                # it would be taken from the client being measured.
                got = self.connection.sendfile(file, start + sent, size)
            if not got:
                break
            sent += got
            if bps:
                ahead = sent / bps - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
        if plan.reset or plan.truncate or sent < length:
            self.close_connection = True
        if plan.reset:
            # SO_LINGER 0 makes close() send RST instead of FIN: a reset mid-body.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        return sent, fault


def stream_piece_bytes(plan: FaultPlan) -> int:
    """How much of a body `BaseHandler._stream` writes at once under ``plan``.

    Unpaced: 256 KiB. Paced ``smooth``: a twentieth of a second's worth (1 KiB to 256 KiB), so
    the body flows evenly. Paced ``chunked``: 1 MiB, then a sleep until the rate is met.
    """
    bps = plan.bandwidth_bytes_per_s
    if not bps:
        return _STREAM_CHUNK
    if plan.pacing == "chunked":
        return CHUNKED_PIECE
    return max(1024, min(_STREAM_CHUNK, bps // 20))
