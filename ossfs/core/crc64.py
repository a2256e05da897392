"""CRC-64/XZ (ECMA-182, the value OSS sends in ``x-oss-hash-crc64ecma``) and CRC combination.

Combination: `crc64_combine` (the CRC of A+B from the CRCs of A and B and the length of B, as
zlib's crc32_combine), `shift_operator` (the same as a reusable GF(2) matrix, for many parts of one
length) and `PartsCrc` (the CRC of an object from the CRCs of its equal-sized parts, given in any
order).

The CRC runs on every byte that `verify` (and the mount's integrity check) reads, so it must not
be the bottleneck. fastcrc (SIMD, releases the GIL: ~10 GiB/s here) is a declared dependency and
does the work. Without it crcmod (oss2's dependency) computes the same values, but whether that is
its C extension (~400 MiB/s, holds the GIL) or its pure-Python code (about 100x slower still)
cannot be told through its public API, so `require_fast_crc` fails loudly without fastcrc.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Final

import crcmod

_POLY: Final = 0x142F0E1EBA9EA3693
_MASK: Final = 0xFFFFFFFFFFFFFFFF
# Reflected polynomial, used by the GF(2) matrix combine below.
_REV_POLY: Final = 0xC96C5795D7870F42

Buffer = bytes | bytearray | memoryview | mmap.mmap
"""Anything with the bytes buffer protocol that the CRC engines take."""

_crc_fun: Callable[[Buffer, int], int]
try:
    from fastcrc import crc64 as _fastcrc64

    def _fast(data: Buffer, crc: int) -> int:
        return int(_fastcrc64.xz(data, crc))

    _crc_fun = _fast
    _HAS_FASTCRC = True
except ImportError:  # pragma: no cover - fastcrc is a declared dependency
    _crc_fun = crcmod.mkCrcFun(_POLY, initCrc=0, rev=True, xorOut=_MASK)
    _HAS_FASTCRC = False


class MissingCrcExtensionError(RuntimeError):
    """fastcrc is not installed: no CRC-64 known to be fast."""


def has_fast_crc() -> bool:
    """True when CRCs run on fastcrc."""
    return _HAS_FASTCRC


def require_fast_crc() -> None:
    """Raise `MissingCrcExtensionError` unless fastcrc is importable."""
    if not has_fast_crc():
        raise MissingCrcExtensionError(
            "no fast CRC-64: install fastcrc (pip install fastcrc, a dependency of ossfs)"
        )


def crc64(data: Buffer, crc: int = 0) -> int:
    """CRC-64/XZ of ``data``, continuing from ``crc`` (the CRC of the bytes before it)."""
    return _crc_fun(data, crc)


def _gf2_times(mat: tuple[int, ...] | list[int], vec: int) -> int:
    total = 0
    i = 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(64)]


def _ladder(length: int) -> Iterator[list[int]]:
    """The operators (64 GF(2) matrix columns) whose product shifts a CRC past ``length`` zero
    bytes, in order: the squaring ladder of zlib's crc32_combine."""
    if length <= 0:
        return
    odd = [_REV_POLY] + [1 << n for n in range(63)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if length & 1:
            yield even
        length >>= 1
        if not length:
            return
        odd = _gf2_square(even)
        if length & 1:
            yield odd
        length >>= 1
        if not length:
            return


_ZEROS: Final = bytes(1 << 20)
_ZEROS_UP_TO: Final = 64 << 20


def _shift_by_zeros(crc: int, length: int) -> int:
    """The linear part of running the CRC over ``length`` zero bytes from ``crc``.

    The CRC is affine in its start value: crc64(Z, c) = L(c) ^ K(Z), so L(c) is
    crc64(Z, c) ^ crc64(Z, 0). With a SIMD CRC this beats the pure-Python matrix ladder by far
    for the lengths a filesystem sees (a 100 KiB tail: ~10 us instead of ~6 ms).
    """
    with_start, without = crc, 0
    zeros = memoryview(_ZEROS)
    while length > 0:
        piece = zeros[: min(length, len(_ZEROS))]
        with_start = _crc_fun(piece, with_start)
        without = _crc_fun(piece, without)
        length -= len(piece)
    return with_start ^ without


def crc64_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC of A+B from ``crc1`` = CRC(A), ``crc2`` = CRC(B) and ``len2`` = len(B) (as zlib)."""
    if _HAS_FASTCRC and 0 < len2 <= _ZEROS_UP_TO:
        return (_shift_by_zeros(crc1, len2) ^ crc2) & _MASK
    for operator in _ladder(len2):
        crc1 = _gf2_times(operator, crc1)
    return (crc1 ^ crc2) & _MASK


def shift_operator(length: int) -> tuple[int, ...]:
    """The linear map ``crc1 -> crc64_combine(crc1, 0, length)`` as 64 GF(2) matrix columns.

    With it, ``crc64_combine(crc1, crc2, length) == shift_with(op, crc1) ^ crc2``: folding many
    equal-length parts costs one matrix-vector product each instead of a full combine.
    """
    # The ladder (not the zero-run shortcut, so each method checks the other in the tests)
    # applied to all 64 unit vectors at once: the squarings are shared.
    cols = [1 << n for n in range(64)]
    for operator in _ladder(length):
        cols = [_gf2_times(operator, c) for c in cols]
    return tuple(cols)


def shift_with(operator: tuple[int, ...] | list[int], crc: int) -> int:
    """Apply a `shift_operator` to ``crc``."""
    return _gf2_times(operator, crc)


@lru_cache(maxsize=8)
def _cached_shift(length: int) -> tuple[int, ...]:
    return shift_operator(length)


class PartsCrc:
    """The CRC-64 of an object of ``size`` bytes from the CRCs of its consecutive parts of
    ``part_bytes`` bytes (the last may be shorter), added in any order.

    Parts are folded in offset order as soon as they are contiguous, so only the CRCs of parts
    that arrived early are held (one int each). All parts but the last have one length: folding
    costs one product with a cached "shift by a part" operator (microseconds), not a general
    `crc64_combine`. Thread-safe.
    """

    def __init__(self, size: int, part_bytes: int) -> None:
        if size < 0 or part_bytes <= 0:
            raise ValueError("size must be >= 0 and part_bytes > 0")
        self._size = size
        self._part_bytes = part_bytes
        self.parts: Final = (size + part_bytes - 1) // part_bytes
        """How many parts the object has (0 for an empty object)."""
        self._lock = threading.Lock()
        self._pending: dict[int, int] = {}
        self._next = 0
        self._crc = 0

    @property
    def complete(self) -> bool:
        return self._next == self.parts

    @property
    def value(self) -> int | None:
        """The whole object's CRC once every part has been added, else None."""
        return self._crc if self.complete else None

    def wants(self, index: int) -> bool:
        """True if part ``index`` has not been added yet (a hint: no lock taken)."""
        return index >= self._next and index not in self._pending

    def add(self, index: int, part_crc: int) -> None:
        """Add the CRC of part ``index``; a repeated index is ignored."""
        if not 0 <= index < self.parts:
            raise ValueError(f"part {index} is outside an object of {self.parts} parts")
        with self._lock:
            if index < self._next or index in self._pending:
                return
            self._pending[index] = part_crc
            while self._next in self._pending:
                part = self._pending.pop(self._next)
                last_length = self._size - (self.parts - 1) * self._part_bytes
                if self._next == 0:
                    # Nothing before it to shift: an object of one part never needs the
                    # operator, whose first computation takes milliseconds.
                    self._crc = part
                elif self._next == self.parts - 1 and last_length != self._part_bytes:
                    self._crc = crc64_combine(self._crc, part, last_length)
                else:
                    self._crc = shift_with(_cached_shift(self._part_bytes), self._crc) ^ part
                self._next += 1
