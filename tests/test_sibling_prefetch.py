"""Directory-order read-ahead of small files (`ossfs.read.sibling_prefetch`) on a FakeStore."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from ossfs.core.errors import IntegrityError, OssfsError, RemoteIOError, StaleError
from ossfs.core.object_store import ObjectStore, Piece
from ossfs.fs.filesystem import Filesystem, FsConfig
from ossfs.fs.namespace import Namespace
from ossfs.obs.stats import MountStats, format_prometheus
from ossfs.read import sibling_prefetch
from ossfs.read.block_cache import BlockCache
from ossfs.read.sibling_prefetch import ReadAheadPace, SiblingPrefetchConfig, SiblingPrefetcher
from tests.support.executors import ManualExecutor
from tests.support.fakes import FakeStore
from tests.support.faulty_store import FaultyStore
from tests.support.waiting import wait_until

BLOCK = 4096
FILE = 1000
N_FILES = 40
WAIT_S = 10.0  # a hang fails the test instead of blocking it


def content(i: int) -> bytes:
    return bytes((i * 31 + j) % 251 for j in range(FILE))


@dataclass
class Mount:
    store: FakeStore  # the objects; ``faulty`` (if any) wraps it for everything else
    faulty: FaultyStore | None
    fs: Filesystem
    ns: Namespace
    cache: BlockCache
    executor: ManualExecutor
    siblings: SiblingPrefetcher
    fetcher: QueuedFetcher | None

    def read_whole(self, path: str) -> bytes:
        fh = self.fs.open(path, os.O_RDONLY)
        # Queued prefetch GETs run first: a single-threaded test must not wait for one.
        self.executor.run_all()
        try:
            return bytes(self.fs.read(fh, 0, 1 << 20))
        finally:
            self.fs.release(fh)

    def gets(self) -> Counter[str]:
        return Counter(str(c[1]) for c in self.store.calls if c[0] == "get_range")


class QueuedFetcher:
    """A `WholeFetcher` whose GETs wait on the test's executor like the worker path's do (so
    a test drives both the same way), each read through the store and handed to ``done``."""

    def __init__(self, store: ObjectStore, executor: ManualExecutor) -> None:
        self._store = store
        self._executor = executor
        self.submitted = 0
        self.closed = False

    def submit(
        self, key: str, etag: str, size: int, done: Callable[[Piece | BaseException, float], None]
    ) -> None:
        self.submitted += 1

        def run() -> None:
            pieces: list[Piece] = []
            try:
                self._store.read_range(
                    key, 0, size, etag=etag, piece_bytes=size, on_piece=pieces.append
                )
            except Exception as exc:
                done(exc, 0.001)
                return
            done(pieces[0], 0.001)

        self._executor.submit(run)

    def close(self) -> None:
        self.closed = True


def make(
    store: FakeStore | None = None,
    *,
    cache_bytes: int = 1024 * BLOCK,
    clock: Callable[[], float] = time.monotonic,
    fetcher: bool = False,
    faulty: bool = False,
    **config: int,
) -> Mount:
    """``faulty``: everything reads through a `FaultyStore` over ``store`` (``Mount.faulty``)."""
    if store is None:
        store = FakeStore()
        for i in range(N_FILES):
            store.put(f"d/f{i:03d}", content(i))
    wrapper = FaultyStore(store) if faulty else None
    served: ObjectStore = wrapper if wrapper is not None else store
    ns = Namespace(served, metadata_ttl_s=60.0)
    cache = BlockCache(cache_bytes)
    executor = ManualExecutor()
    queued = QueuedFetcher(served, executor) if fetcher else None
    siblings = SiblingPrefetcher(
        served,
        cache,
        ns.listed_children,
        executor,
        block_size_bytes=BLOCK,
        config=SiblingPrefetchConfig(**config),
        fetcher=queued,
        clock=clock,
    )
    fs = Filesystem(
        ns,
        served,
        cache,
        FsConfig(uid=0, gid=0, block_size_bytes=BLOCK),
        mount_time_ns=0,
        sibling_prefetcher=siblings,
    )
    fs.readdir("/d")
    store.reset_calls()
    return Mount(store, wrapper, fs, ns, cache, executor, siblings, queued)


@pytest.mark.parametrize("fetcher", [False, True], ids=["workers", "fetch-loop"])
def test_sibling_prefetch_sequential_opens_grow_the_window_and_fetch_each_file_once(
    fetcher: bool,
) -> None:
    m = make(fetcher=fetcher, max_files=8)
    issued_after_open = []
    for i in range(N_FILES):
        fh = m.fs.open(f"/d/f{i:03d}", os.O_RDONLY)
        issued_after_open.append(m.executor.pending)
        m.executor.run_all()
        assert m.fs.read(fh, 0, FILE) == content(i)
        m.fs.release(fh)
    # The first open issues nothing; then the window starts at 2 and doubles up to the cap.
    assert issued_after_open[0] == 0
    assert issued_after_open[1] == 4  # 2, doubled because f001 itself was not cached
    assert max(issued_after_open) <= 8
    assert m.gets() == Counter({f"d/f{i:03d}": 1 for i in range(N_FILES)})
    stats = m.siblings.stats()
    assert stats.files_used == stats.files_prefetched == stats.files_issued == N_FILES - 2
    assert stats.files_wasted == 0 and stats.unread_bytes == 0 and stats.inflight_gets == 0
    assert m.store.count("head") == 0
    assert m.fetcher is None or m.fetcher.submitted == N_FILES - 2


def test_sibling_prefetch_random_opens_never_prefetch() -> None:
    m = make(slack_files=2)
    order = [30, 3, 17, 38, 9, 24, 0, 35, 12, 27]
    for i in order:
        assert m.read_whole(f"/d/f{i:03d}") == content(i)
        assert m.executor.pending == 0
    assert m.executor.submitted == 0
    assert m.gets() == Counter({f"d/f{i:03d}": 1 for i in order})
    assert m.siblings.stats().walk_resets == len(order) - 1


@pytest.mark.parametrize("fetcher", [False, True], ids=["workers", "fetch-loop"])
def test_sibling_prefetch_unread_bytes_and_gets_in_flight_stay_in_budget(fetcher: bool) -> None:
    m = make(fetcher=fetcher, max_unread_bytes=3 * FILE, max_inflight_gets=2, max_files=32)
    for i in range(N_FILES):
        fh = m.fs.open(f"/d/f{i:03d}", os.O_RDONLY)
        stats = m.siblings.stats()
        assert stats.unread_bytes <= 3 * FILE
        assert stats.inflight_gets == m.executor.pending <= 2
        m.executor.run_all()  # (a single-threaded test must not wait for a queued GET)
        assert m.fs.read(fh, 0, FILE) == content(i)
        m.fs.release(fh)
    assert m.siblings.stats().budget_denials > 0
    assert m.gets() == Counter({f"d/f{i:03d}": 1 for i in range(N_FILES)})


@pytest.mark.parametrize(
    ("get_s", "open_interval_s", "expected"),
    [
        (0.020, 0.001, 16),  # 20 ms to a first byte: 42 needed, the cap
        (0.005, 0.001, 12),  # 2 x 5 ms / 1 ms + 2
        (0.0005, 0.001, 3),  # a fast link: the floor and one
        (0.0005, 0.0, 16),  # opens all at once: no pace to go by
    ],
)
def test_read_ahead_pace_is_littles_law_on_the_fastest_get(
    get_s: float, open_interval_s: float, expected: int
) -> None:
    pace = ReadAheadPace()
    assert pace.limit(2, 16) == 16  # nothing known yet
    for i in range(10):
        pace.opened(i * open_interval_s)
        # Slower GETs among them (queued behind others for the CPU) do not raise the need.
        pace.fetched(get_s * (5 if i % 2 else 1))
    assert pace.limit(2, 16) == expected


def test_sibling_prefetch_keeps_to_the_readers_pace() -> None:
    """GETs that answer at once and opens 1 ms apart need only the floor in flight, even once
    the window has grown (here by a reader that skipped ahead twice)."""
    now = [0.0]
    m = make(clock=lambda: now[0], max_inflight_gets=16, min_inflight_gets=2, max_files=16)
    order = [*range(10), 19, 29, *range(30, N_FILES)]
    for n, i in enumerate(order):
        now[0] += 0.001
        fh = m.fs.open(f"/d/f{i:03d}", os.O_RDONLY)
        if n >= 10:  # the pace is known by now
            assert m.siblings.stats().inflight_gets == m.executor.pending <= 2
        m.executor.run_all()
        assert m.fs.read(fh, 0, FILE) == content(i)
        m.fs.release(fh)
    assert m.siblings.stats().budget_denials > 0


def test_sibling_prefetch_interleaved_readers_fetch_every_file_exactly_once() -> None:
    m = make(max_files=16)
    readers = 8
    handles: dict[int, int] = {}
    for start in range(0, N_FILES, readers):
        batch = range(start, min(start + readers, N_FILES))
        for i in reversed(batch):  # concurrent readers open a little out of order
            handles[i] = m.fs.open(f"/d/f{i:03d}", os.O_RDONLY)
        m.executor.run_all()
        for i in batch:
            assert m.fs.read(handles[i], 0, FILE) == content(i)
            m.fs.release(handles.pop(i))
    m.executor.run_all()
    assert m.gets() == Counter({f"d/f{i:03d}": 1 for i in range(N_FILES)})
    assert m.siblings.stats().files_used > N_FILES // 2


def test_sibling_prefetch_skips_large_files_directories_and_empty_files() -> None:
    store = FakeStore()
    store.put("d/a0", content(0))
    store.put("d/a1", content(1))
    store.put("d/a2-big", b"x" * (BLOCK + 1))
    store.put("d/a3-dir/inner", content(3))
    store.put("d/a4-empty", b"")
    store.put("d/a5", content(5))
    store.put("d/a6", content(6))
    m = make(store, max_files=32)
    m.read_whole("/d/a0")
    m.read_whole("/d/a1")
    m.executor.run_all()
    assert set(m.gets()) == {"d/a0", "d/a1", "d/a5", "d/a6"}
    assert m.read_whole("/d/a5") == content(5)
    assert m.read_whole("/d/a6") == content(6)
    assert m.gets()["d/a5"] == m.gets()["d/a6"] == 1


@pytest.mark.parametrize("fetcher", [False, True], ids=["workers", "fetch-loop"])
def test_sibling_prefetch_failure_is_never_served_and_the_reader_fetches_itself(
    fetcher: bool,
) -> None:
    class FlakyStore(FakeStore):
        failures = 1

        def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
            if key == "d/f003" and self.failures:
                self.failures -= 1
                super().get_range(key, start, end, etag=etag)  # counted as sent
                raise RemoteIOError("connection reset")
            return super().get_range(key, start, end, etag=etag)

    store = FlakyStore()
    for i in range(N_FILES):
        store.put(f"d/f{i:03d}", content(i))
    m = make(store, fetcher=fetcher, max_files=4)
    for i in range(3):
        m.read_whole(f"/d/f{i:03d}")
    m.executor.run_all()
    assert m.siblings.stats().files_failed == 1
    assert m.read_whole("/d/f003") == content(3)
    assert m.gets()["d/f003"] == 2


@pytest.mark.parametrize("fetcher", [False, True], ids=["workers", "fetch-loop"])
def test_sibling_prefetch_of_a_replaced_object_caches_nothing_and_the_read_fails_estale(
    fetcher: bool,
) -> None:
    m = make(fetcher=fetcher, max_files=4)
    m.read_whole("/d/f000")
    fh1 = m.fs.open("/d/f001", os.O_RDONLY)
    assert m.executor.pending  # f002.. claimed, GETs queued
    m.store.put("d/f002", b"new version")  # the object changes after the listing
    m.executor.run_all()  # the pinned (If-Match) prefetch of f002 fails: nothing cached
    assert m.fs.read(fh1, 0, FILE) == content(1)
    m.fs.release(fh1)
    assert m.siblings.stats().files_failed == 1
    assert not m.cache.contains(("d/f002", m.ns.lookup("/d/f002").meta.etag, 0))  # type: ignore[union-attr]
    fh = m.fs.open("/d/f002", os.O_RDONLY)
    m.executor.run_all()
    with pytest.raises(StaleError):  # the listed version is gone: an error, never other bytes
        m.fs.read(fh, 0, FILE)
    m.fs.release(fh)


@pytest.mark.parametrize("fetcher", [False, True], ids=["workers", "fetch-loop"])
def test_sibling_prefetch_corrupted_body_is_an_integrity_error_never_the_bytes(
    fetcher: bool,
) -> None:
    m = make(fetcher=fetcher, faulty=True, max_files=4)
    assert m.faulty is not None
    corrupted = m.faulty.corrupt("read_range", piece=1, offset=10, key="d/f003")
    m.read_whole("/d/f000")
    m.read_whole("/d/f001")  # f002..f005 read ahead, f003 corrupted in transit
    assert corrupted.fired == 1 and m.gets()["d/f003"] == 1
    fh = m.fs.open("/d/f003", os.O_RDONLY)
    m.executor.run_all()
    # The reader checks the prefetched body against the listed CRC-64 before serving it.
    with pytest.raises(IntegrityError) as raised:
        m.fs.read(fh, 0, FILE)
    assert raised.value.errno == errno.EIO
    m.fs.release(fh)
    assert m.read_whole("/d/f003") == content(3)  # the next open fetches it again
    assert m.gets()["d/f003"] == 2


def test_sibling_prefetch_a_stalled_get_holds_up_only_the_reader_of_its_file() -> None:
    store = FakeStore()
    for i in range(N_FILES):
        store.put(f"d/f{i:03d}", content(i))
    faulty = FaultyStore(store)
    stall = faulty.stall("read_range", key="d/f003")
    ns = Namespace(faulty, metadata_ttl_s=60.0)
    cache = BlockCache(1024 * BLOCK)
    with ThreadPoolExecutor(max_workers=4) as workers, ThreadPoolExecutor(max_workers=1) as app:
        siblings = SiblingPrefetcher(
            faulty,
            cache,
            ns.listed_children,
            workers,
            block_size_bytes=BLOCK,
            config=SiblingPrefetchConfig(max_files=4),
        )
        fs = Filesystem(
            ns,
            faulty,
            cache,
            FsConfig(uid=0, gid=0, block_size_bytes=BLOCK),
            mount_time_ns=0,
            sibling_prefetcher=siblings,
        )
        fs.readdir("/d")

        def read_whole(i: int) -> bytes:
            fh = fs.open(f"/d/f{i:03d}", os.O_RDONLY)
            try:
                return bytes(fs.read(fh, 0, FILE))
            finally:
                fs.release(fh)

        try:
            assert app.submit(read_whole, 0).result(WAIT_S) == content(0)
            assert app.submit(read_whole, 1).result(WAIT_S) == content(1)  # f002.. issued
            stall.wait_reached(WAIT_S)  # a worker is held inside f003's GET
            for i in (2, 4, 5, 6):  # opens and reads of the other files go on
                assert app.submit(read_whole, i).result(WAIT_S) == content(i)
            joined = cache.stats().joined
            waiting = app.submit(read_whole, 3)
            wait_until(lambda: cache.stats().joined > joined, WAIT_S, "f003's reader to join")
            assert not waiting.done()
        finally:
            stall.release()
        assert waiting.result(WAIT_S) == content(3)
        siblings.close()
    assert Counter(str(c[1]) for c in store.calls if c[0] == "get_range")["d/f003"] == 1


def test_sibling_prefetch_changed_object_is_never_served_from_an_old_prefetch() -> None:
    m = make(max_files=4)
    m.read_whole("/d/f000")
    m.read_whole("/d/f001")
    m.executor.run_all()  # f002.. prefetched at the listed version
    m.store.put("d/f002", b"new version")
    m.ns.invalidate("/d/f002")  # what a TTL expiry or a stale read does
    m.fs.readdir("/d")
    assert m.read_whole("/d/f002") == b"new version"


@pytest.mark.parametrize("fetcher", [False, True], ids=["workers", "fetch-loop"])
def test_sibling_prefetch_unopened_files_count_as_waste_when_evicted_or_at_close(
    caplog: pytest.LogCaptureFixture, fetcher: bool
) -> None:
    m = make(fetcher=fetcher, cache_bytes=8 * FILE, max_files=8)
    m.read_whole("/d/f000")
    m.read_whole("/d/f001")
    m.executor.run_all()
    prefetched = m.siblings.stats().files_prefetched
    assert prefetched == 2  # a quarter of the cache: 2 files of unread read-ahead at most
    for i in (30, 31, 32, 33, 34, 35, 36, 37):  # fills the cache, evicting the prefetched ones
        m.read_whole(f"/d/f{i:03d}")
    m.executor.run_all()
    stats = m.siblings.stats()
    assert stats.files_wasted >= 2 and stats.bytes_wasted >= 2 * FILE
    m.read_whole("/d/f038")  # an in-order open: read-ahead of f039 that nobody opens
    with caplog.at_level(logging.DEBUG, logger="ossfs.read.sibling_prefetch"):
        m.fs.close()  # unmount
    assert "directory read-ahead:" in caplog.text
    after = m.siblings.stats()
    assert m.fetcher is None or m.fetcher.closed
    assert after.unread_bytes == 0
    assert after.files_wasted == after.files_prefetched - after.files_used


def test_sibling_prefetch_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SiblingPrefetchConfig(initial_files=8, max_files=4)
    with pytest.raises(ValueError):
        SiblingPrefetchConfig(max_inflight_gets=0)


def test_sibling_prefetch_after_shutdown_reads_still_work() -> None:
    m = make()
    m.executor.shutdown()
    for i in range(5):
        assert m.read_whole(f"/d/f{i:03d}") == content(i)
    assert m.siblings.stats().files_issued == 0


def test_sibling_prefetch_errors_map_like_any_read() -> None:
    m = make()
    m.store.delete("d/f001")
    m.read_whole("/d/f000")
    fh = m.fs.open("/d/f001", os.O_RDONLY)
    m.executor.run_all()
    with pytest.raises(OssfsError) as exc:
        m.fs.read(fh, 0, FILE)
    assert exc.value.errno == errno.ENOENT


def test_sibling_prefetch_counters_appear_in_the_stats_json_and_prometheus_text() -> None:
    m = make()
    for i in range(6):
        m.read_whole(f"/d/f{i:03d}")
    stats = MountStats(
        mount="oss://b/",
        store=StoreStub(),
        cache=m.cache,
        cache_capacity_bytes=m.cache.capacity_bytes,
        namespace=m.ns,
        prefetcher=None,
        sibling_prefetcher=m.siblings,
        open_handles=m.fs.open_handles,
    )
    doc = stats.snapshot().to_json()
    section = doc["sibling_prefetch"]
    assert isinstance(section, dict)
    prefetched = section["files_prefetched"]
    assert section["files_used"] == 4 and isinstance(prefetched, int) and prefetched >= 4
    assert section["waste_ratio"] == 0.0
    lines = format_prometheus(doc).splitlines()
    assert "ossfs_sibling_prefetch_files_used_total 4" in lines
    assert "# TYPE ossfs_sibling_prefetch_unread_bytes gauge" in lines


class StoreStub:
    def stats(self) -> dict[str, int]:
        return {"requests": 0}


def test_sibling_prefetch_directory_too_large_to_index_gets_no_read_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sibling_prefetch, "_WALK_ENTRIES", N_FILES)  # N_FILES entries: too many
    m = make()
    for i in range(5):
        assert m.read_whole(f"/d/f{i:03d}") == content(i)
    assert m.executor.submitted == 0


def test_sibling_prefetch_a_lagging_reader_of_a_prefetched_file_does_not_reset_the_walk() -> None:
    m = make(slack_files=2, max_files=8)
    for i in (0, 1, 3, 4, 5, 6, 7, 8):  # the reader of f002 lags behind the others
        assert m.read_whole(f"/d/f{i:03d}") == content(i)
    assert m.read_whole("/d/f002") == content(2)  # prefetched long ago: still part of the walk
    assert m.siblings.stats().walk_resets == 0
    for i in range(9, 20):
        assert m.read_whole(f"/d/f{i:03d}") == content(i)
    assert m.siblings.stats().walk_resets == 0
    gets = m.gets()
    assert all(gets[f"d/f{i:03d}"] == 1 for i in range(20)) and set(gets.values()) == {1}


def test_sibling_prefetch_is_told_last_with_the_handle_open_and_a_failure_leaks_no_handle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = make()
    seen: list[int] = []

    def on_open(node: object) -> None:
        seen.append(m.fs.open_handles())  # the handle exists: nothing is left to do but reply
        if len(seen) == 2:
            raise RuntimeError("bug")

    monkeypatch.setattr(m.siblings, "on_open", on_open)
    m.fs.release(m.fs.open("/d/f000", os.O_RDONLY))
    with pytest.raises(RuntimeError):
        m.fs.open("/d/f001", os.O_RDONLY)
    assert seen == [1, 1]
    assert m.fs.open_handles() == 0
