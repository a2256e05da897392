from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.core.errors import RemoteIOError
from ossfs.read.block_cache import BlockCache, BlockKey, CacheStats
from tests.support.waiting import wait_until

WAIT_S = 10.0  # generous deadline for thread handshakes: a hang fails the test instead of blocking


def key(index: int, obj: str = "a.bin", etag: str = "E1") -> BlockKey:
    return (obj, etag, index)


class CountingFetch:
    """A fetch function that returns ``data`` and records how often it ran."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.data


def test_block_cache_miss_fetches_then_hits() -> None:
    cache = BlockCache(100)
    fetch = CountingFetch(b"abc")
    assert cache.get(key(0)) is None
    assert cache.get_or_fetch(key(0), fetch) == b"abc"
    assert cache.get_or_fetch(key(0), fetch) == b"abc"
    assert cache.get(key(0)) == b"abc"
    assert fetch.calls == 1
    assert cache.stats() == CacheStats(
        hits=2, misses=1, joined=0, evictions=0, used_bytes=3, reserved_bytes=0, limit_bytes=100
    )


def test_block_cache_etag_separates_versions() -> None:
    cache = BlockCache(100)
    cache.put(key(0, etag="E1"), b"old")
    assert cache.get(key(0, etag="E2")) is None
    assert cache.get_or_fetch(key(0, etag="E2"), CountingFetch(b"new")) == b"new"
    assert cache.get(key(0, etag="E1")) == b"old"


def test_block_cache_evicts_least_recently_used() -> None:
    cache = BlockCache(10)
    cache.put(key(0), b"0000")
    cache.put(key(1), b"1111")
    assert cache.get(key(0)) == b"0000"  # block 1 is now the least recently used
    cache.put(key(2), b"2222")
    assert cache.get(key(1)) is None
    assert cache.get(key(0)) == b"0000"
    assert cache.get(key(2)) == b"2222"
    assert cache.used_bytes == 8
    assert cache.stats().evictions == 1


def test_block_cache_block_larger_than_capacity_is_returned_not_cached() -> None:
    cache = BlockCache(4)
    cache.put(key(0), b"kept")
    fetch = CountingFetch(b"too large")
    assert cache.get_or_fetch(key(1), fetch) == b"too large"
    assert cache.get_or_fetch(key(1), fetch) == b"too large"
    assert fetch.calls == 2
    assert cache.get(key(0)) == b"kept"
    assert cache.used_bytes == 4


def test_block_cache_zero_capacity_caches_nothing() -> None:
    cache = BlockCache(0)
    cache.put(key(0), b"x")
    assert cache.get(key(0)) is None
    assert cache.used_bytes == 0
    assert cache.capacity_bytes == 0


def test_block_cache_negative_capacity_rejected() -> None:
    with pytest.raises(ValueError):
        BlockCache(-1)


def test_block_cache_put_replaces_and_accounts_bytes() -> None:
    cache = BlockCache(10)
    cache.put(key(0), b"12345")
    cache.put(key(0), b"12")
    assert cache.get(key(0)) == b"12"
    assert cache.used_bytes == 2


def test_block_cache_discard_object_drops_only_that_version() -> None:
    cache = BlockCache(100)
    cache.put(key(0, etag="E1"), b"a")
    cache.put(key(1, etag="E1"), b"b")
    cache.put(key(0, etag="E2"), b"c")
    cache.put(key(0, obj="other", etag="E1"), b"d")
    cache.discard_object("a.bin", "E1")
    assert cache.get(key(0, etag="E1")) is None
    assert cache.get(key(1, etag="E1")) is None
    assert cache.get(key(0, etag="E2")) == b"c"
    assert cache.get(key(0, obj="other", etag="E1")) == b"d"
    assert cache.used_bytes == 2


class BlockingFetch:
    """A fetch that signals ``started`` and then waits for ``release`` before answering."""

    def __init__(self, result: bytes | BaseException) -> None:
        self.result = result
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        self.started.set()
        assert self.release.wait(WAIT_S)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def wait_for_joined(cache: BlockCache, count: int) -> None:
    """Return once ``count`` callers have joined an in-flight fetch (polled, with a deadline)."""
    wait_until(
        lambda: cache.stats().joined >= count, WAIT_S, f"{count} joined fetches", step_s=0.001
    )


def test_block_cache_concurrent_misses_share_one_fetch() -> None:
    cache = BlockCache(100)
    fetch = BlockingFetch(b"block")
    waiters = 4
    with ThreadPoolExecutor(max_workers=waiters + 1) as pool:
        first = pool.submit(cache.get_or_fetch, key(0), fetch)
        assert fetch.started.wait(WAIT_S)
        others = [pool.submit(cache.get_or_fetch, key(0), fetch) for _ in range(waiters)]
        wait_for_joined(cache, waiters)
        fetch.release.set()
        assert first.result(WAIT_S) == b"block"
        assert [f.result(WAIT_S) for f in others] == [b"block"] * waiters
    assert fetch.calls == 1
    assert cache.stats() == CacheStats(
        hits=0,
        misses=1,
        joined=waiters,
        evictions=0,
        used_bytes=5,
        reserved_bytes=0,
        limit_bytes=100,
    )


def test_block_cache_fetch_error_reaches_all_waiters_and_is_not_cached() -> None:
    cache = BlockCache(100)
    boom = RemoteIOError("boom")
    fetch = BlockingFetch(boom)
    waiters = 3
    with ThreadPoolExecutor(max_workers=waiters + 1) as pool:
        first = pool.submit(cache.get_or_fetch, key(0), fetch)
        assert fetch.started.wait(WAIT_S)
        others = [pool.submit(cache.get_or_fetch, key(0), fetch) for _ in range(waiters)]
        wait_for_joined(cache, waiters)
        fetch.release.set()
        for future in [first, *others]:
            with pytest.raises(RemoteIOError) as info:
                future.result(WAIT_S)
            assert info.value is boom
    assert fetch.calls == 1
    assert cache.used_bytes == 0
    retry = CountingFetch(b"ok")
    assert cache.get_or_fetch(key(0), retry) == b"ok"
    assert retry.calls == 1


def test_block_cache_get_does_not_wait_for_inflight_fetch() -> None:
    cache = BlockCache(100)
    fetch = BlockingFetch(b"x")
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(cache.get_or_fetch, key(0), fetch)
        assert fetch.started.wait(WAIT_S)
        assert cache.get(key(0)) is None
        fetch.release.set()
        assert first.result(WAIT_S) == b"x"
    assert cache.get(key(0)) == b"x"


class RunRecorder:
    """A run fetch answering ``bytes([index]) * size`` per key; records each run's indices."""

    def __init__(self, size: int = 2, fail_on: int | None = None) -> None:
        self.size = size
        self.fail_on = fail_on
        self.runs: list[list[int]] = []

    def __call__(self, keys: Sequence[BlockKey]) -> list[bytes]:
        indices = [k[2] for k in keys]
        self.runs.append(indices)
        if self.fail_on in indices:
            raise RemoteIOError(f"block {self.fail_on}")
        return [bytes([i]) * self.size for i in indices]


