"""Several sequential streams per handle, and random reads that fetch sub-block units.

The pure bookkeeping (`ossfs.read.streams`) and what it makes a handle fetch, counted in the
requests and bytes a `FakeStore` saw (no timing anywhere).
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import Executor
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ossfs.core.errors import RemoteIOError
from ossfs.read.block_cache import BlockCache
from ossfs.read.handle_prefetch import PrefetchConfig
from ossfs.read.prefetch import Prefetcher
from ossfs.read.reader import ObjectReader, unit_key
from ossfs.read.streams import CANDIDATE_SLACK_BYTES, RandomSpan, StreamTable
from tests.support.executors import InlineExecutor, ManualExecutor
from tests.support.fakes import FakeStore
from tests.support.waiting import wait_until
from tests.test_prefetch import BS, gets, pattern, read_ahead_of, read_waiting
from tests.test_prefetch import CONFIG as PREFETCH_CONFIG

UNIT = BS // 4  # random reads fetch units of a quarter block, spans of at most 4 units
CONFIG = replace(PREFETCH_CONFIG, max_streams=4, random_unit_bytes=UNIT, random_max_bytes=BS)


def make(
    data: bytes, executor: Executor, *, config: PrefetchConfig = CONFIG
) -> tuple[FakeStore, BlockCache, Prefetcher, ObjectReader]:
    store = FakeStore()
    meta = store.put("a.bin", data)
    cache = BlockCache(1 << 20)
    prefetcher = Prefetcher(executor, config)
    reader = ObjectReader(store, cache, meta, block_size_bytes=BS, read_ahead=prefetcher.attach)
    store.reset_calls()
    return store, cache, prefetcher, reader


def fetched(store: FakeStore) -> int:
    return sum(end - start for start, end in gets(store))


# -- the stream table -----------------------------------------------------------------------------
def table(max_streams: int = 4) -> StreamTable:
    return StreamTable(
        max_streams, slack_bytes=BS, behind_bytes=2 * BS, block_size=BS, initial_window=1
    )


def read(streams: StreamTable, offset: int, size: int, *, hit: bool = False) -> bool:
    """One read through the table as a handle does it; True if it continued a stream."""
    end = offset + size
    if streams.match(offset, end, offset // BS, (end - 1) // BS, hit=hit) is not None:
        return True
    streams.add(offset, end)
    return False


def test_streams_interleaved_reads_continue_one_stream_each() -> None:
    streams = table()
    results = [
        read(streams, base + pos, BS) for pos in range(0, 8 * BS, BS) for base in (0, 1000 * BS)
    ]
    assert results[:2] == [False, False]  # each region's first read starts a candidate
    assert all(results[2:])
    assert sorted(s.start for s in streams.streams) == [0, 1000 * BS]
    assert all(s.reads == 8 and s.furthest_end == s.start + 8 * BS for s in streams.streams)


def test_streams_random_reads_never_replace_a_confirmed_stream_while_candidates_remain() -> None:
    streams = table(max_streams=3)
    for base in (0, 1000 * BS):
        read(streams, base, BS)
        read(streams, base + BS, BS)
    rng = random.Random(7)
    for _ in range(50):
        read(streams, rng.randrange(3000, 9000) * BS, 4)
    confirmed = sorted(s.start for s in streams.streams if s.confirmed)
    assert confirmed == [0, 1000 * BS]
    assert len(streams.streams) == 3


def test_streams_full_of_confirmed_streams_replaces_the_least_recently_used() -> None:
    streams = table(max_streams=2)
    for base in (0, 1000 * BS):
        read(streams, base, BS)
        read(streams, base + BS, BS)
    read(streams, 2 * BS, BS)  # the stream at 0 is now the most recently used
    evicted = streams.add(5000 * BS, 5000 * BS + 4)
    assert evicted is not None and evicted.start == 1000 * BS


def test_streams_a_candidate_is_confirmed_only_by_a_read_right_after_it() -> None:
    streams = table()
    read(streams, 100 * BS, 4)
    assert not read(streams, 100 * BS, 4)  # the same offset again: not after its end
    assert not read(streams, 100 * BS + 4 + min(BS, CANDIDATE_SLACK_BYTES) + 1, 4)
    assert read(streams, 100 * BS + 4, 4)


def test_streams_a_read_behind_a_stream_continues_it_only_if_it_needs_no_fetch() -> None:
    streams = table()
    for pos in range(0, 6 * BS, BS):
        read(streams, pos, BS)
    (stream,) = [s for s in streams.streams if s.confirmed]
    assert not read(streams, 4 * BS + 3, 4)  # behind, a miss: random
    assert read(streams, 4 * BS + 3, 4, hit=True)  # behind, cached: the stream's own
    stream.unread[5] = BS
    assert read(streams, 5 * BS + 1, 4)  # behind, read-ahead of the stream
    assert stream.furthest_end == 6 * BS


# -- the random span ------------------------------------------------------------------------------
def test_random_span_sparse_uniform_reads_fetch_one_unit() -> None:
    span = RandomSpan(UNIT, 4, 1 << 30)
    rng = random.Random(3)
    for _ in range(200):
        offset = rng.randrange(0, (1 << 30) // UNIT) * UNIT + 1
        lo, hi = span.plan(offset, offset + 2)
        assert (lo, hi) == (offset - 1, offset - 1 + UNIT)
    assert span.span_bytes == UNIT


def test_random_span_grows_to_the_cap_when_reads_come_back_and_shrinks_when_they_stop() -> None:
    span = RandomSpan(UNIT, 4, 1 << 20)
    sizes = []
    near = [step * UNIT + 1 for step in (0, 1, 2, 3, 0, 2)]  # one group of 4 units
    for offset in (*near, 1000 * UNIT, 2000 * UNIT, 3000 * UNIT):
        lo, hi = span.plan(offset, offset + 1)
        sizes.append(hi - lo)
    grown = [UNIT, 2 * UNIT, 4 * UNIT, 4 * UNIT, 4 * UNIT, 4 * UNIT]
    assert sizes == [*grown, 2 * UNIT, UNIT, UNIT]


@settings(max_examples=200, deadline=None)
@given(
    unit=st.integers(min_value=1, max_value=64),
    max_units=st.integers(min_value=1, max_value=8),
    size=st.integers(min_value=1, max_value=5000),
    reads=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 300)), max_size=30),
)
def test_random_span_always_covers_the_read_aligned_and_bounded(
    unit: int, max_units: int, size: int, reads: list[tuple[float, int]]
) -> None:
    span = RandomSpan(unit, max_units, size)
    for where, length in reads:
        offset = int(where * size)
        end = min(offset + length, size)
        lo, hi = span.plan(offset, end)
        assert lo <= offset < end <= hi <= size
        assert lo % unit == 0 and (hi % unit == 0 or hi == size)
        # At most the span cap, or the read's own units when it is larger.
        own = -(-end // unit) * unit - offset // unit * unit
        assert hi - lo <= max(max_units * unit, own)


# -- a handle's random reads ----------------------------------------------------------------------
def test_random_reads_fetch_small_aligned_units_not_blocks() -> None:
    data = pattern(400 * BS)
    executor = ManualExecutor()
    store, cache, prefetcher, reader = make(data, executor)
    rng = random.Random(11)
    offsets = [rng.randrange(0, len(data) - 4) for _ in range(100)]
    # None in the first read's block: its fetch, queued here, would be joined (waited for).
    offsets[1:] = [o for o in offsets[1:] if o // BS != offsets[0] // BS]
    for offset in offsets:
        assert reader.read(offset, 4) == data[offset : offset + 4]
    requested = gets(store)
    # Every GET of a read is a few aligned units, the handle's first read's too.
    assert all(start % UNIT == 0 and end - start <= 4 * UNIT for start, end in requested)
    assert fetched(store) <= 100 * 2 * UNIT  # sparse: mostly one unit, never a block
    # The first read's block is fetched beside it, as one part; nothing else is read ahead.
    assert prefetcher.stats().parts_issued == 1
    executor.run_all()
    first_block = offsets[0] // BS * BS
    assert gets(store)[len(requested) :] == [(first_block, first_block + BS)]
    # Units live in the cache's one account, beside the blocks, and go with the version.
    assert cache.used_bytes == fetched(store)
    cache.discard_object("a.bin", reader.meta.etag)
    assert cache.used_bytes == 0


def test_random_reads_with_locality_fetch_more_units_per_get_and_none_twice() -> None:
    data = pattern(400 * BS)
    # A slack of 1 byte: reads a unit apart are random, not a stream going forward.
    config = PrefetchConfig(
        initial_window_bytes=BS,
        max_window_bytes=8 * BS,
        sequential_slack_bytes=1,
        reorder_bytes=2 * BS,
        random_unit_bytes=UNIT,
        random_max_bytes=4 * UNIT,
    )
    store, _, _, reader = make(data, ManualExecutor(), config=config)
    reader.read(0, 4)
    store.reset_calls()
    # Reads that keep coming back to three neighbourhoods of 4 units each.
    for base in (100 * BS, 300 * BS, 200 * BS):
        for step in (3, 0, 2, 1, 3, 0):
            offset = base + step * UNIT + 1
            assert reader.read(offset, 2) == data[offset : offset + 2]
    sizes = [end - start for start, end in gets(store)]
    assert sizes[0] == UNIT  # a first read in a neighbourhood: one unit, not its block
    assert max(sizes) > UNIT and all(size <= 4 * UNIT for size in sizes)  # the span grew
    assert len(sizes) < 3 * 4  # fewer GETs than units touched
    assert fetched(store) == 3 * 4 * UNIT  # and no unit fetched twice


def test_random_read_of_cached_units_fetches_nothing() -> None:
    data = pattern(400 * BS)
    store, _, _, reader = make(data, ManualExecutor())
    reader.read(0, 4)
    reader.read(200 * BS + 3, 4)
    store.reset_calls()
    assert reader.read(200 * BS + 2, 3) == data[200 * BS + 2 : 200 * BS + 5]
    assert gets(store) == []


def test_random_read_across_units_and_blocks_returns_exact_bytes() -> None:
    data = pattern(400 * BS)
    store, _, _, reader = make(data, ManualExecutor())
    reader.read(0, 4)
    offset = 200 * BS - 5  # across a unit and a block boundary
    assert reader.read(offset, 3 * UNIT) == data[offset : offset + 3 * UNIT]
    # Its own units, in one GET across the block boundary (not the two blocks).
    assert gets(store)[1:] == [(200 * BS - 2 * UNIT, 200 * BS + 2 * UNIT)]


def test_random_read_in_a_block_another_reader_is_fetching_joins_it_instead_of_units() -> None:
    """A read that looks random to its handle (a second reader of a file that ``ossfs preload``
    or another process is reading ahead of it) waits for the block in flight: its bytes come
    from that one fetch, not again as units."""
    data = pattern(400 * BS)
    store, cache, _, reader = make(data, ManualExecutor())
    reader.read(0, 4)
    store.reset_calls()
    key = (reader.meta.key, reader.meta.etag, 200)
    assert cache.claim([key]) == [key]  # another handle's read-ahead is fetching block 200
    assert cache.fetching(key) and not cache.contains(key)
    offset = 200 * BS + 2 * UNIT + 1
    result: list[bytes] = []
    waiter = threading.Thread(target=lambda: result.append(bytes(reader.read(offset, 2))))
    waiter.start()
    wait_until(lambda: cache.stats().joined > 0 or not waiter.is_alive(), 10, "the read to join")
    cache.fill([key], [data[200 * BS : 201 * BS]])
    waiter.join(10)
    assert result == [data[offset : offset + 2]]
    assert gets(store) == []  # the read sent nothing of its own
    assert not cache.fetching(key)
    # A random read in a block nobody fetches still takes units.
    offset = 300 * BS + 1
    assert reader.read(offset, 2) == data[offset : offset + 2]
    assert [end - start for start, end in gets(store)] == [UNIT]


def test_random_read_just_past_a_block_another_reader_has_takes_its_block_whole() -> None:
    """Two readers of one file: each handle sees reads at the holes the other left in the
    shared page cache. A read that looks random next to a block another reader has (cached or
    in flight) takes its own block whole, the block that reader's read-ahead wants next."""
    data = pattern(400 * BS)
    store, cache, _, reader = make(data, ManualExecutor())
    other = ObjectReader(store, cache, reader.meta, block_size_bytes=BS)
    reader.read(0, 4)
    other.read(200 * BS, 4)  # another handle streams through block 200
    store.reset_calls()
    offset = 201 * BS + 2 * UNIT + 1
    assert reader.read(offset, 2) == data[offset : offset + 2]
    assert gets(store) == [(201 * BS, 202 * BS)]  # its block, not a unit
    store.reset_calls()
    offset = 300 * BS + 2 * UNIT + 1  # nobody near: a unit
    assert reader.read(offset, 2) == data[offset : offset + 2]
    assert [end - start for start, end in gets(store)] == [UNIT]


