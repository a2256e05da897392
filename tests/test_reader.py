from __future__ import annotations

import errno
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ossfs.core.errors import IntegrityError, OssfsError, RemoteIOError, StaleError
from ossfs.core.object_store import ObjectMeta
from ossfs.read.block_cache import BlockCache
from ossfs.read.reader import ObjectReader, block_bounds, block_range
from tests.support.fakes import FakeStore
from tests.support.faulty_store import FaultyStore
from tests.support.waiting import wait_until

BS = 16  # block size of the example-based tests
WAIT_S = 10.0


def pattern(size: int) -> bytes:
    """Distinct-looking bytes, so a misplaced slice shows up."""
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


def make_reader(
    data: bytes, *, block_size: int = BS, capacity: int = 1 << 20, key: str = "a.bin"
) -> tuple[FakeStore, BlockCache, ObjectReader]:
    store = FakeStore()
    meta = store.put(key, data)
    cache = BlockCache(capacity)
    return store, cache, ObjectReader(store, cache, meta, block_size_bytes=block_size)


# -- block math -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offset", "size", "object_size", "expected"),
    [
        (0, 16, 100, range(1)),
        (0, 17, 100, range(2)),
        (15, 2, 100, range(2)),
        (16, 16, 100, range(1, 2)),
        (90, 100, 100, range(5, 7)),
        (99, 1, 100, range(6, 7)),
        (100, 1, 100, range(0)),
        (0, 0, 100, range(0)),
        (0, -1, 100, range(0)),
        (0, 10, 0, range(0)),
    ],
)
def test_block_range_examples(offset: int, size: int, object_size: int, expected: range) -> None:
    assert block_range(offset, size, BS, object_size) == expected


def test_block_bounds_examples() -> None:
    assert block_bounds(0, BS, 100) == (0, 16)
    assert block_bounds(5, BS, 100) == (80, 96)
    assert block_bounds(6, BS, 100) == (96, 100)
    assert block_bounds(0, BS, 1) == (0, 1)


@pytest.mark.parametrize(("index", "object_size"), [(-1, 100), (7, 100), (0, 0), (1, 16)])
def test_block_bounds_outside_object_rejected(index: int, object_size: int) -> None:
    with pytest.raises(ValueError):
        block_bounds(index, BS, object_size)


def test_block_math_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        block_range(-1, 10, BS, 100)
    with pytest.raises(ValueError):
        block_range(0, 10, 0, 100)
    with pytest.raises(ValueError):
        block_bounds(0, 0, 100)


@given(
    offset=st.integers(min_value=0, max_value=400),
    size=st.integers(min_value=-2, max_value=400),
    block_size=st.integers(min_value=1, max_value=64),
    object_size=st.integers(min_value=0, max_value=300),
)
def test_block_range_blocks_cover_exactly_the_requested_bytes(
    offset: int, size: int, block_size: int, object_size: int
) -> None:
    indices = block_range(offset, size, block_size, object_size)
    wanted = range(offset, min(offset + size, object_size))
    if len(wanted) == 0:
        assert len(indices) == 0
        return
    bounds = [block_bounds(i, block_size, object_size) for i in indices]
    # Contiguous, each block overlaps the request, and together they cover it.
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert bounds[0][0] <= wanted.start < bounds[0][1]
    assert bounds[-1][0] < wanted.stop <= bounds[-1][1]
    assert all(0 < end - start <= block_size for start, end in bounds)


# -- reader: requests -----------------------------------------------------------------------------
def test_reader_small_object_costs_one_get() -> None:
    data = pattern(10)
    store, _, reader = make_reader(data)
    assert reader.read(0, 4096) == data
    assert reader.read(3, 4) == data[3:7]
    assert store.calls == [("get_range", "a.bin", 0, 10)]


def test_reader_no_request_at_or_past_eof_or_for_empty_reads() -> None:
    store, _, reader = make_reader(pattern(40))
    store.reset_calls()
    assert reader.read(40, 10) == b""
    assert reader.read(1000, 10) == b""
    assert reader.read(0, 0) == b""
    assert reader.read(5, -1) == b""
    assert store.calls == []