def test_block_cache_get_many_fetches_adjacent_misses_as_runs() -> None:
    cache = BlockCache(100)
    cache.put(key(2), b"\x02\x02")
    fetch = RunRecorder()
    got = cache.get_many_or_fetch([key(i) for i in range(5)], fetch)
    assert got == [bytes([i]) * 2 for i in range(5)]
    assert fetch.runs == [[0, 1], [3, 4]]
    assert cache.stats() == CacheStats(
        hits=1, misses=4, joined=0, evictions=0, used_bytes=10, reserved_bytes=0, limit_bytes=100
    )


def test_block_cache_get_many_failed_run_releases_later_claims() -> None:
    cache = BlockCache(100)
    cache.put(key(1), b"\x01\x01")
    fetch = RunRecorder(fail_on=0)
    with pytest.raises(RemoteIOError):
        cache.get_many_or_fetch([key(0), key(1), key(2)], fetch)
    assert fetch.runs == [[0]]  # block 2's run is not attempted after block 0's failed
    retry = RunRecorder()
    assert cache.get_many_or_fetch([key(2)], retry) == [b"\x02\x02"]
    assert retry.runs == [[2]]
    assert cache.get(key(0)) is None


def test_block_cache_get_many_wrong_body_count_raises() -> None:
    cache = BlockCache(100)

    def short(keys: Sequence[BlockKey]) -> list[bytes]:
        return [b"x"]

    with pytest.raises(ValueError):
        cache.get_many_or_fetch([key(0), key(1)], short)
    assert cache.used_bytes == 0
    assert cache.get_or_fetch(key(0), CountingFetch(b"y")) == b"y"


