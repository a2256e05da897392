"""The transport under oss2: each request on the calling thread, its body pulled by the caller.

Responsibility: carry one already-signed request (`HttpRequest`) through libcurl and hand back
its answer (`CurlResponse`): status and headers once the final answer's head is in, then the
body read straight into the caller's buffer (`readinto`), as the store reads ranged bodies into
its pieces. Every wait (connecting, the head, each read of the body) ends by the deadline of
the calling code (`ossfs.core.deadline`: the retrier's time budget), on top of the stall rule
and connect timeout of `ossfs.net.curl_setup.EngineSettings`. libcurl owns framing, TLS,
proxies and keep-alive; a failed or abandoned transfer's connection is closed, never reused.

How: a *channel* is an easy handle inside a multi handle of its own (which keeps its
connection alive between requests). The calling thread drives it (``multi.perform`` and
``multi.select``) only while it waits for what it asked: so no thread hand-off per request,
and the body goes from libcurl's receive buffer into the caller's buffer in the write
callback. More body than the caller asked for is held back by pausing the transfer (libcurl
delivers it again on resume): at most one receive buffer is ever held per answer. Idle
channels are kept for the next request, most recently used first (its connection is the
warmest). A `CurlShare` connection pool across threads was measured slower (docs/PERFORMANCE.md).

It deliberately does not build, sign or interpret requests (oss2 does), retry (the store's
retrier does), follow redirects, or decode content encodings (identity only).
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final

import pycurl

from ossfs.core.deadline import current_deadline
from ossfs.net.curl_setup import EngineSettings, HeadLines, new_handle, per_request, transfer_error
from ossfs.net.http_api import Headers, HttpRequest, TransferError

__all__ = ["CurlResponse", "CurlTransport", "deadline_error"]

_CHUNK: Final = 64 << 10  # `read` without a size reads this much at a time
_MAX_WAIT_S: Final = 1.0  # the longest wait in select: libcurl's stall rule needs its turn
# What `_drive` runs until: the answer's head, a body byte for the caller, or the transfer's end.
_HEAD, _BODY, _END = 0, 1, 2


def deadline_error() -> TransferError:
    """The failure of a wait that reached the calling code's deadline."""
    return TransferError(28, "the operation's time budget ran out (--retry-budget)")


class _Channel:
    """An easy handle in a multi handle of its own: one transfer at a time. ``fd``: the
    socket of the connection it keeps (-1: none known)."""

    __slots__ = ("easy", "fd", "multi")

    def __init__(self, settings: EngineSettings) -> None:
        self.easy = new_handle(settings)
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_MAXCONNECTS, 1)
        self.fd = -1

    def has_input(self) -> bool:
        """True if its kept connection has bytes (or an end) nobody asked for: the server
        sent more than its answer, or closed. Such a connection is never used again: libcurl
        itself looks only at connections idle for a second or more."""
        if self.fd < 0:
            return False
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        self.multi.close()
        self.easy.close()


