"""The range rules of a GET: the headers that ask for a half-open range, and the checks of the
answer's head (status, ``Content-Range``, ETag, ``Content-Length``).

Ranges are half-open ``[start, end)`` everywhere in ossfs; `read_headers` is the one place one
becomes HTTP's inclusive byte range. `RangedAnswers` also remembers the whole-object CRC-64 the
answers announced. It deliberately sends nothing and reads no body (the store does).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Final

from cachetools import LRUCache

from ossfs.core.errors import IntegrityError, StaleError

__all__ = [
    "RANGE_BEHAVIOR_HEADER",
    "RangedAnswers",
    "check_content_range",
    "parse_content_range",
    "read_headers",
]

RANGE_BEHAVIOR_HEADER: Final = "x-oss-range-behavior"
_ANNOUNCED_CRCS: Final = 4096
# ASCII: Unicode's \d and \s would read other scripts' digits and spaces.
_CONTENT_RANGE_RE: Final = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.ASCII)
_NUMBER_RE: Final = re.compile(r"[0-9]+")  # not str.isdigit(): it takes "²", which int() refuses


def read_headers(etag: str | None, start: int = 0, end: int | None = None) -> dict[str, str]:
    """The headers of a GET of bytes ``[start, end)`` (``end`` None: to the object's end) of
    version ``etag`` (unquoted; None: any version): standard range behaviour, ``If-Match``
    and ``Range``. The whole object (``[0, None)``) gets no ``Range``: its answer is a 200.
    """
    # Without "standard", OSS answers an unsatisfiable Range with 200 and the whole object.
    headers = {RANGE_BEHAVIOR_HEADER: "standard"}
    if etag is not None:
        headers["If-Match"] = f'"{etag}"'
    if end is not None:
        # HTTP's byte ranges name their last byte: half-open [start, end) is start-(end - 1).
        headers["Range"] = f"bytes={start}-{end - 1}"
    elif start > 0:
        headers["Range"] = f"bytes={start}-"
    return headers


def parse_content_range(value: str) -> tuple[int, int, int | None]:
    """Parse ``bytes FIRST-LAST/TOTAL`` (LAST inclusive; TOTAL ``*`` gives None).

    Raises `IntegrityError` for anything else.
    """
    m = _CONTENT_RANGE_RE.match(value)
    if m is None:
        raise IntegrityError(f"malformed Content-Range {value!r}")
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def check_content_range(
    key: str, status: int, content_range: str | None, start: int, end: int | None
) -> int | None:
    """Check a ranged GET's answer for the half-open range ``[start, end)``.

    ``end`` None means "to the end of the object" (``bytes=start-``). Requires status 206 and a
    ``Content-Range`` with exactly the requested first/last byte and a total that can hold them.
    Returns the object's total size from the header (None if the server sent ``*``); raises
    `IntegrityError` otherwise.
    """
    if status != 206:
        # Without standard range behaviour OSS answers 200 and the *whole* object for a range
        # it cannot satisfy; any 200 here means the bytes are not the ones asked for.
        raise IntegrityError(f"GET {key!r} bytes {start}-{end}: expected HTTP 206, got {status}")
    if content_range is None:
        raise IntegrityError(f"GET {key!r} bytes {start}-{end}: 206 without Content-Range")
    first, last, total = parse_content_range(content_range)
    want_last = None if end is None else end - 1
    if first != start or (want_last is not None and last != want_last) or last < first:
        raise IntegrityError(
            f"GET {key!r}: asked for bytes {start}-{'' if want_last is None else want_last}, "
            f"got Content-Range {content_range!r}"
        )
    if total is not None and total <= last:
        raise IntegrityError(f"GET {key!r}: inconsistent Content-Range {content_range!r}")
    if end is None and total is not None and last != total - 1:
        raise IntegrityError(
            f"GET {key!r}: asked for bytes {start}- to the end, got {content_range!r}"
        )
    return total


class RangedAnswers:
    """Checks the head of each answer to a ranged GET, and remembers the whole-object CRC-64
    the answers announced, per version (the last `_ANNOUNCED_CRCS` versions): listings carry
    no CRC, and a handle that read a whole object checks it against this without a HEAD.
    Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._announced: LRUCache[tuple[str, str], int] = LRUCache(maxsize=_ANNOUNCED_CRCS)

    def check(
        self,
        key: str,
        *,
        status: int,
        headers: Mapping[str, str],
        start: int,
        end: int,
        pinned: list[str | None],
    ) -> None:
        """Status, Content-Range, ETag and Content-Length of an answer for ``[start, end)``
        of ``key`` (header names lower-cased). ``pinned[0]``: the version every answer must
        be of; None pins the first one seen. Raises `IntegrityError`, or `StaleError` for
        another version."""
        check_content_range(key, status, headers.get("content-range"), start, end)
        got_etag = headers.get("etag", "").strip().strip('"')
        if pinned[0] is None:
            pinned[0] = got_etag or None
        elif got_etag and got_etag != pinned[0]:
            raise StaleError(f"GET {key!r}: ETag {got_etag} does not match pinned {pinned[0]}")
        crc_text = headers.get("x-oss-hash-crc64ecma", "")
        if got_etag and _NUMBER_RE.fullmatch(crc_text):
            with self._lock:
                self._announced[(key, got_etag)] = int(crc_text)
        length = headers.get("content-length")
        if length is not None and (
            _NUMBER_RE.fullmatch(length) is None or int(length) != end - start
        ):
            raise IntegrityError(
                f"GET {key!r} bytes {start}-{end - 1}: Content-Length {length}, "
                f"expected {end - start}"
            )

    def announced_crc64(self, key: str, etag: str) -> int | None:
        """The whole-object CRC-64 an answer for this version announced, if one did."""
        with self._lock:
            return self._announced.get((key, etag))
