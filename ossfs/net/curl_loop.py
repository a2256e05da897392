"""Many small GETs at once on one thread: libcurl's multi interface driven by one loop.

Responsibility: run directory read-ahead's GETs of whole small objects
(`ossfs.read.sibling_prefetch`) on a single thread that waits for all their sockets at once
(epoll, told by libcurl which sockets and timers to watch), over keep-alive connections that
libcurl keeps (at most ``max_connections``, idle or busy); each body is written straight into
the buffer it is handed in, and each finished body, or the reason it failed, goes to the
caller's ``done`` callback. The caller's functions prepare each request (built and signed) and
accept its answer's head (status, range, etag, length) before any body byte is taken: this
module knows libcurl, not OSS.

Why one thread: a thread per GET meant a worker woken per GET and a GIL hand-off at each
blocking call; one thread asleep in ``epoll_wait`` for all of them costs less CPU per small
file (docs/PERFORMANCE.md, section 6: 129 against 167 us per 8 KiB GET).

Every GET is bounded by the engine's connect timeout and stall rule, and by ``deadline_s``
from its start. Deliberately simple, because a failure costs little: read-ahead is only a
guess, and a file whose GET failed is fetched by its reader, with retries and the real error.
So there are no retries here (libcurl itself sends a request again, once, when a kept
connection turns out closed before it answered), and an answer must say its length
(``Content-Length``, no ``Transfer-Encoding``), which must be the object's size. Bytes a server
sends past an answer are found by libcurl on a connection idle for a second; one taken sooner
carries them as the next GET's answer, which its checks refuse (status, range, ETag, length),
and the refused transfer's connection is closed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Final

import pycurl

from ossfs.core.object_store import Piece
from ossfs.net.curl_setup import EngineSettings, HeadLines, new_handle, per_request, transfer_error
from ossfs.net.http_api import Headers, HttpRequest, TransferError

log = logging.getLogger(__name__)

__all__ = ["Accept", "CurlLoop", "Done", "FetchLoopClosedError", "Prepare"]

_IDLE_WAIT_S: Final = 1.0  # the longest sleep with nothing due


class FetchLoopClosedError(Exception):
    """The loop was closed before the GET finished."""


Prepare = Callable[[str, str, int], HttpRequest]
"""(key, etag, size) -> the signed GET of the whole object; raises if it cannot be sent."""
Accept = Callable[[str, str, int, int, Headers], None]
"""(key, etag, size, status, headers): raises unless the answer is that object's whole body."""
Done = Callable[[Piece | BaseException, float], None]
"""Called once per GET on the loop's thread: the body (or the failure) and the seconds it took."""


class _Job:
    """One GET: its handle while it runs, the buffer its body goes into."""

    __slots__ = (
        "accept",
        "began",
        "body",
        "done",
        "etag",
        "filled",
        "handle",
        "head",
        "key",
        "piece",
        "refused",
        "size",
    )

    def __init__(self, key: str, etag: str, size: int, done: Done) -> None:
        self.key, self.etag, self.size, self.done = key, etag, size, done
        self.began = 0.0
        self.handle: pycurl.Curl | None = None
        self.head = HeadLines()
        self.piece: Piece | None = None
        self.body: memoryview | None = None
        self.filled = 0
        self.accept: Accept | None = None
        self.refused: BaseException | None = None  # why the head was not accepted

    def accepted(self) -> bool:
        """Check the final answer's head with ``accept`` (once); False (``refused`` set) if
        it is not the object's whole body."""
        accept, self.accept = self.accept, None
        if accept is None:
            return self.refused is None
        head = self.head
        try:
            if not head.check():
                raise TransferError(8, "the answer's head is incomplete")
            headers = head.headers
            if "transfer-encoding" in headers or "content-length" not in headers:
                raise TransferError(8, f"HTTP {head.status} without a plain Content-Length")
            accept(self.key, self.etag, self.size, head.status, headers)
        except Exception as exc:
            self.refused = exc
            return False
        return True

    def on_body(self, data: memoryview) -> int | None:
        if self.accept is not None and not self.accepted():  # the first body bytes
            return 0  # abort the transfer: nothing of this body is taken
        body, filled = self.body, self.filled
        end = filled + len(data)
        if body is None or end > len(body):
            self.refused = TransferError(8, "the server sent more than the body")
            return 0
        body[filled:end] = data
        self.filled = end
        return None