class CurlTransport:
    """`ossfs.net.http_api.Transport` over libcurl. Thread-safe; each request runs on the
    thread that sends it (and reads its body). Up to ``max_idle`` idle connections are kept."""

    def __init__(self, settings: EngineSettings, *, max_idle: int) -> None:
        if max_idle < 1:
            raise ValueError(f"max_idle must be >= 1, got {max_idle}")
        self.settings = settings
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[_Channel] = []
        self._closed = False

    def send(self, request: HttpRequest) -> CurlResponse:
        """Send ``request``; return once its final answer's head is in. Raises `TransferError`
        (no answer: connect, stall, deadline, framing or TLS failure) and ValueError (a header
        that cannot be sent)."""
        with self._lock:
            channel = self._idle.pop() if self._idle else None
        if channel is not None and channel.has_input():
            channel.close()  # an answer nobody asked for waits on it: never read it
            channel = None
        if channel is None:
            channel = _Channel(self.settings)
        response = CurlResponse(channel, self._give_back)
        response.start(request)
        return response

    def close(self) -> None:
        """Close the idle connections; busy ones close when their answer is done with."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for channel in idle:
            channel.close()

    def _give_back(self, channel: _Channel) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(channel)
                return
        channel.close()


class CurlResponse:
    """One answer on a channel (`ossfs.net.http_api.HttpResponse`). ``release(channel)`` is
    called once the channel is free again: body read to its end, failed, or closed early
    (then its connection is closed, not kept). Not thread-safe: one reader at a time."""

    def __init__(self, channel: _Channel, release: Callable[[_Channel], None]) -> None:
        self._channel: _Channel | None = channel
        self._release = release
        self._head = HeadLines()
        self.status = 0
        self.headers: Headers = self._head.headers
        self.request_id = ""
        self._dest: memoryview | None = None  # where the write callback puts body bytes
        self._filled = 0
        self._held = b""  # bytes a callback had more of than ``_dest`` could take
        self._paused = False
        self._ended = False  # the transfer is over (``_error`` says how)
        self._error: TransferError | None = None

    @property
    def response(self) -> CurlResponse:
        return self

    # -- starting ---------------------------------------------------------------------------------

    def start(self, request: HttpRequest) -> None:
        """Begin the transfer and wait for the final answer's head (see `CurlTransport.send`)."""
        channel = self._channel
        assert channel is not None
        easy = channel.easy
        try:
            per_request(easy, request)
        except BaseException:
            self._finish(keep=True)
            raise
        easy.setopt(pycurl.HEADERFUNCTION, self._head.append)
        easy.setopt(pycurl.WRITEFUNCTION, self._write, use_memoryview=True)
        channel.multi.add_handle(easy)
        self._drive(_HEAD)
        if not self._head.check():
            error = self._error or TransferError(8, "the transfer ended without an answer")
            self._finish(keep=False)
            raise error
        self.status = self._head.status
        self.headers = self._head.headers
        self.request_id = self.headers.get("x-oss-request-id", "")
        if request.method == "HEAD":
            self._drive(_END)  # nothing follows the head: end the transfer now
        if self._ended and self._error is None:
            self._finish(keep=True)

    # -- the body ---------------------------------------------------------------------------------

    def readinto(self, buffer: memoryview, /) -> int:
        """Fill the start of ``buffer`` with the next body bytes; 0 at the end of the body.
        Raises `TransferError` (stall, deadline, a short or broken body)."""
        if self._held:
            got = min(len(buffer), len(self._held))
            buffer[:got] = self._held[:got]
            self._held = self._held[got:]
            return got
        channel = self._channel
        if channel is None or not buffer:
            if self._error is not None:
                raise self._error
            return 0
        self._dest, self._filled = buffer, 0
        try:
            if self._paused:
                self._paused = False
                channel.easy.pause(pycurl.PAUSE_CONT)  # delivers what it held back
            if not self._filled:
                self._drive(_BODY)
        finally:
            self._dest = None
        got = self._filled
        if got:
            return got
        error = self._error
        self._finish(keep=error is None)
        if error is not None:
            raise error
        return 0

    def read(self, amt: int | None = None, /) -> bytes:
        """Up to ``amt`` bytes (all the rest if None); ``b""`` at the end of the body."""
        if amt is None:
            parts = []
            while chunk := self.read(_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        buffer = bytearray(amt)
        got = self.readinto(memoryview(buffer))
        del buffer[got:]
        return bytes(buffer)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(_CHUNK):
            yield chunk

    def close(self) -> None:
        """Drop the rest of the body; an unfinished transfer's connection is closed."""
        self._held = b""
        channel = self._channel
        # The body may be all in (the caller read as many bytes as it expected) with libcurl
        # not yet told: one look, no wait, keeps the connection for the next one.
        if (
            channel is not None
            and not self._ended
            and not self._paused
            and channel.multi.perform()[1] == 0
        ):
            self._note_end(channel.multi)
        self._finish(keep=self._ended and self._error is None)

    # -- libcurl's callbacks (on this thread, inside perform or pause) ----------------------------

    def _write(self, data: memoryview) -> int | None:
        dest = self._dest
        room = 0 if dest is None else len(dest) - self._filled
        if room <= 0:
            self._paused = True
            return pycurl.WRITEFUNC_PAUSE  # delivered again on resume
        assert dest is not None
        filled, size = self._filled, len(data)
        if size <= room:
            dest[filled : filled + size] = data
            self._filled = filled + size
        else:
            dest[filled:] = data[:room]
            self._filled = filled + room
            self._held = bytes(data[room:])
        return None  # all of it was taken

    # -- driving ----------------------------------------------------------------------------------

    def _drive(self, until: int) -> None:
        """Run the transfer until ``until`` (`_HEAD`: the head is in; `_BODY`: a body byte is
        in the caller's buffer; `_END`) or it ends (``_ended``, ``_error``). A wait past the
        calling code's deadline ends it with `deadline_error`."""
        channel = self._channel
        assert channel is not None
        multi = channel.multi
        head = self._head
        while not self._ended:
            if multi.perform()[1] == 0:  # no transfer running: this one is over
                self._note_end(multi)
                self._ended = True
                return
            if (until == _HEAD and head.check()) or (until == _BODY and self._filled):
                return
            wait = multi.timeout() / 1000
            wait = _MAX_WAIT_S if wait < 0 else min(wait, _MAX_WAIT_S)
            deadline = current_deadline()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._ended = True
                    self._error = deadline_error()
                    return
                wait = min(wait, left)
            if wait <= 0:
                continue
            if multi.select(wait) <= 0:
                # Nothing to wait on in select (a name being looked up): wait out the timer.
                time.sleep(min(wait, 0.001))

    def _note_end(self, multi: pycurl.CurlMulti) -> bool:
        """True (and ``_ended``, ``_error`` set) if libcurl reports the transfer over."""
        _, finished, failed = multi.info_read()
        if not finished and not failed:
            return False
        self._ended = True
        if failed:
            _, code, message = failed[0]
            self._error = transfer_error(code, message)
        return True

    def _finish(self, *, keep: bool) -> None:
        """Give the channel back (once); ``keep`` False closes the connection first."""
        channel, self._channel = self._channel, None
        if channel is None:
            return
        self._ended = True
        channel.fd = -1
        if keep:
            channel.fd = int(channel.easy.getinfo(pycurl.ACTIVESOCKET))
        try:
            channel.multi.remove_handle(channel.easy)  # an unfinished transfer: closed
        except pycurl.error:
            channel.close()
            return
        if not keep or channel.has_input():
            # Whatever the transfer left (a half-read answer, bytes past the body) is never
            # read as the next request's answer.
            channel.close()
            return
        self._release(channel)