def test_random_read_of_a_short_last_block_takes_it_as_a_block() -> None:
    """The object's last block is shorter than a unit: its span is the whole block, so it is
    cached as the block (what the disk cache keeps, and what a later reader looks up)."""
    data = pattern(400 * BS + 3)
    store, cache, _, reader = make(data, ManualExecutor())
    reader.read(0, 4)
    store.reset_calls()
    assert reader.read(400 * BS + 1, 2) == data[400 * BS + 1 : 400 * BS + 3]
    assert gets(store) == [(400 * BS, 400 * BS + 3)]
    key, etag = reader.meta.key, reader.meta.etag
    assert cache.contains((key, etag, 400))
    assert not cache.contains(unit_key(key, etag, 400 * BS // UNIT))


def test_random_read_of_a_unit_that_fails_raises_caches_nothing_and_is_fetched_again() -> None:
    data = pattern(400 * BS)
    executor = ManualExecutor()
    store, cache, _, reader = make(data, executor)
    reader.read(0, 4)
    executor.run_all()  # the first read's block, fetched beside it
    failing = {"left": 1}
    real_get = store.get_range

    def flaky(key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        if failing["left"]:
            failing["left"] -= 1
            raise RemoteIOError("boom")
        return real_get(key, start, end, etag=etag)

    store.get_range = flaky  # type: ignore[method-assign]
    used = cache.used_bytes
    try:
        reader.read(150 * BS + 1, 4)
    except RemoteIOError:
        pass
    else:  # pragma: no cover - the assertion below says what went wrong
        raise AssertionError("the failed GET did not reach the reader")
    assert cache.used_bytes == used and cache.inflight_count == 0 and cache.reserved_bytes == 0
    assert reader.read(150 * BS + 1, 4) == data[150 * BS + 1 : 150 * BS + 5]


def test_random_reads_off_when_the_unit_does_not_divide_the_block() -> None:
    data = pattern(400 * BS)
    config = PrefetchConfig(
        initial_window_bytes=BS, max_window_bytes=8 * BS, random_unit_bytes=3 * UNIT
    )
    store, _, _, reader = make(data, ManualExecutor(), config=config)
    for offset in (10 * BS + 1, 300 * BS + 7, 150 * BS):
        assert reader.read(offset, 4) == data[offset : offset + 4]
    assert gets(store) == [(b * BS, (b + 1) * BS) for b in (10, 300, 150)]
    assert read_ahead_of(reader).unit_bytes == 0


def test_random_read_of_the_first_unit_alone_never_asks_a_one_piece_body() -> None:
    # [0, unit) in one piece of unit bytes is what a small object's whole GET looks like.
    data = pattern(400 * BS)
    store, _, _, reader = make(data, ManualExecutor())
    reader.read(200 * BS, 4)
    store.reset_calls()
    assert reader.read(1, 2) == data[1:3]
    assert gets(store) == [(0, 2 * UNIT)]


def test_unit_keys_never_meet_block_keys() -> None:
    assert {unit_key("k", "e", u)[2] for u in range(100)}.isdisjoint(range(100))


# -- several streams on one handle ----------------------------------------------------------------
def test_two_interleaved_streams_each_get_read_ahead_and_fetch_every_byte_once() -> None:
    data = pattern(128 * BS)
    store, _, prefetcher, reader = make(data, InlineExecutor())
    handle = read_ahead_of(reader)
    half = len(data) // 2
    for pos in range(0, half, BS):
        for base in (0, half):
            assert reader.read(base + pos, BS) == data[base + pos : base + pos + BS]
    requested = gets(store)
    # Every byte fetched once; all but each stream's first two reads' came from read-ahead.
    assert len(set(requested)) == len(requested)
    assert sum(end - start for start, end in requested) == len(data)
    stats = prefetcher.stats()
    assert stats.bytes_prefetched == len(data) - 4 * BS
    assert stats.window_resets == 0 and stats.bytes_unused == 0
    assert len(handle.stream_windows) == 2


def test_two_streams_windows_grow_apart_and_a_random_read_resets_neither() -> None:
    data = pattern(256 * BS)
    executor = ManualExecutor()
    store, cache, prefetcher, reader = make(data, executor)
    handle = read_ahead_of(reader)
    half = len(data) // 2
    for pos in range(0, 16 * BS, BS):
        for base in (0, half):
            read_waiting(reader, cache, executor, base + pos, BS)
    windows = handle.stream_windows
    assert len(windows) == 2 and min(windows) > BS  # both grew past the initial window
    executor.run_all()
    issued = executor.submitted
    offset = 100 * BS + 5  # a third, random read between them
    assert reader.read(offset, 4) == data[offset : offset + 4]
    assert sorted(handle.stream_windows)[1:] == sorted(windows)
    assert executor.submitted == issued
    # Both streams go on without a reset: their next reads are covered by read-ahead.
    store.reset_calls()
    for base in (0, half):
        assert reader.read(base + 16 * BS, BS) == data[base + 16 * BS : base + 17 * BS]
        executor.run_all()
    assert all(start > 16 * BS for start, _ in gets(store) if start < half)
    assert all(start > half + 16 * BS for start, _ in gets(store) if start >= half)
    assert prefetcher.stats().window_resets == 0


def test_one_stream_table_alternating_streams_thrash_as_before() -> None:
    # The control: with one stream per handle, two interleaved streams never get read-ahead.
    data = pattern(128 * BS)
    config = PrefetchConfig(
        part_size_bytes=4 * BS,
        initial_window_bytes=BS,
        max_window_bytes=8 * BS,
        sequential_slack_bytes=BS,
        reorder_bytes=2 * BS,
        max_streams=1,
        random_unit_bytes=UNIT,
    )
    _, _, prefetcher, reader = make(data, InlineExecutor(), config=config)
    half = len(data) // 2
    for pos in range(0, half, BS):
        for base in (0, half):
            reader.read(base + pos, BS)
    assert prefetcher.stats().parts_issued == 0


def test_sequential_reader_with_units_on_fetches_only_whole_blocks_after_its_first_read() -> None:
    data = pattern(64 * BS + 5)
    store, _, prefetcher, reader = make(data, InlineExecutor())
    for offset in range(0, len(data), BS // 4):
        assert reader.read(offset, BS // 4) == data[offset : offset + BS // 4]
    requested = gets(store)
    # The first read's own units (unit 0 comes with unit 1; here after block 0, which the
    # inline executor fetched at once), then whole blocks only: every byte once.
    assert requested[1] == (0, 2 * UNIT)
    blocks = requested[:1] + requested[2:]
    assert all(start % BS == 0 for start, _ in blocks)
    assert all(end % BS == 0 or end == len(data) for _, end in blocks)
    assert sum(end - start for start, end in blocks) == len(data)
    assert prefetcher.stats().window_resets == 0


# -- a handle's first read ------------------------------------------------------------------------
MIB = 1 << 20
DEFAULTS = PrefetchConfig()  # the mount's: units of 64 KiB, spans of at most 256 KiB


def make_default(
    size: int,
    executor: Executor,
    *,
    config: PrefetchConfig = DEFAULTS,
    first_byte_s: float | None = None,
) -> tuple[FakeStore, bytes, ObjectReader]:
    """A reader of ``size`` random bytes with the mount's block size and read-ahead defaults
    (``first_byte_s``: what the link is known to take to a GET's first byte)."""
    data = random.Random(size).randbytes(size)
    store = FakeStore()
    meta = store.put("big.bin", data)
    prefetcher = Prefetcher(executor, config, first_byte_s=lambda: first_byte_s)
    reader = ObjectReader(
        store, BlockCache(64 * MIB), meta, block_size_bytes=MIB, read_ahead=prefetcher.attach
    )
    store.reset_calls()
    return store, data, reader


def test_first_small_read_of_a_large_object_fetches_a_unit_and_its_block_beside_it() -> None:
    unit = DEFAULTS.random_unit_bytes
    for offset, want in ((3 * MIB + 5, (3 * MIB, 3 * MIB + unit)), (1, (0, 2 * unit))):
        executor = ManualExecutor()
        store, data, reader = make_default(8 * MIB, executor)
        assert reader.read(offset, 1) == data[offset : offset + 1]
        # The read waited for a unit (unit 0 comes with unit 1), not for its 1 MiB block ...
        assert gets(store) == [want]
        # ... whose fetch was queued beside it, and is the next read's.
        block = offset // MIB * MIB
        assert executor.pending == 1
        executor.run_all()
        assert gets(store) == [want, (block, block + MIB)]
        store.reset_calls()
        assert reader.read(offset + 1, 4096) == data[offset + 1 : offset + 4097]
        assert gets(store) == []


def test_first_small_read_takes_units_whatever_the_link() -> None:
    # A unit's GET answers sooner than a block's, on a fast link as on a slow one.
    for latency in (0.001, 0.02, None):
        store, data, reader = make_default(8 * MIB, ManualExecutor(), first_byte_s=latency)
        assert reader.read(3 * MIB + 5, 1) == data[3 * MIB + 5 : 3 * MIB + 6]
        assert gets(store) == [(3 * MIB, 3 * MIB + DEFAULTS.random_unit_bytes)]


def test_first_large_read_and_a_small_objects_first_read_take_whole_blocks() -> None:
    # A first read larger than a unit (cat's 128 KiB) takes its block, as any read.
    store, data, reader = make_default(8 * MIB, ManualExecutor())
    assert reader.read(0, 128 << 10) == data[: 128 << 10]
    assert gets(store) == [(0, MIB)]
    # An object of one block: its first read, however small, takes the whole object.
    for size in (MIB, 100 << 10):
        store, data, reader = make_default(size, ManualExecutor())
        assert reader.read(5, 4096) == data[5:4101]
        assert gets(store) == [(0, size)]


def test_sequential_small_reads_cost_at_most_one_get_more_than_whole_first_blocks() -> None:
    # A sequential reader whose first read is small (the kernel's first readahead of a small
    # read is 16 KiB) reads the whole object, its block 0 fetched once, waited for in flight.
    size, step = 5 * MIB + 123, 16 << 10
    executor = ManualExecutor()
    store, data, reader = make_default(size, executor)
    cache = reader.cache
    for offset in range(0, size, step):
        got = read_waiting(reader, cache, executor, offset, step)
        assert got == data[offset : offset + step]
    executor.run_all()
    requested = gets(store)
    assert requested[0] == (0, 2 * DEFAULTS.random_unit_bytes)  # the first read's units
    # Then whole blocks, each once: every byte of the object, block 0 included.
    assert sorted(requested[1:]) == sorted(set(requested[1:]))
    assert sum(end - start for start, end in requested[1:]) == size
    assert all(start % MIB == 0 for start, _ in requested[1:])
    # The same reads with the first read taking its block: exactly one GET fewer.
    executor = ManualExecutor()
    before, _, reader = make_default(size, executor)
    reader.read(0, MIB)  # the first read takes whole blocks when it is a block long
    for offset in range(step, size, step):
        read_waiting(reader, reader.cache, executor, offset, step)
    executor.run_all()
    assert len(requested) <= len(gets(before)) + 1
