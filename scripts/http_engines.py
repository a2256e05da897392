"""The HTTP engines ``scripts/bench_http.py`` compares, behind one small interface.

Each engine GETs inclusive byte ranges (as on the wire) of one bucket's objects, V1-signed by the
project's `V1Signer` (the same signing cost for all), into the caller's buffer: an anonymous mmap
from 64 KiB up (what BufferPool hands out), else a bytearray; it checks the status (206) and the
length (`BodyError`). Constructors take ``(target, bounds, pool, curl_buffer)``; ``get(key,
first, last, buf) -> bytes received`` blocks (thread-safe); loop engines also have ``submit(...,
done)``, which calls ``done(bytes received or the exception)`` on the loop's thread.

Not here: retries, proxies, TLS, HEAD and LIST; besides ossfs's own (``today``,
``today-loop``) these engines only measure. urllib3, httptools and h11 are optional, not
project dependencies (``.venv/bin/pip install urllib3 httptools h11``); `missing` names the
absent.
"""

from __future__ import annotations

import contextlib
import importlib.util
import mmap
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ossfs.core.object_store import Piece
from ossfs.net.curl_loop import CurlLoop
from ossfs.net.curl_setup import EngineSettings
from ossfs.net.curl_transport import CurlTransport
from ossfs.net.http_api import Headers, HttpRequest
from ossfs.store.credentials import Credentials
from ossfs.store.v1_signature import V1Signer

Done = Callable[[int | BaseException], None]