def test_block_cache_overlapping_claims_do_not_deadlock() -> None:
    cache = BlockCache(100)
    gate = threading.Barrier(2, timeout=WAIT_S)

    def make_fetch() -> Callable[[Sequence[BlockKey]], list[bytes]]:
        def fetch(keys: Sequence[BlockKey]) -> list[bytes]:
            gate.wait()  # both callers hold their claims before either finishes
            return [bytes([k[2]]) for k in keys]

        return fetch

    a_started = threading.Event()
    fetch_a = make_fetch()

    def fetch_a_signalling(keys: Sequence[BlockKey]) -> list[bytes]:
        a_started.set()
        return fetch_a(keys)

    with ThreadPoolExecutor(max_workers=2) as pool:
        # A claims 0 and 1; then B claims 2 and joins A's 0 and 1. A's fetch cannot finish until
        # B's fetch has started, so B must fetch its own claim before waiting for A's.
        a = pool.submit(cache.get_many_or_fetch, [key(0), key(1)], fetch_a_signalling)
        assert a_started.wait(WAIT_S)
        b = pool.submit(cache.get_many_or_fetch, [key(2), key(1), key(0)], make_fetch())
        assert a.result(WAIT_S) == [b"\x00", b"\x01"]
        assert b.result(WAIT_S) == [b"\x02", b"\x01", b"\x00"]
    stats = cache.stats()
    assert stats.misses == 3
    assert stats.joined == 2


ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "get", "fetch", "discard"]),
        st.integers(min_value=0, max_value=7),
        st.sampled_from(["E1", "E2"]),
        st.integers(min_value=0, max_value=40),
    ),
    max_size=60,
)


@given(capacity=st.integers(min_value=0, max_value=64), operations=ops)
def test_block_cache_never_exceeds_byte_budget(
    capacity: int, operations: list[tuple[str, int, str, int]]
) -> None:
    cache = BlockCache(capacity)
    for op, index, etag, length in operations:
        k = key(index, etag=etag)
        body = bytes([index]) * length
        if op == "put":
            cache.put(k, body)
        elif op == "get":
            got = cache.get(k)
            assert got is None or got == bytes([index]) * len(got)
        elif op == "fetch":
            before = cache.get(k)
            got = cache.get_or_fetch(k, CountingFetch(body))
            assert got == (body if before is None else before)
        else:
            cache.discard_object("a.bin", etag)
            assert all(cache.get(key(i, etag=etag)) is None for i in range(8))
        assert 0 <= cache.used_bytes <= capacity
        assert cache.stats().used_bytes == cache.used_bytes


# -- claims settled later (read-ahead) ------------------------------------------------------------
def test_block_cache_claim_skips_cached_and_inflight_keys_and_fill_settles() -> None:
    cache = BlockCache(100)
    cache.put(key(1), b"11")
    assert cache.claim([key(0), key(1), key(2)]) == [key(0), key(2)]
    assert cache.claim([key(0), key(2), key(3)]) == [key(3)]  # 0 and 2 are in flight
    assert cache.inflight_count == 3
    assert cache.get(key(0)) is None and not cache.contains(key(0))
    cache.fill([key(0), key(2)], [b"00", b"22"])
    cache.fill([key(3)], [b"33"])
    assert cache.inflight_count == 0
    assert [cache.contains(key(i)) for i in range(4)] == [True] * 4
    fetch = CountingFetch(b"xx")
    assert cache.get_many_or_fetch([key(0), key(2), key(3)], lambda _: [fetch()]) == [
        b"00",
        b"22",
        b"33",
    ]
    assert fetch.calls == 0
    assert cache.stats() == CacheStats(
        hits=3, misses=3, joined=0, evictions=0, used_bytes=8, reserved_bytes=0, limit_bytes=100
    )


