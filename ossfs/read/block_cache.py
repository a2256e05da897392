"""A thread-safe, byte-bounded LRU of immutable object blocks, with single-flight fetching.

Responsibility: keep recently used blocks in memory under one byte budget, keyed by
``(object key, etag, block index)`` so a new object version never hits old blocks, and make
concurrent misses for one block share a single fetch (the later callers join the in-flight
future and receive its bytes or its exception).

A fetch can also be claimed now and settled later from another thread (`claim`, then exactly one
of `fill`, `fail` or `abandon` per claimed key): read-ahead claims blocks when it decides to fetch
them, so a reader that reaches them first waits for that fetch instead of sending its own.

The cache is also the mount's one account of block memory. Blocks being fetched are not cached
yet but their buffers exist: fetchers `reserve` their bytes first (synchronous reads, sequential
and directory read-ahead) and settle the reservation when the blocks land (`fill` converts it
into cached bytes) or the fetch ends. Cached blocks are evicted so that cached plus reserved
bytes stay within ``total_bytes``. `resize` shrinks (or restores) both limits when memory is
short (`ossfs.read.pressure`).

Deliberately not here: what a block is (offsets, sizes, ranges: `reader`), how blocks are fetched
(the caller passes a fetch function), read-ahead policy (`prefetch`), and any network access of
its own. Its lock guards memory only: fetch functions always run outside it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from ossfs.core.object_store import Piece
from ossfs.read.buffers import BufferPool

log = logging.getLogger(__name__)

BlockKey = tuple[str, str, int]
"""``(object key, etag, block index)``: the etag makes every object version a separate key space."""

Block = bytes | Piece
"""A block's bytes. A `Piece` is the buffer the network read filled (no copy was made); once
given to the cache it is never modified."""

FetchRun = Callable[[Sequence[BlockKey]], Sequence[Block]]
"""Fetches the blocks of a run of keys (in the order given) and returns one body per key."""


class FetchAbandonedError(Exception):
    """A claimed fetch was given up before it was sent (`BlockCache.abandon`).

    Internal to the cache: `get_many_or_fetch` callers that joined such a fetch look the key up
    again (and fetch it themselves if needed); they never see this exception.
    """


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since the cache was built.

    ``hits``: lookups answered from memory. ``misses``: fetches this cache started (one per block
    claimed by a caller, `claim` included). ``joined``: lookups that waited for another caller's
    in-flight fetch.
    ``evictions``: blocks dropped to stay within the byte budget. ``used_bytes``: bytes held now.
    ``reserved_bytes``: bytes of blocks being fetched now (`BlockCache.reserve`).
    ``limit_bytes``: what the cache may hold now (its capacity, less while memory is short).
    A `BlockCache.get` that finds nothing counts nothing (the caller's fetch will count a miss).
    """

    hits: int
    misses: int
    joined: int
    evictions: int
    used_bytes: int
    reserved_bytes: int
    limit_bytes: int