class BodyError(Exception):
    """The answer was not the requested range: another status, or another body length."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """The limits each engine is given (each enforces what it can)."""

    connect_s: float = 10.0
    read_s: float = 30.0  # per socket read: urllib3, httptools, h11
    stall_bytes_per_s: int = 16 * 1024  # pycurl (today's too): less than this on average ...
    stall_window_s: int = 10  # ... over this many seconds aborts the transfer (error 28)
    deadline_s: float = 120.0  # pycurl: the whole transfer


class Target:
    """A bucket at a plain-HTTP endpoint (``http://host:port``), path-style, as the emulator
    serves it; unsigned requests without credentials."""

    def __init__(self, endpoint: str, bucket: str, credentials: Credentials | None) -> None:
        self.endpoint = endpoint
        self.signer = V1Signer(bucket=bucket, root_target=f"/{bucket}/", credentials=credentials)
        host, _, port = endpoint.removeprefix("http://").rpartition(":")
        self.address, self.host_header = (host, int(port)), f"{host}:{port}"

    def url(self, key: str) -> str:
        return self.endpoint + self.signer.target(key)

    def headers(self, key: str, first: int, last: int) -> list[tuple[str, str]]:
        pinned = [("x-oss-range-behavior", "standard"), ("Range", f"bytes={first}-{last}")]
        return self.signer.sign_get(key, pinned)


def new_buffer(size: int) -> Piece:
    if size >= 64 << 10:
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return bytearray(size)


def _check(status: int, got: int, want: int) -> int:
    if status != 206 or got != want:
        raise BodyError(f"HTTP {status}, {got} of {want} bytes")
    return got


def _receive(status: int, readinto: Callable[[memoryview], int], buf: Piece, want: int) -> int:
    """Read the ``want`` bytes of a body into ``buf`` and check the answer."""
    view, filled = memoryview(buf)[:want], 0
    while filled < want and (got := readinto(view[filled:])):
        filled += got
    return _check(status, filled, want)


def _blocking(engine: Any, key: str, first: int, last: int, buf: Piece) -> int:
    """A GET through a loop engine's ``submit``: the caller's thread waits for the loop."""
    answer: Future[int | BaseException] = Future()
    engine.submit(key, first, last, buf, answer.set_result)
    result = answer.result()
    if isinstance(result, BaseException):
        raise result
    return result


def _settings(bounds: Bounds) -> EngineSettings:
    """ossfs's engine settings with ``bounds`` (its own receive buffer: ``curl_buffer`` is the
    other pycurl engines')."""
    return EngineSettings(
        connect_timeout_s=bounds.connect_s,
        low_speed_limit_bytes=bounds.stall_bytes_per_s,
        low_speed_time_s=bounds.stall_window_s,
    )


class Today:
    """``ossfs.net.curl_transport.CurlTransport``: send, then readinto on the caller's thread."""

    def __init__(self, target: Target, bounds: Bounds, pool: int, curl_buffer: int) -> None:
        self._target = target
        self._transport = CurlTransport(_settings(bounds), max_idle=pool)

    def get(self, key: str, first: int, last: int, buf: Piece) -> int:
        headers = dict(self._target.headers(key, first, last))
        answer = self._transport.send(HttpRequest("GET", self._target.url(key), headers))
        try:
            return _receive(answer.status, answer.readinto, buf, last - first + 1)
        finally:
            answer.close()

    def close(self) -> None:
        self._transport.close()


class TodayLoop:
    """``ossfs.net.curl_loop.CurlLoop``, directory read-ahead's one-thread loop; it GETs whole
    objects only (``first`` 0, ``last + 1`` the object's size)."""

    whole_objects_only = True

    def __init__(self, target: Target, bounds: Bounds, pool: int, curl_buffer: int) -> None:
        self._buffers: deque[Piece] = deque()  # one per GET submitted, all of one size

        def prepare(key: str, etag: str, size: int) -> HttpRequest:
            head = target.headers(key, 0, size - 1)
            return HttpRequest("GET", target.url(key), dict(head))

        def accept(key: str, etag: str, size: int, status: int, headers: Headers) -> None:
            _check(status, size, size)

        self._loop = CurlLoop(
            prepare,
            accept,
            settings=_settings(bounds),
            take_buffer=lambda size: self._buffers.popleft(),
            deadline_s=bounds.deadline_s,
            max_connections=pool,
        )

    def submit(self, key: str, first: int, last: int, buf: Piece, done: Done) -> None:
        self._buffers.append(buf)
        self._loop.submit(
            key,
            "",
            last + 1,
            lambda got, _s: done(got if isinstance(got, BaseException) else last + 1),
        )

    def get(self, key: str, first: int, last: int, buf: Piece) -> int:
        return _blocking(self, key, first, last, buf)

    def close(self) -> None:
        self._loop.close()


class Urllib3:
    """urllib3 2.x ``PoolManager.urlopen(preload_content=False)``, then readinto."""

    def __init__(self, target: Target, bounds: Bounds, pool: int, curl_buffer: int) -> None:
        import urllib3

        self._target = target
        timeout = urllib3.Timeout(connect=bounds.connect_s, read=bounds.read_s)
        # block=True: the connection cap (a caller waits for a free connection)
        self._pool = urllib3.PoolManager(maxsize=pool, block=True, retries=False, timeout=timeout)

    def get(self, key: str, first: int, last: int, buf: Piece) -> int:
        headers = dict(self._target.headers(key, first, last))
        answer = self._pool.urlopen(
            "GET",
            self._target.url(key),
            headers=headers,
            preload_content=False,
            decode_content=False,
        )
        try:
            return _receive(answer.status, answer.readinto, buf, last - first + 1)
        finally:
            answer.release_conn()

    def close(self) -> None:
        self._pool.clear()


def _curl_handle(bounds: Bounds, buffer_bytes: int) -> Any:
    """A pycurl easy handle with the options every transfer carries (the bounds)."""
    import pycurl

    c = pycurl.Curl()
    for option, value in (
        (pycurl.NOSIGNAL, 1),  # threads: no SIGALRM for DNS timeouts
        (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1),
        (pycurl.CONNECTTIMEOUT_MS, int(bounds.connect_s * 1000)),  # DNS, TCP, TLS, proxy
        (pycurl.LOW_SPEED_LIMIT, bounds.stall_bytes_per_s),
        (pycurl.LOW_SPEED_TIME, bounds.stall_window_s),
        (pycurl.TIMEOUT_MS, int(bounds.deadline_s * 1000)),
        (pycurl.BUFFERSIZE, buffer_bytes),  # the 16 KiB default costs 2.5x the CPU per GiB
        (pycurl.PROXY, ""),  # not the environment's
        (pycurl.FOLLOWLOCATION, 0),
        (pycurl.TCP_NODELAY, 1),
    ):
        c.setopt(option, value)
    return c


class _CurlSink:
    """Sets up ``c`` for one GET into ``buf``. For an mmap, WRITEFUNCTION is its own ``write`` (a
    C method: no Python frame per callback); for a bytearray, a Python method copies."""

    def __init__(self, c: Any, target: Target, job: tuple[str, int, int], buf: Piece) -> None:
        import pycurl

        key, first, last = job
        self.buf, self.view, self.pos, self.want = buf, memoryview(buf), 0, last - first + 1
        c.setopt(pycurl.URL, target.url(key))
        c.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in target.headers(key, first, last)])
        c.setopt(pycurl.MAXFILESIZE_LARGE, self.want)  # a longer body fails before any write
        if isinstance(buf, mmap.mmap):
            buf.seek(0)
        c.setopt(pycurl.WRITEFUNCTION, buf.write if isinstance(buf, mmap.mmap) else self.write)

    def write(self, data: bytes) -> int:
        end = self.pos + len(data)
        if end > len(self.view):
            return 0  # more than the body: abort (error 23)
        self.view[self.pos : end] = data
        self.pos = end
        return len(data)

    def check(self, c: Any) -> int:
        import pycurl

        got = self.buf.tell() if isinstance(self.buf, mmap.mmap) else self.pos
        return _check(int(c.getinfo(pycurl.RESPONSE_CODE)), got, self.want)


