"""The default memory budget of a mount (``--max-memory``, ``--cache-size``): a fraction of
the memory this process may use, RAM or its control group's limit, whichever is lower.

A fraction and not a constant, so that a larger machine gets a larger block cache (random
reads, many small and medium files, several readers of one object) and a small one is not
overcommitted. A sequential scan of a large object does not fill it: past a quarter of the
cache its passed blocks are dropped (`ossfs.read.prefetch.SCAN_FRACTION`), and re-reads of it are
the kernel page cache's to serve; only over a slow link is an object that fits kept
(`ossfs.read.prefetch.SLOW_FIRST_BYTE_S`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

MIN_DEFAULT_BYTES: Final = 256 << 20
RAM_FRACTION: Final = 16
"""The default budget is 1/16 of the usable memory (1.5 GiB of 24 GiB), at least 256 MiB."""
CACHE_SHARE: Final = (3, 4)
"""The block cache's default share of the budget (the rest is read-ahead in flight)."""

_CGROUP_LIMITS: Final = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2, as a container sees its own group
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def default_budgets(
    usable_bytes: int, *, max_memory: int | None, cache_size: int | None
) -> tuple[int, int]:
    """``(max_memory, cache_size)`` from what the user gave (None: not given).

    Not given, the budget is 1/16 of ``usable_bytes`` (at least 256 MiB), and never smaller
    than a given cache needs (the cache is 3/4 of the budget); the cache defaults to 3/4 of the
    budget."""
    numerator, denominator = CACHE_SHARE
    if max_memory is None:
        max_memory = max(usable_bytes // RAM_FRACTION, MIN_DEFAULT_BYTES)
        if cache_size is not None:
            max_memory = max(max_memory, cache_size * denominator // numerator)
    if cache_size is None:
        cache_size = max_memory * numerator // denominator
    return max_memory, cache_size


def usable_memory_bytes() -> int:
    """Physical memory, or the control group's memory limit when that is lower."""
    usable = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        limit = _read_limit(path)
        if limit is not None:
            usable = min(usable, limit)
    return usable


def _read_limit(path: Path) -> int | None:
    """A cgroup limit file's value; None when absent, unreadable or unlimited (``max``)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    limit = int(text) if text.isdigit() else 0
    return limit or None
