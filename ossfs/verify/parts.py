"""One object version read as parallel ranged GETs, its CRC-64 folded in offset order.

Responsibility: plan an object of ``size`` bytes as consecutive half-open parts of ``part_bytes``
(`plan_parts`), read them with at most ``streams`` ranged GETs in flight
(`ObjectStore.read_range`, every one pinned to the version's ETag with If-Match, so an object
overwritten meanwhile fails with `StaleError` instead of mixing two versions), compute each
part's CRC-64 as its pieces arrive, resume a part that breaks at the byte it reached, and fold
the part CRCs in offset order (`ossfs.core.crc64.PartsCrc`) whatever order the parts finish in.

Memory: no part is held. Each GET in flight holds the one piece (``piece_bytes``) being filled
and checksummed, so an object's reading holds at most ``streams`` pieces, whatever its size;
parts that finish early leave one int each.

Deliberately not here: which version to read, where the expected CRC comes from, restarting when
the version changes, the classification of the outcome, and the retry policy (the caller's
``may_retry`` counts failed attempts and sleeps): all in `ossfs.verify.verifier`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ossfs.core.crc64 import PartsCrc, crc64
from ossfs.core.errors import IntegrityError, RemoteIOError, StaleError
from ossfs.core.object_store import ObjectMeta, ObjectStore, Piece

__all__ = ["Attempts", "CancelledError", "Part", "PartsReader", "plan_parts"]


class CancelledError(Exception):
    """The verification was cancelled while an object was being read."""


class _Stopped(BaseException):
    """Unwinds a part's GET from inside its piece callback once the object's reading stops.

    A BaseException, so the store's retry logic (which catches Exception) lets it through.
    """


@dataclass(slots=True)
class Attempts:
    """Failed attempts of one read (a stream, or one part): owned by one thread at a time.

    ``failures``: failed attempts in a row without progress; ``done_at_last_failure``: how far
    the read had got at the last one (an attempt that got further starts a fresh count).
    """

    failures: int = 0
    resumes: int = 0
    restarts: int = 0
    done_at_last_failure: int = field(default=-1)


MayRetry = Callable[[Attempts, int], bool]
"""``may_retry(attempts, done)``: count one failed attempt of a read that has ``done`` bytes;
sleep and return True when another attempt is allowed. May raise `CancelledError`."""


@dataclass(frozen=True, slots=True)
class Part:
    """Bytes ``[start, end)`` of an object, its ``index``-th part."""

    index: int
    start: int
    end: int


def plan_parts(size: int, part_bytes: int) -> tuple[Part, ...]:
    """Consecutive parts covering ``[0, size)``: all of ``part_bytes`` but the last, which may
    be shorter; none for an empty object."""
    if size < 0 or part_bytes <= 0:
        raise ValueError("size must be >= 0 and part_bytes > 0")
    return tuple(
        Part(index, start, min(start + part_bytes, size))
        for index, start in enumerate(range(0, size, part_bytes))
    )


class PartsReader:
    """Reads every byte of the version ``meta`` in parts and returns its CRC-64 (`run`).

    ``on_bytes(n)`` is called from the part threads as each piece is checksummed.
    ``cancelled`` stops every part at its next piece. One reader runs once; its counters
    (`bytes_read`, `resumes`, `failures`) describe the run so far and are final after `run`.
    """

    def __init__(
        self,
        store: ObjectStore,
        meta: ObjectMeta,
        *,
        part_bytes: int,
        streams: int,
        piece_bytes: int,
        may_retry: MayRetry,
        cancelled: threading.Event,
        on_bytes: Callable[[int], None],
    ) -> None:
        if streams < 1 or piece_bytes < 1:
            raise ValueError("streams and piece_bytes must be >= 1")
        self._store = store
        self._meta = meta
        self._parts = plan_parts(meta.size, part_bytes)
        self._crc = PartsCrc(meta.size, part_bytes)
        self._streams = streams
        self._piece_bytes = piece_bytes
        self._may_retry = may_retry
        self._cancelled = cancelled
        self._on_bytes = on_bytes
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._errors: list[Exception] = []
        self._bytes_read = 0
        self._resumes = 0
        self._failures = 0

    @property
    def bytes_read(self) -> int:
        """Bytes received and checksummed, over all parts."""
        with self._lock:
            return self._bytes_read

    @property
    def resumes(self) -> int:
        """Parts resumed after a failed attempt, over all parts."""
        with self._lock:
            return self._resumes

    @property
    def failures(self) -> int:
        """Failed attempts in a row of the part whose failure stopped the run (0 if none)."""
        with self._lock:
            return self._failures

    def run(self) -> int:
        """Read every part; return the object's CRC-64.

        On the first failure of a part the others stop at their next piece and parts not yet
        started are skipped; then the failure is raised: `CancelledError` when cancelled, else
        a `StaleError` of any part (the version changed: the caller restarts), else the first
        failure (an `OssfsError`: `RemoteIOError` once ``may_retry`` said no more attempts).
        """
        if self._parts:
            workers = min(self._streams, len(self._parts))
            with ThreadPoolExecutor(workers, thread_name_prefix="verify-part") as pool:
                for part in self._parts:
                    pool.submit(self._read_part, part)
        if self._cancelled.is_set():
            raise CancelledError
        with self._lock:
            errors = list(self._errors)
        if errors:
            stale = [e for e in errors if isinstance(e, StaleError)]
            raise (stale or errors)[0]
        value = self._crc.value
        assert value is not None  # every part was added, or an error was recorded
        return value

    def _read_part(self, part: Part) -> None:
        """Read ``part`` with resumes and add its CRC; record a failure instead of raising."""
        try:
            self._crc.add(part.index, self._checksum_part(part))
        except _Stopped:
            pass
        except Exception as exc:  # recorded: `run` raises it in the caller's thread
            with self._lock:
                self._errors.append(exc)
            self._stop.set()

    def _checksum_part(self, part: Part) -> int:
        """The CRC-64 of ``part``, resumed where it broke; raises the failure that ends it."""
        key, etag = self._meta.key, self._meta.etag
        crc = 0
        pos = part.start
        tries = Attempts()

        def on_piece(piece: Piece) -> None:
            nonlocal crc, pos
            if self._stop.is_set() or self._cancelled.is_set():
                raise _Stopped
            view = memoryview(piece)
            if pos + len(view) > part.end:  # a store that breaks its contract
                raise _Stopped from IntegrityError(
                    f"{key!r}: more bytes than bytes {part.start}-{part.end - 1}"
                )
            crc = crc64(view, crc)
            pos += len(view)
            with self._lock:
                self._bytes_read += len(view)
            self._on_bytes(len(view))

        while pos < part.end:
            if self._stop.is_set() or self._cancelled.is_set():
                raise _Stopped
            try:
                self._store.read_range(
                    key,
                    pos,
                    part.end,
                    etag=etag,
                    piece_bytes=self._piece_bytes,
                    on_piece=on_piece,
                )
                if pos < part.end:
                    # The answer ended early without an error (a short body): as a broken one,
                    # resumed at the byte it reached.
                    raise IntegrityError(
                        f"{key!r} bytes {part.start}-{part.end - 1}: the answer ended at {pos}"
                    )
            except _Stopped as stop:
                if isinstance(stop.__cause__, Exception):
                    raise stop.__cause__ from None
                raise
            except StaleError:
                raise
            except RemoteIOError:
                if not self._may_retry(tries, pos - part.start):
                    with self._lock:
                        self._failures = tries.failures
                    raise
                with self._lock:
                    self._resumes += 1
        return crc
