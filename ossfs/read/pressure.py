"""Memory pressure: shrink the mount's block memory as its memory limit nears, give it back after.

Responsibility: every ``interval_s`` (on its own thread, never on a read), ask how much of the
memory limit is in use (``usage()``, a callable the app passes in: a control group's usage less
what the kernel reclaims first, or the machine's) and how many bytes the mount's block buffers
hold (``block_bytes()``: cached, being fetched, free in the pool), and set one *scale* in
[0, 1] for the block cache, the read-ahead budgets and windows and the free buffers
(``apply(scale)``, also from the app).

The scale is what lets block memory grow no further than the room left under ``high_fraction`` of
the limit: ``(block_bytes + high_fraction x limit - usage - allowance) / budget``. The allowance
keeps room for the daemon's own memory besides block buffers to grow into (``own_reserve_bytes``
less what it already uses, from ``own_bytes()``, its resident memory): under load it grows by tens
of MiB within a moment (threads, libfuse's buffers, the heap), faster than a poll could shrink the
cache in answer. Other processes of the group growing towards the limit shrink it too; a scale below
what is held makes the cache evict at once (and its buffers are unmapped as they go), and
``on_shrink`` runs (the app returns free heap to the system). Since the cache and read-ahead enforce
the scale on every insert and reservation, block memory cannot outrun the monitor between two polls.
It shrinks at once and grows back by at most ``grow_step`` a poll, so a mount near its limit does
not flap. At 0 memory is *short*: nothing is read ahead, the cache keeps only its floor (the blocks
readers are in), and each read fetches just its own blocks: readers get slower, never an error.
Nothing is cancelled: fetches in flight finish, and their bytes are already counted
(`BlockCache.reserve`).

Deliberately not here: where the usage comes from (``ossfs.app.memory_limit.usage_reader``)
and what exactly shrinks (the app's ``apply``). A FUSE read never waits for this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ossfs.core.sizes import format_size

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PressureConfig:
    """``limit_bytes``: the memory limit. ``budget_bytes``: what the block memory scaled by
    `PressureMonitor` holds at scale 1. ``high_fraction``: the share of the limit block memory
    may fill up to. ``interval_s``: seconds between polls. ``grow_step``: the most the scale
    grows in one poll. ``own_reserve_bytes``: the most the daemon uses besides block buffers
    (room for it to grow into is kept free)."""

    limit_bytes: int
    budget_bytes: int
    high_fraction: float = 0.9
    interval_s: float = 0.1
    grow_step: float = 0.125
    own_reserve_bytes: int = 0

    def __post_init__(self) -> None:
        if self.limit_bytes <= 0 or self.budget_bytes <= 0:
            raise ValueError("limit_bytes and budget_bytes must be > 0")
        if not 0 < self.high_fraction <= 1:
            raise ValueError("high_fraction must be within (0, 1]")
        if self.interval_s <= 0 or not 0 < self.grow_step <= 1:
            raise ValueError("interval_s must be > 0 and grow_step within (0, 1]")
        if self.own_reserve_bytes < 0:
            raise ValueError("own_reserve_bytes must be >= 0")


@dataclass(frozen=True, slots=True)
class PressureStats:
    """``scale``: what block memory may use now, as a fraction of its budget. ``usage_bytes``:
    the usage of the limit last read (0: none could be read yet). ``shrinks`` / ``grows``:
    polls that lowered / raised the scale since the mount started."""

    scale: float
    usage_bytes: int
    shrinks: int
    grows: int


class PressureMonitor:
    """Polls memory usage and scales the mount's block memory (see the module docstring).

    Thread-safe. `poll` takes one step (tests call it directly); `start` polls on a daemon
    thread until `close`.
    """

    def __init__(
        self,
        usage: Callable[[], int | None],
        block_bytes: Callable[[], int],
        config: PressureConfig,
        apply: Callable[[float], None],
        *,
        on_shrink: Callable[[], object] | None = None,
        own_bytes: Callable[[], int] | None = None,
    ) -> None:
        """``usage()``: bytes in use of the limit now, None when it cannot be read (no change
        then). ``block_bytes()``: bytes the scaled block memory holds now. ``apply(scale)``:
        scale it. ``on_shrink()``: after each poll that lowered the scale. ``own_bytes()``:
        this process's resident memory (None: no room is kept for its growth)."""
        self._usage = usage
        self._block_bytes = block_bytes
        self._own_bytes = own_bytes
        self._config = config
        self._apply = apply
        self._on_shrink = on_shrink
        self._lock = threading.Lock()
        self._scale = 1.0
        self._last_usage = 0
        self._shrinks = 0
        self._grows = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def scale(self) -> float:
        return self._scale

    def poll(self) -> float:
        """Read the usage once and move the scale if it calls for it; returns the scale."""
        usage = self._usage()
        if usage is None:
            return self._scale
        config = self._config
        blocks = self._block_bytes()
        allowance = 0
        if self._own_bytes is not None:
            allowance = max(0, config.own_reserve_bytes - (self._own_bytes() - blocks))
        room = config.limit_bytes * config.high_fraction - usage - allowance
        target = (blocks + room) / config.budget_bytes
        target = min(1.0, max(0.0, target))
        with self._lock:
            self._last_usage = usage
            old = self._scale
            new = target if target < old else min(target, old + config.grow_step)
            if new < old:
                self._shrinks += 1
            elif new > old:
                self._grows += 1
            self._scale = new
        if new != old:
            self._apply(new)
            self._log(old, new, usage)
            if new < old and self._on_shrink is not None:
                self._on_shrink()
        return new

    def _log(self, old: float, new: float, usage: int) -> None:
        limit = format_size(self._config.limit_bytes)
        where = f"{format_size(usage)} of the memory limit of {limit} in use"
        if new == 0.0 and old > 0.0:
            log.warning(
                "memory short (%s): no read-ahead and the cache at its floor; reads fetch only "
                "their own blocks",
                where,
            )
        elif old == 1.0:
            log.warning(
                "memory nearly full (%s): block cache and read-ahead shrunk to %d%%",
                where,
                round(new * 100),
            )
        elif new == 1.0:
            log.info("memory back to normal (%s): block cache and read-ahead restored", where)
        else:
            log.debug("memory pressure (%s): block memory scaled to %.3f", where, new)

    def stats(self) -> PressureStats:
        with self._lock:
            return PressureStats(self._scale, self._last_usage, self._shrinks, self._grows)

    def start(self) -> None:
        """Poll every ``interval_s`` on a daemon thread until `close` (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="memory-pressure", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._config.interval_s):
            try:
                self.poll()
            except Exception:  # never let the monitor die: reads go on without it
                log.exception("memory pressure poll failed")

    def close(self) -> None:
        """Stop polling (waits for the thread); the scale stays where it was."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
