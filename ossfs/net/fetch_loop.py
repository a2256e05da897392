"""Many small GETs at once on one thread: non-blocking sockets instead of a thread per GET.

Responsibility: run the read-ahead GETs of whole small objects (`ossfs.read.sibling_prefetch`) on a
single thread that waits for all their sockets at once (epoll), over keep-alive connections it
owns, plain TCP or TLS, each with its own connect and read deadline; hand each finished body,
or the reason it failed, to the caller's ``done`` callback. A request is prepared (built and
signed) and its answer's head accepted (status, range, etag, length) by the caller's
functions: this module knows HTTP's framing, not OSS.

Why: with a thread per GET, every GET meant a worker woken from its queue and a GIL handoff at
each blocking socket call, and with a dozen GETs in flight most of the daemon's system time
went to context switches. One thread that sleeps in ``epoll_wait`` for all of them costs about
a fifth less CPU per small file (see the README's design notes for the figures).

Deliberately simple, because a failure costs little: read-ahead is only a guess, and a file
whose GET failed is fetched by its reader, with retries and the real error. So there are no
retries here except one immediate resend when a kept connection turns out closed before the
answer began (as `ossfs.net.oss_http` does) and the next address of the endpoint's name when a
connection cannot be opened (as `socket.create_connection` does; up to 3); answers must have
a ``Content-Length`` (no chunked bodies); proxies are not spoken (the store offers no loop
for an endpoint behind one).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ossfs.core.object_store import Piece
from ossfs.net.http_wire import Endpoint, Headers, read_answer_head

log = logging.getLogger(__name__)

__all__ = ["FetchLoop", "FetchLoopClosedError", "PreparedGet"]

_HEAD_LIMIT: Final = 65536  # bytes of an answer's head (status line and headers)
_RECEIVE: Final = 16384  # bytes received at a time while the head is incomplete
_IDLE_WAIT_S: Final = 1.0  # the longest sleep with nothing due
_RESOLVE_TTL_S: Final = 30.0  # how long an endpoint's resolved addresses are used
_MAX_CONNECTS: Final = 3  # addresses one GET tries before it fails

_Address = tuple[socket.AddressFamily, socket.SocketKind, int, Any]


@dataclass(frozen=True, slots=True)
class PreparedGet:
    """A request ready to send: where to, its bytes, and how long its body must be."""

    endpoint: Endpoint
    data: bytes
    size: int


class FetchLoopClosedError(Exception):
    """The loop was closed before the GET finished."""


Prepare = Callable[[str, str, int], PreparedGet]
"""(key, etag, size) -> the signed request for the whole object; raises if it cannot be sent."""
Accept = Callable[[str, str, int, int, Headers], None]
"""(key, etag, size, status, headers): raises unless the answer is that object's whole body."""
Done = Callable[[Piece | BaseException, float], None]
"""Called once per GET on the loop's thread: the body (or the failure) and the seconds it took."""


@dataclass(slots=True)
class _Job:
    key: str
    etag: str
    size: int
    done: Done
    began: float = 0.0
    request: PreparedGet | None = None
    resent: bool = False
    connects_failed: int = 0
    received: int = 0  # body bytes received, over every attempt


class _Conn:
    """One connection and, while busy, the GET it carries."""

    __slots__ = (
        "address",
        "answered",
        "body",
        "deadline",
        "endpoint",
        "events",
        "filled",
        "head",
        "job",
        "keep",
        "phase",
        "reused",
        "sock",
        "unsent",
    )

    def __init__(self, endpoint: Endpoint, sock: socket.socket, address: _Address) -> None:
        self.endpoint = endpoint
        self.sock: socket.socket = sock
        self.address = address  # where it connects
        # connect, then handshake (TLS), send, head, body, and idle after it; or closed
        self.phase = "connect"
        self.job: _Job | None = None
        self.unsent = memoryview(b"")
        self.head = bytearray()
        self.body: Piece | None = None
        self.filled = 0
        self.keep = False  # the answer lets the connection serve another request
        self.answered = False  # a byte of the answer has arrived
        self.reused = False  # it served a GET before this one
        self.deadline = 0.0
        self.events = 0  # what the selector waits for on this socket


