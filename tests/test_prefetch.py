"""Read-ahead on a FakeStore: sequential detection, window growth, budget, errors, close.

Parts run on a `ManualExecutor`, so each test decides when a read-ahead GET happens; a reader
that must wait for one runs on a thread, and the test releases the part once the cache reports
that the reader joined it. No test depends on timing.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import itertools
import os
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ossfs.app import wiring
from ossfs.app.mount_config import MountConfig
from ossfs.core.errors import (
    AccessDeniedError,
    IntegrityError,
    OssfsError,
    RemoteIOError,
    StaleError,
)
from ossfs.core.object_store import ObjectMeta
from ossfs.core.url import OssLocation
from ossfs.emulator import EmulatorServer
from ossfs.fs.filesystem import Filesystem, FsConfig
from ossfs.fs.namespace import Namespace
from ossfs.read.block_cache import BlockCache
from ossfs.read.handle_prefetch import SCAN_FRACTION, HandlePrefetch, PrefetchConfig
from ossfs.read.prefetch import SLOW_FIRST_BYTE_S, Prefetcher
from ossfs.read.reader import ObjectReader
from ossfs.store.config import OssConfig
from ossfs.store.credentials import Credentials
from ossfs.store.latency import SAMPLES as LATENCY_SAMPLES
from ossfs.store.oss_store import OssStore
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.support.executors import InlineExecutor, ManualExecutor
from tests.support.fakes import FakeStore
from tests.support.faulty_store import FaultyStore
from tests.support.waiting import wait_until

BS = 16  # block size
WAIT_S = 10.0  # a hang fails the test instead of blocking it
CONFIG = PrefetchConfig(
    part_size_bytes=4 * BS,
    initial_window_bytes=BS,
    max_window_bytes=8 * BS,
    max_inflight_bytes=1 << 20,
    sequential_slack_bytes=BS,
    reorder_bytes=2 * BS,
)


def pattern(size: int, salt: int = 0) -> bytes:
    return bytes((i * 7 + i // 251 + salt) % 256 for i in range(size))


class FailingStore(FakeStore):
    """GETs touching bytes at or after ``fail_from`` raise ``error`` (or come back short)."""

    def __init__(self, fail_from: int, error: OssfsError | None) -> None:
        super().__init__()
        self.fail_from = fail_from
        self.error = error

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        body = super().get_range(key, start, end, etag=etag)
        if end > self.fail_from:
            if self.error is not None:
                raise self.error
            return body[:-1]
        return body


def make(
    data: bytes,
    executor: Executor,
    *,
    config: PrefetchConfig = CONFIG,
    store: FakeStore | None = None,
    capacity: int = 1 << 20,
    first_byte_s: float | None = None,
) -> tuple[FakeStore, BlockCache, Prefetcher, ObjectReader]:
    """``first_byte_s``: what the prefetcher is told of the link (None: nothing yet)."""
    store = store if store is not None else FakeStore()
    meta = store.put("a.bin", data)
    cache = BlockCache(capacity)
    prefetcher = Prefetcher(executor, config, first_byte_s=lambda: first_byte_s)
    reader = ObjectReader(store, cache, meta, block_size_bytes=BS, read_ahead=prefetcher.attach)
    store.reset_calls()
    return store, cache, prefetcher, reader


def read_ahead_of(reader: ObjectReader) -> HandlePrefetch:
    handle = reader.read_ahead
    assert isinstance(handle, HandlePrefetch)
    return handle


def gets(store: FakeStore) -> list[tuple[int, int]]:
    out = []
    for call in store.calls:
        if call[0] == "get_range":
            start, end = call[2], call[3]
            assert isinstance(start, int) and isinstance(end, int)
            out.append((start, end))
    return out


def read_waiting(
    reader: ObjectReader, cache: BlockCache, executor: ManualExecutor, offset: int, size: int
) -> bytes:
    """``reader.read`` on a thread; whenever it waits for a queued part, run the oldest part.

    So read-ahead never completes before the reader reaches it: the reader keeps catching up.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        joined = cache.stats().joined
        result = pool.submit(reader.read, offset, size)

        def finished() -> bool:
            nonlocal joined
            now = cache.stats().joined
            if now > joined:
                joined = now
                executor.run_one()
            return result.done()

        wait_until(finished, WAIT_S, f"a read at {offset} that waits for read-ahead", step_s=0.001)
        return bytes(result.result(WAIT_S))


# -- sequential readers ---------------------------------------------------------------------------
def test_prefetch_sequential_reader_gets_parallel_parts_ahead_with_growing_capped_window() -> None:
    data = pattern(40 * BS + 5)
    executor = ManualExecutor()
    store, cache, prefetcher, reader = make(data, executor)
    handle = read_ahead_of(reader)
    windows, claimed_ahead, queued = [], [], []
    for offset in range(0, len(data), BS):
        assert read_waiting(reader, cache, executor, offset, BS) == data[offset : offset + BS]
        windows.append(handle.window_bytes)
        claimed_ahead.append(cache.inflight_count)
        queued.append(executor.pending)
    executor.run_all()

    # The window starts at one block, doubles each time the reader caught up, stops at the cap.
    assert windows[0] == BS
    assert sorted(windows) == windows
    assert sorted(set(windows)) == [BS, 2 * BS, 4 * BS, 8 * BS]
    # Read-ahead in flight never exceeds the window cap, and reaches it in parallel parts.
    assert max(claimed_ahead) == 8
    assert max(queued) >= 2
    # The first two blocks are the reader's own GETs; then parts of 1, 2, 4 blocks, then 4-block
    # parts up to EOF (the last one short). Every byte is fetched exactly once, none past EOF.
    requested = gets(store)
    assert requested[:4] == [(0, BS), (BS, 2 * BS), (2 * BS, 3 * BS), (3 * BS, 5 * BS)]
    assert all(end - start <= 4 * BS for start, end in requested)
    assert sorted(requested) == requested
    assert all(a[1] == b[0] for a, b in itertools.pairwise(requested))
    assert requested[0][0] == 0 and requested[-1][1] == len(data)
    stats = prefetcher.stats()
    assert stats.parts_issued == len(requested) - 2
    assert stats.bytes_prefetched == stats.bytes_issued == len(data) - 2 * BS
    assert stats.inflight_bytes == 0 and stats.window_resets == 0 and stats.bytes_unused == 0


