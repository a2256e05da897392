"""`FaultyStore`: wraps any `ObjectStore` and injects failures where a test says, recording calls.

What it can do to a call of an operation (the k-th matching call, or several in a row):

- `FaultyStore.fail`: raise a given exception instead of calling the wrapped store;
- `FaultyStore.cut`: end a body early at its n-th piece (`read_range`'s pieces, `stream`'s
  chunks): keep the first ``keep`` bytes of that piece, then raise a given error (a connection
  reset mid-body, which the protocol allows) or end silently (a short body, which it does not);
- `FaultyStore.corrupt`: flip one byte of the n-th piece (same length, wrong bytes);
- `FaultyStore.stall`: hold the call (or its n-th piece) until the test calls `Stall.release`;
  `Stall.reached` is set when it is held, so a test waits on events, never on time.

Each registration returns a handle whose ``fired`` count says how often it struck, so a test can
check that the failure it wanted really happened. ``calls`` records every call made through the
wrapper in FakeStore's form (``read_range`` is recorded as itself; see `FaultyStore`).

Deliberately not here: storing objects (wrap `tests.support.fakes.FakeStore`, or a real store),
random faults (the emulator's fault settings do those over HTTP), and timing (no delays: a stall
waits for the test, not for a clock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal, get_args

from ossfs.core.object_store import ListPage, ObjectMeta, ObjectStore, Piece

Call = tuple[object, ...]
Op = Literal["probe", "head", "list_page", "get_range", "read_range", "symlink_target", "stream"]
BodyOp = Literal["read_range", "stream"]

OPS: Final = frozenset(get_args(Op))
BODY_OPS: Final = frozenset(get_args(BodyOp))
STALL_TIMEOUT_S: Final = 30.0
"""How long a stall waits for `Stall.release` before it gives up (a test forgot to release it):
then the held call raises `StallNeverReleasedError` rather than hang the suite."""


class StallNeverReleasedError(AssertionError):
    """A stalled call was not released within its timeout."""


class _CutShort(BaseException):
    """Ends a body early from inside the wrapped store's piece callback.

    A BaseException, so a store's retry logic (which catches Exception) does not swallow it.
    """

    def __init__(self, cut: _Cut) -> None:
        super().__init__()
        self.cut = cut


@dataclass(frozen=True, slots=True)
class Where:
    """Which calls a fault strikes (see `FaultyStore`), and which piece of their body."""

    op: Op
    call: int = 1
    times: int | None = 1
    key: str | None = None
    match: Callable[[Call], bool] | None = None
    piece: int | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown operation {self.op!r} (one of {sorted(OPS)})")
        if self.call < 1 or (self.times is not None and self.times < 1):
            raise ValueError("call and times count from 1")
        if self.piece is not None and (self.piece < 1 or self.op not in BODY_OPS):
            raise ValueError(f"pieces count from 1, for {sorted(BODY_OPS)} only")


class Fault:
    """One registered failure. ``fired`` counts the times it struck: calls for a call-level
    fault, pieces for a body fault (a body that ends before its piece is not struck)."""

    def __init__(self, where: Where) -> None:
        self.where = where
        self._seen = 0  # matching calls so far (guarded by the store's lock)
        self._lock = threading.Lock()
        self._fired = 0

    @property
    def fired(self) -> int:
        with self._lock:
            return self._fired

    def _strike(self) -> None:
        with self._lock:
            self._fired += 1

    def _selects(self, call: Call) -> bool:
        """Whether ``call`` (of this fault's operation) is one it strikes; counts matches.
        Called under the store's lock."""
        where = self.where
        if where.key is not None and (len(call) < 2 or call[1] != where.key):
            return False
        if where.match is not None and not where.match(call):
            return False
        self._seen += 1
        if self._seen < where.call:
            return False
        return where.times is None or self._seen < where.call + where.times


class _Fail(Fault):
    def __init__(self, where: Where, error: BaseException) -> None:
        super().__init__(where)
        self.error = error


class _Cut(Fault):
    def __init__(self, where: Where, keep: int, error: BaseException | None) -> None:
        super().__init__(where)
        if keep < 0:
            raise ValueError("keep must be >= 0")
        self.keep = keep
        self.error = error


class _Corrupt(Fault):
    def __init__(self, where: Where, offset: int) -> None:
        super().__init__(where)
        self.offset = offset


class Stall(Fault):
    """Holds the calls (or pieces) it strikes until `release`; ``reached`` is set once one is
    held."""

    def __init__(self, where: Where, timeout_s: float) -> None:
        super().__init__(where)
        self.reached = threading.Event()
        self._released = threading.Event()
        self._timeout_s = timeout_s

    def release(self) -> None:
        """Let every held call (and every later one it strikes) go on."""
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def wait_reached(self, timeout_s: float = 10.0) -> None:
        """Return once a call is held here; AssertionError if none is within ``timeout_s``."""
        if not self.reached.wait(timeout_s):
            raise AssertionError(f"no {self.where.op} call reached the stall in {timeout_s:g} s")

    def _hold(self) -> None:
        self._strike()
        self.reached.set()
        if not self._released.wait(self._timeout_s):
            raise StallNeverReleasedError(
                f"a stalled {self.where.op} call was not released in {self._timeout_s:g} s"
            )


class FaultyStore:
    """An `ObjectStore` that passes every call to ``inner``, except where a fault strikes.

    ``calls`` entries, in order: ("probe",), ("head", key), ("list_page", prefix, token),
    ("get_range", key, start, end), ("read_range", key, start, end), ("symlink_target", key),
    ("stream", key, start); a call is recorded before any fault strikes it. ``announced_crc64``
    sends no request: it is neither recorded nor faulted. Faults apply to calls made on this
    wrapper (a FakeStore's ``read_range`` calling its own ``get_range`` is not a ``get_range``
    here). Faults match by operation, then optionally ``key`` (the call's first argument) and
    ``match`` (a predicate on the recorded call); ``call`` is the first matching call struck
    (counting from 1) and ``times`` how many in a row (None: every one from then on).
    Thread-safe.
    """

    def __init__(self, inner: ObjectStore, *, stall_timeout_s: float = STALL_TIMEOUT_S) -> None:
        self.inner = inner
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._stall_timeout_s = stall_timeout_s

    # -- registering faults ---------------------------------------------------------------------
    def fail(
        self,
        op: Op,
        error: BaseException,
        *,
        call: int = 1,
        times: int | None = 1,
        key: str | None = None,
        match: Callable[[Call], bool] | None = None,
    ) -> Fault:
        """The selected calls of ``op`` raise ``error`` without reaching the wrapped store."""
        return self._add(_Fail(Where(op, call, times, key, match), error))

    def cut(
        self,
        op: BodyOp,
        *,
        piece: int,
        keep: int = 0,
        error: BaseException | None = None,
        call: int = 1,
        times: int | None = 1,
        key: str | None = None,
        match: Callable[[Call], bool] | None = None,
    ) -> Fault:
        """The body of each selected call ends at its ``piece``-th piece (chunk, for
        ``stream``), of which only the first ``keep`` bytes are handed over (none if 0); then
        ``error`` is raised, or, without one, the call returns as if the body were complete."""
        return self._add(_Cut(Where(op, call, times, key, match, piece), keep, error))

    def corrupt(
        self,
        op: BodyOp,
        *,
        piece: int,
        offset: int = 0,
        call: int = 1,
        times: int | None = 1,
        key: str | None = None,
        match: Callable[[Call], bool] | None = None,
    ) -> Fault:
        """Flip the bits of byte ``offset`` of the ``piece``-th piece of each selected call
        (the piece keeps its length; an offset past its end is an IndexError when it strikes)."""
        return self._add(_Corrupt(Where(op, call, times, key, match, piece), offset))

    def stall(
        self,
        op: Op,
        *,
        piece: int | None = None,
        call: int = 1,
        times: int | None = 1,
        key: str | None = None,
        match: Callable[[Call], bool] | None = None,
    ) -> Stall:
        """Hold each selected call before it reaches the wrapped store (``piece`` None), or
        before its ``piece``-th piece is handed over, until `Stall.release`."""
        stall = Stall(Where(op, call, times, key, match, piece), self._stall_timeout_s)
        self._add(stall)
        return stall

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    # -- recording ------------------------------------------------------------------------------
    def count(self, op: str) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c[0] == op)

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    def _enter(self, call: Call) -> list[Fault]:
        """Record ``call``, strike its call-level faults (stalls, then a failure) and return
        the body faults selected for it."""
        with self._lock:
            self.calls.append(call)
            selected = [f for f in self._faults if f.where.op == call[0] and f._selects(call)]
        for fault in selected:
            if isinstance(fault, Stall) and fault.where.piece is None:
                fault._hold()
        for fault in selected:
            if isinstance(fault, _Fail):
                fault._strike()
                raise fault.error
        return [f for f in selected if f.where.piece is not None]

    # -- ObjectStore ----------------------------------------------------------------------------
    def probe(self) -> None:
        self._enter(("probe",))
        self.inner.probe()

    def head(self, key: str) -> ObjectMeta:
        self._enter(("head", key))
        return self.inner.head(key)

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "/",
        token: str | None = None,
        max_keys: int = 1000,
        start_after: str = "",
    ) -> ListPage:
        self._enter(("list_page", prefix, token))
        return self.inner.list_page(
            prefix, delimiter=delimiter, token=token, max_keys=max_keys, start_after=start_after
        )

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        self._enter(("get_range", key, start, end))
        return self.inner.get_range(key, start, end, etag=etag)

    def read_range(
        self,
        key: str,
        start: int,
        end: int,
        *,
        etag: str | None,
        piece_bytes: int,
        on_piece: Callable[[Piece], None],
    ) -> None:
        body_faults = self._enter(("read_range", key, start, end))
        if not body_faults:
            self.inner.read_range(
                key, start, end, etag=etag, piece_bytes=piece_bytes, on_piece=on_piece
            )
            return
        count = 0

        def faulty_piece(piece: Piece) -> None:
            nonlocal count
            count += 1
            handed, cut = _apply(body_faults, count, piece)
            if handed is not None:
                on_piece(handed)
            if cut is not None:
                raise _CutShort(cut)

        try:
            self.inner.read_range(
                key, start, end, etag=etag, piece_bytes=piece_bytes, on_piece=faulty_piece
            )
        except _CutShort as short:
            if short.cut.error is not None:
                raise short.cut.error from None

    def announced_crc64(self, key: str, etag: str) -> int | None:
        return self.inner.announced_crc64(key, etag)

    def symlink_target(self, key: str) -> str:
        self._enter(("symlink_target", key))
        return self.inner.symlink_target(key)

    def stream(
        self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
    ) -> tuple[ObjectMeta, Iterator[bytes]]:
        body_faults = self._enter(("stream", key, start))
        meta, chunks = self.inner.stream(key, start=start, etag=etag, chunk_bytes=chunk_bytes)
        if not body_faults:
            return meta, chunks
        return meta, _faulty_chunks(body_faults, chunks)


def _apply(faults: list[Fault], number: int, piece: Piece) -> tuple[Piece | None, _Cut | None]:
    """The ``number``-th piece of a body under ``faults``: stalls hold it, corruption flips a
    byte in place; returns what to hand over (None: nothing) and the cut that ends the body
    after it, if any."""
    mine = [fault for fault in faults if fault.where.piece == number]
    for fault in mine:
        if isinstance(fault, Stall):
            fault._hold()
    for fault in mine:
        if isinstance(fault, _Corrupt):
            fault._strike()
            view = memoryview(piece)
            view[fault.offset] ^= 0xFF
    for fault in mine:
        if isinstance(fault, _Cut):
            fault._strike()
            kept = bytearray(memoryview(piece)[: fault.keep]) if fault.keep else None
            return kept, fault
    return piece, None


def _faulty_chunks(faults: list[Fault], chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` of a stream under ``faults`` (the wrapped iterator is closed with it)."""
    try:
        for number, chunk in enumerate(chunks, start=1):
            handed, cut = _apply(faults, number, bytearray(chunk))
            if handed is not None:
                yield bytes(handed)
            if cut is not None:
                if cut.error is not None:
                    raise cut.error
                return
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()
