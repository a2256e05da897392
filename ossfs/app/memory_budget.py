"""The memory budget of a mount (``--max-memory``, ``--cache-size``): by default a fraction of
the memory this process may use (`ossfs.app.memory_limit`: RAM or the lowest limit of its control
groups), and never a given budget above that limit.

The budget is what ossfs holds of file data (`ossfs.read.block_cache.BlockCache` accounts every
block buffer: cached, being fetched, read ahead and not yet read). The daemon needs memory besides
it (`OVERHEAD_BYTES`): the default leaves that room under the limit, and a limit too small to
leave it and a useful budget is refused at mount time with one line saying so.

A fraction and not a constant, so that a larger machine gets a larger block cache (random
reads, many small and medium files, several readers of one object) and a small one is not
overcommitted. A sequential scan of a large object does not fill it: past a quarter of the
cache its passed blocks are dropped (`ossfs.read.handle_prefetch.SCAN_FRACTION`), and
re-reads of it are the kernel page cache's to serve; only over a slow link is an object that
fits kept (`ossfs.read.prefetch.SLOW_FIRST_BYTE_S`).
"""

from __future__ import annotations

from typing import Final

from ossfs.app.memory_limit import MemoryLimit, find_memory_limit
from ossfs.core.errors import UsageError
from ossfs.core.sizes import format_size
from ossfs.obs.stats import MemorySettings

MIN_DEFAULT_BYTES: Final = 256 << 20
RAM_FRACTION: Final = 16
"""The default budget is 1/16 of the usable memory (1.5 GiB of 24 GiB), at least 256 MiB."""
MAX_SMALL_FRACTION: Final = 2
"""... but that floor is at most half of the usable memory: the daemon needs room besides its
budget. Measured under random, sequential and small-file reads at once: in a 320 MiB control
group, 36 MiB resident idle and 274 MiB at peak with a 256 MiB budget (191 MiB of it cached
blocks); in a 256 MiB group a 256 MiB budget was OOM-killed, and half of it (128 MiB) peaked
at 168 MiB."""
OVERHEAD_BYTES: Final = 112 << 20
"""What the default budget leaves under the limit for the daemon itself (the interpreter,
libfuse's buffers, libcurl's, threads, sockets, malloc's arenas, metadata of listed entries).
Measured as resident memory less the block buffers (docs/memory.md): 46 MiB idle, at most 86
MiB under sequential, random, small-file and ``verify --through`` reads, about the same with a
32 MiB budget as with 1.5 GiB; 112 MiB leaves a margin over that."""
OWN_PEAK_BYTES: Final = 96 << 20
"""The most the daemon was measured to use besides block buffers (86 MiB, rounded up): the
memory-pressure monitor keeps room for it to grow into (`ossfs.read.pressure`)."""
MIN_BUDGET_BYTES: Final = 32 << 20
"""The smallest default budget a mount starts with (a cache of 24 blocks of 1 MiB and a little
read-ahead); a limit that leaves less beside `OVERHEAD_BYTES` is refused."""
CACHE_SHARE: Final = (3, 4)
"""The block cache's default share of the budget (the rest is read-ahead in flight)."""


def default_budgets(
    usable_bytes: int, *, max_memory: int | None, cache_size: int | None
) -> tuple[int, int]:
    """``(max_memory, cache_size)`` from what the user gave (None: not given).

    Not given, the budget is 1/16 of ``usable_bytes``, at least 256 MiB (or half of
    ``usable_bytes`` if that is less), at most ``usable_bytes`` less `OVERHEAD_BYTES` (0 if
    nothing is left), and never smaller than a given cache needs (the cache is 3/4 of the
    budget); the cache defaults to 3/4 of the budget. No check against the limit here: that is
    `budgets_within`'s."""
    numerator, denominator = CACHE_SHARE
    if max_memory is None:
        floor = min(MIN_DEFAULT_BYTES, usable_bytes // MAX_SMALL_FRACTION)
        max_memory = max(usable_bytes // RAM_FRACTION, floor)
        max_memory = max(0, min(max_memory, usable_bytes - OVERHEAD_BYTES))
        if cache_size is not None:
            max_memory = max(max_memory, cache_size * denominator // numerator)
    if cache_size is None:
        cache_size = max_memory * numerator // denominator
    return max_memory, cache_size


def usable_memory_bytes() -> int:
    """The memory this process may use: RAM, or its control groups' lowest limit."""
    return find_memory_limit().limit_bytes


def budgets_within(
    limit: MemoryLimit, *, max_memory: int | None, cache_size: int | None
) -> tuple[int, int]:
    """`default_budgets` from ``limit``; `UsageError` (one line: what to give instead) when a
    given ``max_memory``, or the budget a given ``cache_size`` needs, is above the limit, or
    when neither is given and the limit leaves less than `MIN_BUDGET_BYTES` beside
    `OVERHEAD_BYTES`."""
    budget, cache = default_budgets(limit.limit_bytes, max_memory=max_memory, cache_size=cache_size)
    where = f"this process's memory limit of {format_size(limit.limit_bytes)} ({limit.describe()})"
    if max_memory is None and cache_size is None and budget < MIN_BUDGET_BYTES:
        need = format_size(OVERHEAD_BYTES + MIN_BUDGET_BYTES)
        raise UsageError(
            f"{where} is too small for ossfs: it needs {format_size(OVERHEAD_BYTES)} for itself "
            f"and {format_size(MIN_BUDGET_BYTES)} or more for file data; raise the limit to "
            f"{need} or more, or give a smaller --max-memory"
        )
    if budget <= limit.limit_bytes:
        return budget, cache
    raise_it = " or raise the limit" if limit.group is not None else ""
    if max_memory is not None:
        raise UsageError(
            f"--max-memory {format_size(budget)} is above {where}: "
            f"give at most {size_at_most(limit.limit_bytes)}{raise_it}"
        )
    numerator, denominator = CACHE_SHARE
    raise UsageError(
        f"--cache-size {format_size(cache)} needs a memory budget of {format_size(budget)} "
        f"(the cache is {numerator}/{denominator} of it), above {where}: give at most "
        f"{size_at_most(limit.limit_bytes * numerator // denominator)}{raise_it}"
    )


def size_at_most(n: int) -> str:
    """``n`` bytes rounded down to a tenth of its unit, as the size options take it (``23.5GiB``):
    a figure to give that is never above ``n``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            whole, tenth = divmod(n * 10 >> shift, 10)  # integers: exact at any size
            return f"{whole}.{tenth}{unit}" if tenth else f"{whole}{unit}"
    return str(n)


def memory_line(limit: MemoryLimit | None, budget_bytes: int, cache_bytes: int) -> str:
    """The mount log's line on memory, in words: ``memory limit 400.0 MiB (cgroup /x.service
    memory.max): ossfs uses up to 200.0 MiB (--max-memory), 150.0 MiB of it to cache file data
    (--cache-size)``."""
    uses = (
        f"up to {format_size(budget_bytes)} (--max-memory), {format_size(cache_bytes)} of it to "
        "cache file data (--cache-size)"
    )
    if limit is None:
        return f"memory: {uses}"
    return f"memory limit {format_size(limit.limit_bytes)} ({limit.describe()}): ossfs uses {uses}"


def memory_settings(limit: MemoryLimit | None, budget_bytes: int) -> MemorySettings | None:
    """What ``ossfs stats`` shows of the budget and the limit (None: no limit was looked up)."""
    if limit is None:
        return None
    return MemorySettings(budget_bytes, limit.limit_bytes, limit.describe())