class CurlEasy:
    """pycurl: an easy handle per calling thread, no shared connection cache (a CurlShare used
    from several threads costs more CPU than it saves)."""

    def __init__(self, target: Target, bounds: Bounds, pool: int, curl_buffer: int) -> None:
        self._target, self._bounds, self._buffer = target, bounds, curl_buffer
        self._local = threading.local()
        self._handles: list[Any] = []

    def get(self, key: str, first: int, last: int, buf: Piece) -> int:
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = _curl_handle(self._bounds, self._buffer)
            self._handles.append(c)
        sink = _CurlSink(c, self._target, (key, first, last), buf)
        c.perform()
        return sink.check(c)

    def close(self) -> None:
        for c in self._handles:
            c.close()


class CurlMulti:
    """pycurl ``CurlMulti`` driven by one loop thread (socket_action, epoll, a wake pipe) runs
    every transfer, on at most ``pool`` connections (more wait inside libcurl). `get` hands the
    request to the loop and waits: that hand-off is part of what it costs."""

    def __init__(self, target: Target, bounds: Bounds, pool: int, curl_buffer: int) -> None:
        import pycurl

        self._pc, self._target, self._bounds, self._buffer = pycurl, target, bounds, curl_buffer
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        for cap in (pycurl.M_MAX_TOTAL_CONNECTIONS, pycurl.M_MAXCONNECTS):
            self._multi.setopt(cap, pool)
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._fds: set[int] = set()
        self._deadline: float | None = None  # libcurl's next timeout
        self._lock = threading.Lock()
        self._submitted: list[tuple[tuple[str, int, int], Piece, Done]] = []
        self._awake = False  # a wake-up is pending: no second write to the pipe
        self._closed = False
        self._free: list[Any] = []
        self._jobs: dict[Any, tuple[_CurlSink, Done]] = {}
        self._thread = threading.Thread(target=self._run, name="curl-multi", daemon=True)
        self._thread.start()

    def submit(self, key: str, first: int, last: int, buf: Piece, done: Done) -> None:
        with self._lock:
            self._submitted.append(((key, first, last), buf, done))
            wake, self._awake = not self._awake, True
        if wake:
            os.write(self._wake_w, b"\0")

    def get(self, key: str, first: int, last: int, buf: Piece) -> int:
        return _blocking(self, key, first, last, buf)

    def _on_socket(self, what: int, fd: int, multi: Any, data: Any) -> None:
        pc = self._pc
        if what == pc.POLL_REMOVE:
            if fd in self._fds:
                self._fds.discard(fd)
                with contextlib.suppress(OSError):
                    self._epoll.unregister(fd)
            return
        mask = select.EPOLLIN if what & pc.POLL_IN else 0
        mask |= select.EPOLLOUT if what & pc.POLL_OUT else 0
        (self._epoll.modify if fd in self._fds else self._epoll.register)(fd, mask)
        self._fds.add(fd)

    def _on_timer(self, ms: int) -> None:
        self._deadline = None if ms < 0 else time.monotonic() + ms / 1000

    def _finish(self, c: Any, error: BaseException | None) -> None:
        sink, done = self._jobs.pop(c)
        self._multi.remove_handle(c)
        self._free.append(c)
        try:
            done(error or sink.check(c))
        except BodyError as exc:
            done(exc)

    def _run(self) -> None:
        pc, m = self._pc, self._multi
        while True:
            wait = 1.0 if self._deadline is None else max(0.0, self._deadline - time.monotonic())
            for fd, events in self._epoll.poll(wait):
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wake_r, 4096):
                            pass
                    continue
                flags = pc.CSELECT_IN if events & select.EPOLLIN else 0
                flags |= pc.CSELECT_OUT if events & select.EPOLLOUT else 0
                flags |= pc.CSELECT_ERR if events & (select.EPOLLERR | select.EPOLLHUP) else 0
                m.socket_action(fd, flags)
            with self._lock:
                submitted, self._submitted, self._awake = self._submitted, [], False
                if self._closed:
                    return
            for job, buf, done in submitted:
                c = self._free.pop() if self._free else _curl_handle(self._bounds, self._buffer)
                self._jobs[c] = (_CurlSink(c, self._target, job, buf), done)
                m.add_handle(c)  # asks for a 0 ms timeout: the transfer starts just below
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self._deadline = None
                m.socket_action(pc.SOCKET_TIMEOUT, 0)
            queued = 1
            while queued:
                queued, ok, failed = m.info_read()
                for c in ok:
                    self._finish(c, None)
                for c, code, message in failed:
                    self._finish(c, BodyError(f"curl error {code}: {message}"))

    def close(self) -> None:
        with self._lock:
            self._closed = True
        os.write(self._wake_w, b"\0")
        self._thread.join()
        self._multi.close()
        for c in [*self._jobs, *self._free]:
            c.close()


