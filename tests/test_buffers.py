"""BufferPool: buffers are reused only when nobody else can still reach them."""

from __future__ import annotations

import ctypes
import mmap

import pytest

from ossfs.read.block_cache import BlockCache
from ossfs.read.buffers import LAZY_MAP_BYTES, BufferPool, new_mapping

SIZE = 64


def test_pool_reuses_a_buffer_given_back_and_makes_new_ones_otherwise() -> None:
    pool = BufferPool(SIZE, max_buffers=2)
    first = pool.take(SIZE)
    assert len(first) == SIZE and pool.reused == 0
    first[:] = b"x" * SIZE
    ident = id(first)
    assert pool.give(first)
    del first
    again = pool.take(SIZE)
    assert id(again) == ident and pool.reused == 1
    assert len(pool.take(SIZE)) == SIZE and pool.reused == 1  # the pool was empty: a new one


def test_pool_refuses_buffers_still_referenced_elsewhere() -> None:
    pool = BufferPool(SIZE, max_buffers=4)
    buf = pool.take(SIZE)
    view = memoryview(buf)[1:5]  # a FUSE reply being copied out, say
    assert not pool.give(buf)
    view.release()
    del view
    other = buf  # a second variable of the caller's
    assert not pool.give(buf)
    assert pool.give(buf, holders=2)
    del other
    assert pool.free_bytes == SIZE


def test_pool_refuses_other_sizes_types_and_more_than_its_maximum() -> None:
    pool = BufferPool(SIZE, max_buffers=1)
    assert not pool.give(bytearray(SIZE + 1))
    assert not pool.give(b"\0" * SIZE)
    assert pool.give(bytearray(SIZE))
    assert not pool.give(bytearray(SIZE))
    assert pool.free_bytes == pool.max_bytes == SIZE
    assert len(pool.take(10)) == 10  # another size: always new


def test_pool_maps_other_sizes_from_lazy_map_bytes_up() -> None:
    pool = BufferPool(SIZE, max_buffers=1)
    big = pool.take(LAZY_MAP_BYTES + 5)
    assert isinstance(big, mmap.mmap) and len(big) == LAZY_MAP_BYTES + 5
    assert big[:] == bytes(LAZY_MAP_BYTES + 5)  # zeros, like a bytearray
    big[-3:] = b"end"
    assert big[-3:] == b"end"
    small = pool.take(LAZY_MAP_BYTES - 1)
    assert isinstance(small, bytearray) and len(small) == LAZY_MAP_BYTES - 1
    assert not pool.give(big)  # not the pool's size: freed when dropped, never reused


def test_pool_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        BufferPool(0, 1)
    with pytest.raises(ValueError):
        BufferPool(SIZE, -1)


def test_cache_gives_evicted_and_dropped_blocks_back_unless_in_use() -> None:
    pool = BufferPool(SIZE, max_buffers=8)
    cache = BlockCache(2 * SIZE, pool)
    a, b, c = (pool.take(SIZE) for _ in range(3))
    cache.put(("k", "e", 0), a)
    cache.put(("k", "e", 1), b)
    held = memoryview(b)  # a reader still has block 1
    del a, b
    cache.put(("k", "e", 2), c)  # evicts block 0: nobody holds it, so it goes back
    assert pool.free_bytes == SIZE
    cache.put(("k", "e", 3), pool.take(SIZE))  # evicts block 1: still held, not taken back
    assert pool.free_bytes == 0
    assert held.tobytes() == bytes(SIZE)  # the holder's bytes were not reused under it
    del c
    cache.discard_object("k", "e")
    assert pool.free_bytes == 2 * SIZE
    assert cache.used_bytes == 0


def test_cache_evicts_demoted_blocks_first() -> None:
    cache = BlockCache(3 * SIZE)
    for index in range(3):
        cache.put(("k", "e", index), bytes(SIZE))
    assert cache.demote([("k", "e", 2), ("k", "e", 7)]) == 1  # 7 is not cached
    cache.put(("k", "e", 3), bytes(SIZE))
    cached = [i for i in range(4) if cache.contains(("k", "e", i))]
    assert cached == [0, 1, 3]  # the demoted block went first, not the least recently used


def test_buffer_pool_limit_lets_free_buffers_go_and_keeps_fewer() -> None:
    pool = BufferPool(SIZE, 4)
    held = [pool.take(SIZE) for _ in range(4)]
    for buffer in held:
        assert pool.give(buffer, holders=2)  # this loop's variable and the list
    del buffer
    held.clear()
    assert pool.free_bytes == 4 * SIZE
    pool.limit(1)
    assert pool.free_bytes == SIZE
    extra = bytearray(SIZE)
    assert not pool.give(extra)  # full at its new size
    pool.limit(0)
    assert pool.free_bytes == 0
    pool.limit(10)  # never more than it was built with
    for _ in range(5):
        extra = bytearray(SIZE)
        pool.give(extra)
    assert pool.free_bytes == 4 * SIZE


def _resident_pages(buffer: mmap.mmap) -> int:
    """Pages of ``buffer`` in memory now (mincore)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = len(buffer)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = (ctypes.c_ubyte * pages)()
    view = (ctypes.c_char * size).from_buffer(buffer)
    try:
        libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
        assert libc.mincore(ctypes.addressof(view), size, vector) == 0, ctypes.get_errno()
    finally:
        del view
    return sum(byte & 1 for byte in vector)


def test_new_mapping_is_populated_and_zeroed() -> None:
    size = 64 * mmap.PAGESIZE
    lazy = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    assert _resident_pages(lazy) == 0  # the measure itself: nothing faulted in yet
    buffer = new_mapping(size)
    assert len(buffer) == size
    assert _resident_pages(buffer) == 64
    assert buffer[:] == bytes(size)
    buffer.close()  # no export of it is left behind


def test_pool_hands_out_populated_new_buffers() -> None:
    pool = BufferPool(32 * mmap.PAGESIZE, 2)
    buffer = pool.take(32 * mmap.PAGESIZE)
    assert isinstance(buffer, mmap.mmap)
    assert _resident_pages(buffer) == 32