def test_prefetch_kernel_style_reads_out_of_order_count_as_sequential() -> None:
    data = pattern(32 * BS)
    executor = InlineExecutor()
    store, _, prefetcher, reader = make(data, executor)
    # Quarter-block reads, each pair swapped, the way several FUSE threads deliver readahead.
    q = BS // 4
    offsets = [o for pair in range(0, len(data), 2 * q) for o in (pair + q, pair)]
    for offset in offsets:
        assert reader.read(offset, q) == data[offset : offset + q]
    stats = prefetcher.stats()
    assert stats.window_resets == 0
    assert stats.parts_issued > 0
    # Only the first block was the reader's own; every byte was fetched exactly once.
    requested = gets(store)
    assert requested[0] == (0, BS)
    assert sum(end - start for start, end in requested) == len(data)


def test_prefetch_whole_blocks_delivered_one_behind_count_as_sequential() -> None:
    # As seen from libfuse 3 threads with 1 MiB reads: block b+1 is served just before b.
    data = pattern(32 * BS)
    executor = InlineExecutor()
    store, _, prefetcher, reader = make(data, executor)
    order = [0, 1, 3, 2, 5, 4, 6, 8, 7, *range(9, 32)]
    for block in order:
        assert reader.read(block * BS, BS) == data[block * BS : (block + 1) * BS]
    stats = prefetcher.stats()
    assert stats.window_resets == 0 and stats.bytes_unused == 0
    assert sum(end - start for start, end in gets(store)) == len(data)


def test_prefetch_forward_skip_inside_the_window_is_absorbed() -> None:
    data = pattern(40 * BS)
    executor = ManualExecutor()
    _, cache, prefetcher, reader = make(data, executor)
    handle = read_ahead_of(reader)
    for offset in range(0, 12 * BS, BS):
        read_waiting(reader, cache, executor, offset, BS)
    executor.run_all()
    window = handle.window_bytes
    assert window == 8 * BS
    # Blocks 12..16 are read-ahead by now (whole 4-block parts): skipping to 15 keeps the stream.
    assert reader.read(15 * BS + 3, 5) == data[15 * BS + 3 : 15 * BS + 8]
    assert handle.window_bytes == window
    assert prefetcher.stats().window_resets == 0


# -- random readers and seeks ---------------------------------------------------------------------
def test_prefetch_random_reads_fetch_only_the_blocks_they_touch() -> None:
    data = pattern(100 * BS)
    executor = ManualExecutor()
    store, _, prefetcher, reader = make(data, executor)
    offsets = [50 * BS + 3, 10 * BS, 90 * BS + 7, 30 * BS, 70 * BS + 1, 5 * BS, 60 * BS, 10 * BS]
    for offset in offsets:
        assert reader.read(offset, 4) == data[offset : offset + 4]
    assert executor.submitted == 0
    touched = list(dict.fromkeys(offset // BS for offset in offsets))
    assert gets(store) == [(b * BS, (b + 1) * BS) for b in touched]
    assert prefetcher.stats().parts_issued == 0


@pytest.mark.parametrize("jump_block", [0, 3, 60], ids=["to-start", "backward", "far-ahead"])
def test_prefetch_seek_outside_the_stream_starts_another_and_keeps_the_first(
    jump_block: int,
) -> None:
    data = pattern(64 * BS)
    executor = ManualExecutor()
    store, cache, prefetcher, reader = make(data, executor)
    handle = read_ahead_of(reader)
    for offset in range(0, 16 * BS, BS):
        read_waiting(reader, cache, executor, offset, BS)
    assert handle.window_bytes == 8 * BS
    submitted = executor.submitted
    store.reset_calls()

    offset = jump_block * BS + 1
    assert reader.read(offset, 4) == data[offset : offset + 4]
    # A candidate with the initial window in front; the first stream keeps its window.
    assert handle.stream_windows == [BS, 8 * BS]
    assert executor.submitted == submitted  # the seek itself issues nothing
    stats = prefetcher.stats()
    assert stats.window_resets == 0 and stats.bytes_unused == 0
    # A block not cached is one synchronous GET of that block only.
    expected = [] if jump_block < 16 else [(jump_block * BS, (jump_block + 1) * BS)]
    assert gets(store) == expected

    # Reading on sequentially from there confirms it, with a one-block window of its own.
    assert reader.read(offset + 4, BS) == data[offset + 4 : offset + 4 + BS]
    assert handle.stream_windows == [BS, 8 * BS]
    # And the first stream goes on where it was, its read-ahead intact.
    store.reset_calls()
    executor.run_all()
    assert reader.read(16 * BS, BS) == data[16 * BS : 17 * BS]
    assert all(start >= 16 * BS for start, _ in gets(store))
    assert handle.stream_windows[0] == 8 * BS
    assert prefetcher.stats().window_resets == 0
    executor.run_all()


# -- errors and versions --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RemoteIOError("boom"), RemoteIOError),
        (AccessDeniedError("denied"), AccessDeniedError),
        (None, IntegrityError),  # a short body
    ],
    ids=["remote-io", "access-denied", "short-body"],
)
def test_prefetch_error_reaches_the_reader_that_waits_for_the_part(
    error: OssfsError | None, expected: type[OssfsError]
) -> None:
    data = pattern(32 * BS)
    executor = ManualExecutor()
    # Blocks 5..8 are one part (see the growth test), and it fails.
    store, cache, prefetcher, reader = make(data, executor, store=FailingStore(5 * BS, error))
    for offset in range(0, 5 * BS, BS):
        assert read_waiting(reader, cache, executor, offset, BS) == data[offset : offset + BS]
    # The part's last block is wrong in every case (a short body still delivers the exact
    # blocks before it, as they arrived).
    with pytest.raises(expected):
        read_waiting(reader, cache, executor, 8 * BS, BS)
    executor.run_all()
    assert prefetcher.stats().parts_failed >= 1
    assert not cache.contains(("a.bin", reader.meta.etag, 8)) and cache.inflight_count == 0
    # Nothing was cached for the failed block: the next read asks again and fails again.
    store.reset_calls()
    with pytest.raises(expected):
        reader.read(8 * BS, BS)
    assert gets(store) == [(8 * BS, 9 * BS)]
    assert reader.read(4 * BS, BS) == data[4 * BS : 5 * BS]


