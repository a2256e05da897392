"""Which sequential stream of a handle a read continues, and what a random read fetches.

Responsibility: the pure bookkeeping behind one handle's read-ahead (`handle_prefetch`), with no
I/O and no lock of its own (the handle holds its lock around every call):

- `StreamTable`: the sequential streams of one handle. An mmap model loader, or a reader that
  interleaves tensors or columns, reads several regions of one file in turn; each region is a
  stream with its own read-ahead window. A read continues the most recently used stream it is
  close to (see `StreamTable.match`); a read that continues none starts a *candidate*, which a
  read right after it confirms. When the table is full, a new candidate replaces the least
  recently used candidate, and a confirmed stream only when there is no candidate left: a run
  of random reads costs the table at most one confirmed stream.
- `RandomSpan`: what a read that continues no stream fetches, in aligned units of a fraction of
  a block (64 KiB by default): the units the read touches, rounded out to an aligned span that
  adapts between one unit and ``max_units`` (256 KiB by default). The span doubles when a read
  lands near an earlier random read (within the largest span's alignment: the reader has
  locality), and halves when it lands elsewhere (sparse uniform random reads fetch one unit).

Deliberately not here: budgets, claims, GETs and the cache (`handle_prefetch`, `reader`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

CANDIDATE_SLACK_BYTES: Final = 128 << 10
"""A candidate (a stream of one read) is confirmed by a read that starts at most this far after
its end (and not before it). Tight on purpose: a random read starts a candidate, and the wider
this is the more often another random read would confirm it by chance (with 8 candidates over
256 MiB, 1 MiB of slack confirms 3% of uniform random reads). Real sequential readers, the
kernel's readahead included, continue exactly where their first read ended."""

RECENT_GROUPS: Final = 512
"""How many of the largest span's aligned groups (256 KiB by default: 128 MiB of an object)
`RandomSpan` remembers random reads in, to see whether reads come back to them."""


@dataclass(slots=True, eq=False)
class Stream:
    """One sequential stream of a handle: where it is, its read-ahead window and what it holds.

    Offsets are bytes, block indices count the handle's blocks, ranges are half-open.
    """

    start: int
    """Offset of the read that started it."""
    furthest_end: int
    """End of its furthest read."""
    window: int
    """Read-ahead window, in blocks."""
    used: int
    """Tick of its last read (least recently used streams are replaced first)."""
    reads: int = 1
    """Reads it continued, the first included (1: a candidate)."""
    active: bool = False
    """It has issued read-ahead."""
    issued_until: int = 0
    """Block index: its read-ahead covers blocks ``[.., issued_until)``."""
    unread: dict[int, int] = field(default_factory=dict)
    """Blocks its read-ahead covered that the handle has not read -> bytes of the global budget
    each still holds (0 once given back: another fetch had the block, or it failed)."""
    mine: set[int] = field(default_factory=set)
    """Blocks its read-ahead fetched, not yet dropped behind its reader."""

    @property
    def confirmed(self) -> bool:
        return self.reads > 1


