"""The mount's sequential read-ahead: one executor, one budget and the counters for every handle.

Responsibility: one `Prefetcher` per mount holds the executor the read-ahead GETs run on, the
configuration, one global budget of in-flight read-ahead bytes (read-ahead in flight, or arrived
and not yet read, over all handles), the memory-pressure scale (`Prefetcher.set_scale`, set by
`ossfs.read.pressure`: it shrinks the budget and every window cap; at 0 nothing is read ahead),
whether the link is slow, and the counters. `Prefetcher.attach` gives each open handle its own
read-ahead (`ossfs.read.handle_prefetch.HandlePrefetch`), which is where the policy is.

Deliberately not here: the per-handle policy (detection, windows, parts, drop-behind:
`handle_prefetch`), block math (`reader`), caching (`block_cache`) and command-line knobs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final

from ossfs.read.handle_prefetch import HandlePrefetch, PrefetchConfig
from ossfs.read.reader import ObjectReader

log = logging.getLogger(__name__)

SLOW_FIRST_BYTE_S: Final = 0.005
"""The link is slow when GETs take at least 5 ms to their first byte (the best of the recent
ones, `ossfs.store.latency`). Over such a link a block that the kernel's page cache lost costs its
re-reader a GET: the first-byte time and the block's transfer (the `remote` benchmark profile,
20 ms to a first byte and 100 MB/s: 30 ms for 1 MiB). Keeping a scan's blocks costs the page
faults of a fresh buffer for each (about 0.5 ms per MiB), which overlap the network's wait: a
scan of an object that fits the cache is kept there, last in line, instead of dropped."""


@dataclass(frozen=True, slots=True)
class PrefetchStats:
    """Counters since the `Prefetcher` was built (a consistent snapshot).

    ``parts_issued``: read-ahead GET tasks submitted (each one or more GETs, one per run of
    blocks it claimed). ``bytes_issued``: bytes those tasks claimed. ``bytes_prefetched``: bytes
    they received. ``parts_failed`` / ``parts_abandoned``: tasks that ended in an error / were
    dropped unsent because their handle closed. ``bytes_unused``: bytes read-ahead covered that
    their handle never read before their stream was replaced or the handle closed (waste; blocks
    evicted before being read are not counted). ``window_resets``: streams with read-ahead
    replaced in their handle's table by newer ones (`ossfs.read.streams.StreamTable`).
    ``budget_denials``: parts not issued because the global budget was spent.
    ``inflight_bytes``: budget in use now: read-ahead in flight, or arrived and not yet read.
    """

    parts_issued: int
    bytes_issued: int
    bytes_prefetched: int
    parts_failed: int
    parts_abandoned: int
    bytes_unused: int
    window_resets: int
    budget_denials: int
    inflight_bytes: int


class Prefetcher:
    """Read-ahead shared by every handle of a mount: executor, budget, config and counters.

    Thread-safe. Pass `attach` as the ``read_ahead`` factory of each handle's `ObjectReader`.
    The executor is only borrowed (submitted to, never shut down); its worker count bounds the
    read-ahead GETs in flight at once. It must run every task it accepts (never shut it down with
    ``cancel_futures=True``): a task settles the blocks it claimed, and readers may be waiting.
    """

    def __init__(
        self,
        executor: Executor,
        config: PrefetchConfig | None = None,
        *,
        first_byte_s: Callable[[], float | None] | None = None,
    ) -> None:
        """``first_byte_s``: the store's recent time to a GET's first byte (None: not known
        yet), which tells a slow link; without it every link counts as fast."""
        self._executor = executor
        self._config = config if config is not None else PrefetchConfig()
        self._first_byte_s = first_byte_s
        self._lock = threading.Lock()
        self._inflight_bytes = 0
        self._parts_issued = 0
        self._bytes_issued = 0
        self._bytes_prefetched = 0
        self._parts_failed = 0
        self._parts_abandoned = 0
        self._bytes_unused = 0
        self._window_resets = 0
        self._budget_denials = 0
        self._handles: dict[tuple[str, str], int] = {}  # open handles per object version
        self._scale = 1.0  # `set_scale`; read without the lock (one float, replaced whole)

    @property
    def config(self) -> PrefetchConfig:
        return self._config

    @property
    def scale(self) -> float:
        return self._scale

    def set_scale(self, scale: float) -> None:
        """Shrink (or restore, 1.0) the read-ahead budget and every handle's window cap to
        ``scale`` (0..1) of their configured sizes. Parts in flight finish; new ones wait until
        the budget in use is under the new size. At 0 nothing more is read ahead."""
        if not 0.0 <= scale <= 1.0:
            raise ValueError(f"scale must be within [0, 1], not {scale}")
        self._scale = scale

    def attach(self, reader: ObjectReader) -> HandlePrefetch:
        """The read-ahead of one open handle reading through ``reader``."""
        version = (reader.meta.key, reader.meta.etag)
        with self._lock:
            self._handles[version] = self._handles.get(version, 0) + 1
        return HandlePrefetch(self, self._config, reader)

    def stats(self) -> PrefetchStats:
        with self._lock:
            return PrefetchStats(
                parts_issued=self._parts_issued,
                bytes_issued=self._bytes_issued,
                bytes_prefetched=self._bytes_prefetched,
                parts_failed=self._parts_failed,
                parts_abandoned=self._parts_abandoned,
                bytes_unused=self._bytes_unused,
                window_resets=self._window_resets,
                budget_denials=self._budget_denials,
                inflight_bytes=self._inflight_bytes,
            )

    @property
    def slow_link(self) -> bool:
        """True when GETs take `SLOW_FIRST_BYTE_S` or more to their first byte."""
        latency = self._latency()
        return latency is not None and latency >= SLOW_FIRST_BYTE_S

    def _latency(self) -> float | None:
        return self._first_byte_s() if self._first_byte_s is not None else None

    # -- PrefetchBudget: used by HandlePrefetch --------------------------------------------------
    def reserve(self, nbytes: int) -> bool:
        """Take ``nbytes`` of the global budget, or count a denial and return False."""
        with self._lock:
            if self._inflight_bytes + nbytes > self._config.max_inflight_bytes * self._scale:
                self._budget_denials += 1
                return False
            self._inflight_bytes += nbytes
            return True

    def deny(self) -> None:
        with self._lock:
            self._budget_denials += 1

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._inflight_bytes -= nbytes

    def submit(self, task: Callable[[], None], claimed_bytes: int) -> bool:
        """Run ``task`` (a part claiming ``claimed_bytes``) on the executor; False if the
        executor refused it (shut down)."""
        try:
            self._executor.submit(task)
        except RuntimeError:
            return False
        with self._lock:
            self._parts_issued += 1
            self._bytes_issued += claimed_bytes
        return True

    def count_part_end(self, *, received: int, failed: bool, abandoned: bool) -> None:
        with self._lock:
            self._bytes_prefetched += received
            self._parts_failed += failed
            self._parts_abandoned += abandoned

    def detach(self, key: str, etag: str) -> None:
        with self._lock:
            left = self._handles.pop((key, etag), 1) - 1
            if left:
                self._handles[(key, etag)] = left

    def sole_handle(self, key: str, etag: str) -> bool:
        """True if one handle alone has this object version open (drop-behind is safe)."""
        with self._lock:
            return self._handles.get((key, etag), 0) <= 1

    def count_reset(self, unused_bytes: int, *, reset: bool) -> None:
        with self._lock:
            self._bytes_unused += unused_bytes
            self._window_resets += reset