class Tracked(bytearray):
    """A body buffer that can be watched with a weak reference (a bytearray cannot)."""


class MidStreamStore(FakeStore):
    """Calls ``mid_stream`` inside a multi-block GET, after its first block was handed over.
    Pieces are ``piece_type`` buffers."""

    def __init__(self, piece_type: type[bytearray] = bytearray) -> None:
        super().__init__()
        self.mid_stream: Callable[[], None] | None = None
        self.piece_type = piece_type

    def read_range(
        self,
        key: str,
        start: int,
        end: int,
        *,
        etag: str | None,
        piece_bytes: int,
        on_piece: Callable[[bytearray], None],
    ) -> None:
        body = self.get_range(key, start, end, etag=etag)
        for n, pos in enumerate(range(0, len(body), piece_bytes)):
            if n == 1 and self.mid_stream is not None:
                self.mid_stream()
            on_piece(self.piece_type(body[pos : pos + piece_bytes]))


def test_prefetch_caches_each_block_of_a_part_as_it_arrives() -> None:
    data = pattern(32 * BS)
    executor = ManualExecutor()
    store = MidStreamStore()
    _, cache, prefetcher, reader = make(data, executor, store=store)
    for offset in range(0, 5 * BS, BS):
        assert read_waiting(reader, cache, executor, offset, BS) == data[offset : offset + BS]
    etag = reader.meta.etag
    seen: list[tuple[bytes | None, bool, int]] = []

    budget: list[tuple[int, int]] = []

    def mid_stream() -> None:
        first = cache.get(("a.bin", etag, 5))
        seen.append(
            (
                bytes(first) if first is not None else None,
                cache.contains(("a.bin", etag, 6)),
                cache.inflight_count,
            )
        )
        budget.append((cache.reserved_bytes, prefetcher.stats().inflight_bytes))

    store.mid_stream = mid_stream
    executor.run_all()  # the queued part for blocks 5..8
    # While that GET was still streaming, block 5 was already served from the cache (a reader
    # would not have waited for the rest) and block 6 was still in flight.
    assert seen and seen[0][0] == data[5 * BS : 6 * BS]
    assert seen[0][1] is False and seen[0][2] >= 1
    # The cached block's bytes turned from reserved into cached at once (3 of the part's 4
    # blocks were left in flight), but it is still unread: the read-ahead budget holds all 4.
    assert budget == [(3 * BS, 4 * BS)]
    assert cache.reserved_bytes == 0
    assert prefetcher.stats().inflight_bytes == 4 * BS
    # Reading them gives their budget back (the reads go on reading ahead: close, then settle).
    assert reader.read(5 * BS, 4 * BS) == data[5 * BS : 9 * BS]
    reader.close()
    executor.run_all()
    assert prefetcher.stats().inflight_bytes == 0
    assert cache.reserved_bytes == 0


def test_prefetch_failed_part_is_refetched_by_a_reader_arriving_later() -> None:
    data = pattern(32 * BS)
    failing = FailingStore(4 * BS, RemoteIOError("boom"))
    store, _, prefetcher, reader = make(data, InlineExecutor(), store=failing)
    for offset in range(0, 4 * BS, BS):
        assert reader.read(offset, BS) == data[offset : offset + BS]
    assert prefetcher.stats().parts_failed >= 1
    store.reset_calls()
    with pytest.raises(RemoteIOError):
        reader.read(4 * BS, 3)
    # Read-ahead for the blocks after it ran (and failed) first; then the reader's own GET.
    assert gets(store)[-1] == (4 * BS, 5 * BS)