class _BlockLRU:
    """Blocks in recency order, least recently used first, within a byte budget; counts
    evictions and offers every evicted or dropped block to the buffer pool. Not thread-safe
    (`BlockCache` holds its lock around every call).

    An ``OrderedDict`` of its own rather than cachetools' LRUCache: read-ahead needs to move a
    block to the eviction end (`demote`), which LRUCache offers no public way to do, and a hit
    here is one dictionary lookup and one ``move_to_end``, both in C.
    """

    def __init__(self, capacity_bytes: int, pool: BufferPool | None) -> None:
        self._blocks: OrderedDict[BlockKey, Block] = OrderedDict()
        self._capacity = capacity_bytes
        self.currsize = 0
        self.evictions = 0
        self.pool = pool

    def __contains__(self, key: BlockKey) -> bool:
        return key in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def __iter__(self) -> Iterator[BlockKey]:
        """The cached keys, least recently used first."""
        return iter(self._blocks)

    def peek(self, key: BlockKey) -> Block | None:
        """The block, or None; its place in the order does not change."""
        return self._blocks.get(key)

    def get(self, key: BlockKey) -> Block | None:
        """The block (marking it most recently used), or None."""
        block = self._blocks.get(key)
        if block is not None:
            self._blocks.move_to_end(key)
        return block

    def put(self, key: BlockKey, block: Block) -> None:
        """Cache ``block`` (at most the capacity: the caller checks) as the most recently
        used, replacing any block of ``key``, evicting least recently used blocks first."""
        old = self._blocks.pop(key, None)
        if old is not None:
            self.currsize -= len(old)
        size = len(block)
        while self.currsize + size > self._capacity:
            self.evict()
        self._blocks[key] = block
        self.currsize += size

    def evict(self) -> None:
        """Evict the least recently used block (there must be one)."""
        _key, block = self._blocks.popitem(last=False)
        self.currsize -= len(block)
        self.evictions += 1
        if self.pool is not None:
            self.pool.give(block)

    def remove(self, key: BlockKey) -> None:
        """Forget ``key``'s block if cached (not offered to the pool)."""
        old = self._blocks.pop(key, None)
        if old is not None:
            self.currsize -= len(old)

    def demote(self, key: BlockKey) -> bool:
        """Make ``key`` the next to be evicted; False if it was not cached."""
        if key not in self._blocks:
            return False
        self._blocks.move_to_end(key, last=False)
        return True

    def drop(self, key: BlockKey) -> bool:
        """Remove ``key`` (offering its block to the pool); False if it was not cached."""
        block = self._blocks.pop(key, None)
        if block is None:
            return False
        self.currsize -= len(block)
        if self.pool is not None:
            self.pool.give(block)
        return True


