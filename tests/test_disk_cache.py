"""The disk cache's parts without a mount: the block file format, the index's accounting and
LRU order, the cache's read-back checks, writes, eviction and failures, and the tiered store
that puts it under the block cache."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.app.cli import legacy_mount_argv
from ossfs.fs.namespace import Namespace
from ossfs.obs.stats import MountStats, format_prometheus
from ossfs.read.block_cache import BlockCache
from ossfs.read.buffers import BufferPool
from ossfs.read.disk.block_file import (
    LAYOUT,
    TEMP_PREFIX,
    BadBlockFileError,
    BlockId,
    decode_header,
    encode_header,
    header_length,
)
from ossfs.read.disk.block_writer import BlockWriter
from ossfs.read.disk.cache_dir import default_capacity, prepare_directory
from ossfs.read.disk.disk_cache import DiskCache
from ossfs.read.disk.disk_index import DiskIndex
from ossfs.read.disk.tiered_store import TieredStore, mark_read_ahead_thread
from tests.support.fakes import FakeStore
from tests.support.waiting import wait_until
from tests.test_stats import CountingStore

BUCKET = "bkt"
BLOCK = 4096


def _cache(path: Path, *, capacity: int | None = 1 << 20, queue: int = 1 << 20) -> DiskCache:
    cache = DiskCache(
        path, bucket=BUCKET, block_size=BLOCK, capacity_bytes=capacity, queue_bytes=queue
    )
    cache.start()
    assert cache.wait_scanned(10)
    return cache


def _file(cache_dir: Path, key: str, etag: str, index: int) -> Path:
    return cache_dir / BlockId(BUCKET, key, etag, BLOCK, index).relpath


# -- block files ---------------------------------------------------------------------------------


@given(
    key=st.text(min_size=1, max_size=200),
    etag=st.text(alphabet="0123456789ABCDEF-", min_size=1, max_size=40),
    index=st.integers(0, 1 << 40),
    crc=st.integers(0, (1 << 64) - 1),
    object_crc=st.none() | st.integers(0, (1 << 64) - 1),
)
def test_block_file_header_round_trips(
    key: str, etag: str, index: int, crc: int, object_crc: int | None
) -> None:
    block = BlockId(BUCKET, key, etag, BLOCK, index)
    raw = encode_header(block, crc, 1234, object_crc)
    assert header_length(raw) == len(raw)
    header = decode_header(raw)
    assert (header.block, header.data_crc, header.data_len, header.object_crc) == (
        block,
        crc,
        1234,
        object_crc,
    )


def test_block_file_header_with_a_flipped_byte_is_refused() -> None:
    raw = encode_header(BlockId(BUCKET, "k", "e", BLOCK, 3), 7, 100, None)
    for pos in range(len(raw)):
        flipped = bytearray(raw)
        flipped[pos] ^= 0x01
        with pytest.raises(BadBlockFileError):
            decode_header(flipped[: header_length(flipped)])


def test_block_file_names_differ_by_every_part_of_the_key() -> None:
    base = BlockId(BUCKET, "k", "e", BLOCK, 0)
    others = [
        BlockId("other", "k", "e", BLOCK, 0),
        BlockId(BUCKET, "k2", "e", BLOCK, 0),
        BlockId(BUCKET, "k", "e2", BLOCK, 0),
        BlockId(BUCKET, "k", "e", 2 * BLOCK, 0),
        BlockId(BUCKET, "k", "e", BLOCK, 1),
    ]
    names = {base.relpath, *(o.relpath for o in others)}
    assert len(names) == 6
    assert all(name.startswith(f"{LAYOUT}/") for name in names)


# -- the index ------------------------------------------------------------------------------------


def test_disk_index_accounts_bytes_and_orders_by_use() -> None:
    index = DiskIndex()
    index.add("a", 10, 1)
    index.add("b", 20, 2)
    index.add("c", 30, 3)
    assert index.used_bytes == 60
    index.touch("a", 4)
    assert index.oldest() == ("b", index.get("b"))
    index.add("b", 25, 5)  # replaced: counted once
    assert index.used_bytes == 65
    assert index.remove("c") is not None
    assert index.remove("c") is None
    assert index.used_bytes == 35
    oldest = index.oldest()
    assert oldest is not None
    assert oldest[0] == "a"


def test_disk_index_scan_keeps_this_mounts_later_use() -> None:
    index = DiskIndex()
    index.add("a", 10, 100)
    index.add("old", 5, 20)  # gone: evicted by another mount
    index.add("new", 7, 70)  # written while the scan ran
    index.replace([("a", 12, 50), ("b", 20, 60), ("c", 30, 10)], kept_since_ns=65)
    assert index.used_bytes == 69
    order = []
    while (oldest := index.oldest()) is not None:
        order.append(oldest[0])
        index.remove(oldest[0])
    assert order == ["c", "b", "new", "a"]


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 1000)), max_size=50))
def test_disk_index_used_bytes_is_the_sum_of_its_entries(ops: list[tuple[str, int]]) -> None:
    index = DiskIndex()
    model: dict[str, int] = {}
    for n, (path, size) in enumerate(ops):
        if size % 3 == 0:
            index.remove(path)
            model.pop(path, None)
        else:
            index.add(path, size, n)
            model[path] = size
        assert index.used_bytes == sum(model.values())
    assert len(index) == len(model)


def test_default_capacity_counts_what_the_cache_holds() -> None:
    assert default_capacity(free_bytes=400, held_bytes=0) == 300
    # A remount with a full cache keeps it: what it holds counts as available to it.
    assert default_capacity(free_bytes=100, held_bytes=300) == 300


# -- the cache ------------------------------------------------------------------------------------


def test_disk_cache_written_block_reads_back_exact(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    data = os.urandom(BLOCK)
    cache.offer("k", "e", 2, bytearray(data), object_crc=99)
    cache.close()
    again = _cache(tmp_path)
    block = again.lookup("k", "e", 2, BLOCK)
    assert block is not None
    assert bytes(block) == data
    assert again.object_crc("k", "e") == 99
    assert again.lookup("k", "e2", 2, BLOCK) is None  # another version
    stats = again.stats()
    assert (stats.hits, stats.misses, stats.bytes_read, stats.blocks) == (1, 1, BLOCK, 1)
    # A file whose length is not the block's is not this block: a miss, and removed.
    assert again.lookup("k", "e", 2, BLOCK - 1) is None
    assert again.stats().crc_failures == 1
    assert not _file(tmp_path, "k", "e", 2).exists()
    again.close()


def test_disk_cache_flipped_data_is_a_miss_counted_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = _cache(tmp_path)
    cache.offer("k", "e", 0, bytearray(b"x" * BLOCK), object_crc=None)
    cache.close()
    path = _file(tmp_path, "k", "e", 0)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(raw)
    with caplog.at_level(logging.WARNING):
        assert cache.lookup("k", "e", 0, BLOCK) is None
    assert cache.stats().crc_failures == 1
    assert not path.exists()
    assert len([r for r in caplog.records if "failed its check" in r.message]) == 1


def test_disk_cache_file_of_another_block_under_the_name_is_never_served(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.offer("k", "e", 0, bytearray(b"a" * BLOCK), object_crc=None)
    cache.offer("k", "e", 1, bytearray(b"b" * BLOCK), object_crc=None)
    cache.close()
    # As if two names hashed alike: block 1's file where block 0's belongs.
    os.replace(_file(tmp_path, "k", "e", 1), _file(tmp_path, "k", "e", 0))
    assert cache.lookup("k", "e", 0, BLOCK) is None
    assert cache.stats().crc_failures == 1


def test_disk_cache_evicts_least_recently_used_within_capacity(tmp_path: Path) -> None:
    # Each file is one 4 KiB block plus a header: two 4 KiB allocation units.
    per_file = 2 * 4096
    cache = _cache(tmp_path, capacity=4 * per_file + 4 * 4096)
    for index in range(3):
        cache.offer("k", "e", index, bytearray(BLOCK), object_crc=None)
    cache.close()
    for index in range(3):  # used in this order (the writers may have written in any)
        os.utime(_file(tmp_path, "k", "e", index), (1000 + index, 1000 + index))
    cache = _cache(tmp_path, capacity=4 * per_file + 4 * 4096)
    assert cache.lookup("k", "e", 0, BLOCK) is not None  # block 0 is now the most recent
    for index in range(3, 6):
        cache.offer("k", "e", index, bytearray(BLOCK), object_crc=None)
    cache.close()
    present = {i for i in range(6) if _file(tmp_path, "k", "e", i).exists()}
    assert 0 in present
    assert 1 not in present
    assert {3, 4, 5} <= present
    stats = cache.stats()
    assert stats.evictions >= 1
    assert stats.used_bytes <= 4 * per_file + 4 * 4096


def test_disk_cache_written_block_buffer_goes_back_to_the_pool(tmp_path: Path) -> None:
    pool = BufferPool(BLOCK, 4)
    cache = DiskCache(
        tmp_path,
        bucket=BUCKET,
        block_size=BLOCK,
        capacity_bytes=None,
        queue_bytes=1 << 20,
        give_buffer=pool.give,
    )
    cache.start()
    kept = pool.take(BLOCK)
    cache.offer("k", "e", 0, pool.take(BLOCK), object_crc=None)  # nobody else holds this one
    cache.offer("k", "e", 1, kept, object_crc=None)  # still held here: not reused
    cache.close()
    assert pool.free_bytes == BLOCK
    assert pool.take(BLOCK) is not kept


def test_disk_cache_full_queue_drops_instead_of_waiting(tmp_path: Path) -> None:
    cache = DiskCache(
        tmp_path, bucket=BUCKET, block_size=BLOCK, capacity_bytes=None, queue_bytes=2 * BLOCK
    )  # not started: nothing drains the queue
    for index in range(5):
        cache.offer("k", "e", index, bytearray(BLOCK), object_crc=None)
    assert cache.stats().writes_dropped == 3
    assert cache.stats().read_ahead_waits == 0


def test_disk_cache_offer_that_may_wait_waits_for_room_and_is_written(tmp_path: Path) -> None:
    cache = DiskCache(
        tmp_path, bucket=BUCKET, block_size=BLOCK, capacity_bytes=None, queue_bytes=2 * BLOCK
    )  # not started yet: the queue stays full
    for index in range(2):
        cache.offer("k", "e", index, bytearray(BLOCK), object_crc=None)
    waiter = threading.Thread(
        target=cache.offer, args=("k", "e", 2, bytearray(b"w" * BLOCK), None), kwargs={"wait_s": 60}
    )
    waiter.start()
    wait_until(lambda: cache.waiting_offers == 1, 10, "the offer waits for room")
    cache.start()  # the writers make room
    waiter.join(30)
    assert not waiter.is_alive()
    cache.close()
    assert cache.stats().writes_dropped == 0
    assert cache.stats().read_ahead_waits == 1  # counted, for ossfs stats
    assert _file(tmp_path, "k", "e", 2).exists()


def test_disk_cache_offer_that_waits_in_vain_drops_then_stops_waiting(tmp_path: Path) -> None:
    cache = DiskCache(
        tmp_path, bucket=BUCKET, block_size=BLOCK, capacity_bytes=None, queue_bytes=BLOCK
    )  # never started: nothing makes room
    cache.offer("k", "e", 0, bytearray(BLOCK), object_crc=None)
    cache.offer("k", "e", 1, bytearray(BLOCK), object_crc=None, wait_s=0.01)
    assert cache.stats().writes_dropped == 1
    # It waited until its deadline, and says so.
    assert cache.stats().read_ahead_waits == 1
    assert cache.stats().read_ahead_wait_ms >= 10
    # Within the back-off an offer that may wait drops at once.
    later = threading.Thread(
        target=cache.offer, args=("k", "e", 2, bytearray(BLOCK), None), kwargs={"wait_s": 600}
    )
    later.start()
    later.join(60)
    assert not later.is_alive()
    assert cache.stats().writes_dropped == 2
    assert cache.stats().read_ahead_waits == 1  # the back-off: no second wait


def test_disk_cache_block_finding_the_queue_full_is_owed_and_taken_from_the_cache(
    tmp_path: Path,
) -> None:
    cached = {("k", "e", 1): bytearray(b"c" * BLOCK)}  # the block cache, as the writers see it
    cache = DiskCache(
        tmp_path, bucket=BUCKET, block_size=BLOCK, capacity_bytes=None, queue_bytes=BLOCK
    )  # not started yet: the queue stays full
    cache.set_recall(lambda key, etag, index: cached.get((key, etag, index)))
    cache.offer("k", "e", 0, bytearray(b"q" * BLOCK), object_crc=None)
    cache.offer("k", "e", 1, bytearray(b"c" * BLOCK), object_crc=None)  # finds it full: owed
    cache.offer("k", "e", 2, bytearray(BLOCK), object_crc=None)  # owed, gone from the cache
    assert cache.stats().writes_dropped == 0
    cache.start()
    cache.close()
    assert cache.stats().writes_dropped == 1  # block 2: nothing to write it from
    assert not _file(tmp_path, "k", "e", 2).exists()
    again = _cache(tmp_path)
    block = again.lookup("k", "e", 1, BLOCK)
    assert block is not None
    assert bytes(block) == b"c" * BLOCK
    again.close()


def test_disk_cache_owed_block_still_being_fetched_is_asked_for_again(tmp_path: Path) -> None:
    cached: dict[tuple[str, str, int], bytearray] = {}
    asked: list[int] = []

    def still_fetching(key: str, etag: str, index: int) -> bool:
        asked.append(index)
        cached[(key, etag, index)] = bytearray(b"f" * BLOCK)  # the fetch ends: cached now
        return True

    cache = DiskCache(
        tmp_path, bucket=BUCKET, block_size=BLOCK, capacity_bytes=None, queue_bytes=BLOCK
    )
    cache.set_recall(lambda key, etag, index: cached.get((key, etag, index)), still_fetching)
    cache.offer("k", "e", 0, bytearray(BLOCK), object_crc=None)
    cache.offer("k", "e", 1, bytearray(b"f" * BLOCK), object_crc=None)  # owed, not cached yet
    cache.start()
    cache.close()
    assert asked == [1]
    assert cache.stats().writes_dropped == 0
    assert _file(tmp_path, "k", "e", 1).exists()


def test_disk_cache_block_being_written_still_counts_against_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing = threading.Event()
    go_on = threading.Event()
    real_write = BlockWriter.write

    def slow_write(self: BlockWriter, path: str, header: bytes, data: object) -> None:
        writing.set()
        assert go_on.wait(30)
        real_write(self, path, header, data)  # type: ignore[arg-type]

    monkeypatch.setattr(BlockWriter, "write", slow_write)
    cache = _cache(tmp_path, queue=BLOCK)
    cache.offer("k", "e", 0, bytearray(BLOCK), object_crc=None)
    assert writing.wait(30)  # out of the queue, in a writer's hands
    cache.offer("k", "e", 1, bytearray(BLOCK), object_crc=None)
    assert cache.stats().writes_dropped == 1  # block 0 still holds the queue's bytes
    go_on.set()
    cache.close()
    assert _file(tmp_path, "k", "e", 0).exists()


def test_disk_cache_scan_removes_crashed_writers_leftovers(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.offer("k", "e", 0, bytearray(BLOCK), object_crc=None)
    cache.close()
    directory = _file(tmp_path, "k", "e", 0).parent
    fresh = directory / f"{TEMP_PREFIX}1-1"
    fresh.write_bytes(b"being written")
    old = directory / f"{TEMP_PREFIX}1-2"
    old.write_bytes(b"left by a crash")
    os.utime(old, (1, 1))
    again = _cache(tmp_path)
    assert fresh.exists()
    assert not old.exists()
    assert again.stats().blocks == 1
    again.close()


def test_disk_cache_discard_version_removes_its_files(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    for index in range(3):
        cache.offer("k", "e", index, bytearray(BLOCK), object_crc=None)
    cache.offer("k", "other", 0, bytearray(BLOCK), object_crc=None)
    cache.close()
    cache.discard_version("k", "e")
    assert [_file(tmp_path, "k", "e", i).exists() for i in range(3)] == [False] * 3
    assert _file(tmp_path, "k", "other", 0).exists()


def test_disk_cache_write_error_turns_it_off_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = _cache(tmp_path)
    # The block's directory cannot be made: a file is in the way.
    blocker = _file(tmp_path, "k", "e", 0).parent
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"in the way")
    with caplog.at_level(logging.WARNING):
        cache.offer("k", "e", 0, bytearray(BLOCK), object_crc=None)
        cache.close()
    assert not cache.enabled
    assert cache.stats().errors == 1
    assert cache.lookup("k", "e", 0, BLOCK) is None
    assert len([r for r in caplog.records if "turned off" in r.message]) == 1


def test_prepare_directory_creates_mode_700_and_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    prepare_directory(target)
    assert (target.stat().st_mode & 0o777) == 0o700
    assert [p.name for p in target.iterdir()] == [LAYOUT]
    assert ((target / LAYOUT).stat().st_mode & 0o777) == 0o700
    cache = _cache(target)
    cache.offer("k", "e", 0, bytearray(BLOCK), object_crc=None)
    cache.close()
    block_dir = _file(target, "k", "e", 0).parent
    assert (block_dir.stat().st_mode & 0o777) == 0o700
    assert (_file(target, "k", "e", 0).stat().st_mode & 0o777) == 0o600
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(Exception, match="not a directory"):
        prepare_directory(tmp_path / "f")


def test_block_cache_discarding_a_version_drops_its_disk_files(tmp_path: Path) -> None:
    disk = _cache(tmp_path)
    disk.offer("k", "e", 0, bytearray(BLOCK), object_crc=None)
    disk.close()
    cache = BlockCache(16 * BLOCK, on_discard_object=disk.discard_version)
    cache.discard_object("k", "e")  # what the reader does when the whole-object CRC fails
    assert not _file(tmp_path, "k", "e", 0).exists()


# -- the tiered store -----------------------------------------------------------------------------


def _read(store: TieredStore, key: str, etag: str, start: int, end: int) -> bytes:
    pieces: list[bytes] = []
    store.read_range(
        key, start, end, etag=etag, piece_bytes=BLOCK, on_piece=lambda p: pieces.append(bytes(p))
    )
    return b"".join(pieces)


def test_tiered_store_serves_disk_blocks_and_fetches_runs_of_the_rest(tmp_path: Path) -> None:
    fake = FakeStore()
    data = os.urandom(6 * BLOCK + 100)
    meta = fake.put("o", data)
    disk = _cache(tmp_path)
    tiered = TieredStore(fake, disk)
    assert _read(tiered, "o", meta.etag, BLOCK, 3 * BLOCK) == data[BLOCK : 3 * BLOCK]
    disk.close()  # written
    fake.reset_calls()
    disk = _cache(tmp_path)
    tiered = TieredStore(fake, disk)
    assert _read(tiered, "o", meta.etag, 0, len(data)) == data
    # Blocks 1 and 2 came from disk; 0 alone, then 3..6 in one GET.
    assert fake.calls == [
        ("get_range", "o", 0, BLOCK),
        ("get_range", "o", 3 * BLOCK, len(data)),
    ]
    assert tiered.announced_crc64("o", meta.etag) == meta.crc64
    disk.close()


def test_tiered_store_read_ahead_thread_waits_for_the_disk_a_reader_does_not(
    tmp_path: Path,
) -> None:
    fake = FakeStore()
    data = os.urandom(2 * BLOCK)
    meta = fake.put("o", data)
    disk = DiskCache(
        tmp_path, bucket=BUCKET, block_size=BLOCK, capacity_bytes=None, queue_bytes=BLOCK
    )  # not started: room comes only when the test starts the writers
    tiered = TieredStore(fake, disk)
    # A reader's own fetch (this thread) never waits: block 0 is queued, block 1 dropped.
    assert _read(tiered, "o", meta.etag, 0, 2 * BLOCK) == data
    assert disk.stats().writes_dropped == 1
    got: list[bytes] = []

    def read_ahead() -> None:
        mark_read_ahead_thread()
        got.append(_read(tiered, "o", meta.etag, 0, 2 * BLOCK))

    worker = threading.Thread(target=read_ahead)
    worker.start()
    wait_until(lambda: disk.waiting_offers == 1, 10, "the read-ahead fetch waits for room")
    assert not got  # the waiting block is not handed on (it stays in the caller's account)
    disk.start()
    worker.join(30)
    assert got == [data]
    disk.close()
    assert disk.stats().writes_dropped == 1
    assert _file(tmp_path, "o", meta.etag, 0).exists()
    assert _file(tmp_path, "o", meta.etag, 1).exists()


def test_tiered_store_passes_unaligned_and_unpinned_reads_through(tmp_path: Path) -> None:
    fake = FakeStore()
    data = os.urandom(2 * BLOCK)
    meta = fake.put("o", data)
    disk = _cache(tmp_path)
    tiered = TieredStore(fake, disk)
    assert _read(tiered, "o", meta.etag, 10, BLOCK + 10) == data[10 : BLOCK + 10]
    disk.close()
    assert disk.stats().bytes_written == 0
    assert disk.stats().misses == 0


def test_tiered_store_serves_unit_ranges_from_block_files_when_all_are_there(
    tmp_path: Path,
) -> None:
    """Random reads ask for sub-block units: cut from the block files on disk when every block
    the range touches is there (pieces of the size asked), else one GET of the range."""
    fake = FakeStore()
    data = os.urandom(3 * BLOCK + 100)
    meta = fake.put("o", data)
    disk = _cache(tmp_path)
    tiered = TieredStore(fake, disk)
    assert _read(tiered, "o", meta.etag, 0, 2 * BLOCK) == data[: 2 * BLOCK]  # blocks 0, 1
    assert _read(tiered, "o", meta.etag, 3 * BLOCK, len(data)) == data[3 * BLOCK :]  # the tail
    disk.close()
    fake.reset_calls()
    disk = _cache(tmp_path)
    tiered = TieredStore(fake, disk)
    unit = BLOCK // 4
    for start, end in [
        (unit, 2 * unit),  # inside block 0
        (BLOCK - unit, BLOCK + 2 * unit),  # across blocks 0 and 1
        (3 * BLOCK, len(data)),  # the short last block, as a unit range
        (3 * BLOCK + 10, len(data)),
    ]:
        pieces: list[int] = []
        got = bytearray()

        def take(piece: object, pieces: list[int] = pieces, got: bytearray = got) -> None:
            view = memoryview(piece)  # type: ignore[arg-type]
            pieces.append(len(view))
            got.extend(view)

        tiered.read_range("o", start, end, etag=meta.etag, piece_bytes=unit, on_piece=take)
        assert bytes(got) == data[start:end]
        assert pieces[:-1] == [unit] * (len(pieces) - 1) and 0 < pieces[-1] <= unit
    assert fake.calls == []
    # Block 2 is not on disk: a range touching it is one GET of that range.
    start, end = 2 * BLOCK - unit, 2 * BLOCK + unit
    assert _read(tiered, "o", meta.etag, start, end) == data[start:end]
    assert fake.calls == [("get_range", "o", start, end)]
    disk.close()


def test_tiered_store_lists_through_with_every_argument(tmp_path: Path) -> None:
    fake = FakeStore()
    for key in ("d/a", "d/b", "d/c/x"):
        fake.put(key, b"1")
    disk = _cache(tmp_path)
    page = TieredStore(fake, disk).list_page("d/", delimiter="", max_keys=5, start_after="d/a")
    assert [meta.key for meta in page.objects] == ["d/b", "d/c/x"]
    assert fake.lists == [("d/", "", None, "d/a")]
    disk.close()


# -- options and counters -------------------------------------------------------------------------


def test_fstab_options_cache_dir_and_size_become_mount_flags() -> None:
    argv = ["oss://b-1", "/mnt/x", "-o", "cache_dir=/nvme/c,cache_dir_size=10GiB,allow_other"]
    assert legacy_mount_argv(argv) == [
        "mount",
        "oss://b-1",
        "/mnt/x",
        "--cache-dir",
        "/nvme/c",
        "--cache-dir-size",
        "10GiB",
        "--allow-other",
    ]


def test_stats_disk_cache_section_and_prometheus_families(tmp_path: Path) -> None:
    fake = FakeStore()
    disk = _cache(tmp_path, capacity=1 << 20)
    disk.offer("k", "e", 0, bytearray(BLOCK), object_crc=None)
    disk.close()
    assert disk.lookup("k", "e", 0, BLOCK) is not None
    assert disk.lookup("k", "e", 1, BLOCK) is None
    cache = BlockCache(16 * BLOCK)
    stats = MountStats(
        mount=f"oss://{BUCKET}/",
        store=CountingStore(),
        cache=cache,
        cache_capacity_bytes=16 * BLOCK,
        namespace=Namespace(fake, metadata_ttl_s=60.0),
        prefetcher=None,
        open_handles=lambda: 0,
        disk_cache=disk,
    )
    doc = stats.snapshot().to_json()
    section = doc["disk_cache"]
    assert isinstance(section, dict)
    assert {k: section[k] for k in ("hits", "misses", "bytes_read", "capacity_bytes")} == {
        "hits": 1,
        "misses": 1,
        "bytes_read": BLOCK,
        "capacity_bytes": 1 << 20,
    }
    assert section["bytes_written"] == BLOCK
    text = format_prometheus(doc)
    for family in (
        "ossfs_disk_cache_hits_total",
        "ossfs_disk_cache_misses_total",
        "ossfs_disk_cache_bytes_written_total",
        "ossfs_disk_cache_bytes_read_total",
        "ossfs_disk_cache_evictions_total",
        "ossfs_disk_cache_crc_failures_total",
        "ossfs_disk_cache_errors_total",
    ):
        assert f"# TYPE {family} counter" in text
    for gauge in ("used_bytes", "capacity_bytes", "blocks"):
        assert f"# TYPE ossfs_disk_cache_{gauge} gauge" in text