def test_prefetch_replaced_object_raises_stale_never_mixes_versions() -> None:
    old = pattern(32 * BS)
    executor = ManualExecutor()
    store, cache, _, reader = make(old, executor)
    for offset in range(0, 4 * BS, BS):
        assert read_waiting(reader, cache, executor, offset, BS) == old[offset : offset + BS]
    executor.run_all()  # blocks 4.. of the old version are read-ahead into the cache
    store.put("a.bin", pattern(32 * BS, salt=1))  # a new version: the pinned etag fails now
    seen = b""
    with pytest.raises(StaleError):
        for offset in range(4 * BS, 32 * BS, BS):
            seen += read_waiting(reader, cache, executor, offset, BS)
    # Everything the reader got is the old version, up to where read-ahead had reached.
    assert len(seen) >= BS
    assert seen == old[4 * BS : 4 * BS + len(seen)]
    executor.run_all()
    assert reader.read(0, 4 * BS) == old[: 4 * BS]


# -- failures injected by FaultyStore -------------------------------------------------------------
def make_faulty(
    data: bytes, executor: Executor
) -> tuple[FakeStore, FaultyStore, BlockCache, Prefetcher, ObjectReader]:
    """Like `make`, reading through a `FaultyStore` over a FakeStore (whose ``calls`` show
    the GETs that reached it)."""
    inner = FakeStore()
    meta = inner.put("a.bin", data)
    store = FaultyStore(inner)
    cache = BlockCache(1 << 20)
    prefetcher = Prefetcher(executor, CONFIG)
    reader = ObjectReader(store, cache, meta, block_size_bytes=BS, read_ahead=prefetcher.attach)
    return inner, store, cache, prefetcher, reader


def starts_at(block: int) -> Callable[[tuple[object, ...]], bool]:
    """Selects the read_range calls (GETs) that begin at ``block``."""
    return lambda call: call[2] == block * BS


def test_prefetch_part_broken_mid_body_keeps_what_arrived_and_the_reader_fetches_the_rest() -> None:
    data = pattern(32 * BS)
    executor = ManualExecutor()
    inner, store, cache, prefetcher, reader = make_faulty(data, executor)
    # The part for blocks 5..8 (see the growth test) delivers block 5, then its connection resets.
    cut = store.cut("read_range", piece=2, error=RemoteIOError("reset"), match=starts_at(5))
    for offset in range(0, 5 * BS, BS):
        assert read_waiting(reader, cache, executor, offset, BS) == data[offset : offset + BS]
    executor.run_all()  # the part runs (and breaks) before the reader gets there
    assert cut.fired == 1 and prefetcher.stats().parts_failed == 1
    assert cache.inflight_count == 0
    inner.reset_calls()
    # A reader arriving later: block 5 arrived before the reset and is served from the cache;
    # blocks 6..8 are fetched again, synchronously, in one GET; every byte is exact.
    assert reader.read(5 * BS, 4 * BS) == data[5 * BS : 9 * BS]
    assert gets(inner) == [(6 * BS, 9 * BS)]
    executor.run_all()


def test_prefetch_corrupted_read_ahead_piece_fails_the_whole_read_with_eio() -> None:
    data = pattern(16 * BS)
    _, store, cache, prefetcher, reader = make_faulty(data, InlineExecutor())
    # Parts run at once here, one block each: the part for block 6 is corrupted in transit.
    corrupted = store.corrupt("read_range", piece=1, offset=3, match=starts_at(6))
    with pytest.raises(IntegrityError, match="CRC-64") as raised:
        for offset in range(0, len(data), BS):  # a sequential reader, like cat
            reader.read(offset, BS)
    # Read-ahead fetched every block but the reader's first two (block 6 among them), and its
    # blocks are checked too: the read that completed the object failed, and nothing of that
    # version stays cached.
    assert corrupted.fired == 1 and prefetcher.stats().bytes_prefetched == 14 * BS
    assert offset == len(data) - BS and raised.value.errno == errno.EIO
    assert not any(cache.contains(("a.bin", reader.meta.etag, i)) for i in range(16))
    reader.close()
    # A new open reads the object again, through read-ahead, to exact bytes.
    again = ObjectReader(
        store, cache, reader.meta, block_size_bytes=BS, read_ahead=prefetcher.attach
    )
    assert b"".join(bytes(again.read(o, BS)) for o in range(0, len(data), BS)) == data
    again.close()


def test_prefetch_stalled_part_holds_up_only_the_readers_of_its_blocks() -> None:
    data = pattern(64 * BS)
    with ThreadPoolExecutor(max_workers=2) as workers, ThreadPoolExecutor(max_workers=2) as app:
        inner, store, cache, _, reader = make_faulty(data, workers)
        stall = store.stall("read_range", match=starts_at(2))  # the first part: block 2
        other = ObjectReader(store, cache, reader.meta, block_size_bytes=BS)
        try:
            assert bytes(reader.read(0, BS)) + bytes(reader.read(BS, BS)) == data[: 2 * BS]
            stall.wait_reached(WAIT_S)  # a worker is now held inside the part's GET
            # Other blocks, through the same handle (a seek) or another one, are not held up.
            far = app.submit(reader.read, 40 * BS, BS)
            assert far.result(WAIT_S) == data[40 * BS : 41 * BS]
            assert app.submit(other.read, 3 * BS, 5).result(WAIT_S) == data[3 * BS : 3 * BS + 5]
            # A reader of block 2 joins the held GET instead of sending its own.
            joined = cache.stats().joined
            waiting = app.submit(other.read, 2 * BS, BS)
            wait_until(lambda: cache.stats().joined > joined, WAIT_S, "a reader to join the part")
            assert not waiting.done()
        finally:
            stall.release()
        assert waiting.result(WAIT_S) == data[2 * BS : 3 * BS]
        reader.close()
    assert gets(inner).count((2 * BS, 3 * BS)) == 1