class BlockCache:
    """Thread-safe, byte-bounded LRU of immutable blocks, single-flight on misses.

    ``used_bytes`` never exceeds ``limit_bytes`` (``capacity_bytes``, or less after `resize`):
    inserting evicts least recently used blocks first, and a block larger than the limit is
    handed to its callers but not cached. With ``total_bytes``, cached and reserved bytes
    together stay within it too (see `reserve`). All methods are safe to call from any thread.
    The internal lock is held only for dictionary work, never while a fetch function runs.
    """

    def __init__(
        self,
        capacity_bytes: int,
        pool: BufferPool | None = None,
        *,
        total_bytes: int | None = None,
        on_discard_object: Callable[[str, str], None] | None = None,
    ) -> None:
        """``capacity_bytes`` >= 0 (0 caches nothing but still de-duplicates concurrent fetches).
        ``pool``: where the buffers of evicted and dropped blocks go back for reuse.
        ``total_bytes``: the most that cached blocks and reservations (blocks being fetched) may
        hold together, at least ``capacity_bytes``; None: reservations are only counted.
        ``on_discard_object``: told every `discard_object` (the disk cache drops its copies).

        Raises ValueError on a negative capacity or a total below it.
        """
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
        if total_bytes is not None and total_bytes < capacity_bytes:
            raise ValueError(f"total_bytes {total_bytes} is below capacity_bytes {capacity_bytes}")
        self._capacity = capacity_bytes
        self._total = total_bytes
        self._limit = capacity_bytes  # what may be cached now (`resize`)
        self._total_limit = total_bytes  # what cached + reserved may be now
        self._floor = 0  # reservations never evict below this (`resize`)
        self._reserved = 0
        self._on_discard_object = on_discard_object
        self._lock = threading.Lock()
        self._lru = _BlockLRU(capacity_bytes, pool)
        self._inflight: dict[BlockKey, Future[Block]] = {}
        self._hits = 0
        self._misses = 0
        self._joined = 0

    # -- lookups ----------------------------------------------------------------------------------
    def get(self, key: BlockKey) -> Block | None:
        """The cached block (marking it most recently used), or None. Never fetches or waits."""
        with self._lock:
            data = self._lru.get(key)
            if data is not None:
                self._hits += 1
            return data

    def get_or_fetch(self, key: BlockKey, fetch: Callable[[], Block]) -> Block:
        """The block for ``key``: from memory, from another caller's in-flight fetch, or from
        ``fetch()`` run in this thread outside the lock and then cached.

        An exception from ``fetch`` propagates to this caller and to every caller that joined the
        fetch; nothing is cached for it, so the next lookup fetches again.
        """
        return self.get_many_or_fetch((key,), lambda _keys: (fetch(),))[0]

    def get_many_or_fetch(self, keys: Sequence[BlockKey], fetch_run: FetchRun) -> list[Block]:
        """The blocks for ``keys``, in order, fetching only those neither cached nor in flight.

        Under the lock each key is found cached, joined (another caller is fetching it) or claimed
        by this caller. Claimed keys that are adjacent in ``keys`` form a run, and ``fetch_run`` is
        called once per run, outside the lock, and must return exactly one body per key of the run.
        This caller fetches all its runs before waiting for any joined key, so callers that claim
        overlapping key sets cannot deadlock. A joined fetch that was abandoned (`abandon`) is
        looked up again, and fetched by this caller if nobody else has it by then.

        If a run fails, that exception is delivered to the waiters of every key this caller
        claimed and not yet delivered (this run and later runs, which are not attempted), and then
        raised here; nothing of the failed runs is cached. An exception of a joined fetch is
        raised here after this caller's own runs are done. ValueError if ``fetch_run`` returns the
        wrong number of bodies (delivered the same way).
        """
        results: list[Block | None] = [None] * len(keys)
        joined: list[tuple[int, Future[Block]]] = []
        claimed: list[tuple[int, Future[Block]]] = []
        with self._lock:
            for pos, key in enumerate(keys):
                data = self._lru.get(key)
                if data is not None:
                    self._hits += 1
                    results[pos] = data
                    continue
                future = self._inflight.get(key)
                if future is not None:
                    self._joined += 1
                    joined.append((pos, future))
                    continue
                future = Future()
                self._inflight[key] = future
                self._misses += 1
                claimed.append((pos, future))

        if claimed:
            self._fetch_claimed(keys, claimed, fetch_run, results)
        abandoned: list[int] = []
        for pos, future in joined:
            try:
                results[pos] = future.result()
            except FetchAbandonedError:
                abandoned.append(pos)
        if abandoned:
            self._refetch_abandoned(keys, abandoned, fetch_run, results)

        out: list[Block] = []
        for data in results:
            assert data is not None  # every position was a hit, a claimed fetch or a joined one
            out.append(data)
        return out

    def _refetch_abandoned(
        self,
        keys: Sequence[BlockKey],
        positions: list[int],
        fetch_run: FetchRun,
        results: list[Block | None],
    ) -> None:
        """Look up again the joined keys whose fetch was abandoned, keeping runs intact: only
        positions adjacent in ``keys`` go into one call (``fetch_run`` expects adjacent keys)."""
        groups: list[list[int]] = []
        for pos in positions:
            if groups and groups[-1][-1] + 1 == pos:
                groups[-1].append(pos)
            else:
                groups.append([pos])
        for group in groups:
            bodies = self.get_many_or_fetch([keys[pos] for pos in group], fetch_run)
            for pos, data in zip(group, bodies, strict=True):
                results[pos] = data

    def _fetch_claimed(
        self,
        keys: Sequence[BlockKey],
        claimed: list[tuple[int, Future[Block]]],
        fetch_run: FetchRun,
        results: list[Block | None],
    ) -> None:
        """Fetch each run of adjacent claimed positions, cache and deliver (get_many_or_fetch)."""
        runs: list[list[tuple[int, Future[Block]]]] = []
        for item in claimed:
            if runs and runs[-1][-1][0] + 1 == item[0]:
                runs[-1].append(item)
            else:
                runs.append([item])

        for done, run in enumerate(runs):
            run_keys = [keys[pos] for pos, _ in run]
            try:
                bodies = fetch_run(run_keys)
                if len(bodies) != len(run_keys):
                    raise ValueError(
                        f"fetch returned {len(bodies)} blocks for {len(run_keys)} keys"
                    )
            except BaseException as exc:
                # Release every claim left and wake its waiters, or they would wait forever.
                self.fail([keys[pos] for later in runs[done:] for pos, _ in later], exc)
                raise
            self.fill(run_keys, bodies)
            for (pos, _), data in zip(run, bodies, strict=True):
                results[pos] = data

    # -- fetches claimed now, settled later -------------------------------------------------------
    def claim(self, keys: Sequence[BlockKey]) -> list[BlockKey]:
        """Mark as in flight every key of ``keys`` that is neither cached nor in flight, and
        return those keys (in the given order). Never fetches, waits or touches LRU order.

        The caller owns the returned claims and must settle each key exactly once, from any
        thread, with `fill`, `fail` or `abandon`; until then `get_many_or_fetch` callers that
        need a claimed key wait for it. Each claimed key counts as a miss.
        """
        claimed: list[BlockKey] = []
        with self._lock:
            for key in keys:
                if key in self._lru or key in self._inflight:
                    continue
                self._inflight[key] = Future()
                self._misses += 1
                claimed.append(key)
        return claimed

    def fill(
        self, keys: Sequence[BlockKey], bodies: Sequence[Block], *, reserved_bytes: int = 0
    ) -> None:
        """Settle claimed ``keys`` with their ``bodies``: cache them and wake their waiters.
        ``reserved_bytes`` of the caller's reservation (`reserve`) are released in the same
        step: the bodies' bytes are now counted as cached instead.

        Raises ValueError (settling nothing) unless there is exactly one body per key.
        """
        if len(bodies) != len(keys):
            raise ValueError(f"{len(bodies)} bodies for {len(keys)} keys")
        with self._lock:
            self._reserved -= reserved_bytes
            futures = [self._inflight.pop(key, None) for key in keys]
            for key, data in zip(keys, bodies, strict=True):
                self._insert_locked(key, data)
        for future, data in zip(futures, bodies, strict=True):
            if future is not None:
                future.set_result(data)

    def fail(self, keys: Sequence[BlockKey], exc: BaseException) -> None:
        """Settle claimed ``keys`` with ``exc``: cache nothing; every waiter raises ``exc``."""
        with self._lock:
            futures = [self._inflight.pop(key, None) for key in keys]
        for future in futures:
            if future is not None:
                future.set_exception(exc)

    def abandon(self, keys: Sequence[BlockKey]) -> None:
        """Settle claimed ``keys`` as never fetched: waiters look them up (and fetch) again."""
        self.fail(keys, FetchAbandonedError("fetch abandoned before it was sent"))

    def contains(self, key: BlockKey) -> bool:
        """True if ``key`` is cached now. Counts nothing and does not touch LRU order."""
        with self._lock:
            return key in self._lru

    def peek(self, key: BlockKey) -> Block | None:
        """The cached block, or None. Counts nothing and does not touch LRU order (the disk
        cache's writers take the blocks they still owe the disk from here)."""
        with self._lock:
            return self._lru.peek(key)

    def any_present(self, keys: Sequence[BlockKey]) -> bool:
        """True if one of ``keys`` is cached or being fetched now (one hold of the lock).
        Counts nothing and does not touch LRU order."""
        with self._lock:
            lru, inflight = self._lru, self._inflight
            return any(key in lru or key in inflight for key in keys)

    def fetching(self, key: BlockKey) -> bool:
        """True if ``key`` is being fetched now (claimed or in a fetch): a lookup would join it.
        Counts nothing."""
        with self._lock:
            return key in self._inflight

    # -- inserts and removals -------------------------------------------------------------------
    def put(self, key: BlockKey, data: Block) -> None:
        """Cache ``data`` under ``key`` (replacing any), evicting LRU blocks to stay in budget.

        A block larger than the capacity is not cached. Does not affect an in-flight fetch.
        """
        with self._lock:
            self._insert_locked(key, data)

    def _insert_locked(self, key: BlockKey, data: Block) -> None:
        if len(data) > self._limit:
            log.debug("block %r of %d bytes exceeds the cache's limit; not cached", key, len(data))
            self._lru.remove(key)
            return
        self._lru.put(key, data)
        self._evict_locked()

    def _evict_locked(self) -> None:
        """Evict least recently used blocks until within the limits (`resize`, `reserve`);
        reservations do not evict below the floor."""
        lru = self._lru
        total = self._total_limit
        while lru and (
            lru.currsize > self._limit
            or (
                total is not None
                and lru.currsize + self._reserved > total
                and lru.currsize > self._floor
            )
        ):
            lru.evict()

    # -- block memory -----------------------------------------------------------------------------
    def reserve(self, nbytes: int, *, force: bool = False) -> bool:
        """Count ``nbytes`` of blocks about to be fetched (their buffers are not cached yet),
        evicting cached blocks so that cached plus reserved bytes stay within the total.

        Without ``force``, refused (False, nothing counted) when the reservations alone would be
        above the total now: read-ahead then waits, and reads fetch for themselves. With it,
        always counted: a read must make progress, so its block is fetched even when memory is
        short (the cache gives way). Every reservation is settled once, by `release` or by
        `fill`'s ``reserved_bytes``.
        """
        with self._lock:
            total = self._total_limit
            if not force and total is not None and self._reserved + nbytes > total:
                return False
            self._reserved += nbytes
            if total is not None:
                self._evict_locked()
            return True

    def release(self, nbytes: int) -> None:
        """Settle ``nbytes`` of reservations whose blocks did not come (or came and were cached
        by another call)."""
        with self._lock:
            self._reserved -= nbytes

    def resize(self, scale: float, *, floor_bytes: int = 0) -> None:
        """What may be cached, and the total, become ``scale`` (0..1) of the capacity and total
        given at construction, the cache's at least ``floor_bytes`` (never above its capacity);
        blocks are evicted at once to fit. Reservations (forced ones: reads) do not evict
        below ``floor_bytes``: the blocks readers are in stay while memory is short, and reads
        of 128 KiB do not fetch their 1 MiB block again and again. ``resize(1.0)`` restores
        both limits."""
        if not 0.0 <= scale <= 1.0:
            raise ValueError(f"scale must be within [0, 1], not {scale}")
        with self._lock:
            self._floor = min(floor_bytes, self._capacity)
            limit = max(self._floor, int(self._capacity * scale))
            self._limit = limit
            if self._total is not None:
                self._total_limit = max(limit, int(self._total * scale))
            self._evict_locked()

    def discard_object(self, object_key: str, etag: str) -> None:
        """Drop every cached block of that object version (O(number of cached blocks)), and
        tell ``on_discard_object``."""
        with self._lock:
            doomed = [k for k in self._lru if k[0] == object_key and k[1] == etag]
            for k in doomed:
                self._lru.drop(k)
        if self._on_discard_object is not None:
            self._on_discard_object(object_key, etag)

    def discard(self, keys: Sequence[BlockKey]) -> int:
        """Drop these blocks if cached (not in-flight fetches); returns how many were dropped.
        Their buffers go back to the pool."""
        with self._lock:
            return sum(self._lru.drop(key) for key in keys)

    def demote(self, keys: Sequence[BlockKey]) -> int:
        """Make these blocks (those cached) the first to be evicted; returns how many.

        For blocks whose reader is done with them (read-ahead behind a sequential reader): they
        stay while the cache has room (a re-read the kernel's page cache no longer holds finds
        them), but a long sequential read cannot push out blocks other readers still use.
        """
        with self._lock:
            return sum(self._lru.demote(key) for key in keys)

    # -- accounting -------------------------------------------------------------------------------
    @property
    def capacity_bytes(self) -> int:
        return self._capacity

    @property
    def limit_bytes(self) -> int:
        """What may be cached now: ``capacity_bytes``, or less after `resize`."""
        with self._lock:
            return self._limit

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return int(self._lru.currsize)

    @property
    def reserved_bytes(self) -> int:
        """Bytes of blocks being fetched now (`reserve`)."""
        with self._lock:
            return self._reserved

    @property
    def inflight_count(self) -> int:
        """Keys being fetched (or claimed and not yet settled) right now."""
        with self._lock:
            return len(self._inflight)

    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                joined=self._joined,
                evictions=self._lru.evictions,
                used_bytes=int(self._lru.currsize),
                reserved_bytes=self._reserved,
                limit_bytes=self._limit,
            )