class StreamTable:
    """At most ``max_streams`` streams of one handle, matched by offset proximity. Not
    thread-safe (the handle's lock guards it)."""

    def __init__(
        self,
        max_streams: int,
        *,
        slack_bytes: int,
        behind_bytes: int,
        block_size: int,
        initial_window: int,
    ) -> None:
        """``slack_bytes``: how far after a confirmed stream's furthest end a read may start
        and continue it; ``behind_bytes``: how far before it (reads delivered out of order).
        Raises ValueError if ``max_streams < 1``."""
        if max_streams < 1:
            raise ValueError(f"max_streams must be >= 1, got {max_streams}")
        self._max = max_streams
        self._slack = slack_bytes
        self._behind = behind_bytes
        self._candidate_slack = min(slack_bytes, CANDIDATE_SLACK_BYTES)
        self._block_size = block_size
        self._initial_window = initial_window
        self._streams: list[Stream] = []  # most recently used first
        self._tick = 0

    @property
    def streams(self) -> list[Stream]:
        """The streams, most recently used first (the table's own list: do not change it)."""
        return self._streams

    def match(self, offset: int, end: int, first: int, last: int, *, hit: bool) -> Stream | None:
        """The stream the read ``[offset, end)`` (blocks ``first..last``; ``hit``: all cached)
        continues (now the most recently used, its furthest end and read count updated), or
        None.

        A confirmed stream is continued by a read starting at its furthest end or at most
        ``slack_bytes`` after it, or inside the read-ahead it issued; and by a read starting
        at most ``behind_bytes`` before its furthest end (several FUSE threads deliver the
        kernel's readahead out of order) if that read needs no fetch of its own: all its blocks
        are cached, or one of them is read-ahead of this stream. A random read that lands
        behind a stream therefore stays random, and cannot grow the stream's window. A
        candidate is continued by a read starting at its end or at most
        `CANDIDATE_SLACK_BYTES` after it. The most recently used stream that matches wins.
        """
        streams = self._streams
        for pos, stream in enumerate(streams):
            furthest = stream.furthest_end
            if stream.reads > 1:
                if not (
                    furthest <= offset <= furthest + self._slack
                    or furthest <= offset < stream.issued_until * self._block_size
                    or (
                        furthest - self._behind <= offset < furthest
                        and (hit or any(i in stream.unread for i in range(first, last + 1)))
                    )
                ):
                    continue
            elif not furthest <= offset <= furthest + self._candidate_slack:
                continue
            self._tick += 1
            stream.used = self._tick
            stream.reads += 1
            if end > furthest:
                stream.furthest_end = end
            if pos:
                del streams[pos]
                streams.insert(0, stream)
            return stream
        return None

    def add(self, offset: int, end: int) -> Stream | None:
        """Start a candidate at the read ``[offset, end)`` (now the most recently used); returns
        the stream it replaced (None while the table had room): the least recently used
        candidate, else the least recently used stream."""
        self._tick += 1
        stream = Stream(
            start=offset, furthest_end=end, window=self._initial_window, used=self._tick
        )
        streams = self._streams
        evicted = None
        if len(streams) >= self._max:
            candidates = [pos for pos, s in enumerate(streams) if not s.confirmed]
            evicted = streams.pop(candidates[-1] if candidates else -1)
        streams.insert(0, stream)
        return evicted

    def clear(self) -> list[Stream]:
        """Forget every stream; returns them."""
        streams, self._streams = self._streams, []
        return streams


class RandomSpan:
    """The adaptive, aligned range a random read fetches. Not thread-safe (the handle's lock)."""

    def __init__(self, unit_bytes: int, max_units: int, object_size: int) -> None:
        """Spans are 1..``max_units`` units of ``unit_bytes``. Raises ValueError unless both
        are positive."""
        if unit_bytes <= 0 or max_units <= 0:
            raise ValueError(f"bad random span: {max_units} units of {unit_bytes} bytes")
        self._unit = unit_bytes
        self._group = unit_bytes * max_units
        self._max_units = max_units
        self._size = object_size
        self._units = 1
        # The largest span's aligned groups that recent random reads touched, oldest first.
        self._recent: OrderedDict[int, None] = OrderedDict()

    @property
    def span_bytes(self) -> int:
        """What the next random read fetches at least, unless it changes the span."""
        return self._units * self._unit

    def plan(self, offset: int, end: int) -> tuple[int, int]:
        """The range ``[lo, hi)`` to fetch for the random read ``[offset, end)`` (``0 <= offset <
        end <= object size``): unit-aligned (``hi`` may be the object's end), covering the read.

        A read that lands in one of the largest span's aligned groups that random reads
        touched lately (the last `RECENT_GROUPS`: a larger fetch would have saved it a round
        trip) doubles the span; any other read halves it. So the span grows where reads come
        back more often than not (locality, or reads dense in a small object), and stays at
        one unit for uniform random reads over a large one. The range is then the aligned span
        around the read, or the read's own units when the read crosses the span's alignment.
        """
        unit = self._unit
        group = offset // self._group
        recent = self._recent
        if group in recent:
            recent.move_to_end(group)
            self._units = min(self._units * 2, self._max_units)
        else:
            self._units = max(self._units // 2, 1)
            recent[group] = None
            if len(recent) > RECENT_GROUPS:
                recent.popitem(last=False)
        span = self._units * unit
        lo = offset - offset % span
        hi = min(lo + span, self._size)
        if end > hi:  # the read crosses the aligned span: its own units only
            return offset - offset % unit, min(-(-end // unit) * unit, self._size)
        return lo, hi