# -- drop-behind ---------------------------------------------------------------------------------
def cached_blocks(cache: BlockCache, reader: ObjectReader, count: int) -> list[int]:
    return [i for i in range(count) if cache.contains(("a.bin", reader.meta.etag, i))]


def eviction_order(cache: BlockCache, reader: ObjectReader, count: int) -> list[int]:
    """The cached blocks of ``reader``'s object, first to be evicted first (evicts them all)."""
    order: list[int] = []
    fillers = 0
    while cached_blocks(cache, reader, count):
        before = set(cached_blocks(cache, reader, count))
        cache.put(("filler", str(fillers), 0), bytes(BS))
        fillers += 1
        order.extend(sorted(before - set(cached_blocks(cache, reader, count))))
    return order


def test_prefetch_demotes_blocks_its_sequential_reader_is_done_with() -> None:
    data = pattern(32 * BS)  # a quarter of the cache: not a scan
    _, cache, _, reader = make(data, InlineExecutor(), capacity=SCAN_FRACTION * 32 * BS)
    for offset in range(0, len(data), BS):
        assert reader.read(offset, BS) == data[offset : offset + BS]
    reader.close()
    # Everything stays cached while there is room; what read-ahead fetched and the reader
    # passed goes first (blocks 0 and 1 were the reader's own fetches, the least recently
    # used: plain LRU would evict them first).
    assert cached_blocks(cache, reader, 32) == list(range(32))
    order = eviction_order(cache, reader, 32)
    assert sorted(order[:30]) == list(range(2, 32)) and order[30:] == [0, 1]


@pytest.mark.parametrize("blocks", [64, 32, 9])
def test_prefetch_drops_passed_blocks_of_a_scan(blocks: int) -> None:
    """An object larger than a quarter of the cache (8 blocks of 32) is a scan."""
    data = pattern(blocks * BS)
    _, cache, _, reader = make(data, InlineExecutor(), capacity=32 * BS)
    for offset in range(0, len(data), BS):
        assert reader.read(offset, BS) == data[offset : offset + BS]
        # Read-ahead's blocks more than reorder_bytes (2 blocks) behind the reader are gone at
        # once; blocks 0 and 1 were the reader's own fetches.
        behind = offset // BS + 1 - 2
        assert all(i < 2 or i >= behind for i in cached_blocks(cache, reader, blocks))
    reader.close()
    assert cached_blocks(cache, reader, blocks) == [0, 1]


def read_in_blocks(reader: ObjectReader, data: bytes) -> None:
    for offset in range(0, len(data), BS):
        assert reader.read(offset, BS) == data[offset : offset + BS]


@pytest.mark.parametrize("blocks", [32, 9])
def test_prefetch_keeps_a_scan_that_fits_the_cache_when_the_link_is_slow(blocks: int) -> None:
    """Over a slow link a block read again is a long GET: a scan that fits stays cached."""
    data = pattern(blocks * BS)
    _, cache, _, reader = make(
        data, InlineExecutor(), capacity=32 * BS, first_byte_s=SLOW_FIRST_BYTE_S
    )
    read_in_blocks(reader, data)
    reader.close()
    assert cached_blocks(cache, reader, blocks) == list(range(blocks))
    # Kept last in line, as a block that is not a scan's: read-ahead's blocks go first.
    order = eviction_order(cache, reader, blocks)
    assert sorted(order[: blocks - 2]) == list(range(2, blocks)) and order[-2:] == [0, 1]


@pytest.mark.parametrize("first_byte_s", [None, SLOW_FIRST_BYTE_S * 0.99])
def test_prefetch_drops_a_scan_when_the_link_is_fast_or_not_known(
    first_byte_s: float | None,
) -> None:
    data = pattern(32 * BS)
    _, cache, _, reader = make(data, InlineExecutor(), capacity=32 * BS, first_byte_s=first_byte_s)
    read_in_blocks(reader, data)
    reader.close()
    assert cached_blocks(cache, reader, 32) == [0, 1]


def test_prefetch_drops_a_scan_larger_than_the_cache_even_when_the_link_is_slow() -> None:
    data = pattern(33 * BS)
    _, cache, _, reader = make(data, InlineExecutor(), capacity=32 * BS, first_byte_s=1.0)
    read_in_blocks(reader, data)
    reader.close()
    assert cached_blocks(cache, reader, 33) == [0, 1]


def test_prefetch_asks_the_link_at_each_drop() -> None:
    """A link found slow in the middle of a scan keeps the blocks passed from then on."""
    data = pattern(32 * BS)
    link: list[float | None] = [None]
    store = FakeStore()
    meta = store.put("a.bin", data)
    cache = BlockCache(32 * BS)
    prefetcher = Prefetcher(InlineExecutor(), CONFIG, first_byte_s=lambda: link[0])
    reader = ObjectReader(store, cache, meta, block_size_bytes=BS, read_ahead=prefetcher.attach)
    assert not prefetcher.slow_link
    read_in_blocks(reader, data[: 16 * BS])
    link[0] = 0.02
    assert prefetcher.slow_link
    for offset in range(16 * BS, len(data), BS):
        assert reader.read(offset, BS) == data[offset : offset + BS]
    reader.close()
    cached = cached_blocks(cache, reader, 32)
    # Passed while the link looked fast: dropped (all but the reader's own first two and the
    # ones within reorder_bytes of block 16); passed since: kept.
    assert cached[:2] == [0, 1] and 5 not in cached
    assert cached[-18:] == list(range(14, 32))


