"""HTTP Range handling in OSS's two behaviours and S3's, as pure functions.

OSS by default (no ``x-oss-range-behavior: standard``) ignores an invalid or out-of-range Range
and answers 200 with the whole object; with the standard behaviour (and on S3) an end past EOF
is clamped and a start at or past EOF is 416. Only single ranges are understood; anything else
is treated as no Range at all. Results are half-open ``[start, end)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiableError(Exception):
    """416 InvalidRange."""


@dataclass(frozen=True, slots=True)
class ParsedRange:
    """``bytes=first-last`` (inclusive, as on the wire); ``first`` None for a suffix ``-last``."""

    first: int | None
    last: int | None


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Half-open ``[start, end)`` to serve with 206."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def parse_range(header: str | None) -> ParsedRange | None:
    """A single ``bytes=`` range, or None when absent or not understood (multi-range too)."""
    if not header:
        return None
    m = _RANGE_RE.match(header)
    if m is None:
        return None
    first_s, last_s = m.group(1), m.group(2)
    if not first_s and not last_s:
        return None
    first = int(first_s) if first_s else None
    last = int(last_s) if last_s else None
    if first is not None and last is not None and last < first:
        return None
    return ParsedRange(first, last)


def resolve_legacy(header: str | None, size: int) -> ByteRange | None:
    """OSS default behaviour: a satisfiable range or None (200, whole object)."""
    r = parse_range(header)
    if r is None or size == 0:
        return None
    if r.first is None:
        assert r.last is not None
        if r.last == 0 or r.last > size:
            return None
        return ByteRange(size - r.last, size)
    if r.first >= size:
        return None
    if r.last is None:
        return ByteRange(r.first, size)
    if r.last >= size:
        return None
    return ByteRange(r.first, r.last + 1)


def resolve_standard(header: str | None, size: int) -> ByteRange | None:
    """RFC 7233 (OSS standard behaviour, S3): clamp the end; raise `RangeNotSatisfiableError`."""
    r = parse_range(header)
    if r is None:
        return None
    if r.first is None:
        assert r.last is not None
        if r.last == 0 or size == 0:
            raise RangeNotSatisfiableError(header)
        return ByteRange(max(0, size - r.last), size)
    if r.first >= size:
        raise RangeNotSatisfiableError(header)
    end = size if r.last is None else min(r.last + 1, size)
    return ByteRange(r.first, end)
