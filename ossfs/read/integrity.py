"""Whole-object CRC-64 from blocks read in any order.

A handle that has read every block of an object can check the object end to end against the
server's ``x-oss-hash-crc64ecma``: each block's CRC is computed once when the handle first
serves it, and the block CRCs are folded together in offset order as soon as they are
contiguous. All blocks but the last have the same length, so folding uses one precomputed
"shift by a block" operator (a 64x64 GF(2) matrix) instead of a general `crc64_combine`: the
folding is `ossfs.core.crc64.PartsCrc`.

Deliberately not here: where blocks come from, what happens on a mismatch (the reader raises
`IntegrityError`), or where the expected value comes from.
"""

from __future__ import annotations

from ossfs.core.crc64 import Buffer, PartsCrc, crc64


class WholeObjectCrc:
    """Accumulates the CRC-64 of an object of ``size`` bytes from its ``block_size`` blocks.

    Thread-safe. `add` takes a block's index and bytes (the block CRC is computed here, once per
    index); `value` is the whole-object CRC once every block has been added, else None.
    """

    def __init__(self, size: int, block_size: int) -> None:
        if size < 0 or block_size <= 0:
            raise ValueError("size must be >= 0 and block_size > 0")
        self._parts = PartsCrc(size, block_size)

    @property
    def complete(self) -> bool:
        return self._parts.complete

    @property
    def value(self) -> int | None:
        return self._parts.value

    def wants(self, index: int) -> bool:
        """True if block ``index`` has not been added yet (cheap; no lock needed for a hint)."""
        return self._parts.wants(index)

    def add(self, index: int, data: Buffer) -> None:
        """Add block ``index`` (its exact bytes); repeated indices are ignored."""
        if not 0 <= index < self._parts.parts:
            raise ValueError(f"block {index} is outside an object of {self._parts.parts} blocks")
        if self.wants(index):
            self._parts.add(index, crc64(data))


def length_of_last(size: int, block_size: int) -> int:
    """Length of the last block of a non-empty object."""
    rest = size % block_size
    return rest or block_size
