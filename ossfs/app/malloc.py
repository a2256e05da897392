"""glibc malloc settings for the mount daemon (arenas, trim and mmap thresholds), so freed
block memory goes back to the system instead of lingering in per-thread arenas.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8
_MALLOC_SETTINGS: Final = (
    # Per-thread arenas held half of the daemon's RSS in a soak (~250 MiB vs ~120 MiB with 2
    # arenas, same throughput).
    (_M_ARENA_MAX, 2),
    # libfuse mallocs a reply buffer of up to 1 MiB for every read and frees it after the
    # reply; above the default threshold (128 KiB) each came from a new mmap, 256 page faults
    # a MiB. From the heap, and not trimmed back at once, it is reused: daemon CPU for a
    # sequential read fell by a sixth.
    (_M_MMAP_THRESHOLD, 4 << 20),
    (_M_TRIM_THRESHOLD, 32 << 20),
)


def tune_malloc() -> bool:
    """Set glibc's malloc up for the daemon (`_MALLOC_SETTINGS`). False where there is no
    glibc or it refused a setting."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    applied = [bool(mallopt(param, value)) for param, value in _MALLOC_SETTINGS]  # every one
    return all(applied)


def trim_malloc() -> bool:
    """Give the heap's free memory back to the system (glibc ``malloc_trim``); False where
    there is no glibc."""
    try:
        libc = ctypes.CDLL(None)
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim(0)
    return True
