"""Directory-order read-ahead of small files: fetch the next siblings before they are opened.

Responsibility: notice that opens of files in one directory follow the directory's listing order
(``cp -r``, ``tar``, ``rsync``, ``grep -r`` read a directory's files one after the other, in
readdir order) and fetch the next small siblings whole, one GET each, pinned with If-Match to
the etag the listing gave, on a worker pool into the shared `BlockCache`, so their own open and
read is a cache hit (or joins the GET already in flight: single flight, never a second GET).

The policy, per directory (a *walk*, reset when the directory's cached listing is replaced):

- Positions are indices in the directory's listing (name order, every kind of entry).
- An open is *in order* when its position is within ``slack_files`` of the furthest position
  opened so far (either side: concurrent readers open slightly out of order), or inside what
  read-ahead already covered, or of a file read-ahead fetched (a reader lagging behind the
  others). Any other open resets the walk: the window goes back to
  ``initial_files`` and nothing is issued until opens are in order again. The first open of a
  walk never prefetches, so random opens fetch only what they read.
- An in-order open makes sure the next ``window`` *small* files after the furthest position are
  issued: regular files of ``1..max_file_bytes`` bytes (``max_file_bytes`` is at most the block
  size: such an object is exactly one block, the unit a reader would fetch it in), not archived;
  other entries are skipped. The window starts at ``initial_files`` and doubles up to
  ``max_files`` each time an in-order open found its file not yet cached.
- Limits: the bytes prefetched and not yet opened (in flight or cached) stay within
  ``max_unread_bytes``, and the GETs in flight stay within what keeps up with the readers:
  twice (the fastest of the last 64 read-ahead GETs) x (the opens per second over the last 64
  opens), plus ``min_inflight_gets``, capped at ``max_inflight_gets`` (Little's law; the
  fastest GET, not the average, because GETs queued behind each other for the CPU are slower
  without being more useful). 20 ms to a first byte needs dozens in flight; on a fast link the
  floor decides: 24, so that 8 concurrent readers still find files fetched ahead of them
  (12 gave 8% fewer files/s with 8 readers on loopback, and no more with 1, once the GETs ran
  on the fetch loop; on worker threads more GETs only competed for the GIL). Past either limit
  nothing more is issued now (later opens continue where issuing stopped). The listings
  indexed for walks hold at most 200,000 entries together: a larger directory gets no
  read-ahead.
- Each GET's bytes are reserved in the cache's account of block memory (`BlockCache.reserve`)
  until its body is cached; a reservation the cache refuses stops issuing, like a limit.
  `SiblingPrefetcher.set_scale` shrinks both limits when memory is short (the mount's
  `ossfs.read.pressure` monitor); at 0 nothing is read ahead.
- The GETs run on a `WholeFetcher` (`ossfs.net.curl_loop`: one thread, libcurl's multi interface)
  when the mount has one, else on the executor's worker threads.
- Errors never become bytes: a failed GET caches nothing and *abandons* its claim, so a reader
  waiting for it fetches the block itself (and gets the real error, or the bytes). A changed
  object fails its If-Match GET (nothing cached), and every cache key carries the etag, so an
  older version is never served for a newer listing.
- Waste: a prefetched file that is evicted from the cache before it is opened, or still unopened
  at `close` (unmount), is counted in ``files_wasted`` / ``bytes_wasted``.

Deliberately not here: sequential read-ahead inside one file (`prefetch`), block math and CRC
checks (`reader`: the whole-object CRC-64 of a prefetched file is still checked by the reader
that serves it, against the CRC the prefetch GET announced), caching and single flight
(`block_cache`), listings (`namespace`), and any FUSE knowledge.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

from cachetools import LRUCache

from ossfs.core.errors import IntegrityError
from ossfs.core.names import parent_path
from ossfs.core.nodes import Node, NodeKind
from ossfs.core.object_store import ObjectStore, Piece
from ossfs.read.block_cache import BlockCache, BlockKey

log = logging.getLogger(__name__)

# Listing entries indexed by remembered walks, over all directories (least recently opened
# forgotten first); a directory with more entries than this gets no read-ahead.
_WALK_ENTRIES = 200_000
# Recent read-ahead GET durations and open times the in-flight limit is derived from.
_PACE_SAMPLES = 64
_SCAN_FACTOR = 4  # listing entries scanned per window slot (skips large files, directories)

ListedChildren = Callable[[str], Mapping[str, Node] | None]
"""The cached listing of a directory path (children by name, in name order), or None; no request."""


@dataclass(frozen=True, slots=True)
class SiblingPrefetchConfig:
    """Directory read-ahead tuning.

    ``max_file_bytes``: the largest object prefetched (capped at the block size).
    ``initial_files`` / ``max_files``: files read ahead when a walk starts / at most.
    ``max_unread_bytes``: bytes prefetched and not yet opened, over all directories.
    ``max_inflight_gets``: prefetch GETs in flight at once, at most; ``min_inflight_gets``: the
    headroom over what the readers' pace needs (see the module docstring).
    ``slack_files``: how far from the furthest opened position an open may be and still count
    as in order.
    """

    max_file_bytes: int = 1 << 20
    initial_files: int = 2
    max_files: int = 32
    max_unread_bytes: int = 32 << 20
    max_inflight_gets: int = 48
    min_inflight_gets: int = 24
    slack_files: int = 16

    def __post_init__(self) -> None:
        for name in (
            "max_file_bytes",
            "initial_files",
            "max_files",
            "max_inflight_gets",
            "min_inflight_gets",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.initial_files > self.max_files:
            raise ValueError("initial_files must not exceed max_files")
        if self.max_unread_bytes < 0 or self.slack_files < 0:
            raise ValueError("max_unread_bytes and slack_files must be >= 0")


@dataclass(frozen=True, slots=True)
class SiblingPrefetchStats:
    """Counters since the `SiblingPrefetcher` was built (a consistent snapshot).

    ``files_issued``: prefetch GETs submitted. ``files_prefetched`` / ``bytes_prefetched``: those
    that arrived and were cached. ``files_used``: prefetched files opened afterwards (in flight
    or cached). ``files_wasted`` / ``bytes_wasted``: prefetched files evicted before being opened,
    or never opened before `close`. ``files_failed``: prefetch GETs that ended in an error
    (nothing cached). ``walk_resets``: in-order walks broken by an out-of-order open.
    ``budget_denials``: files not issued because a limit was reached. ``inflight_gets`` /
    ``unread_bytes``: levels now.
    """

    files_issued: int
    files_prefetched: int
    bytes_prefetched: int
    files_used: int
    files_wasted: int
    bytes_wasted: int
    files_failed: int
    walk_resets: int
    budget_denials: int
    inflight_gets: int
    unread_bytes: int


class _Walk:
    """The read-ahead state of one directory (guarded by the prefetcher's lock)."""

    __slots__ = ("children", "furthest", "index", "issued", "issued_until", "order", "window")

    def __init__(self, children: Mapping[str, Node], initial_files: int) -> None:
        self.children = children  # identity: a new listing object starts a new walk
        self.order = list(children.values())
        self.index = {name: pos for pos, name in enumerate(children)}
        self.furthest = -1  # -1: nothing opened yet
        self.window = initial_files
        self.issued_until = 0  # listing positions before this were considered for read-ahead
        self.issued: list[int] = []  # positions issued and beyond `furthest`, increasing


class ReadAheadPace:
    """How many read-ahead GETs keep up with the readers: Little's law over recent samples.

    ``opened`` takes the time of each open, ``fetched`` the duration of each read-ahead GET
    (the last ``samples`` of each count). `limit` is ``2 x fastest GET / mean time between
    opens``, rounded up, plus ``floor``, at most ``cap``; ``cap`` until 8 of each are known.
    Not thread-safe (the prefetcher's lock guards it).
    """

    def __init__(self, samples: int = _PACE_SAMPLES) -> None:
        self._open_times: deque[float] = deque(maxlen=samples)
        self._get_seconds: deque[float] = deque(maxlen=samples)

    def opened(self, at: float) -> None:
        self._open_times.append(at)

    def fetched(self, seconds: float) -> None:
        self._get_seconds.append(seconds)

    def limit(self, floor: int, cap: int) -> int:
        opens, gets = self._open_times, self._get_seconds
        if len(opens) < 8 or len(gets) < 8:
            return cap
        interval = (opens[-1] - opens[0]) / (len(opens) - 1)
        if interval <= 0:
            return cap
        return min(cap, math.ceil(2 * min(gets) / interval) + floor)


class WholeFetcher(Protocol):
    """Runs GETs of whole objects in the background (`ossfs.net.curl_loop.CurlLoop`)."""

    def submit(
        self, key: str, etag: str, size: int, done: Callable[[Piece | BaseException, float], None]
    ) -> None:
        """GET ``size`` bytes of ``key`` at ``etag``; exactly one ``done(body or error,
        seconds)`` call follows, maybe on another thread."""
        ...

    def close(self) -> None:
        """Stop; GETs still running end with an error."""
        ...


class SiblingPrefetcher:
    """Directory-order read-ahead of small files for one mount. Thread-safe.

    Call `on_open` from `Filesystem.open` with every opened file's node (before its first read).
    It never waits for the network and never raises for remote failures. The executor is only
    borrowed; it must run every task it accepts (a task settles the cache claim it holds).
    """

    def __init__(
        self,
        store: ObjectStore,
        cache: BlockCache,
        listed_children: ListedChildren,
        executor: Executor,
        *,
        block_size_bytes: int,
        config: SiblingPrefetchConfig | None = None,
        fetcher: WholeFetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises ValueError if ``block_size_bytes <= 0``. ``fetcher``: runs the GETs instead
        of the executor (`ossfs.net.curl_loop`); it is closed by `close`. ``clock``: seconds
        (tests)."""
        if block_size_bytes <= 0:
            raise ValueError(f"block_size_bytes must be > 0, got {block_size_bytes}")
        self._store = store
        self._cache = cache
        self._listed_children = listed_children
        self._executor = executor
        self._fetcher = fetcher
        self._config = config if config is not None else SiblingPrefetchConfig()
        self._max_file_bytes = min(self._config.max_file_bytes, block_size_bytes)
        # Prefetched files the cache would evict before they are opened are pure waste.
        self._max_unread = min(self._config.max_unread_bytes, cache.capacity_bytes // 4)
        self._lock = threading.Lock()
        self._walks: LRUCache[str, _Walk] = LRUCache(
            maxsize=_WALK_ENTRIES, getsizeof=lambda walk: len(walk.order) + 1
        )
        # Prefetched, not yet opened: block key -> bytes (insertion order = issue order).
        self._unread: dict[BlockKey, int] = {}
        self._unread_bytes = 0
        self._fetching: set[BlockKey] = set()  # claimed, GET not yet settled
        self._clock = clock
        self._pace = ReadAheadPace()
        self._scale = 1.0  # `set_scale`
        self._closed = False
        self._files_issued = 0
        self._files_prefetched = 0
        self._bytes_prefetched = 0
        self._files_used = 0
        self._files_wasted = 0
        self._bytes_wasted = 0
        self._files_failed = 0
        self._walk_resets = 0
        self._budget_denials = 0

    @property
    def config(self) -> SiblingPrefetchConfig:
        return self._config

    def set_scale(self, scale: float) -> None:
        """Shrink (or restore, 1.0) the limits on unread bytes and GETs in flight to ``scale``
        (0..1) of their sizes; GETs in flight finish. At 0 nothing more is read ahead."""
        if not 0.0 <= scale <= 1.0:
            raise ValueError(f"scale must be within [0, 1], not {scale}")
        with self._lock:
            self._scale = scale

    def on_open(self, node: Node) -> None:
        """An open of ``node`` (a file): advance its directory's walk and issue read-ahead."""
        meta = node.meta
        if meta is None:
            return
        parent = parent_path(node.path)
        children = self._listed_children(parent)
        if children is None:
            return
        with self._lock:
            walk = self._walks.get(parent)
        fresh = None
        if (walk is None or walk.children is not children) and len(children) < _WALK_ENTRIES:
            # Indexing a large listing takes a while: not under the lock every open needs.
            fresh = _Walk(children, self._config.initial_files)
        issue: list[tuple[BlockKey, int]] = []
        now = self._clock()
        with self._lock:
            if self._closed:
                return
            self._pace.opened(now)
            opened = (meta.key, meta.etag, 0)
            nbytes = self._unread.pop(opened, None)
            if nbytes is not None:
                self._unread_bytes -= nbytes
                self._files_used += 1
            walk = self._walks.get(parent)
            if walk is None or walk.children is not children:
                if fresh is None or fresh.children is not children:
                    return  # too large to index (or replaced meanwhile): no read-ahead
                walk = fresh
                self._walks[parent] = walk
            pos = walk.index.get(node.name)
            if pos is None:
                return
            # A file this read-ahead fetched belongs to the walk even when its reader lags
            # behind the others (concurrent readers of one directory): no reset for it.
            if nbytes is None and not self._in_order_locked(walk, pos):
                if walk.furthest >= 0:
                    self._walk_resets += 1
                walk.furthest = pos
                walk.window = self._config.initial_files
                walk.issued_until = pos + 1
                walk.issued.clear()
                return
            if not self._cache.contains(opened):
                # Its read will wait (read-ahead was late, or had not started): read further ahead.
                walk.window = min(walk.window * 2, self._config.max_files)
            if pos > walk.furthest:
                walk.furthest = pos
                issued = walk.issued
                while issued and issued[0] <= pos:
                    issued.pop(0)
            issue = self._plan_locked(walk)
        for key, size in issue:
            self._issue(key, size)

    def close(self) -> None:
        """Stop issuing (idempotent); what is prefetched and unopened now counts as waste. The
        fetcher, if any, is closed too (the executor is not: it is only borrowed)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._waste_locked(list(self._unread))
            counts = (
                self._files_prefetched,
                self._files_used,
                self._files_wasted,
                self._bytes_wasted,
                self._files_failed,
            )
        if self._fetcher is not None:
            self._fetcher.close()  # not under the lock: its last GETs settle through it
        if counts[0] or counts[4]:
            log.debug(
                "directory read-ahead: %d files prefetched, %d opened, %d wasted (%d bytes), "
                "%d failed",
                *counts,
            )

    def stats(self) -> SiblingPrefetchStats:
        with self._lock:
            self._sweep_locked()
            return SiblingPrefetchStats(
                files_issued=self._files_issued,
                files_prefetched=self._files_prefetched,
                bytes_prefetched=self._bytes_prefetched,
                files_used=self._files_used,
                files_wasted=self._files_wasted,
                bytes_wasted=self._bytes_wasted,
                files_failed=self._files_failed,
                walk_resets=self._walk_resets,
                budget_denials=self._budget_denials,
                inflight_gets=len(self._fetching),
                unread_bytes=self._unread_bytes,
            )

    # -- internals --------------------------------------------------------------------------------
    def _in_order_locked(self, walk: _Walk, pos: int) -> bool:
        if walk.furthest < 0:
            return False
        slack = self._config.slack_files
        furthest = walk.furthest
        return furthest - slack <= pos <= furthest + slack or furthest < pos < walk.issued_until

    def _plan_locked(self, walk: _Walk) -> list[tuple[BlockKey, int]]:
        """Claim and record the next small files that keep the walk's window full."""
        start = max(walk.issued_until, walk.furthest + 1)
        want = walk.window - len(walk.issued)
        if want <= 0:
            return []
        order = walk.order
        stop = min(len(order), start + want * _SCAN_FACTOR)
        # Once per plan, not per file: the pace does not change while the lock is held.
        inflight_limit = int(
            self._pace.limit(self._config.min_inflight_gets, self._config.max_inflight_gets)
            * self._scale
        )
        issue: list[tuple[BlockKey, int]] = []
        pos = start
        while pos < stop and len(issue) < want:
            node = order[pos]
            meta = node.meta
            if (
                node.kind is NodeKind.FILE
                and meta is not None
                and 0 < meta.size <= self._max_file_bytes
                and not meta.is_frozen
            ):
                key: BlockKey = (meta.key, meta.etag, 0)
                if not self._admit_locked(meta.size, inflight_limit):
                    break
                if key not in self._unread and self._cache.claim([key]):
                    if not self._cache.reserve(meta.size):
                        self._cache.abandon([key])
                        self._budget_denials += 1
                        break
                    self._unread[key] = meta.size
                    self._unread_bytes += meta.size
                    self._fetching.add(key)
                    walk.issued.append(pos)
                    issue.append((key, meta.size))
            pos += 1
        walk.issued_until = pos
        return issue

    def _admit_locked(self, size: int, inflight_limit: int) -> bool:
        """Whether one more file of ``size`` bytes fits the limits (counts a denial if not)."""
        if len(self._fetching) >= inflight_limit:
            self._budget_denials += 1
            return False
        max_unread = self._max_unread * self._scale
        if self._unread_bytes + size > max_unread:
            self._sweep_locked()  # evicted unopened files give their bytes back
            if self._unread_bytes + size > max_unread:
                self._budget_denials += 1
                return False
        return True

    def _sweep_locked(self) -> None:
        """Count as waste the unopened prefetched files the cache has evicted."""
        contains = self._cache.contains
        # Keys in flight are not cached yet: only settled ones can have been evicted.
        fetching = self._fetching
        gone = [key for key in self._unread if key not in fetching and not contains(key)]
        self._waste_locked(gone)

    def _waste_locked(self, keys: list[BlockKey]) -> None:
        for key in keys:
            nbytes = self._unread.pop(key)
            self._unread_bytes -= nbytes
            self._files_wasted += 1
            self._bytes_wasted += nbytes

    def _issue(self, key: BlockKey, size: int) -> None:
        fetcher = self._fetcher
        if fetcher is not None:
            with self._lock:
                self._files_issued += 1
            object_key, etag, _ = key
            fetcher.submit(
                object_key,
                etag,
                size,
                lambda result, seconds: self._settle(key, size, result, seconds),
            )
            return
        try:
            self._executor.submit(self._fetch, key, size)
        except RuntimeError:  # the executor is shut down (unmounting)
            self._cache.abandon([key])
            self._cache.release(size)
            with self._lock:
                self._fetching.discard(key)
                if self._unread.pop(key, None) is not None:
                    self._unread_bytes -= size
            return
        with self._lock:
            self._files_issued += 1

    def _fetch(self, key: BlockKey, size: int) -> None:
        """Worker: one whole-object GET pinned to the listed etag, settled into the cache."""
        object_key, etag, _ = key
        pieces: list[Piece] = []
        began = self._clock()
        result: Piece | BaseException
        try:
            # One piece of the whole size: the body lands in its own buffer, no copy.
            self._store.read_range(
                object_key, 0, size, etag=etag, piece_bytes=size, on_piece=pieces.append
            )
            if len(pieces) != 1 or len(pieces[0]) != size:
                got = sum(len(piece) for piece in pieces)
                raise IntegrityError(f"{object_key}: got {got} bytes, expected {size}")
            result = pieces[0]
        except Exception as exc:
            result = exc
        except BaseException as exc:
            self._settle(key, size, exc, 0.0)
            raise
        self._settle(key, size, result, self._clock() - began)

    def _settle(
        self, key: BlockKey, size: int, result: Piece | BaseException, seconds: float
    ) -> None:
        """A read-ahead GET ended: cache its body, or give its claim up if it failed."""
        if isinstance(result, BaseException):
            # The reader that opens it fetches for itself and meets the real error (or bytes).
            self._cache.abandon([key])
            self._cache.release(size)
            log.debug("prefetch of %s failed: %s", key[0], result)
            with self._lock:
                self._fetching.discard(key)
                self._files_failed += 1
                nbytes = self._unread.pop(key, None)
                if nbytes is not None:
                    self._unread_bytes -= nbytes
            return
        self._cache.fill([key], [result], reserved_bytes=size)
        with self._lock:
            self._pace.fetched(seconds)
            self._fetching.discard(key)
            self._files_prefetched += 1
            self._bytes_prefetched += size