class CurlLoop:
    """Runs GETs of whole objects on one thread. `submit` is thread-safe; `close` once.

    ``prepare``/``accept``: see `Prepare`, `Accept`; ``take_buffer(size)``: a writable buffer
    the body is received into (it is handed to ``done``); ``received(nbytes)``: told the body
    bytes each GET received, when it ends (finished or failed); ``deadline_s``: how long one
    GET may take from its start; at most ``max_connections`` connections (more GETs wait).
    """

    def __init__(
        self,
        prepare: Prepare,
        accept: Accept,
        *,
        settings: EngineSettings,
        take_buffer: Callable[[int], Piece],
        received: Callable[[int], None] = lambda nbytes: None,
        deadline_s: float,
        max_connections: int,
    ) -> None:
        if max_connections < 1 or deadline_s <= 0:
            raise ValueError(f"bad loop: {max_connections} connections, deadline {deadline_s}")
        self._prepare = prepare
        self._accept = accept
        self._settings = settings
        self._take_buffer = take_buffer
        self._received = received
        self._deadline_ms = max(1, round(deadline_s * 1000))
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        for cap in (
            pycurl.M_MAX_TOTAL_CONNECTIONS,
            pycurl.M_MAX_HOST_CONNECTIONS,
            pycurl.M_MAXCONNECTS,
        ):
            self._multi.setopt(cap, max_connections)
        self._epoll = select.epoll()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._epoll.register(self._wake_read, select.EPOLLIN)
        self._fds: set[int] = set()
        self._timer_at: float | None = None  # when libcurl wants its timeout action
        self._lock = threading.Lock()
        self._submitted: list[_Job] = []
        self._awake = False  # a wake-up is pending: no second write to the pipe
        self._closed = False
        self._free: list[pycurl.Curl] = []
        self._running: dict[pycurl.Curl, _Job] = {}
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

    # -- libcurl's callbacks ----------------------------------------------------------------------

    def _on_socket(self, what: int, fd: int, multi: object, data: object) -> None:
        if what == pycurl.POLL_REMOVE:
            if fd in self._fds:
                self._fds.discard(fd)
                with contextlib.suppress(OSError):  # closed already
                    self._epoll.unregister(fd)
            return
        mask = select.EPOLLIN if what & pycurl.POLL_IN else 0
        if what & pycurl.POLL_OUT:
            mask |= select.EPOLLOUT
        if fd in self._fds:
            self._epoll.modify(fd, mask)
        else:
            self._epoll.register(fd, mask)
            self._fds.add(fd)

    def _on_timer(self, ms: int) -> None:
        self._timer_at = None if ms < 0 else time.monotonic() + ms / 1000

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        multi = self._multi
        while True:
            timer_at = self._timer_at
            wait = _IDLE_WAIT_S
            if timer_at is not None:
                wait = min(wait, max(0.0, timer_at - time.monotonic()))
            for fd, events in self._epoll.poll(wait):
                if fd == self._wake_read:
                    with contextlib.suppress(BlockingIOError):  # emptied
                        while os.read(self._wake_read, 4096):
                            pass
                    continue
                flags = pycurl.CSELECT_IN if events & select.EPOLLIN else 0
                if events & select.EPOLLOUT:
                    flags |= pycurl.CSELECT_OUT
                if events & (select.EPOLLERR | select.EPOLLHUP):
                    flags |= pycurl.CSELECT_ERR
                multi.socket_action(fd, flags)
            with self._lock:
                closed = self._closed
                jobs, self._submitted = self._submitted, []
                self._awake = False
            if closed:
                self._shut_down(jobs)
                return
            for job in jobs:
                self._start(job)
            timer_at = self._timer_at
            if timer_at is not None and time.monotonic() >= timer_at:
                self._timer_at = None
                multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
            self._collect()

    def _start(self, job: _Job) -> None:
        job.began = time.monotonic()
        handle = self._free.pop() if self._free else None
        try:
            request = self._prepare(job.key, job.etag, job.size)
            if handle is None:
                handle = new_handle(self._settings)
            per_request(handle, request)
            body = self._take_buffer(job.size)
        except Exception as exc:
            if handle is not None:
                self._free.append(handle)
            self._finish(job, exc)
            return
        job.handle, job.piece, job.body = handle, body, memoryview(body)
        job.accept = self._accept
        handle.setopt(pycurl.TIMEOUT_MS, self._deadline_ms)
        handle.setopt(pycurl.MAXFILESIZE_LARGE, job.size)  # a longer body fails before a byte
        handle.setopt(pycurl.HEADERFUNCTION, job.head.append)
        handle.setopt(pycurl.WRITEFUNCTION, job.on_body, use_memoryview=True)
        self._running[handle] = job
        self._multi.add_handle(handle)  # asks for a 0 ms timer: the transfer starts at once

    def _collect(self) -> None:
        while True:
            queued, finished, failed = self._multi.info_read()
            for handle in finished:
                self._ended(handle, None)
            for handle, code, message in failed:
                self._ended(handle, transfer_error(code, message))
            if not queued:
                return

    def _ended(self, handle: pycurl.Curl, error: TransferError | None) -> None:
        job = self._running.pop(handle)
        self._multi.remove_handle(handle)
        handle.setopt(pycurl.HEADERFUNCTION, _ignore)  # drop the job's references
        handle.setopt(pycurl.WRITEFUNCTION, _ignore)
        self._free.append(handle)
        result: Piece | BaseException
        if job.accept is not None and job.head.check():
            # An answer whose body never reached the callback (an error status with a body
            # longer than the object, or none) is judged by its head: the better reason.
            job.accepted()
        if job.refused is not None:
            result = job.refused
        elif error is not None:
            result = error
        elif job.filled != job.size or job.piece is None:
            result = TransferError(18, f"the body ended at {job.filled} of {job.size} bytes")
        else:
            result = job.piece
        job.body = job.piece = None
        self._finish(job, result)

    def _finish(self, job: _Job, result: Piece | BaseException) -> None:
        try:
            if job.filled:
                self._received(job.filled)
            job.done(result, time.monotonic() - job.began)
        except Exception:  # a callback's bug must not stop every other GET
            log.exception("fetch loop: completion of %s failed", job.key)

    def _shut_down(self, jobs: list[_Job]) -> None:
        for handle, job in list(self._running.items()):
            self._multi.remove_handle(handle)
            handle.close()
            jobs.append(job)
        self._running.clear()
        for handle in self._free:
            handle.close()
        self._free.clear()
        self._multi.close()
        self._epoll.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        for job in jobs:
            self._finish(job, FetchLoopClosedError("the fetch loop is closed"))


def _ignore(data: bytes) -> None:
    """A callback that takes nothing (set between transfers)."""
