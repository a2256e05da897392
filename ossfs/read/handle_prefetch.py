"""Read-ahead of one open handle: its streams' windows, parts, drop-behind, random ranges.

Responsibility: per open handle (`HandlePrefetch`, the `ReadAhead` of its `ObjectReader`), tell
sequential reads (of one of several streams) from random ones, give a random read the small
range it should fetch, and for each sequential stream claim the blocks ahead of it in
the shared `BlockCache` and fetch them as parallel ranged GETs ("parts") on the mount's executor,
all pinned to the handle's etag; a reader that reaches a claimed block waits for that fetch
instead of sending its own (single flight). What every handle of a mount shares (the executor,
the global budget of in-flight read-ahead bytes and the counters) is a `PrefetchBudget`: the
mount's `ossfs.read.prefetch.Prefetcher`.

The policy, in blocks of the reader's block size:

- A handle tracks up to ``max_streams`` sequential streams (`ossfs.read.streams.StreamTable`):
  an mmap model loader or a reader interleaving tensors or columns reads several regions in
  turn, and each region keeps its own window. A read is *sequential* when it continues a
  stream: it starts at most ``sequential_slack_bytes`` after the stream's furthest read, or
  inside the window the stream issued (a forward skip that read-ahead absorbs), or at most
  ``reorder_bytes`` before it (several FUSE threads deliver the kernel's readahead out of
  order) while needing no fetch of its own. Any other read starts a candidate stream, which
  the next read right after it confirms; it resets no other stream (the table replaces its
  least recently used candidate, or stream, when full; a replaced stream's read-ahead in flight
  finishes into the cache; nothing is cancelled).
- A read that continues no stream, smaller than a block and not the handle's first, is
  *random*: it is served from aligned sub-block units (``random_unit_bytes``, 64 KiB), of a
  span that adapts between one unit and ``random_max_bytes`` (`ossfs.read.streams.RandomSpan`),
  instead of whole blocks; `on_read` returns the range and the reader fetches it
  (`ObjectReader`'s unit path). A random 4 KiB read costs a GET of 64 KiB, not 1 MiB.
- A handle's first read, when it is at most one unit, is served from units as well (its first
  byte waits for a unit's transfer, not a block's), and its block is fetched at the same time
  as a part of the candidate stream it starts (`_first_part_locked`), within the same budget:
  a sequential reader's second read finds that block in flight instead of sending a GET of
  its own. This holds on a fast link too: a unit's GET answers sooner than a block's even
  there (loopback: 0.7 against 3 ms for 1 MiB; a handle's first byte 5.5 against 6.9 ms).
  When the budget has no room, the first read takes whole blocks. Otherwise the
  first read of a handle never prefetches; nor does an object of one block (a small file's
  first read takes it whole).
- A sequential read makes sure the ``window`` blocks after it (its stream's) are claimed,
  in parts of ``min(part_size, window)`` (only whole parts, except the last one before EOF;
  never past EOF). The window starts at ``initial_window_bytes`` and doubles, up to
  ``max_window_bytes`` (and at most a quarter of the cache, so read-ahead cannot evict
  itself), each time a sequential read had to wait (a block it needed was in flight or
  missing).
- A part is issued only if the global read-ahead budget (``max_inflight_bytes``) has room:
  it counts read-ahead in flight *and* read-ahead that arrived and its reader has not read yet,
  so the windows of all readers together stay within it. Otherwise nothing is issued and reads
  fall back to the reader's synchronous block fetches (they never fail for lack of budget). A
  block's bytes go back to that budget when its reader reads it, when its stream is replaced or
  the handle closes, or when its fetch fails. Bytes in flight are also reserved in the cache's
  account of block memory (`BlockCache.reserve`), turned into cached bytes as each block lands.
- The mount's scale (`PrefetchBudget.scale`) shrinks every window cap when memory is short; at
  scale 0 nothing is read ahead and each read fetches only its own blocks.
- Errors are never swallowed into wrong bytes: a failed part caches nothing and settles its
  claimed blocks with the error, so a reader waiting for them raises that error, and a reader
  arriving later fetches them itself (getting the real error again, or the bytes).
- `HandlePrefetch.close` (release) stops issuing; parts queued but not yet sent are abandoned
  (their waiters fetch for themselves), parts already sent finish into the cache.

Each block of a part is cached as soon as it has arrived, so a reader waits only for the block
it needs, not for the whole part's GET.

Deliberately not here: the executor, the global budget and the counters (`prefetch`), block
math and reply assembly (`reader`), caching and single flight (`block_cache`), retries and error
mapping (`oss_store`), and command-line knobs (the CLI).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from ossfs.read.block_cache import Block, BlockKey
from ossfs.read.reader import ObjectReader
from ossfs.read.streams import RandomSpan, Stream, StreamTable

log = logging.getLogger(__name__)

SCAN_FRACTION: Final = 4
"""A sequential read of an object larger than 1/4 of the block cache is a scan: drop-behind
drops its passed blocks at once instead of keeping them last in line (unless the link is slow
and the object fits the cache, see `ossfs.read.prefetch.SLOW_FIRST_BYTE_S`)."""


@dataclass(frozen=True, slots=True)
class PrefetchConfig:
    """Read-ahead tuning. Sizes are rounded down to whole blocks of each reader (at least one).

    ``part_size_bytes``: bytes per read-ahead GET once the window is that large (8 MiB is where
    OSS throughput per connection plateaus). ``initial_window_bytes`` / ``max_window_bytes``:
    read-ahead per handle when a sequential stream starts / at most. ``max_inflight_bytes``:
    read-ahead bytes in flight over all handles of the mount. ``sequential_slack_bytes``: how
    far after the end of the furthest read a read may start and still count as sequential;
    ``reorder_bytes``: how far before it (at least ``sequential_slack_bytes``).
    ``drop_behind``: make blocks a handle's read-ahead fetched the cache's first to evict once
    its reader is past them (drop them, for an object larger than 1/`SCAN_FRACTION` of the
    cache, unless the link is slow and the object fits: see
    `ossfs.read.prefetch.SLOW_FIRST_BYTE_S`). ``max_streams``: sequential streams tracked per
    handle, each with its own window (`ossfs.read.streams.StreamTable`).
    ``random_unit_bytes`` / ``random_max_bytes``: a read that continues no stream fetches
    aligned units of this size, at most this many bytes beyond what it needs
    (`ossfs.read.streams.RandomSpan`); off (whole blocks) unless the unit divides the block
    size and is smaller. A handle's first read of at most one unit is served from units as
    well, its blocks fetched beside it.
    """

    part_size_bytes: int = 8 << 20
    initial_window_bytes: int = 1 << 20
    max_window_bytes: int = 64 << 20
    max_inflight_bytes: int = 256 << 20
    sequential_slack_bytes: int = 1 << 20
    reorder_bytes: int = 8 << 20
    drop_behind: bool = True
    max_streams: int = 8
    random_unit_bytes: int = 64 << 10
    random_max_bytes: int = 256 << 10

    def __post_init__(self) -> None:
        for name in (
            "part_size_bytes",
            "initial_window_bytes",
            "max_window_bytes",
            "max_streams",
            "random_unit_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.initial_window_bytes > self.max_window_bytes:
            raise ValueError("initial_window_bytes must not exceed max_window_bytes")
        if self.random_max_bytes < self.random_unit_bytes:
            raise ValueError("random_max_bytes must not be below random_unit_bytes")
        if min(self.max_inflight_bytes, self.sequential_slack_bytes, self.reorder_bytes) < 0:
            raise ValueError(
                "max_inflight_bytes, sequential_slack_bytes and reorder_bytes must be >= 0"
            )


class PrefetchBudget(Protocol):
    """What the read-ahead of one handle needs of the mount's (`ossfs.read.prefetch.Prefetcher`):
    the global budget of read-ahead bytes, the executor, the counters. Thread-safe."""

    @property
    def scale(self) -> float:
        """0..1: the share of the configured window caps allowed now (memory pressure)."""
        ...

    @property
    def slow_link(self) -> bool:
        """True when GETs take `ossfs.read.prefetch.SLOW_FIRST_BYTE_S` or more to a first byte."""
        ...

    def reserve(self, nbytes: int) -> bool:
        """Take ``nbytes`` of the global budget, or count a denial and return False."""
        ...

    def deny(self) -> None:
        """Count a part not issued for lack of memory."""
        ...

    def release(self, nbytes: int) -> None:
        """Give back ``nbytes`` of the global budget."""
        ...

    def submit(self, task: Callable[[], None], claimed_bytes: int) -> bool:
        """Run ``task`` (one part) on the executor; False if the executor refused it."""
        ...

    def count_part_end(self, *, received: int, failed: bool, abandoned: bool) -> None: ...

    def detach(self, key: str, etag: str) -> None:
        """One handle of this object version closed."""
        ...

    def sole_handle(self, key: str, etag: str) -> bool:
        """True if one handle alone has this object version open (drop-behind is safe)."""
        ...

    def count_reset(self, unused_bytes: int, *, reset: bool) -> None: ...


class HandlePrefetch:
    """Read-ahead of one open handle (one pinned object version): the `ReadAhead` of its reader.

    Thread-safe: concurrent reads of one handle take turns on a small lock that guards only the
    stream state; claims, submissions and GETs happen outside it.
    """

    def __init__(
        self, prefetcher: PrefetchBudget, config: PrefetchConfig, reader: ObjectReader
    ) -> None:
        block_size = reader.block_size_bytes
        meta = reader.meta
        self._prefetcher = prefetcher
        self._reader = reader
        self._cache = reader.cache
        self._key = meta.key
        self._etag = meta.etag
        self._size = meta.size
        self._block_size = block_size
        self._n_blocks = -(-meta.size // block_size)
        # Read-ahead that the cache would evict before the reader gets there is pure waste.
        capacity = reader.cache.capacity_bytes
        window_cap_bytes = min(config.max_window_bytes, capacity // 4)
        self._max_window = window_cap_bytes // block_size  # 0: no read-ahead for this handle
        self._initial_window = min(
            max(1, config.initial_window_bytes // block_size), self._max_window
        )
        self._part_blocks = max(1, config.part_size_bytes // block_size)
        self._lock = threading.Lock()
        self._closed = False
        self._reads = 0
        self._streams = StreamTable(
            config.max_streams,
            slack_bytes=config.sequential_slack_bytes,
            behind_bytes=max(config.sequential_slack_bytes, config.reorder_bytes),
            block_size=block_size,
            initial_window=self._initial_window,
        )
        self._behind = max(config.sequential_slack_bytes, config.reorder_bytes)
        unit = config.random_unit_bytes
        self.unit_bytes = unit if unit < block_size and block_size % unit == 0 else 0
        self._random = (
            RandomSpan(unit, max(1, config.random_max_bytes // unit), meta.size)
            if self.unit_bytes
            else None
        )
        self._drop_behind = config.drop_behind
        self._first_read_units = self._n_blocks > 1
        # A long sequential read is a scan: the kernel's page cache keeps it for re-reads, and
        # an LRU could not keep an object larger than itself anyway (the re-read evicts the tail
        # before it gets there). Past a quarter of the cache its passed blocks are dropped at
        # once, which lets their buffers be reused while still warm in the CPU caches: fresh
        # buffers for every block of 1 GiB cost a fifth of the loopback rate (1,097 -> 870
        # MB/s with a 1.1 GiB cache) and the RSS of the whole object. Over a slow link an
        # object that fits is kept all the same (see `ossfs.read.prefetch.SLOW_FIRST_BYTE_S`).
        self._scan = meta.size > capacity // SCAN_FRACTION
        self._fits = meta.size <= capacity

    @property
    def window_bytes(self) -> int:
        """The read-ahead window of the most recently used stream (the initial window before
        any read; 0 when read-ahead is off for this handle)."""
        with self._lock:
            streams = self._streams.streams
            window = streams[0].window if streams else self._initial_window
            return window * self._block_size

    @property
    def stream_windows(self) -> list[int]:
        """The read-ahead window of each stream, in bytes, most recently used first."""
        with self._lock:
            return [stream.window * self._block_size for stream in self._streams.streams]

    def _window_cap(self) -> int:
        """The most blocks the window may have now (its cap, shrunk with the scale)."""
        return max(1, int(self._max_window * self._prefetcher.scale))

    # -- ReadAhead --------------------------------------------------------------------------------
    def on_read(
        self, offset: int, end: int, first: int, last: int, *, hit: bool
    ) -> tuple[int, int] | None:
        """See `reader.ReadAhead`: update the streams, then issue parts outside the lock.

        A read that continues a stream is sequential: that stream's window grows and its parts
        are issued. Any other read starts a candidate stream; unless it is ``hit`` or a block
        long or more, it is served from the range `RandomSpan` plans (returned), and if it is
        the handle's first read only when it is at most one unit and its blocks' background
        fetch could be issued (`_first_part_locked`)."""
        held = 0
        span = None
        parts: list[_Part] = []
        done: list[int] = []
        with self._lock:
            if self._closed:
                return None
            self._reads += 1
            stream = self._streams.match(offset, end, first, last, hit=hit)
            for each in self._streams.streams:
                unread = each.unread
                if unread:
                    for index in range(first, last + 1):
                        held += unread.pop(index, 0)
            if stream is None:
                evicted = self._streams.add(offset, end)
                if evicted is not None:
                    held += self._forget_locked(evicted, reset=True)
                    done = self._passed_locked(evicted, evicted.furthest_end // self._block_size)
                # A read of a block or more takes whole blocks: the same bytes, and a stream
                # it starts (another stream's read-ahead running into it) finds them cached.
                if self._random is not None and not hit and end - offset < self._block_size:
                    if self._reads > 1:
                        span = self._random.plan(offset, end)
                    elif self._first_read_units and end - offset <= self.unit_bytes:
                        part = self._first_part_locked(self._streams.streams[0], first, last)
                        if part is not None:
                            parts.append(part)
                            span = self._random.plan(offset, end)
            elif self._max_window:
                if stream.active and not hit:
                    stream.window = min(stream.window * 2, self._window_cap())
                parts = self._plan_locked(stream, last)
                below = (stream.furthest_end - self._behind) // self._block_size
                done = self._passed_locked(stream, below)
        if held:
            self._prefetcher.release(held)
        if done:
            self._drop(done)
        for part in parts:
            self._issue(part)
        return span

    def close(self) -> None:
        """Stop issuing read-ahead (idempotent); queued parts will be abandoned unsent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            held = unused = 0
            done: list[int] = []
            for stream in self._streams.clear():
                held += sum(stream.unread.values())
                unused += self._unused_bytes_locked(stream)
                done += self._passed_locked(stream, stream.furthest_end // self._block_size)
        log.debug("prefetch %s: closed (%d bytes unused)", self._key, unused)
        if done:
            self._drop(done)
        if held:
            self._prefetcher.release(held)
        self._prefetcher.detach(self._key, self._etag)
        self._prefetcher.count_reset(unused, reset=False)

    # -- internals --------------------------------------------------------------------------------
    def _forget_locked(self, stream: Stream, *, reset: bool) -> int:
        """A stream left the table; returns the budget its unread read-ahead held (to give
        back). Counted as a reset if it had issued read-ahead."""
        held = sum(stream.unread.values())
        unused = self._unused_bytes_locked(stream)
        if stream.active:
            log.debug(
                "prefetch %s: stream at %d forgotten (%d bytes unused)",
                self._key,
                stream.furthest_end,
                unused,
            )
            self._prefetcher.count_reset(unused, reset=reset)
        return held

    def _unused_bytes_locked(self, stream: Stream) -> int:
        unused = sum(self._block_bytes(index, index + 1) for index in stream.unread)
        stream.unread.clear()
        return unused

    def _block_bytes(self, first: int, stop: int) -> int:
        """Bytes of blocks ``[first, stop)`` (the last block of the object may be short)."""
        return min(stop * self._block_size, self._size) - first * self._block_size

    def _plan_locked(self, stream: Stream, last: int) -> list[_Part]:
        """Reserve budget for, and record as issued, the parts that keep the window full."""
        window = min(stream.window, self._window_cap())
        start = max(stream.issued_until, last + 1)
        target = min(last + 1 + window, self._n_blocks)
        part_blocks = min(self._part_blocks, window)
        parts: list[_Part] = []
        while start < target:
            count = min(part_blocks, target - start)
            if count < part_blocks and target < self._n_blocks:
                break  # wait until a whole part fits in the window (fewer, larger GETs)
            nbytes = self._block_bytes(start, start + count)
            if not self._prefetcher.reserve(nbytes):
                break  # budget spent: the reader fetches what it needs synchronously
            parts.append(_Part(self, stream, start, start + count, nbytes))
            for index in range(start, start + count):
                stream.unread[index] = self._block_bytes(index, index + 1)
            start += count
        if parts:
            stream.active = True
            stream.issued_until = start
        return parts

    def _first_part_locked(self, stream: Stream, first: int, last: int) -> _Part | None:
        """The part that fetches the blocks of a handle's small first read (``first..last``)
        in the background while the read itself is served from a few units: the first byte
        does not wait for a whole block's transfer, and a sequential reader's next read finds
        its block in flight (or cached) instead of sending a GET of its own. None, and the read
        takes whole blocks as any other, when the handle reads nothing ahead or the global
        budget is spent (so a sequential reader never pays a round trip for it)."""
        if not self._max_window:
            return None
        nbytes = self._block_bytes(first, last + 1)
        if not self._prefetcher.reserve(nbytes):
            return None
        for index in range(first, last + 1):
            stream.unread[index] = self._block_bytes(index, index + 1)
        stream.issued_until = last + 1
        return _Part(self, stream, first, last + 1, nbytes)

    def _passed_locked(self, stream: Stream, below: int) -> list[int]:
        """Blocks the stream's read-ahead fetched that lie wholly before block ``below`` (its
        reader is done with them), forgotten here; empty unless dropping behind."""
        if not self._drop_behind or not stream.mine:
            return []
        done = [index for index in stream.mine if index < below]
        stream.mine.difference_update(done)
        return done

    def _drop(self, indices: list[int]) -> None:
        """Drop-behind: a sequential reader rarely comes back (the kernel's page cache serves
        most re-reads), so its blocks become the cache's first to evict (dropped at once if the
        object is a scan, see `SCAN_FRACTION`, unless the link is slow and the object fits the
        cache, see `ossfs.read.prefetch.SLOW_FIRST_BYTE_S`): a long read cannot push out what
        others use, and evicted buffers are reused for the next blocks. Not while another handle
        has the version open: it may be reading behind this one."""
        if self._prefetcher.sole_handle(self._key, self._etag):
            keys = [(self._key, self._etag, index) for index in indices]
            if self._scan and not (self._fits and self._prefetcher.slow_link):
                self._cache.discard(keys)
            else:
                self._cache.demote(keys)

    def _issue(self, part: _Part) -> None:
        """Claim the part's blocks (those neither cached nor in flight), reserve their bytes in
        the cache's account and submit its GETs. Blocks it did not claim give their budget back
        at once (another fetch has them, or the cache does)."""
        keys = [(self._key, self._etag, index) for index in range(part.first, part.stop)]
        part.claimed = claimed = self._cache.claim(keys)
        part.claimed_bytes = sum(self._block_bytes(key[2], key[2] + 1) for key in claimed)
        if claimed and not self._cache.reserve(part.claimed_bytes):
            self._cache.abandon(claimed)
            self._prefetcher.deny()
            claimed = part.claimed = []
            part.claimed_bytes = 0
        mine = {key[2] for key in claimed}
        stream = part.stream
        self._give_back(
            stream, (index for index in range(part.first, part.stop) if index not in mine)
        )
        if not claimed:
            return
        if self._drop_behind:
            with self._lock:
                stream.mine.update(mine)
        if not self._prefetcher.submit(part.run, part.claimed_bytes):
            self._cache.abandon(claimed)
            self._cache.release(part.claimed_bytes)
            self._give_back(stream, mine)

    def _give_back(self, stream: Stream, indices: Iterable[int]) -> None:
        """Return to the global budget what these blocks' read-ahead held (they stay counted as
        covered for the waste statistics)."""
        held = 0
        with self._lock:
            unread = stream.unread
            for index in indices:
                nbytes = unread.get(index)
                if nbytes:
                    held += nbytes
                    unread[index] = 0
        if held:
            self._prefetcher.release(held)

    def _run_part(self, part: _Part) -> None:
        """On a worker thread: one ranged GET per run of claimed blocks, settling every claim."""
        pending: list[BlockKey] = list(part.claimed)
        received = 0
        failed = abandoned = False

        def fill(index: int, block: Block) -> None:
            # Blocks arrive in order, and the next one is always pending[0]: each is cached
            # (and its waiters woken) as soon as it is in, not when the whole GET is. Its bytes
            # turn from reserved into cached in the cache's account; the read-ahead budget
            # holds them until the reader has read the block.
            nonlocal received
            key = pending.pop(0)
            self._cache.fill((key,), (block,), reserved_bytes=len(block))
            received += len(block)

        try:
            with self._lock:
                closed = self._closed
            if closed:
                self._cache.abandon(pending)
                pending.clear()
                abandoned = True
                return
            while pending:
                first = last = pending[0][2]
                for key in pending[1:]:
                    if key[2] != last + 1:
                        break
                    last += 1
                try:
                    self._reader.fetch_blocks(first, last, fill)
                except Exception as exc:
                    log.debug("prefetch %s blocks %d..%d failed: %r", self._key, first, last, exc)
                    self._cache.fail(pending, exc)
                    pending.clear()
                    failed = True
                    return
        finally:
            if pending:  # something unexpected went wrong: never leave a waiter hanging
                self._cache.abandon(pending)
                failed = True
            self._cache.release(part.claimed_bytes - received)
            if failed or abandoned:
                held = 0
                with self._lock:
                    for key in part.claimed:
                        held += part.stream.unread.pop(key[2], 0)
                self._prefetcher.release(held)
            self._prefetcher.count_part_end(received=received, failed=failed, abandoned=abandoned)


class _Part:
    """One read-ahead task: blocks ``[first, stop)`` of a handle's stream, and what it claimed
    of them."""

    __slots__ = ("claimed", "claimed_bytes", "first", "handle", "reserved_bytes", "stop", "stream")

    def __init__(
        self, handle: HandlePrefetch, stream: Stream, first: int, stop: int, reserved_bytes: int
    ) -> None:
        self.handle = handle
        self.stream = stream
        self.first = first
        self.stop = stop
        self.reserved_bytes = reserved_bytes
        self.claimed: list[BlockKey] = []
        self.claimed_bytes = 0

    def run(self) -> None:
        self.handle._run_part(self)
