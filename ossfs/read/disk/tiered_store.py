"""The disk cache put under the block cache: an `ObjectStore` whose block reads look on disk
before they send a GET, and whose fetched blocks go to the disk cache's writer.

Responsibility: serve ``read_range`` calls that ask for whole blocks of a pinned version (what
the reader, sequential read-ahead and directory read-ahead ask for) from `DiskCache` where the
blocks are there, with one ranged GET per run of blocks that are not, handing every fetched
block to the disk cache's background writer; the same for directory read-ahead's whole-object
GETs (`TieredWholeFetcher`). The whole-object CRC-64 that block files carry is answered by
`announced_crc64` when no GET of this mount announced it, so the reader's end-to-end check
runs on blocks read back from disk too.

Who waits for the disk: a block fetched on a read-ahead thread (`mark_read_ahead_thread`, the
executors' initializer) waits up to `READ_AHEAD_WAIT_S` for room in the disk writers' queue
before it is handed on, so read-ahead slows to the disk's pace instead of leaving blocks
unwritten (a later epoch would GET them again). A block fetched on any other thread (a reader's
own fetch on a FUSE thread, the HTTP engine's loop) never waits: it is handed on first and then
offered, so that if the queue is full the disk cache owes it and its writers find it in the
block cache later. The waiting block is still in flight for its caller (it has not been handed
on), so it stays within the caller's memory account.

Single flight per block stays the block cache's: every call here runs for blocks the cache
has claimed. Deliberately not here: the files (`disk_cache`), any other request (delegated to
the store as they are).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Final

from ossfs.core.object_store import ListPage, ObjectMeta, ObjectStore, Piece
from ossfs.read.disk.disk_cache import DiskCache
from ossfs.read.sibling_prefetch import WholeFetcher

READ_AHEAD_WAIT_S: Final = 5.0
"""How long a read-ahead thread's fetched block waits for room in the disk writers' queue."""

_thread = threading.local()


def mark_read_ahead_thread() -> None:
    """Mark the calling thread as a read-ahead worker (its fetched blocks wait for the disk
    writers): the initializer of the read-ahead executors."""
    _thread.read_ahead = True


def _is_read_ahead_thread() -> bool:
    return bool(getattr(_thread, "read_ahead", False))


class TieredStore:
    """`ObjectStore` over ``store`` with ``disk`` under every block read. Thread-safe."""

    def __init__(self, store: ObjectStore, disk: DiskCache) -> None:
        self._store = store
        self._disk = disk

    @property
    def disk(self) -> DiskCache:
        return self._disk

    def read_range(
        self,
        key: str,
        start: int,
        end: int,
        *,
        etag: str | None,
        piece_bytes: int,
        on_piece: Callable[[Piece], None],
    ) -> None:
        """As `ObjectStore.read_range`. Block-aligned reads of a pinned version in pieces of
        one block (or a whole object of at most one block in one piece) consult the disk block
        by block, fetching what is not there; any other read of a pinned version (random
        reads' sub-block units) is answered from the disk when every block it touches is
        there, else from the store."""
        disk = self._disk
        block_size = disk.block_size
        if etag is None or not disk.enabled:
            self._store.read_range(
                key, start, end, etag=etag, piece_bytes=piece_bytes, on_piece=on_piece
            )
            return
        if start % block_size or not (
            piece_bytes == block_size or (start == 0 and piece_bytes >= end <= block_size)
        ):
            pieces = self._range_from_disk(key, etag, start, end, piece_bytes)
            if pieces is None:
                self._store.read_range(
                    key, start, end, etag=etag, piece_bytes=piece_bytes, on_piece=on_piece
                )
                return
            for piece in pieces:
                on_piece(piece)
            return
        first = start // block_size
        last = (end - 1) // block_size
        index = first
        while index <= last:
            lo = index * block_size
            block = disk.lookup(key, etag, index, min(lo + block_size, end) - lo)
            if block is not None:
                on_piece(block)
                index += 1
                continue
            # A run of blocks not on disk: one GET for all of them.
            stop = index + 1
            while stop <= last and not disk.exists(key, etag, stop):
                stop += 1
            self._fetch(
                key,
                etag=etag,
                first=index,
                end=min(stop * block_size, end),
                piece_bytes=piece_bytes,
                on_piece=on_piece,
            )
            index = stop

    def _range_from_disk(
        self, key: str, etag: str, start: int, end: int, piece_bytes: int
    ) -> list[Piece] | None:
        """Bytes ``[start, end)`` of that version cut from the block files on disk into pieces
        of ``piece_bytes`` (the last shorter), or None unless every block they touch is on
        disk, intact and long enough. Each block file is read and checked whole."""
        disk = self._disk
        block_size = disk.block_size
        first, last = start // block_size, (end - 1) // block_size
        if not all(disk.exists(key, etag, index) for index in range(first, last + 1)):
            return None
        joined = bytearray()
        for index in range(first, last + 1):
            block = disk.lookup(key, etag, index, block_size if index < last else None)
            lo = index * block_size
            if block is None or lo + len(block) < min(end, lo + block_size):
                return None
            view = memoryview(block)
            joined += view[max(start, lo) - lo : min(end, lo + block_size) - lo]
            view.release()
        if len(joined) <= piece_bytes:
            return [joined]
        return [joined[at : at + piece_bytes] for at in range(0, len(joined), piece_bytes)]

    def _fetch(
        self,
        key: str,
        *,
        etag: str,
        first: int,
        end: int,
        piece_bytes: int,
        on_piece: Callable[[Piece], None],
    ) -> None:
        """GET blocks ``first..`` up to byte ``end``, offering each to the disk as it comes."""
        next_index = [first]
        store, disk = self._store, self._disk
        wait_s = READ_AHEAD_WAIT_S if _is_read_ahead_thread() else 0.0

        def take(piece: Piece) -> None:
            crc = store.announced_crc64(key, etag)
            index = next_index[0]
            next_index[0] += 1
            if wait_s:
                disk.offer(key, etag, index, piece, crc, wait_s=wait_s)
                on_piece(piece)
            else:
                # Handed on first: should the queue be full, the block is in the block cache
                # when the disk cache owes it (its writers take it from there).
                on_piece(piece)
                disk.offer(key, etag, index, piece, crc)

        store.read_range(
            key,
            first * disk.block_size,
            end,
            etag=etag,
            piece_bytes=piece_bytes,
            on_piece=take,
        )

    def announced_crc64(self, key: str, etag: str) -> int | None:
        """What a GET of this mount announced, else what a block file read back carried."""
        crc = self._store.announced_crc64(key, etag)
        return crc if crc is not None else self._disk.object_crc(key, etag)

    def wrap_fetcher(self, fetcher: WholeFetcher | None) -> WholeFetcher | None:
        """Directory read-ahead's GET runner with the disk in front of it (None stays None:
        read-ahead then runs `read_range` on worker threads, which consults the disk)."""
        return TieredWholeFetcher(fetcher, self) if fetcher is not None else None

    # -- everything else goes to the store as it is ------------------------------------------------
    def probe(self) -> None:
        self._store.probe()

    def head(self, key: str) -> ObjectMeta:
        return self._store.head(key)

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "/",
        token: str | None = None,
        max_keys: int = 1000,
        start_after: str = "",
    ) -> ListPage:
        return self._store.list_page(
            prefix, delimiter=delimiter, token=token, max_keys=max_keys, start_after=start_after
        )

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        return self._store.get_range(key, start, end, etag=etag)

    def symlink_target(self, key: str) -> str:
        return self._store.symlink_target(key)

    def stream(
        self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
    ) -> tuple[ObjectMeta, Iterator[bytes]]:
        return self._store.stream(key, start=start, etag=etag, chunk_bytes=chunk_bytes)


class TieredWholeFetcher:
    """A `WholeFetcher` that answers from the disk cache when it can (on the calling thread:
    one small file's read) and offers what it fetches to it."""

    def __init__(self, fetcher: WholeFetcher, tiered: TieredStore) -> None:
        self._fetcher = fetcher
        self._tiered = tiered

    def submit(
        self, key: str, etag: str, size: int, done: Callable[[Piece | BaseException, float], None]
    ) -> None:
        disk = self._tiered.disk
        if size <= disk.block_size:
            block = disk.lookup(key, etag, 0, size)
            if block is not None:
                done(block, 0.0)
                return

        def finished(result: Piece | BaseException, seconds: float) -> None:
            done(result, seconds)  # first: cached before the disk cache may owe it
            if not isinstance(result, BaseException) and size <= disk.block_size:
                disk.offer(key, etag, 0, result, self._tiered.announced_crc64(key, etag))

        self._fetcher.submit(key, etag, size, finished)

    def close(self) -> None:
        self._fetcher.close()
