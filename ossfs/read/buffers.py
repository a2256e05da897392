"""Block buffers recycled between the network and the block cache.

Responsibility: hand out writable buffers of one size for GET bodies to be read into, and take
back buffers the block cache let go of, but only when nothing else can still reach them. A new
buffer costs the kernel a zeroed page per 4 KiB touched (page faults were a quarter of the
daemon's CPU in a sequential read); a recycled one costs nothing. New buffers are anonymous
mappings, populated by the kernel in one call (`new_mapping`) with the GIL released: a bytearray is
zeroed by Python with the GIL held, so its page faults stalled every other thread (a 1 GiB read
filling the cache ran at 0.77x). CPython's ``mmap.mmap`` holds the GIL through the system call,
so ``MAP_POPULATE`` stalled every thread too, for as long as the kernel took to zero the pages
(0.5 to 3 ms per MiB on a busy virtual machine, most of the GIL's held time in a sequential
read): the mapping is made lazy and populated by ``madvise(MADV_POPULATE_WRITE)`` (Linux 5.14)
through ctypes, which lets the GIL go for the call.

Safety rests on CPython's reference counts (this project runs on CPython with the GIL): a buffer
is reused only when the caller's own references are the only ones left. A FUSE reply still
being copied out of it, a reader's view of it or a waiter's future all hold references, so such
a buffer is simply not taken back (it is freed later, like any object).

Deliberately not here: which blocks to drop (`block_cache`, `prefetch`) and any I/O.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import sys
import threading

from ossfs.core.object_store import Piece

_LAZY_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
_MAP_FLAGS = _LAZY_FLAGS | getattr(mmap, "MAP_POPULATE", 0)
_MADV_POPULATE_WRITE = 23  # Linux 5.14; older kernels answer EINVAL
_libc = ctypes.CDLL(None, use_errno=True)
_madvise = _libc.madvise
_madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_madvise.restype = ctypes.c_int
_populate_works = True  # until the kernel refuses MADV_POPULATE_WRITE once


def _populate(buffer: mmap.mmap) -> bool:
    """Fault in every page of ``buffer`` (not empty) now, writable, with the GIL released
    (ctypes lets it go for a foreign call); False if the kernel cannot (before Linux 5.14, or
    no memory: the pages are then faulted in on first touch, as for any lazy mapping)."""
    size = len(buffer)
    view = (ctypes.c_char * size).from_buffer(buffer)
    try:
        return bool(_madvise(ctypes.addressof(view), size, _MADV_POPULATE_WRITE) == 0)
    finally:
        del view  # the buffer export: the mapping can be closed again


def new_mapping(size: int) -> mmap.mmap:
    """A new anonymous mapping of ``size`` bytes with its pages already faulted in, the GIL
    free while the kernel zeroes them; ``MAP_POPULATE`` where the kernel lacks
    ``MADV_POPULATE_WRITE``. Raises OSError when no mapping can be made."""
    global _populate_works  # one fact about the kernel, learnt once
    if not _populate_works:
        return mmap.mmap(-1, size, flags=_MAP_FLAGS)
    buffer = mmap.mmap(-1, size, flags=_LAZY_FLAGS)
    if not _populate(buffer) and ctypes.get_errno() == errno.EINVAL:
        _populate_works = False
    return buffer


LAZY_MAP_BYTES = 64 << 10
"""From this size up, a buffer of another size than the pool's is a lazily mapped one (at most
1/16 of it is lost to page rounding)."""


class BufferPool:
    """Free buffers of ``buffer_bytes`` each, at most ``max_buffers`` kept. Thread-safe."""

    def __init__(self, buffer_bytes: int, max_buffers: int) -> None:
        """Raises ValueError unless ``buffer_bytes > 0`` and ``max_buffers >= 0``."""
        if buffer_bytes <= 0 or max_buffers < 0:
            raise ValueError(f"bad pool: {max_buffers} buffers of {buffer_bytes} bytes")
        self._size = buffer_bytes
        self._max = max_buffers
        self._keep = max_buffers  # `limit`: at most this many kept now
        self._free: list[Piece] = []
        self._lock = threading.Lock()
        self.reused = 0
        self.kept = 0

    @property
    def buffer_bytes(self) -> int:
        return self._size

    @property
    def max_bytes(self) -> int:
        """The most bytes the free buffers ever hold."""
        return self._max * self._size

    def limit(self, max_buffers: int) -> None:
        """Keep at most ``max_buffers`` (never more than the pool was built with) from now on;
        free buffers over it are let go at once (a mapping is unmapped when its last reference
        goes)."""
        with self._lock:
            self._keep = max(0, min(max_buffers, self._max))
            del self._free[self._keep :]

    @property
    def free_bytes(self) -> int:
        """Bytes held in free buffers now (part of the process's memory, not of the cache)."""
        with self._lock:
            return len(self._free) * self._size

    def take(self, size: int) -> Piece:
        """A buffer of exactly ``size`` bytes (old contents, or zeros when new): a mapping of
        the pool's size, a new mapping from `LAZY_MAP_BYTES` up, else a bytearray.

        Other sizes are small objects' whole bodies (directory read-ahead) and the last block
        of an object. Their mapping is not populated: the kernel faults its pages in while the
        socket fills it, with the GIL free; a bytearray is zeroed by Python with the GIL held
        (about 50 us for 100 KiB here, on the fetch loop's thread, which every read-ahead GET
        passes through: 1 reader of 100 KiB files 9% faster). Below `LAZY_MAP_BYTES` a
        mapping's rounding to whole pages would waste too much of the cache's memory."""
        if size != self._size:
            if size >= LAZY_MAP_BYTES:
                try:
                    return mmap.mmap(-1, size, flags=_LAZY_FLAGS)
                except OSError:  # no mappings left: the heap will do
                    pass
            return bytearray(size)
        with self._lock:
            if self._free:
                self.reused += 1
                return self._free.pop()
        try:
            return new_mapping(size)
        except OSError:  # no mappings left (vm.max_map_count): the heap will do
            return bytearray(size)

    def give(self, buffer: object, holders: int = 1) -> bool:
        """Take ``buffer`` back if it is one of ours in size and the caller's ``holders``
        references (variables, containers) are the only ones; True if it was kept.

        The caller must drop its references right after (it may be handed out again at once).
        """
        if not isinstance(buffer, bytearray | mmap.mmap) or len(buffer) != self._size:
            return False
        # getrefcount sees the caller's references, this function's parameter and its own
        # argument: anything more is someone still using the buffer.
        if sys.getrefcount(buffer) != holders + 2:
            return False
        with self._lock:
            if len(self._free) >= self._keep:
                return False
            self._free.append(buffer)
            self.kept += 1
        return True
