"""Reads of one pinned object version, served from fixed-size blocks through the block cache.

Responsibility: turn ``read(offset, size)`` into block indices (pure functions `block_range` and
`block_bounds`, half-open ranges), answer from `BlockCache`, fetch missing blocks with ranged GETs
pinned to the etag seen at open (If-Match), check every body's length, and assemble the reply.

Deliberately not here: read-ahead and sequential detection (`prefetch`: the reader tells an
optional `ReadAhead` about every read before serving it, and the prefetcher fills the same cache
from worker threads through the `ObjectReader.fetch_blocks` seam), retries and error mapping
(`oss_store`), and any FUSE or path knowledge. The whole-object CRC check is folded in as
blocks are served (`ossfs.read.integrity`).
"""

from __future__ import annotations

import logging
import mmap
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from ossfs.core.errors import IntegrityError
from ossfs.core.object_store import ObjectMeta, ObjectStore, Piece
from ossfs.read.block_cache import Block, BlockCache, BlockKey
from ossfs.read.integrity import WholeObjectCrc

log = logging.getLogger(__name__)

ReadData = bytes | bytearray | memoryview
"""What a read returns: a cached block itself, a view into one (no copy), or joined bytes.
Treat it as read-only: it may be the cache's own buffer."""


class ReadAhead(Protocol):
    """A per-reader read-ahead policy (`prefetch`), told about every read before it is served.

    ``on_read`` runs on the reading thread, once per non-empty read inside the object, with the
    half-open byte range ``[offset, end)``, its blocks ``first..last`` (inclusive) and ``hit``:
    True when every one of those blocks was already cached (the reader will not wait). It must
    be cheap, must not raise for remote failures and must not wait for the network. ``close``
    stops it for good (the handle is released).
    """

    def on_read(self, offset: int, end: int, first: int, last: int, *, hit: bool) -> None: ...

    def close(self) -> None: ...


