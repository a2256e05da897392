"""The disk cache's queue of blocks waiting to be written, and of blocks it owes.

Responsibility: hold at most ``queue_bytes`` of fetched blocks for the writer (the block being
written included, until the writer says it is done), in order. A block that finds the queue
full is *owed* instead, when owing is on (`OWED_MAX` of them, by name only: no memory): the
writer takes owed blocks first as room comes, and looks their bytes up itself (in the block
cache). An `offer` may wait for room (read-ahead's threads, which no reader waits on directly):
up to its ``wait_s``, and a wait that runs out stops further waits for `WAIT_BACKOFF_S` (a disk
that is stuck, not just behind, must not slow read-ahead down block after block).

Deliberately not here: what a block file is, writing it, where owed blocks' bytes come from,
and the counters (`ossfs.read.disk.disk_cache`); the queue has its own lock, held for
bookkeeping only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Final

from ossfs.read.block_cache import Block
from ossfs.read.disk.block_file import BlockId

OWED_MAX: Final = 1024
"""Blocks that found the queue full, kept by name for the writer to take from the block cache
later (beyond these they are dropped)."""
RECALL_RETRY_S: Final = 0.01
"""An owed block still being fetched (not in the block cache yet) is asked for again after this."""
WAIT_BACKOFF_S: Final = 30.0
"""After an `offer` waited in vain for room in the queue, offers drop without waiting this long."""

Job = tuple[BlockId, Block | None, int | None, int]
"""A block to write: its name, its bytes (None: owed, to be looked up), the whole object's
CRC-64 if known, and the queue's bytes it holds until the writer is done with it."""


class WriteQueue:
    """Blocks for the disk cache's writer threads. Thread-safe."""

    def __init__(self, queue_bytes: int, block_size: int) -> None:
        self._queue_bytes = queue_bytes
        self._block_size = block_size
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # a job, or the end, for the writers
        self._room = threading.Condition(self._lock)  # room, for waiting offers
        self._queue: deque[tuple[BlockId, Block, int | None]] = deque()
        self._queued = 0
        self._owed: deque[tuple[BlockId, int | None, float]] = deque()  # (..., not before)
        self._owing = False
        self._waiting = 0
        self._waits = 0
        self._waited_ns = 0
        self._no_wait_until = 0.0
        self._closing = False

    @property
    def queue_bytes(self) -> int:
        return self._queue_bytes

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def waiting_offers(self) -> int:
        """How many `offer` calls wait for room now (tests)."""
        with self._lock:
            return self._waiting

    @property
    def waits(self) -> tuple[int, int]:
        """Offers that waited for room since the start, and the milliseconds they waited in
        all (how much the disk slowed read-ahead down)."""
        with self._lock:
            return self._waits, self._waited_ns // 1_000_000

    def owe_when_full(self) -> None:
        """From now on a block that finds the queue full is owed, not dropped (the writer has
        somewhere to look its bytes up)."""
        self._owing = True

    def offer(self, block: BlockId, data: Block, object_crc: int | None, wait_s: float) -> bool:
        """Queue ``data`` (or owe it, if the queue is full, after waiting up to ``wait_s`` for
        room); False: dropped (full and nothing owed, or closing). A caller that waits must
        hold no lock a reader or the writer needs; ``data`` stays in its caller's memory
        account while it waits (it is not in the queue's yet)."""
        size = len(data)
        with self._lock:
            if (
                wait_s > 0
                and not self._closing
                and self._queued + size > self._queue_bytes >= size
                and time.monotonic() >= self._no_wait_until
            ):
                self._wait_for_room(size, time.monotonic() + wait_s)
            if self._closing:
                return False
            if self._queued + size <= self._queue_bytes:
                self._queue.append((block, data, object_crc))
                self._queued += size
            elif (
                self._owing
                and len(self._owed) < OWED_MAX
                and size <= self._block_size <= self._queue_bytes
            ):
                self._owed.append((block, object_crc, 0.0))
            else:
                return False
            self._wake.notify()
            return True

    def _wait_for_room(self, size: int, deadline: float) -> None:
        self._waiting += 1
        self._waits += 1
        began = time.monotonic_ns()
        try:
            while not self._closing and self._queued + size > self._queue_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._no_wait_until = time.monotonic() + WAIT_BACKOFF_S
                    return
                self._room.wait(left)
        finally:
            self._waiting -= 1
            self._waited_ns += time.monotonic_ns() - began

    def owe_again(self, block: BlockId, object_crc: int | None) -> None:
        """An owed block not in the block cache yet (still being fetched): asked for again
        `RECALL_RETRY_S` from now."""
        with self._lock:
            self._owed.append((block, object_crc, time.monotonic() + RECALL_RETRY_S))

    def next_job(self, done: int, until: float | None) -> Job | None:
        """Free the ``done`` bytes of the writer's last job, then the next job: an owed block
        when there is room for it, else the oldest queued one. Waits for one until the
        monotonic time ``until`` (None: no limit); None when that passed, or when the queue is
        closing and empty (then `drained`)."""
        with self._lock:
            if done:
                # Freed and taken again in one hold of the lock: owed blocks get the room
                # before a waiting offer does. One block's room wakes one waiter (waking them
                # all costs a context switch each, and all but one would wait again).
                self._queued -= done
                self._room.notify()
            while (job := self._take()) is None:
                if self.drained:
                    self._wake.notify_all()  # another writer waiting for room for owed ones
                    return None
                now = time.monotonic()
                wait = None if until is None or self._closing else until - now
                if wait is not None and wait <= 0:
                    return None
                if self._owed and self._owed[0][2] > now:  # owed, not to be asked yet
                    wait = min(wait or RECALL_RETRY_S, self._owed[0][2] - now)
                self._wake.wait(wait)
            return job

    @property
    def drained(self) -> bool:
        """Closing, and nothing left to write."""
        return self._closing and not self._queue and not self._owed

    def close(self) -> None:
        """No more offers; the writers write what is queued or owed, then `next_job` ends."""
        with self._lock:
            self._closing = True
            self._wake.notify_all()
            self._room.notify_all()

    def _take(self) -> Job | None:
        if (
            self._owed
            and self._queued + self._block_size <= self._queue_bytes
            and self._owed[0][2] <= time.monotonic()
        ):
            block, crc, _ = self._owed.popleft()
            self._queued += self._block_size
            return block, None, crc, self._block_size
        if self._queue:
            block, data, crc = self._queue.popleft()
            return block, data, crc, len(data)
        return None