class _OwnSocket:
    """A blocking keep-alive socket per calling thread, for the parsers that bring no I/O."""

    def __init__(self, target: Target, bounds: Bounds, pool: int, curl_buffer: int) -> None:
        self._target, self._bounds, self._local = target, bounds, threading.local()

    def _sock(self) -> socket.socket:
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.create_connection(self._target.address, timeout=self._bounds.connect_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._bounds.read_s)
            self._local.sock = sock
        return sock

    def close(self) -> None:
        pass  # the sockets close with their threads' locals


class _HttptoolsAnswer:
    """httptools' parser callbacks for one answer: the body into ``view``."""

    def __init__(self, view: memoryview) -> None:
        self.view, self.pos, self.done = view, 0, False

    def on_body(self, body: bytes) -> None:
        self.view[self.pos : self.pos + len(body)] = body  # past the buffer: the GET fails
        self.pos += len(body)

    def on_message_complete(self) -> None:
        self.done = True


class Httptools(_OwnSocket):
    """httptools' C parser over our own socket (a Python call per header and body chunk)."""

    def get(self, key: str, first: int, last: int, buf: Piece) -> int:
        import httptools

        target, sock = self._target, self._sock()
        lines = [f"GET {target.signer.target(key)} HTTP/1.1", f"Host: {target.host_header}"]
        lines += [f"{k}: {v}" for k, v in target.headers(key, first, last)]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = _HttptoolsAnswer(memoryview(buf))
        parser = httptools.HttpResponseParser(answer)
        chunk = memoryview(bytearray(256 << 10))
        while not answer.done:
            if not (n := sock.recv_into(chunk)):
                raise BodyError("connection closed")
            parser.feed_data(chunk[:n])
        return _check(int(parser.get_status_code()), answer.pos, last - first + 1)


class H11(_OwnSocket):
    """h11 (pure Python) over our own socket; the body arrives as Data events."""

    def get(self, key: str, first: int, last: int, buf: Piece) -> int:
        import h11

        target, sock = self._target, self._sock()
        conn = self._local.conn = getattr(self._local, "conn", None) or h11.Connection(h11.CLIENT)
        if conn.our_state is h11.DONE:
            conn.start_next_cycle()
        head = [("Host", target.host_header), *target.headers(key, first, last)]
        request = h11.Request(method="GET", target=target.signer.target(key), headers=head)
        sock.sendall((conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b""))
        view, pos, status = memoryview(buf), 0, 0
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(256 << 10))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                view[pos : pos + len(event.data)] = event.data
                pos += len(event.data)
            elif isinstance(event, h11.ConnectionClosed):
                raise BodyError("connection closed")
        return _check(status, pos, last - first + 1)


ENGINES: dict[str, tuple[str | None, Callable[[Target, Bounds, int, int], Any]]] = {
    "today": (None, Today),
    "today-loop": (None, TodayLoop),
    "urllib3": ("urllib3", Urllib3),
    "curl-easy": ("pycurl", CurlEasy),
    "curl-multi": ("pycurl", CurlMulti),
    "httptools": ("httptools", Httptools),
    "h11": ("h11", H11),
}
"""name -> (the optional module it needs, its class)"""


def missing(name: str) -> str | None:
    """The module engine ``name`` needs if it is not installed, else None."""
    module = ENGINES[name][0]
    return module if module and importlib.util.find_spec(module) is None else None