def test_prefetch_keeps_lru_order_while_another_handle_reads_the_same_version() -> None:
    data = pattern(32 * BS)
    store, cache, prefetcher, reader = make(
        data, InlineExecutor(), capacity=SCAN_FRACTION * 32 * BS
    )
    other = ObjectReader(
        store, cache, reader.meta, block_size_bytes=BS, read_ahead=prefetcher.attach
    )
    for offset in range(0, len(data), BS):
        assert reader.read(offset, BS) == data[offset : offset + BS]
    store.reset_calls()
    assert other.read(0, len(data)) == data
    assert gets(store) == []  # the lagging handle found every block cached
    other.close()
    reader.close()
    # Nothing was demoted while the version was shared, except the last two blocks (within
    # reorder_bytes of the end): still this handle's to demote when it closed alone.
    assert sorted(eviction_order(cache, reader, 32)[:2]) == [30, 31]


def test_prefetch_without_drop_behind_keeps_what_it_fetched() -> None:
    data = pattern(32 * BS)
    config = dataclasses.replace(CONFIG, drop_behind=False)
    _, cache, _, reader = make(data, InlineExecutor(), config=config)
    for offset in range(0, len(data), BS):
        assert reader.read(offset, BS) == data[offset : offset + BS]
    reader.close()
    assert cached_blocks(cache, reader, 32) == list(range(32))


# -- budget and close -----------------------------------------------------------------------------
def test_prefetch_global_budget_is_respected_and_reads_degrade_to_block_gets() -> None:
    config = PrefetchConfig(
        part_size_bytes=4 * BS,
        initial_window_bytes=BS,
        max_window_bytes=8 * BS,
        max_inflight_bytes=BS,
        sequential_slack_bytes=BS,
    )
    executor = ManualExecutor()
    store = FakeStore()
    data_a, data_b = pattern(16 * BS), pattern(16 * BS, salt=5)
    meta_a, meta_b = store.put("a.bin", data_a), store.put("b.bin", data_b)
    cache = BlockCache(1 << 20)
    prefetcher = Prefetcher(executor, config)

    def open_reader(meta: ObjectMeta) -> ObjectReader:
        return ObjectReader(store, cache, meta, block_size_bytes=BS, read_ahead=prefetcher.attach)

    a, b = open_reader(meta_a), open_reader(meta_b)
    assert bytes(a.read(0, BS)) + bytes(a.read(BS, BS)) == data_a[: 2 * BS]
    assert executor.pending == 1  # a's part for block 2 holds the whole budget
    store.reset_calls()
    for offset in range(0, 4 * BS, BS):
        assert b.read(offset, BS) == data_b[offset : offset + BS]
        assert prefetcher.stats().inflight_bytes <= BS
    assert executor.pending == 1
    assert prefetcher.stats().budget_denials >= 1
    assert [c[1:] for c in store.calls] == [("b.bin", o, o + BS) for o in range(0, 4 * BS, BS)]

    executor.run_all()  # a's part is done, but a has not read the block: it still counts
    assert prefetcher.stats().inflight_bytes == BS
    store.reset_calls()
    assert b.read(4 * BS, BS) == data_b[4 * BS : 5 * BS]
    assert executor.pending == 0
    a.close()  # unread read-ahead gives its bytes back when its handle is released
    assert prefetcher.stats().inflight_bytes == 0
    assert b.read(5 * BS, BS) == data_b[5 * BS : 6 * BS]
    assert executor.pending == 1  # b may read ahead again
    executor.run_all()
    assert prefetcher.stats().inflight_bytes == BS
    b.close()
    assert prefetcher.stats().inflight_bytes == 0


def test_prefetch_close_abandons_queued_parts_and_issues_no_more() -> None:
    data = pattern(16 * BS)
    executor = ManualExecutor()
    store, cache, prefetcher, reader = make(data, executor)
    other = ObjectReader(store, cache, reader.meta, block_size_bytes=BS)  # no read-ahead
    assert bytes(reader.read(0, BS)) + bytes(reader.read(BS, BS)) == data[: 2 * BS]
    assert executor.pending == 1  # block 2 is claimed by a queued part
    store.reset_calls()
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(other.read, 2 * BS, BS)
        wait_until(lambda: cache.stats().joined >= 1, WAIT_S, "the reader to join the part")
        reader.close()
        executor.run_all()
        # The part was dropped unsent; the handle that waited for it fetched the block itself.
        assert waiting.result(WAIT_S) == data[2 * BS : 3 * BS]
    assert gets(store) == [(2 * BS, 3 * BS)]
    stats = prefetcher.stats()
    assert stats.parts_abandoned == 1 and stats.inflight_bytes == 0
    submitted = executor.submitted
    assert bytes(reader.read(3 * BS, BS)) + bytes(reader.read(4 * BS, BS)) == data[3 * BS : 5 * BS]
    assert executor.submitted == submitted
    assert cache.inflight_count == 0


def test_prefetch_off_when_the_cache_could_not_hold_the_window() -> None:
    data = pattern(16 * BS)
    executor = ManualExecutor()
    store, _, _, reader = make(data, executor, capacity=3 * BS)  # a quarter is under one block
    for offset in range(0, len(data), BS):
        assert reader.read(offset, BS) == data[offset : offset + BS]
    assert executor.submitted == 0
    assert len(gets(store)) == 16