def test_block_cache_fill_rejects_wrong_body_count() -> None:
    cache = BlockCache(100)
    claimed = cache.claim([key(0), key(1)])
    with pytest.raises(ValueError):
        cache.fill(claimed, [b"only one"])
    assert cache.inflight_count == 2  # nothing was settled
    cache.fill(claimed, [b"0", b"1"])
    assert cache.inflight_count == 0


def test_block_cache_claimed_key_waiter_gets_fill_or_error() -> None:
    cache = BlockCache(100)
    cache.claim([key(0), key(1)])
    fetch = CountingFetch(b"never")
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = pool.submit(cache.get_or_fetch, key(0), fetch)
        failing = pool.submit(cache.get_or_fetch, key(1), fetch)
        wait_for_joined(cache, 2)
        cache.fill([key(0)], [b"zero"])
        cache.fail([key(1)], RemoteIOError("boom"))
        assert got.result(WAIT_S) == b"zero"
        with pytest.raises(RemoteIOError):
            failing.result(WAIT_S)
    assert fetch.calls == 0
    assert not cache.contains(key(1)) and cache.inflight_count == 0
    # The failure cached nothing: the next lookup fetches.
    assert cache.get_or_fetch(key(1), CountingFetch(b"one")) == b"one"


def test_block_cache_abandoned_claims_are_fetched_by_their_waiters() -> None:
    cache = BlockCache(100)
    cache.put(key(2), b"22")
    claimed = cache.claim([key(1), key(3)])
    runs: list[list[int]] = []

    def fetch_run(keys: Sequence[BlockKey]) -> list[bytes]:
        runs.append([k[2] for k in keys])
        return [f"{k[2]}{k[2]}".encode() for k in keys]

    with ThreadPoolExecutor(max_workers=1) as pool:
        got = pool.submit(cache.get_many_or_fetch, [key(i) for i in range(5)], fetch_run)
        wait_for_joined(cache, 2)
        cache.abandon(claimed)
        assert got.result(WAIT_S) == [b"00", b"11", b"22", b"33", b"44"]
    # Its own misses 0 and 4 first (two runs), then each abandoned key on its own: 1 and 3 are
    # not adjacent, so they never form one run.
    assert runs == [[0], [4], [1], [3]]
    assert cache.inflight_count == 0


# -- the account of block memory: reservations and resizing ---------------------------------------
def test_block_cache_reservations_evict_to_stay_within_the_total() -> None:
    cache = BlockCache(10, total_bytes=14)
    for index in range(5):
        cache.put(key(index), b"xx")  # 10 bytes cached: full
    assert cache.reserve(4)  # 10 + 4 fits the total
    assert cache.used_bytes == 10
    assert cache.reserve(2)  # 10 + 6 does not: the least recently used block goes
    assert cache.used_bytes == 8 and not cache.contains(key(0))
    assert cache.reserved_bytes == 6
    cache.release(2)
    # A fill settles its reservation and caches the block in one step: nothing more is evicted.
    claimed = cache.claim([key(9)])
    cache.fill(claimed, [b"yyyy"], reserved_bytes=4)
    assert cache.reserved_bytes == 0
    assert cache.used_bytes == 10
    assert [cache.contains(key(i)) for i in (1, 2, 3, 4, 9)] == [False, True, True, True, True]


def test_block_cache_reserve_refuses_past_the_total_unless_forced() -> None:
    cache = BlockCache(10, total_bytes=14)
    cache.put(key(0), b"0123456789")
    assert not cache.reserve(15)
    assert cache.reserved_bytes == 0 and cache.contains(key(0))
    # A read must make progress: forced, it is counted and the cache gives way.
    assert cache.reserve(15, force=True)
    assert cache.reserved_bytes == 15 and cache.used_bytes == 0
    assert not cache.reserve(1)
    cache.release(15)
    assert cache.reserve(14)