def block_range(offset: int, size: int, block_size: int, object_size: int) -> range:
    """Indices of the blocks holding bytes ``[offset, min(offset + size, object_size))``.

    Empty when ``size <= 0`` or ``offset >= object_size``. Raises ValueError if ``offset < 0`` or
    ``block_size <= 0``.
    """
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    if block_size <= 0:
        raise ValueError(f"block_size must be > 0, got {block_size}")
    if size <= 0 or offset >= object_size:
        return range(0)
    end = min(offset + size, object_size)
    return range(offset // block_size, (end - 1) // block_size + 1)


def block_bounds(index: int, block_size: int, object_size: int) -> tuple[int, int]:
    """Half-open byte range ``[start, end)`` of block ``index``; the last block may be short.

    Raises ValueError unless ``0 <= index`` and the block starts before ``object_size``.
    """
    if block_size <= 0:
        raise ValueError(f"block_size must be > 0, got {block_size}")
    start = index * block_size
    if index < 0 or start >= object_size:
        raise ValueError(f"block {index} is outside an object of {object_size} bytes")
    return start, min(start + block_size, object_size)


class ObjectReader:
    """Reads of one pinned object version (the `ObjectMeta` given at open) through the cache.

    Every fetch carries ``etag=meta.etag`` (If-Match), so a replaced object raises `StaleError`
    instead of returning bytes of two versions; blocks of the pinned version already cached keep
    being served. Every reader sharing a `BlockCache` must use the same block size (the cache key
    is ``(key, etag, block index)``). Thread-safe: its only mutable state is the whole-object
    CRC check (locked in `WholeObjectCrc`, decided once); an attached `ReadAhead` guards its own.
    """

    def __init__(
        self,
        store: ObjectStore,
        cache: BlockCache,
        meta: ObjectMeta,
        *,
        block_size_bytes: int,
        read_ahead: Callable[[ObjectReader], ReadAhead] | None = None,
        verify_crc: bool = True,
    ) -> None:
        """``read_ahead`` builds this reader's read-ahead policy (called once, with the reader).

        ``verify_crc``: once this reader has served every block of the object (in any order),
        check their combined CRC-64 against the server's whole-object value (from ``meta`` or
        what a GET announced); a mismatch fails that read and every later one with
        `IntegrityError` and drops the version's cached blocks.

        Raises ValueError if ``block_size_bytes <= 0``.
        """
        if block_size_bytes <= 0:
            raise ValueError(f"block_size_bytes must be > 0, got {block_size_bytes}")
        self._store = store
        self._cache = cache
        self._meta = meta
        self._key = meta.key
        self._etag = meta.etag
        self._size = meta.size
        self._block_size = block_size_bytes
        self._whole = WholeObjectCrc(meta.size, block_size_bytes) if verify_crc else None
        self._checked = False
        self._corrupt: IntegrityError | None = None
        self._check_lock = threading.Lock()
        self._read_ahead = read_ahead(self) if read_ahead is not None else None

    @property
    def meta(self) -> ObjectMeta:
        return self._meta

    @property
    def block_size_bytes(self) -> int:
        return self._block_size

    @property
    def cache(self) -> BlockCache:
        return self._cache

    @property
    def read_ahead(self) -> ReadAhead | None:
        return self._read_ahead

    def close(self) -> None:
        """The handle is released: stop read-ahead (reads still work, without it)."""
        if self._read_ahead is not None:
            self._read_ahead.close()

    def read(self, offset: int, size: int) -> ReadData:
        """Bytes ``[offset, min(offset + size, meta.size))`` of the pinned version (read-only).

        ``b""`` without any request when ``size <= 0``, ``offset >= meta.size`` or the object is
        empty. Raises ValueError for a negative offset, `StaleError` if the object changed and a
        block had to be fetched, `IntegrityError` on a body of the wrong length, and whatever
        else the store raises.
        """
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        if self._corrupt is not None:
            raise self._corrupt
        object_size = self._size
        if size <= 0 or offset >= object_size:
            return b""
        end = min(offset + size, object_size)
        block_size = self._block_size
        # The arithmetic of block_range, inlined: this runs thousands of times a second.
        first = offset // block_size
        last = (end - 1) // block_size
        read_ahead = self._read_ahead
        if first == last:
            block = self._cache.get((self._key, self._etag, first))
            if read_ahead is not None:
                read_ahead.on_read(offset, end, first, last, hit=block is not None)
            if block is None:
                block = self._blocks(first, last)[0]
            whole = self._whole
            if whole is not None and whole.wants(first):
                self._add_to_check(whole, first, block)
            base = first * block_size
            if offset == base and end - base == len(block):
                # A mapping is handed out as a view: bytes-like, and it keeps the buffer alive.
                return memoryview(block) if isinstance(block, mmap.mmap) else block
            return memoryview(block)[offset - base : end - base]

        if read_ahead is not None:
            contains, key, etag = self._cache.contains, self._key, self._etag
            hit = all(contains((key, etag, index)) for index in range(first, last + 1))
            read_ahead.on_read(offset, end, first, last, hit=hit)
        blocks = self._blocks(first, last)
        whole = self._whole
        if whole is not None:
            for index, block in enumerate(blocks, start=first):
                if whole.wants(index):
                    self._add_to_check(whole, index, block)
        parts: list[memoryview] = []
        block_start = first * block_size
        for block in blocks:
            lo = max(offset, block_start) - block_start
            hi = min(end, block_start + len(block)) - block_start
            parts.append(memoryview(block)[lo:hi])
            block_start += block_size
        # join copies each slice once into the reply; no intermediate bytes objects.
        return b"".join(parts)

    def _add_to_check(self, whole: WholeObjectCrc, index: int, block: Block) -> None:
        """Fold a served block into the whole-object CRC; check it once every block is in."""
        whole.add(index, block)
        computed = whole.value
        if computed is None:
            return
        with self._check_lock:
            if self._checked:
                return
            self._checked = True
        expected = self._meta.crc64
        if expected is None:
            expected = self._store.announced_crc64(self._key, self._etag)
        if expected is None:
            log.debug("%s: no server CRC-64 to check the whole object against", self._key)
            return
        if computed != expected:
            self._cache.discard_object(self._key, self._etag)
            self._corrupt = IntegrityError(
                f"{self._key} (etag {self._etag}): CRC-64 of the bytes read is {computed}, "
                f"the server's is {expected}"
            )
            log.error("integrity check failed: %s", self._corrupt)
            raise self._corrupt

    def _blocks(self, first: int, last: int) -> list[Block]:
        """Blocks ``first..last`` (inclusive) from the cache, fetching each run of missing ones
        with one ranged GET (concurrent misses of the same block share one fetch)."""
        key, etag = self._key, self._etag
        keys = [(key, etag, index) for index in range(first, last + 1)]
        return self._cache.get_many_or_fetch(keys, self._fetch_run)

    def _fetch_run(self, keys: Sequence[BlockKey]) -> list[Block]:
        """`BlockCache` fetch callback: ``keys`` are consecutive block indices of this version.

        The blocks' bytes are reserved in the cache's account of block memory while they are
        fetched (forced: a read always makes progress; the cache evicts to make room)."""
        first, last = keys[0][2], keys[-1][2]
        if len(keys) != last - first + 1:  # pragma: no cover - _blocks only asks for runs
            raise ValueError(f"blocks {[k[2] for k in keys]} are not consecutive")
        block_size = self._block_size
        nbytes = min((last + 1) * block_size, self._size) - first * block_size
        self._cache.reserve(nbytes, force=True)
        try:
            return self.fetch_blocks(first, last)
        finally:
            self._cache.release(nbytes)  # the cache counts them as cached from here on

    def fetch_blocks(
        self, first: int, last: int, on_block: Callable[[int, Block], None] | None = None
    ) -> list[Block]:
        """Fetch blocks ``first..last`` (inclusive) with ONE ranged GET, without the cache.

        The seam for read-ahead: any caller (this reader, or a prefetcher on a worker thread)
        gets exactly one body per block, each of its full length: returned as a list, or, with
        ``on_block(index, block)``, handed to it as soon as each has arrived, in order (a
        prefetcher caches it before the rest of the GET is in) and not kept here (the list
        returned is empty), so a block the cache lets go while the GET goes on is freed at
        once. Raises `IntegrityError` if the store returns other than exactly the requested
        bytes, and whatever the store raises (`StaleError` when the pinned etag no longer
        matches); blocks handed to ``on_block`` before a failure are exact.
        """
        block_size, object_size = self._block_size, self._size
        start = block_bounds(first, block_size, object_size)[0]
        end = block_bounds(last, block_size, object_size)[1]
        log.debug("fetch %s blocks %d..%d bytes [%d, %d)", self._key, first, last, start, end)
        blocks: list[Block] = []
        taken = [0, 0]  # blocks, bytes

        def take(piece: Piece) -> None:
            index = first + taken[0]
            lo = index * block_size
            want = min(lo + block_size, end) - lo
            if index > last or len(piece) != want:
                raise IntegrityError(
                    f"{self._key} [{start}, {end}): block {index} came with {len(piece)} "
                    f"bytes, expected {want if index <= last else 0}"
                )
            taken[0] += 1
            taken[1] += len(piece)
            if on_block is None:
                blocks.append(piece)
            else:
                on_block(index, piece)

        self._store.read_range(
            self._key, start, end, etag=self._etag, piece_bytes=block_size, on_piece=take
        )
        if taken[0] != last - first + 1:
            raise IntegrityError(
                f"{self._key} [{start}, {end}): got {taken[1]} bytes, expected {end - start}"
            )
        return blocks
