"""Reads of one pinned object version, served from fixed-size blocks through the block cache.

Responsibility: turn ``read(offset, size)`` into block indices (pure functions `block_range` and
`block_bounds`, half-open ranges), answer from `BlockCache`, fetch missing blocks with ranged GETs
pinned to the etag seen at open (If-Match), check every body's length, and assemble the reply. A
read its read-ahead judges random is served from sub-block units instead (a fraction of a block,
keyed by `unit_key` in the same cache), fetching the range the read-ahead gives.

Deliberately not here: read-ahead, sequential and random detection (`handle_prefetch`: the
reader tells an optional `ReadAhead` about every read before serving it, and the prefetcher
fills the same cache from worker threads through the `ObjectReader.fetch_blocks` seam), retries
and error mapping (`oss_store`), and any FUSE or path knowledge. The whole-object CRC check is
folded in as blocks are served (`ossfs.read.integrity`); units are not.
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
ReadParts = list[memoryview]
"""A read's bytes in order, one view per block (or unit) it spans: a read across blocks is
handed to the FUSE binding this way, which copies each view into its reply buffer, instead of
joining them first (one copy of every byte fewer, made with the GIL held)."""


def joined(data: ReadData | ReadParts) -> ReadData:
    """``data`` as one bytes-like object (`ReadParts` joined: one copy)."""
    return b"".join(data) if isinstance(data, list) else data


def read_length(data: ReadData | ReadParts) -> int:
    """How many bytes ``data`` holds."""
    return sum(map(len, data)) if isinstance(data, list) else len(data)


"""What a read returns: a cached block itself, a view into one (no copy), or joined bytes.
Treat it as read-only: it may be the cache's own buffer."""


class ReadAhead(Protocol):
    """A per-reader read-ahead policy (`handle_prefetch`), told about every read before it is
    served.

    ``on_read`` runs on the reading thread, once per non-empty read inside the object, with the
    half-open byte range ``[offset, end)``, its blocks ``first..last`` (inclusive) and ``hit``:
    True when every one of those blocks was already cached (the reader will not wait). It must
    be cheap, must not raise for remote failures and must not wait for the network. It returns
    None to have the read served from whole blocks, or, for a read it judges random, the range
    ``[lo, hi)`` to fetch instead: aligned to ``unit_bytes`` (``hi`` may be the object's end)
    and covering the read (the reader serves it from sub-block units, and ignores the range
    when ``hit``). ``unit_bytes`` is fixed (0: never a range; else it divides the block size
    and is the same for every reader of the cache). ``close`` stops it for good (the handle is
    released).
    """

    @property
    def unit_bytes(self) -> int: ...

    def on_read(
        self, offset: int, end: int, first: int, last: int, *, hit: bool
    ) -> tuple[int, int] | None: ...

    def close(self) -> None: ...