def test_block_cache_without_a_total_only_counts_reservations() -> None:
    cache = BlockCache(4)
    cache.put(key(0), b"0000")
    assert cache.reserve(100)
    assert cache.used_bytes == 4 and cache.reserved_bytes == 100


def test_block_cache_resize_shrinks_at_once_and_restores() -> None:
    cache = BlockCache(100, total_bytes=120)
    for index in range(10):
        cache.put(key(index), b"x" * 10)
    cache.resize(0.25)
    assert cache.limit_bytes == 25 and cache.used_bytes == 20
    assert [cache.contains(key(i)) for i in (7, 8, 9)] == [False, True, True]
    assert cache.reserve(10) and cache.reserved_bytes == 10  # total 30: 20 + 10 fits
    assert not cache.reserve(21)  # the total shrank with it
    cache.release(10)
    cache.resize(0.0, floor_bytes=10)  # never below the floor
    assert cache.limit_bytes == 10 and cache.used_bytes == 10
    assert cache.reserve(30, force=True)  # a read's reservation does not evict below it
    assert cache.used_bytes == 10
    cache.release(30)
    cache.put(key(20), b"y" * 11)  # larger than the cache may hold now: returned, not cached
    assert not cache.contains(key(20))
    cache.resize(1.0)
    assert cache.limit_bytes == 100
    for index in range(10):
        cache.put(key(index), b"x" * 10)
    assert cache.used_bytes == 100
    with pytest.raises(ValueError, match="scale"):
        cache.resize(1.5)


def test_block_cache_total_below_capacity_rejected() -> None:
    with pytest.raises(ValueError, match="total_bytes"):
        BlockCache(10, total_bytes=9)


memory_ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "reserve", "force", "release", "fill", "resize"]),
        st.integers(min_value=0, max_value=7),
        st.integers(min_value=0, max_value=40),
    ),
    max_size=60,
)


@given(
    capacity=st.integers(min_value=0, max_value=64),
    spare=st.integers(min_value=0, max_value=32),
    operations=memory_ops,
)
def test_block_cache_cached_plus_reserved_stays_within_the_total(
    capacity: int, spare: int, operations: list[tuple[str, int, int]]
) -> None:
    """Whatever is put, reserved, released, filled or resized: what is cached stays within the
    cache's limit, and cached plus reserved within the total, unless reservations (forced ones)
    leave no room beside the floor; then nothing above the floor is cached."""
    total = capacity + spare
    cache = BlockCache(capacity, total_bytes=total)
    reserved = 0
    scale = 1.0
    floor = 0
    for op, index, length in operations:
        if op == "put":
            cache.put(key(index), bytes(length))
        elif op in ("reserve", "force"):
            if cache.reserve(length, force=op == "force"):
                reserved += length
        elif op == "release":
            amount = min(length, reserved)
            cache.release(amount)
            reserved -= amount
        elif op == "fill":
            amount = min(length, reserved)
            claimed = cache.claim([key(index, etag="F")])
            if claimed:
                cache.fill(claimed, [bytes(amount)], reserved_bytes=amount)
            else:  # already cached: the fetch would not have been made
                cache.release(amount)
            reserved -= amount
        else:
            scale = index / 7
            floor = length // 2
            cache.resize(scale, floor_bytes=floor)
        limit = max(min(floor, capacity), int(capacity * scale))
        assert cache.reserved_bytes == reserved
        assert cache.used_bytes <= cache.limit_bytes == limit
        total_now = max(limit, int(total * scale))
        if reserved <= total_now - min(floor, capacity):
            assert cache.used_bytes + reserved <= total_now
        else:
            assert cache.used_bytes <= min(floor, capacity)


def test_any_present_sees_cached_and_in_flight_keys_only() -> None:
    cache = BlockCache(1 << 20)
    cached, claimed, absent = ("k", "e", 0), ("k", "e", 1), ("k", "e", 2)
    cache.put(cached, b"x")
    assert cache.claim([claimed]) == [claimed]
    assert cache.any_present([absent, cached])
    assert cache.any_present([claimed])
    assert not cache.any_present([absent, ("k", "other etag", 0)])
    cache.abandon([claimed])
    assert not cache.any_present([claimed])