def test_reader_zero_byte_object_never_requests() -> None:
    store, _, reader = make_reader(b"")
    store.reset_calls()
    assert reader.read(0, 4096) == b""
    assert store.calls == []


def test_reader_second_read_of_block_is_a_hit() -> None:
    data = pattern(100)
    store, cache, reader = make_reader(data)
    store.reset_calls()
    assert reader.read(20, 5) == data[20:25]
    assert reader.read(16, 16) == data[16:32]
    assert reader.read(30, 2) == data[30:32]
    assert store.calls == [("get_range", "a.bin", 16, 32)]
    assert cache.stats().hits == 2


def test_reader_multi_block_read_fetches_union_once() -> None:
    data = pattern(100)
    store, _, reader = make_reader(data)
    store.reset_calls()
    assert reader.read(10, 80) == data[10:90]
    assert store.calls == [("get_range", "a.bin", 0, 96)]
    # Every block of the union went into the cache.
    for start in range(0, 96, BS):
        assert reader.read(start, BS) == data[start : start + BS]
    assert store.calls == [("get_range", "a.bin", 0, 96)]


def test_reader_read_parts_hands_a_read_across_blocks_as_views_in_order() -> None:
    data = pattern(100)
    _, cache, reader = make_reader(data)
    parts = reader.read_parts(10, 40)  # blocks 0 to 3: [10, 16), [16, 32), [32, 48), [48, 50)
    assert isinstance(parts, list)
    assert [len(part) for part in parts] == [6, 16, 16, 2]
    assert all(isinstance(part, memoryview) for part in parts)
    assert b"".join(parts) == data[10:50]
    # Views of the cached blocks themselves, not copies.
    block = cache.get(("a.bin", reader.meta.etag, 1))
    assert block is not None
    assert parts[1].obj is block
    # Inside one block: one bytes-like object.
    single = reader.read_parts(17, 10)
    assert not isinstance(single, list)
    assert bytes(single) == data[17:27]


def test_reader_multi_block_read_fetches_only_missing_runs() -> None:
    data = pattern(100)
    store, _, reader = make_reader(data)
    store.reset_calls()
    assert reader.read(35, 1) == data[35:36]  # caches block 2
    assert reader.read(0, 100) == data
    assert store.calls == [
        ("get_range", "a.bin", 32, 48),
        ("get_range", "a.bin", 0, 32),
        ("get_range", "a.bin", 48, 100),
    ]


def test_reader_last_short_block() -> None:
    data = pattern(40)
    store, _, reader = make_reader(data)
    store.reset_calls()
    assert reader.read(33, 100) == data[33:]
    assert store.calls == [("get_range", "a.bin", 32, 40)]


def test_reader_replaced_object_raises_stale_never_mixes() -> None:
    old = pattern(64)
    store, _, reader = make_reader(old)
    assert reader.read(0, 16) == old[:16]
    store.put("a.bin", bytes(64))  # a new version with a new etag
    store.reset_calls()
    # Cached blocks of the pinned version are still its bytes; a new block is refused.
    assert reader.read(0, 16) == old[:16]
    with pytest.raises(StaleError):
        reader.read(0, 32)
    with pytest.raises(StaleError):
        reader.read(40, 4)
    assert store.calls == [("get_range", "a.bin", 16, 32), ("get_range", "a.bin", 32, 48)]


def test_reader_new_version_does_not_hit_old_blocks() -> None:
    store, cache, reader = make_reader(pattern(32))
    assert reader.read(0, 32) == pattern(32)
    new_meta = store.put("a.bin", b"N" * 32)
    store.reset_calls()
    fresh = ObjectReader(store, cache, new_meta, block_size_bytes=BS)
    assert fresh.read(0, 32) == b"N" * 32
    assert store.calls == [("get_range", "a.bin", 0, 32)]