def test_prefetch_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        PrefetchConfig(part_size_bytes=0)
    with pytest.raises(ValueError):
        PrefetchConfig(initial_window_bytes=2 << 20, max_window_bytes=1 << 20)
    with pytest.raises(ValueError):
        PrefetchConfig(max_inflight_bytes=-1)


def test_prefetch_filesystem_release_stops_read_ahead() -> None:
    store = FakeStore()
    data = pattern(16 * BS)
    store.put("f.bin", data)
    executor = ManualExecutor()
    prefetcher = Prefetcher(executor, CONFIG)
    fs = Filesystem(
        Namespace(store, metadata_ttl_s=60.0),
        store,
        BlockCache(1 << 20),
        FsConfig(uid=0, gid=0, block_size_bytes=BS),
        mount_time_ns=0,
        prefetcher=prefetcher,
    )
    fh = fs.open("/f.bin", os.O_RDONLY)
    assert bytes(fs.read(fh, 0, BS)) + bytes(fs.read(fh, BS, BS)) == data[: 2 * BS]
    assert executor.pending == 1
    fs.release(fh)
    store.reset_calls()
    executor.run_all()
    assert gets(store) == []
    assert prefetcher.stats().parts_abandoned == 1


def test_prefetch_concurrent_sequential_handles_of_one_object_fetch_each_block_once() -> None:
    store = FakeStore()
    data = pattern(200 * BS + 7)
    meta = store.put("a.bin", data)
    cache = BlockCache(1 << 20)
    with ThreadPoolExecutor(max_workers=4) as executor:
        prefetcher = Prefetcher(executor, CONFIG)
        readers = [
            ObjectReader(store, cache, meta, block_size_bytes=BS, read_ahead=prefetcher.attach)
            for _ in range(4)
        ]

        def read_all(reader: ObjectReader) -> bytes:
            out = bytearray()
            while chunk := reader.read(len(out), 5):
                out += chunk
            reader.close()
            return bytes(out)

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(read_all, readers))
    assert results == [data] * 4
    # Single flight across handles and read-ahead: every byte was asked for exactly once.
    assert sum(end - start for start, end in gets(store)) == len(data)
    assert prefetcher.stats().inflight_bytes == 0 and cache.inflight_count == 0


