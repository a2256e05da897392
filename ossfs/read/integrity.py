"""Whole-object CRC-64 from blocks read in any order.

A handle that has read every block of an object can check the object end to end against the
server's ``x-oss-hash-crc64ecma``: each block's CRC is computed once when the handle first
serves it, and the block CRCs are folded together in offset order as soon as they are
contiguous. All blocks but the last have the same length, so folding uses one precomputed
"shift by a block" operator (a 64x64 GF(2) matrix) instead of a general `crc64_combine`.

Deliberately not here: where blocks come from, what happens on a mismatch (the reader raises
`IntegrityError`), or where the expected value comes from.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from ossfs.core.crc64 import Buffer, crc64, crc64_combine, shift_operator, shift_with


@lru_cache(maxsize=8)
def _block_shift(block_size: int) -> tuple[int, ...]:
    return shift_operator(block_size)


class WholeObjectCrc:
    """Accumulates the CRC-64 of an object of ``size`` bytes from its ``block_size`` blocks.

    Thread-safe. `add` takes a block's index and bytes (the block CRC is computed here, once per
    index); `value` is the whole-object CRC once every block has been added, else None.
    """

    def __init__(self, size: int, block_size: int) -> None:
        if size < 0 or block_size <= 0:
            raise ValueError("size must be >= 0 and block_size > 0")
        self._size = size
        self._block_size = block_size
        self._blocks = (size + block_size - 1) // block_size
        self._lock = threading.Lock()
        self._pending: dict[int, int] = {}
        self._next = 0
        self._crc = 0

    @property
    def complete(self) -> bool:
        return self._next == self._blocks

    @property
    def value(self) -> int | None:
        return self._crc if self.complete else None

    def wants(self, index: int) -> bool:
        """True if block ``index`` has not been added yet (cheap; no lock needed for a hint)."""
        return index >= self._next and index not in self._pending

    def add(self, index: int, data: Buffer) -> None:
        """Add block ``index`` (its exact bytes); repeated indices are ignored."""
        if not 0 <= index < self._blocks:
            raise ValueError(f"block {index} is outside an object of {self._blocks} blocks")
        if not self.wants(index):
            return
        block_crc = crc64(data)
        with self._lock:
            if index < self._next or index in self._pending:
                return
            self._pending[index] = block_crc
            while self._next in self._pending:
                part = self._pending.pop(self._next)
                last_length = length_of_last(self._size, self._block_size)
                if self._next == 0:
                    # Nothing before it to shift: an object of one block (most small files)
                    # never needs the block operator, whose first computation takes ms.
                    self._crc = part
                elif self._next == self._blocks - 1 and last_length != self._block_size:
                    self._crc = crc64_combine(self._crc, part, last_length)
                else:
                    self._crc = shift_with(_block_shift(self._block_size), self._crc) ^ part
                self._next += 1


def length_of_last(size: int, block_size: int) -> int:
    """Length of the last block of a non-empty object."""
    rest = size % block_size
    return rest or block_size