class BodyChangingStore(FakeStore):
    """Returns ``delta`` bytes fewer (or more) than asked for."""

    def __init__(self, delta: int) -> None:
        super().__init__()
        self.delta = delta

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        body = super().get_range(key, start, end, etag=etag)
        return body[: len(body) + self.delta] if self.delta < 0 else body + b"x" * self.delta


@pytest.mark.parametrize("delta", [-1, 1])
def test_reader_wrong_body_length_raises_integrity_error_and_caches_nothing(delta: int) -> None:
    store = BodyChangingStore(delta)
    meta = store.put("a.bin", pattern(40))
    cache = BlockCache(1 << 20)
    reader = ObjectReader(store, cache, meta, block_size_bytes=BS)
    with pytest.raises(IntegrityError):
        reader.read(0, 5)
    with pytest.raises(IntegrityError):
        reader.read(10, 20)
    assert cache.used_bytes == 0
    assert store.count("get_range") == 2


def test_reader_rejects_bad_arguments() -> None:
    store, cache, reader = make_reader(pattern(10))
    with pytest.raises(ValueError):
        reader.read(-1, 5)
    with pytest.raises(ValueError):
        ObjectReader(store, cache, reader.meta, block_size_bytes=0)


class GatedStore(FakeStore):
    """Holds every get_range until ``release`` is set, signalling ``started`` first."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        self.started.set()
        assert self.release.wait(WAIT_S)
        return super().get_range(key, start, end, etag=etag)


def test_reader_concurrent_reads_of_one_block_share_one_get() -> None:
    store = GatedStore()
    data = pattern(40)
    meta = store.put("a.bin", data)
    cache = BlockCache(1 << 20)
    readers = [ObjectReader(store, cache, meta, block_size_bytes=BS) for _ in range(3)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(readers[0].read, 0, 8)
        assert store.started.wait(WAIT_S)
        others = [pool.submit(r.read, 4, 8) for r in readers[1:]]
        wait_until(lambda: cache.stats().joined >= 2, WAIT_S, "2 readers to join the GET")
        store.release.set()
        assert first.result(WAIT_S) == data[:8]
        assert [f.result(WAIT_S) for f in others] == [data[4:12]] * 2
    assert store.calls == [("get_range", "a.bin", 0, 16)]


# -- reader: properties ---------------------------------------------------------------------------
def check_reads(data: bytes, block_size: int, capacity: int, reads: list[tuple[int, int]]) -> None:
    store, cache, reader = make_reader(data, block_size=block_size, capacity=capacity)
    store.reset_calls()
    for offset, size in reads:
        expected = data[offset : offset + size] if size > 0 else b""
        assert reader.read(offset, size) == expected
        assert cache.used_bytes <= capacity
    # Every request is block-aligned, inside the object and never empty.
    for call in store.calls:
        _, key, start, end = call
        assert key == "a.bin"
        assert isinstance(start, int)
        assert isinstance(end, int)
        assert start % block_size == 0
        assert end == len(data) or end % block_size == 0
        assert 0 <= start < end <= len(data)
    if not data:
        assert store.calls == []


reads_strategy = st.lists(
    st.tuples(st.integers(min_value=0, max_value=400), st.integers(min_value=-1, max_value=400)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200)
@given(
    block_size=st.integers(min_value=1, max_value=64),
    blocks=st.floats(min_value=0, max_value=5),
    reads=reads_strategy,
)
def test_reader_reads_equal_slices(
    block_size: int, blocks: float, reads: list[tuple[int, int]]
) -> None:
    data = pattern(int(block_size * blocks))
    check_reads(data, block_size, 1 << 20, reads)


@settings(max_examples=200)
@given(
    block_size=st.integers(min_value=1, max_value=64),
    blocks=st.floats(min_value=0, max_value=5),
    capacity=st.integers(min_value=0, max_value=100),
    reads=reads_strategy,
)
def test_reader_reads_equal_slices_under_eviction(
    block_size: int, blocks: float, capacity: int, reads: list[tuple[int, int]]
) -> None:
    data = pattern(int(block_size * blocks))
    check_reads(data, block_size, capacity, reads)


def test_reader_meta_is_the_pinned_version() -> None:
    _, _, reader = make_reader(pattern(3))
    assert isinstance(reader.meta, ObjectMeta)
    assert reader.meta.size == 3
    assert reader.block_size_bytes == BS


# -- reader: the read-ahead hook ------------------------------------------------------------------
class RecordingReadAhead:
    """A `ReadAhead` that records what the reader told it."""

    def __init__(self, reader: ObjectReader) -> None:
        self.reader = reader
        self.reads: list[tuple[int, int, int, int, bool]] = []
        self.closed = 0

    @property
    def unit_bytes(self) -> int:
        return 0

    def on_read(
        self, offset: int, end: int, first: int, last: int, *, hit: bool
    ) -> tuple[int, int] | None:
        self.reads.append((offset, end, first, last, hit))
        return None

    def close(self) -> None:
        self.closed += 1


def test_reader_tells_read_ahead_about_each_read_before_serving_it() -> None:
    store = FakeStore()
    data = pattern(100)
    meta = store.put("a.bin", data)
    cache = BlockCache(1 << 20)
    reader = ObjectReader(store, cache, meta, block_size_bytes=BS, read_ahead=RecordingReadAhead)
    hook = reader.read_ahead
    assert isinstance(hook, RecordingReadAhead) and hook.reader is reader
    assert reader.read(20, 5) == data[20:25]  # block 1: a miss
    assert reader.read(16, 4) == data[16:20]  # block 1 again: a hit
    assert reader.read(10, 30) == data[10:40]  # blocks 0..2, two of them missing
    assert reader.read(0, 48) == data[:48]  # blocks 0..2, all cached now
    assert reader.read(95, 50) == data[95:]  # clipped at EOF
    assert reader.read(100, 5) == b"" and reader.read(3, 0) == b""  # nothing to tell
    assert hook.reads == [
        (20, 25, 1, 1, False),
        (16, 20, 1, 1, True),
        (10, 40, 0, 2, False),
        (0, 48, 0, 2, True),
        (95, 100, 5, 6, False),
    ]
    reader.close()
    assert hook.closed == 1


def test_reader_fetch_blocks_is_one_exact_get_without_the_cache() -> None:
    store, cache, reader = make_reader(pattern(40))
    store.reset_calls()
    assert reader.fetch_blocks(1, 2) == [pattern(40)[16:32], pattern(40)[32:40]]
    assert store.calls == [("get_range", "a.bin", 16, 40)]
    assert cache.used_bytes == 0
    reader.close()  # no read-ahead: nothing to stop


# -- reader: whole-object CRC check ---------------------------------------------------------------
class CorruptingStore(FakeStore):
    """Flips one byte of every body that covers ``bad_offset``; metadata keeps the true CRC."""

    def __init__(self, bad_offset: int) -> None:
        super().__init__()
        self.bad_offset = bad_offset

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        body = super().get_range(key, start, end, etag=etag)
        if start <= self.bad_offset < end:
            flipped = bytearray(body)
            flipped[self.bad_offset - start] ^= 0x40
            return bytes(flipped)
        return body


def test_reader_whole_read_with_corrupt_bytes_fails_integrity_and_stays_failed() -> None:
    store = CorruptingStore(bad_offset=2 * BS + 3)
    data = pattern(5 * BS)
    meta = store.put("a.bin", data)
    cache = BlockCache(1 << 20)
    reader = ObjectReader(store, cache, meta, block_size_bytes=BS)
    for off in (0, BS, 2 * BS, 3 * BS):  # not yet every block: nothing to check
        reader.read(off, BS)
    with pytest.raises(IntegrityError, match="CRC-64"):
        reader.read(4 * BS, BS)
    with pytest.raises(IntegrityError):
        reader.read(0, 10)  # a corrupt handle stays failed
    assert cache.used_bytes == 0  # the version's blocks were dropped


def test_reader_whole_read_in_any_order_passes_and_uses_announced_crc() -> None:
    store = FakeStore()
    data = pattern(4 * BS + 5)
    listed = store.put("a.bin", data)
    meta = ObjectMeta(listed.key, listed.size, listed.etag, listed.mtime_ns, crc64=None)
    reader = ObjectReader(store, BlockCache(1 << 20), meta, block_size_bytes=BS)
    for off in (3 * BS, 0, 4 * BS, BS + 1, 2 * BS):
        assert reader.read(off, BS) == data[off : off + BS]
    assert reader.read(0, len(data)) == data


def test_reader_corrupt_bytes_without_any_server_crc_are_not_judged() -> None:
    class Silent(CorruptingStore):
        def announced_crc64(self, key: str, etag: str) -> int | None:
            return None

    store = Silent(bad_offset=1)
    data = pattern(BS)
    listed = store.put("a.bin", data)
    meta = ObjectMeta(listed.key, listed.size, listed.etag, listed.mtime_ns, crc64=None)
    reader = ObjectReader(store, BlockCache(1 << 20), meta, block_size_bytes=BS)
    assert reader.read(0, BS) != data  # nothing to check against: served as received


def test_reader_verify_crc_off_serves_without_checking() -> None:
    store = CorruptingStore(bad_offset=0)
    meta = store.put("a.bin", pattern(BS))
    reader = ObjectReader(store, BlockCache(1 << 20), meta, block_size_bytes=BS, verify_crc=False)
    assert len(reader.read(0, BS)) == BS


# -- reader: failures injected by FaultyStore -----------------------------------------------------
def faulty_reader(data: bytes) -> tuple[FaultyStore, BlockCache, ObjectReader]:
    inner = FakeStore()
    meta = inner.put("a.bin", data)
    store = FaultyStore(inner)
    cache = BlockCache(1 << 20)
    return store, cache, ObjectReader(store, cache, meta, block_size_bytes=BS)


def test_reader_corrupted_piece_fails_a_whole_read_and_a_new_open_reads_exact_bytes() -> None:
    data = pattern(5 * BS + 3)
    store, cache, reader = faulty_reader(data)
    corrupted = store.corrupt("read_range", piece=3, offset=5)  # block 2 of the one GET
    with pytest.raises(IntegrityError, match="CRC-64") as raised:
        reader.read(0, len(data))  # the whole object in one read: an error, never the bytes
    assert corrupted.fired == 1 and raised.value.errno == errno.EIO
    assert cache.used_bytes == 0  # the version's blocks are dropped, the bad one with them
    with pytest.raises(IntegrityError):
        reader.read(3 * BS, 4)  # the handle stays failed, even for a good block
    # The corruption was in transit: the next open fetches again and gets the object's bytes.
    fresh = ObjectReader(store, cache, reader.meta, block_size_bytes=BS)
    assert fresh.read(0, len(data)) == data
    assert store.count("read_range") == 2


@pytest.mark.parametrize(
    ("error", "expected"),
    [(RemoteIOError("connection reset"), RemoteIOError), (None, IntegrityError)],
    ids=["reset", "quietly-short"],
)
def test_reader_body_that_ends_early_fails_the_read_caches_nothing_and_the_next_read_is_exact(
    error: RemoteIOError | None, expected: type[OssfsError]
) -> None:
    """A GET of blocks 0..4 that ends after two whole blocks: with a reset (as the protocol
    allows) or quietly (a store that lies about its body). Neither becomes bytes."""
    data = pattern(5 * BS)
    store, cache, reader = faulty_reader(data)
    cut = store.cut("read_range", piece=3, error=error)
    with pytest.raises(expected):
        reader.read(0, len(data))
    assert cut.fired == 1
    assert cache.used_bytes == 0 and cache.inflight_count == 0
    assert reader.read(0, len(data)) == data  # not a failure cached: a new GET, exact bytes
    assert store.calls == [("read_range", "a.bin", 0, 5 * BS)] * 2