# -- property: any mix of reads returns the object's bytes ----------------------------------------
read_ops = st.lists(
    st.one_of(
        st.tuples(st.just("seq"), st.integers(min_value=1, max_value=80)),
        st.tuples(st.just("at"), st.integers(min_value=0, max_value=700)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(
    block_size=st.integers(min_value=1, max_value=32),
    blocks=st.floats(min_value=0, max_value=20),
    capacity_blocks=st.integers(min_value=0, max_value=64),
    budget_blocks=st.integers(min_value=0, max_value=16),
    spare_blocks=st.integers(min_value=0, max_value=8),
    scale=st.sampled_from([1.0, 0.5, 0.0]),
    units_per_block=st.sampled_from([1, 2, 4]),  # 1: random reads take whole blocks
    max_streams=st.integers(min_value=1, max_value=3),
    ops=read_ops,
)
def test_prefetch_any_read_mix_returns_the_objects_bytes(
    *,
    block_size: int,
    blocks: float,
    capacity_blocks: int,
    budget_blocks: int,
    spare_blocks: int,
    scale: float,
    units_per_block: int,
    max_streams: int,
    ops: list[tuple[str, int]],
) -> None:
    block_size *= units_per_block
    unit = block_size // units_per_block
    data = pattern(int(block_size * blocks))
    store = FakeStore()
    meta = store.put("a.bin", data)
    capacity = capacity_blocks * block_size
    cache = BlockCache(capacity, total_bytes=capacity + spare_blocks * block_size)
    config = PrefetchConfig(
        part_size_bytes=3 * block_size,
        initial_window_bytes=block_size,
        max_window_bytes=8 * block_size,
        max_inflight_bytes=budget_blocks * block_size,
        sequential_slack_bytes=block_size,
        max_streams=max_streams,
        random_unit_bytes=unit,
        random_max_bytes=2 * unit,
    )
    with ThreadPoolExecutor(max_workers=3) as executor:
        prefetcher = Prefetcher(executor, config)
        prefetcher.set_scale(scale)
        reader = ObjectReader(
            store, cache, meta, block_size_bytes=block_size, read_ahead=prefetcher.attach
        )
        position = 0
        for kind, value in ops:
            if kind == "at":
                position = value
                size = 7
            else:
                size = value
            assert reader.read(position, size) == data[position : position + size]
            position += size
        reader.close()
    stats = prefetcher.stats()
    # Every reservation was settled: the read-ahead budget and the cache's account are empty.
    assert stats.inflight_bytes == 0
    assert cache.reserved_bytes == 0
    assert cache.inflight_count == 0
    assert cache.used_bytes <= capacity
    if scale == 0.0:
        assert stats.parts_issued == 0
    for start, end in gets(store):
        assert 0 <= start < end <= len(data)
        assert start % unit == 0
        assert end == len(data) or end % unit == 0


# -- on the local OSS server, through the real store ----------------------------------------------
EMU_BLOCK = 64 << 10
EMU_CONFIG = PrefetchConfig(
    part_size_bytes=2 * EMU_BLOCK,
    initial_window_bytes=EMU_BLOCK,
    max_window_bytes=4 * EMU_BLOCK,
    sequential_slack_bytes=EMU_BLOCK,
)


def emulator_fs(
    emulator: EmulatorServer, executor: Executor
) -> tuple[Filesystem, Prefetcher, OssStore]:
    store = OssStore(
        OssConfig(
            endpoint=emulator.endpoint,
            bucket=BUCKET,
            access_key_id=ACCESS_KEY_ID,
            access_key_secret=ACCESS_KEY_SECRET,
            pool_size=8,
        )
    )
    prefetcher = Prefetcher(executor, EMU_CONFIG)
    fs = Filesystem(
        Namespace(store, metadata_ttl_s=60.0),
        store,
        BlockCache(64 << 20),
        FsConfig(uid=0, gid=0, block_size_bytes=EMU_BLOCK),
        mount_time_ns=0,
        prefetcher=prefetcher,
    )
    return fs, prefetcher, store


def test_prefetch_on_emulator_sequential_read_fetches_every_byte_once(
    emulator: EmulatorServer,
) -> None:
    data = os.urandom(64 * EMU_BLOCK + 1234)
    emulator.put_object(BUCKET, "seq.bin", data)
    with ThreadPoolExecutor(max_workers=4) as executor:
        fs, prefetcher, store = emulator_fs(emulator, executor)
        fh = fs.open("/seq.bin", os.O_RDONLY)
        before = store.stats()
        got = bytearray()
        while chunk := fs.read(fh, len(got), 16 << 10):
            got += chunk
        fs.release(fh)
    assert got == data
    stats = prefetcher.stats()
    assert stats.parts_issued > 0 and stats.parts_failed == 0
    after = store.stats()  # every GET has ended: the executor was shut down (and waited for)
    # Parts and the reader's own GETs never overlap, and nothing past EOF was asked for.
    assert after["bytes_fetched"] - before["bytes_fetched"] == len(data)
    assert after["errors"] == before["errors"]


def test_prefetch_on_emulator_replaced_object_is_stale_never_mixed(
    emulator: EmulatorServer,
) -> None:
    old = os.urandom(64 * EMU_BLOCK)
    emulator.put_object(BUCKET, "v.bin", old)
    with ThreadPoolExecutor(max_workers=4) as executor:
        fs, _, _ = emulator_fs(emulator, executor)
        fh = fs.open("/v.bin", os.O_RDONLY)
        got = bytearray()
        while len(got) < 4 * EMU_BLOCK:
            got += fs.read(fh, len(got), 16 << 10)
        emulator.put_object(BUCKET, "v.bin", os.urandom(64 * EMU_BLOCK))
        # Read-ahead covers at most 4 blocks: the rest must come from the new version.
        with pytest.raises(StaleError):
            while chunk := fs.read(fh, len(got), 16 << 10):
                got += chunk
        fs.release(fh)
    assert got == old[: len(got)]


def test_prefetch_of_a_mount_learns_the_link_from_its_store(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """The mount's wiring: its prefetcher asks the store it reads through how slow the link is."""
    data = os.urandom(4 << 10)
    emulator.put_object(BUCKET, "slow/x.bin", data)
    config = MountConfig(
        location=OssLocation(BUCKET, ""),
        mountpoint=tmp_path,
        endpoint=emulator.endpoint,
        credentials=Credentials(ACCESS_KEY_ID, ACCESS_KEY_SECRET),
    )
    with wiring.build_store(config) as store:
        fs, _, _ = wiring.build_filesystem(config, store)
        prefetcher = fs._prefetcher
        assert isinstance(prefetcher, Prefetcher) and not prefetcher.slow_link
        emulator.faults.update(latency_s=SLOW_FIRST_BYTE_S * 2, key_prefix="slow/")
        for _ in range(LATENCY_SAMPLES):
            assert store.get_range("slow/x.bin", 0, len(data)) == data
        assert prefetcher.slow_link


def test_prefetch_part_keeps_no_block_once_the_cache_let_it_go() -> None:
    """A block a part's GET handed to the cache and the cache dropped (drop-behind, eviction) is
    not kept alive by the GET still running: its memory is free at once, not when the GET ends."""
    data = pattern(32 * BS)
    executor = ManualExecutor()
    store = MidStreamStore(piece_type=Tracked)
    _, cache, _, reader = make(data, executor, store=store)
    for offset in range(0, 5 * BS, BS):
        assert read_waiting(reader, cache, executor, offset, BS) == data[offset : offset + BS]
    etag = reader.meta.etag
    alive: list[bool] = []

    def mid_stream() -> None:
        first = cache.get(("a.bin", etag, 5))
        assert isinstance(first, Tracked)
        watch = weakref.ref(first)
        del first
        cache.discard([("a.bin", etag, 5)])
        gc.collect()
        alive.append(watch() is not None)

    store.mid_stream = mid_stream
    executor.run_all()
    assert alive == [False]


def test_reader_synchronous_fetch_is_reserved_while_it_runs() -> None:
    """A read's own fetch counts its blocks in the cache's account until they are cached."""
    data = pattern(8 * BS)
    store = MidStreamStore()
    meta = store.put("a.bin", data)
    cache = BlockCache(1 << 20, total_bytes=1 << 20)
    reader = ObjectReader(store, cache, meta, block_size_bytes=BS)
    seen: list[int] = []
    store.mid_stream = lambda: seen.append(cache.reserved_bytes)
    assert reader.read(BS + 3, 2 * BS) == data[BS + 3 : 3 * BS + 3]  # blocks 1..3: one GET
    assert seen == [3 * BS]
    assert cache.reserved_bytes == 0 and cache.used_bytes == 3 * BS