def unit_key(key: str, etag: str, unit: int) -> BlockKey:
    """The cache key of sub-block unit ``unit`` (of the mount's unit size) of a version: the
    block index slot holds ``~unit`` (negative), so units and blocks never share a key."""
    return (key, etag, ~unit)


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
        self._unit = self._read_ahead.unit_bytes if self._read_ahead is not None else 0

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
        """`read_parts`, joined: bytes-like (read-only)."""
        return joined(self.read_parts(offset, size))

    def read_parts(self, offset: int, size: int) -> ReadData | ReadParts:
        """Bytes ``[offset, min(offset + size, meta.size))`` of the pinned version (read-only),
        as one bytes-like object, or `ReadParts` when they span several blocks or units.

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
                # Asked before `on_read`, which may issue this block's own fetch (a first read).
                near = block is None and self._streamed_near(first, last)
                span = read_ahead.on_read(offset, end, first, last, hit=block is not None)
                if (
                    span is not None
                    and not near
                    and block is None
                    and self._units_serve(span, first, last)
                ):
                    return self._read_units(offset, end, span)
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
            near = not hit and self._streamed_near(first, last)
            span = read_ahead.on_read(offset, end, first, last, hit=hit)
            if span is not None and not hit and not near and self._units_serve(span, first, last):
                return self._read_units(offset, end, span)
        blocks = self._blocks(first, last)
        whole = self._whole
        if whole is not None:
            for index, block in enumerate(blocks, start=first):
                if whole.wants(index):
                    self._add_to_check(whole, index, block)
        return _views(blocks, first * block_size, block_size, offset, end)

    def _streamed_near(self, first: int, last: int) -> bool:
        """Whether the block before ``first..last``, or one of them, is cached or being fetched
        (asked before the read's own `on_read`). A read there that looks random to its handle
        is taken in whole blocks, not units: another reader streams through here (two
        processes reading a file at once, ``ossfs preload`` beside a reader, each handle
        seeing the other's pages in the shared page cache as holes), its read-ahead fetches
        these blocks whole, and the read joins that fetch (or fetches its block once, whole)
        instead of sending the same bytes again as units."""
        key, etag = self._key, self._etag
        return self._cache.any_present(
            [(key, etag, index) for index in range(max(first - 1, 0), last + 1)]
        )

    def _units_serve(self, span: tuple[int, int], first: int, last: int) -> bool:
        """Whether a random read of blocks ``first..last`` (none cached, none being fetched,
        no stream near: `_streamed_near`) takes the units of ``span``: not when the span is
        the whole of those blocks and none of their units is cached (an object's short last
        block, or a span grown to a block): the same bytes, and as a block the disk cache
        keeps them."""
        key, etag, cache = self._key, self._etag, self._cache
        start, stop = first * self._block_size, min((last + 1) * self._block_size, self._size)
        if span[0] > start or span[1] < stop:
            return True
        unit = self._unit
        return any(
            cache.contains(unit_key(key, etag, index))
            for index in range(start // unit, (stop - 1) // unit + 1)
        )

    def _read_units(self, offset: int, end: int, span: tuple[int, int]) -> ReadData | ReadParts:
        """Bytes ``[offset, end)`` from the sub-block units of ``span`` (the range a random read
        fetches, see `ReadAhead`), fetching each run of missing units with one ranged GET.

        Units are not folded into the whole-object CRC check, which takes whole blocks: a
        handle that reads every byte through units is not checked end to end (each body's
        length still is, and the If-Match pin still holds)."""
        unit = self._unit
        lo, hi = span
        if (
            lo % unit
            or not lo <= offset < end <= hi <= self._size
            or (hi % unit and hi != self._size)
        ):
            raise ValueError(f"range {span} does not cover [{offset}, {end}) in units of {unit}")
        first = offset // unit
        key, etag, contains = self._key, self._etag, self._cache.contains
        low, high = first, (end - 1) // unit
        # The span's units beyond the read's own are worth fetching only with a GET the read
        # needs anyway, and in that same GET: none when the read's own units are all cached,
        # and none past the first one cached on either side (no second round trip for them).
        if not all(contains(unit_key(key, etag, index)) for index in range(low, high + 1)):
            while low > lo // unit and not contains(unit_key(key, etag, low - 1)):
                low -= 1
            while high < (hi - 1) // unit and not contains(unit_key(key, etag, high + 1)):
                high += 1
        keys = [unit_key(key, etag, index) for index in range(low, high + 1)]
        units = self._cache.get_many_or_fetch(keys, self._fetch_units)
        skip = first - low
        if (end - 1) // unit == first:
            base = first * unit
            return memoryview(units[skip])[offset - base : end - base]
        return _views(units[skip:], first * unit, unit, offset, end)

    def _fetch_units(self, keys: Sequence[BlockKey]) -> list[Block]:
        """`BlockCache` fetch callback for consecutive unit keys (`unit_key`): one ranged GET,
        reserved in the cache's account while it runs (forced, as for blocks)."""
        first, last = ~keys[0][2], ~keys[-1][2]
        unit = self._unit
        # A GET of [0, unit) in one piece of that size looks like the whole body of a small
        # object (the disk cache's `TieredStore` takes it for block 0 and checks its file
        # against that length): unit 0 alone comes with unit 1, which is then let go.
        stop = 1 if first == last == 0 and self._size > unit else last
        nbytes = min((stop + 1) * unit, self._size) - first * unit
        self._cache.reserve(nbytes, force=True)
        try:
            return self._fetch_pieces(first, stop, unit, None)[: last - first + 1]
        finally:
            self._cache.release(nbytes)

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
        return self._fetch_pieces(first, last, self._block_size, on_block)

    def _fetch_pieces(
        self,
        first: int,
        last: int,
        piece_size: int,
        on_piece: Callable[[int, Block], None] | None,
    ) -> list[Block]:
        """Pieces ``first..last`` (inclusive) of ``piece_size`` bytes (blocks or units) with ONE
        ranged GET, exact in number and length (see `fetch_blocks`)."""
        object_size = self._size
        start = block_bounds(first, piece_size, object_size)[0]
        end = block_bounds(last, piece_size, object_size)[1]
        log.debug("fetch %s pieces %d..%d bytes [%d, %d)", self._key, first, last, start, end)
        pieces: list[Block] = []
        taken = [0, 0]  # pieces, bytes

        def take(piece: Piece) -> None:
            index = first + taken[0]
            lo = index * piece_size
            want = min(lo + piece_size, end) - lo
            if index > last or len(piece) != want:
                raise IntegrityError(
                    f"{self._key} [{start}, {end}): piece {index} came with {len(piece)} "
                    f"bytes, expected {want if index <= last else 0}"
                )
            taken[0] += 1
            taken[1] += len(piece)
            if on_piece is None:
                pieces.append(piece)
            else:
                on_piece(index, piece)

        self._store.read_range(
            self._key, start, end, etag=self._etag, piece_bytes=piece_size, on_piece=take
        )
        if taken[0] != last - first + 1:
            raise IntegrityError(
                f"{self._key} [{start}, {end}): got {taken[1]} bytes, expected {end - start}"
            )
        return pieces


def _views(pieces: Sequence[Block], base: int, piece_size: int, offset: int, end: int) -> ReadParts:
    """Views of bytes ``[offset, end)`` in consecutive pieces of ``piece_size`` bytes, the first
    at ``base`` (nothing copied)."""
    parts: list[memoryview] = []
    start = base
    for piece in pieces:
        if start >= end:
            break
        lo = max(offset, start) - start
        hi = min(end, start + len(piece)) - start
        parts.append(memoryview(piece)[lo:hi])
        start += piece_size
    return parts
