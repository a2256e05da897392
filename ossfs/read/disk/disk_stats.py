"""The disk cache's counters and levels, as `ossfs stats` and Prometheus show them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DiskCacheStats:
    """Counters since the mount started, and levels now.

    ``hits`` / ``misses``: blocks looked up and found intact / not found (or not intact).
    ``bytes_read`` / ``bytes_written``: block bytes served from / written to disk.
    ``writes_dropped``: fetched blocks not written (the writer's queue was full, or no room).
    ``read_ahead_waits`` / ``read_ahead_wait_ms``: blocks fetched by read-ahead that waited for
    room in the writer's queue, and how long they waited in all (read-ahead going at the
    disk's pace).
    ``evictions``: files this mount unlinked to stay within the limits. ``crc_failures``: files
    that failed a check when read back (dropped and fetched again). ``errors``: I/O errors
    reading or writing. ``used_bytes``: what the directory holds (as this mount last saw it).
    ``capacity_bytes``: the size limit (0 until known: the default is decided after the first
    scan). ``blocks``: block files in the directory. ``enabled``: 1, or 0 once turned off.
    """

    hits: int
    misses: int
    bytes_read: int
    bytes_written: int
    writes_dropped: int
    read_ahead_waits: int
    read_ahead_wait_ms: int
    evictions: int
    crc_failures: int
    errors: int
    used_bytes: int
    capacity_bytes: int
    blocks: int
    enabled: int