class FetchLoop:
    """Runs GETs of whole objects on one thread. `submit` is thread-safe; `close` once.

    ``take_buffer(size)``: a writable buffer the body is received into (it is handed to
    ``done``); ``received(nbytes)``: told the body bytes each GET received, when it ends
    (finished or failed); ``ssl_context()``: the context for ``https`` endpoints; at most
    ``max_idle`` idle connections are kept per endpoint.
    """

    def __init__(
        self,
        prepare: Prepare,
        accept: Accept,
        *,
        take_buffer: Callable[[int], Piece],
        received: Callable[[int], None] = lambda nbytes: None,
        ssl_context: Callable[[], ssl.SSLContext],
        connect_timeout_s: float,
        read_timeout_s: float,
        max_idle: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prepare = prepare
        self._accept = accept
        self._take_buffer = take_buffer
        self._received = received
        self._ssl_context = ssl_context
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max_idle = max_idle
        self._clock = clock
        self._selector = selectors.EpollSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._submitted: deque[_Job] = deque()
        self._awake = False  # a wake-up is pending: no second write to the pipe
        self._closed = False
        self._busy: set[_Conn] = set()
        self._idle: dict[Endpoint, list[_Conn]] = {}
        self._addresses: dict[Endpoint, tuple[float, list[_Address]]] = {}
        self._thread = threading.Thread(target=self._run, name="fetch-loop", daemon=True)
        self._thread.start()

    def submit(self, key: str, etag: str, size: int, done: Done) -> None:
        """GET ``size`` bytes of ``key`` pinned to ``etag``; ``done`` is called when it ends.
        After `close`, ``done`` gets `FetchLoopClosedError` at once (on the caller's thread)."""
        if size < 1:
            raise ValueError(f"nothing to fetch: size {size}")
        job = _Job(key, etag, size, done)
        with self._lock:
            if not self._closed:
                self._submitted.append(job)
                wake, self._awake = not self._awake, True
                if wake:
                    os.write(self._wake_write, b"\0")
                return
        done(FetchLoopClosedError("the fetch loop is closed"), 0.0)

    def close(self) -> None:
        """Stop: GETs not finished get `FetchLoopClosedError`; connections are closed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.write(self._wake_write, b"\0")
        if threading.current_thread() is not self._thread:  # else: it ends after this round
            self._thread.join()

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            events = self._selector.select(self._wait_s())
            for key, _ in events:
                conn = key.data
                if conn is None:
                    self._drain_wake()
                else:
                    self._step(conn)
            with self._lock:
                closed = self._closed
                jobs = list(self._submitted)
                self._submitted.clear()
                self._awake = False
            if closed:
                self._shut_down(jobs)
                self._selector.close()
                os.close(self._wake_read)
                os.close(self._wake_write)
                return
            for job in jobs:
                self._start(job)
            self._expire()

    def _wait_s(self) -> float:
        if not self._busy:
            return _IDLE_WAIT_S
        soonest = min(conn.deadline for conn in self._busy)
        return max(0.0, min(_IDLE_WAIT_S, soonest - self._clock()))

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # emptied
            while os.read(self._wake_read, 4096):
                pass

    def _start(self, job: _Job) -> None:
        job.began = self._clock()
        try:
            job.request = self._prepare(job.key, job.etag, job.size)
            conn = self._take(job.request.endpoint)
        except Exception as exc:
            self._finish(job, exc)
            return
        self._assign(conn, job)

    def _assign(self, conn: _Conn, job: _Job) -> None:
        assert job.request is not None
        conn.job = job
        conn.unsent = memoryview(job.request.data)
        conn.head = bytearray()
        conn.body = None
        conn.filled = 0
        conn.answered = False
        self._busy.add(conn)
        if conn.phase == "idle":  # a kept connection: send now (a new one sends once open)
            conn.phase = "send"
            self._step(conn)

    def _take(self, endpoint: Endpoint, *, new: bool = False) -> _Conn:
        """An idle connection to ``endpoint`` (unless ``new``), or a new one being opened."""
        idle = self._idle.get(endpoint)
        if idle and not new:
            conn = idle.pop()
            conn.reused = True
            conn.deadline = self._clock() + self._read_timeout_s
            return conn
        resolved = self._address(endpoint)
        family, kind, proto, address = resolved
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, os.strerror(code))
        except BaseException:
            sock.close()
            raise
        conn = _Conn(endpoint, sock, resolved)
        conn.deadline = self._clock() + self._connect_timeout_s
        self._selector.register(sock, selectors.EVENT_WRITE, conn)
        conn.events = selectors.EVENT_WRITE
        return conn

    def _address(self, endpoint: Endpoint) -> _Address:
        """Where to connect for ``endpoint``: the first of its addresses that has not failed,
        resolved at most once per `_RESOLVE_TTL_S` (a name lookup blocks this thread, and a
        walk's start opens dozens of connections)."""
        now = self._clock()
        cached = self._addresses.get(endpoint)
        if cached is not None and cached[0] > now:
            return cached[1][0]
        addresses: list[_Address] = []
        for family, kind, proto, _, address in socket.getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_STREAM
        ):
            if (family, kind, proto, address) not in addresses:
                addresses.append((family, kind, proto, address))
        self._addresses[endpoint] = (now + _RESOLVE_TTL_S, addresses)
        return addresses[0]

    def _connect_failed(self, conn: _Conn) -> bool:
        """Forget the address ``conn`` could not connect to; True if another one is left to
        try (else the endpoint is resolved again next time: its addresses may be stale)."""
        cached = self._addresses.get(conn.endpoint)
        if cached is None:
            return False
        addresses = cached[1]
        if conn.address in addresses:  # (connections to it that fail later find it gone)
            addresses.remove(conn.address)
        if addresses:
            return True
        del self._addresses[conn.endpoint]
        return False

    def _arm(self, conn: _Conn, deadline: float, write: bool = False) -> None:
        """Wait for ``conn`` to be writable (or readable) until ``deadline``."""
        conn.deadline = deadline
        events = selectors.EVENT_WRITE if write else selectors.EVENT_READ
        if events != conn.events:  # a system call only when it changes
            self._selector.modify(conn.sock, events, conn)
            conn.events = events

    def _step(self, conn: _Conn) -> None:
        """Advance ``conn`` as far as its socket allows."""
        if conn.phase == "idle":  # an idle connection has nothing to say: the server closed it
            self._drop(conn)
            return
        if conn.phase == "closed":
            return
        try:
            if conn.phase == "connect":
                self._connected(conn)
            if conn.phase == "handshake":
                conn.sock.do_handshake()  # type: ignore[attr-defined]
                conn.phase = "send"
            if conn.phase == "send":
                while conn.unsent:
                    conn.unsent = conn.unsent[conn.sock.send(conn.unsent) :]
                conn.phase = "head"
                self._arm(conn, self._clock() + self._read_timeout_s)
            self._receive(conn)
        except ssl.SSLWantReadError:
            self._arm(conn, conn.deadline)
        except ssl.SSLWantWriteError:
            self._arm(conn, conn.deadline, write=True)
        except BlockingIOError:
            self._arm(conn, conn.deadline, write=conn.phase in ("connect", "send"))
        except Exception as exc:
            self._failed(conn, exc)

    def _connected(self, conn: _Conn) -> None:
        code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))
        conn.deadline = self._clock() + self._read_timeout_s
        if conn.endpoint.scheme == "https":
            self._selector.unregister(conn.sock)
            conn.sock = self._ssl_context().wrap_socket(
                conn.sock, server_hostname=conn.endpoint.host, do_handshake_on_connect=False
            )
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            conn.events = selectors.EVENT_READ
            conn.phase = "handshake"
        else:
            conn.phase = "send"

    def _receive(self, conn: _Conn) -> None:
        """Read what has arrived: the head, then the body; finish the GET when it is whole.
        Raises BlockingIOError (or SSLWantReadError) when it must wait for more."""
        job = conn.job
        assert job is not None
        while conn.phase == "head":
            end = conn.head.find(b"\r\n\r\n")
            if end >= 0:
                self._begin_body(conn, job, end + 4)  # or skips an interim answer
                continue
            if len(conn.head) > _HEAD_LIMIT:
                raise ValueError("the answer's head is too long")
            chunk = conn.sock.recv(_RECEIVE)
            if not chunk:
                raise ConnectionResetError("the server closed the connection")
            conn.answered = True
            conn.deadline = self._clock() + self._read_timeout_s
            conn.head += chunk
        body = conn.body
        assert body is not None
        while conn.filled < job.size:
            got = conn.sock.recv_into(memoryview(body)[conn.filled :])
            if not got:
                raise ConnectionResetError(f"the body ended at {conn.filled} of {job.size} bytes")
            conn.filled += got
            job.received += got
            conn.deadline = self._clock() + self._read_timeout_s
            if conn.filled < job.size and not isinstance(conn.sock, ssl.SSLSocket):
                # All that has arrived is read (TLS may still hold decrypted bytes that epoll
                # cannot see: it reads on until the TLS layer asks to wait).
                raise BlockingIOError
        self._done(conn)

    def _begin_body(self, conn: _Conn, job: _Job, head_end: int) -> None:
        status, keep_alive, headers = read_answer_head(io.BytesIO(bytes(conn.head[:head_end])))
        if 100 <= status < 200:
            del conn.head[:head_end]  # an interim answer (never asked for): skip it
            return
        if "content-length" not in headers or "transfer-encoding" in headers:
            # Chunks would frame the body whatever Content-Length says (RFC 9112 6.3): read
            # by the length, their sizes would become body bytes.
            raise ValueError(f"HTTP {status} without a Content-Length, or with chunks")
        self._accept(job.key, job.etag, job.size, status, headers)  # raises on a wrong answer
        extra = len(conn.head) - head_end
        if extra > job.size:
            raise ValueError("the server sent more than the body")
        body = self._take_buffer(job.size)
        body[:extra] = conn.head[head_end:]
        conn.body, conn.filled, conn.keep = body, extra, keep_alive
        job.received += extra
        conn.head = bytearray()
        conn.phase = "body"

    def _done(self, conn: _Conn) -> None:
        job, body = conn.job, conn.body
        assert job is not None and body is not None
        keep = conn.keep
        conn.job, conn.body = None, None
        self._busy.discard(conn)
        idle = self._idle.setdefault(conn.endpoint, [])
        if keep and len(idle) < self._max_idle:
            conn.phase = "idle"
            self._arm(conn, 0.0)
            idle.append(conn)
        else:
            self._close_conn(conn)
        self._finish(job, body)

    def _failed(self, conn: _Conn, exc: Exception) -> None:
        job = conn.job
        # Nothing was sent on a connection that never opened: try the next address, as
        # socket.create_connection does.
        other_address = False
        if conn.phase == "connect":
            other_address = self._connect_failed(conn)
            if job is not None:
                job.connects_failed += 1
                other_address = other_address and job.connects_failed < _MAX_CONNECTS
        stale = conn.reused and not conn.answered and isinstance(exc, ConnectionError)
        self._busy.discard(conn)
        self._close_conn(conn)
        if job is None:
            return
        resend = stale and not job.resent  # a closed kept connection: once, on a new one
        if (other_address or resend) and job.request is not None:
            job.resent = job.resent or resend
            try:
                fresh = self._take(job.request.endpoint, new=True)
            except Exception as error:
                self._finish(job, error)
                return
            self._assign(fresh, job)
            return
        self._finish(job, exc)

    def _drop(self, conn: _Conn) -> None:
        idle = self._idle.get(conn.endpoint, [])
        if conn in idle:
            idle.remove(conn)
        self._close_conn(conn)

    def _close_conn(self, conn: _Conn) -> None:
        conn.phase, conn.job, conn.body = "closed", None, None
        with contextlib.suppress(KeyError, ValueError):  # not registered (any more)
            self._selector.unregister(conn.sock)
        conn.sock.close()

    def _expire(self) -> None:
        now = self._clock()
        for conn in [conn for conn in self._busy if conn.deadline <= now]:
            what = "connecting" if conn.phase in ("connect", "handshake") else "waiting"
            self._failed(conn, TimeoutError(f"timed out {what} for the server"))

    def _finish(self, job: _Job, result: Piece | BaseException) -> None:
        try:
            if job.received:
                self._received(job.received)
            job.done(result, self._clock() - job.began)
        except Exception:  # a callback's bug must not stop every other GET
            log.exception("fetch loop: completion of %s failed", job.key)

    def _shut_down(self, jobs: list[_Job]) -> None:
        for conn in list(self._busy):
            job = conn.job
            self._busy.discard(conn)
            self._close_conn(conn)
            if job is not None:
                jobs.append(job)
        for idle in self._idle.values():
            for conn in idle:
                self._close_conn(conn)
        self._idle.clear()
        for job in jobs:
            self._finish(job, FetchLoopClosedError("the fetch loop is closed"))
