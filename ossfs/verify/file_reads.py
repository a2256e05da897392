"""The CRC-64 of a file read through a mount: in one pass, or as parallel segments.

Responsibility: read the file at a path to its end in chunks of ``chunk_bytes`` and return the
CRC-64 of the bytes read and their count. A file larger than ``part_bytes`` can be read as up to
``streams`` contiguous segments, each through its own file handle by its own thread (so the
mount sees that many sequential readers, each with its own read-ahead), the segment CRCs folded
in offset order. Either way the bytes read stop at most one chunk past ``size``, so a file
longer or shorter than the object shows in the count.

Memory: one chunk per reader. Deliberately not here: what the CRC is compared with, HEADs,
restarts (`ossfs.verify.verifier`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ossfs.core.crc64 import PartsCrc, crc64, crc64_combine
from ossfs.verify.parts import CancelledError

__all__ = ["read_file_crc"]


def read_file_crc(
    path: Path,
    size: int,
    *,
    chunk_bytes: int,
    streams: int = 1,
    part_bytes: int = 1 << 62,
    cancelled: threading.Event,
    on_bytes: Callable[[int], None],
) -> tuple[int, int]:
    """CRC-64 and count of the bytes of the file at ``path`` (``size``: the object's size).

    Read in one pass unless ``streams`` > 1 and ``size`` > ``part_bytes``: then as ``streams``
    segments (a multiple of ``part_bytes`` each, the last to the end of the file) at once.
    Raises OSError, or `CancelledError` once ``cancelled`` is set.
    """
    if streams <= 1 or size <= part_bytes:
        return _read_segment(
            path,
            0,
            None,
            size=size,
            chunk_bytes=chunk_bytes,
            stop=cancelled,
            cancelled=cancelled,
            on_bytes=on_bytes,
        )
    parts = -(-size // part_bytes)
    per_segment = -(-parts // min(streams, parts)) * part_bytes
    starts = range(0, size, per_segment)
    stop = threading.Event()  # set by a segment that failed, or by a cancel
    failures: list[BaseException] = []

    def segment(start: int) -> tuple[int, int]:
        end = start + per_segment if start + per_segment < size else None
        try:
            return _read_segment(
                path,
                start,
                end,
                size=size,
                chunk_bytes=chunk_bytes,
                stop=stop,
                cancelled=cancelled,
                on_bytes=on_bytes,
            )
        except BaseException as exc:
            failures.append(exc)
            stop.set()
            raise

    with ThreadPoolExecutor(len(starts), thread_name_prefix="verify-file") as pool:
        futures = [pool.submit(segment, start) for start in starts]
    if cancelled.is_set():
        raise CancelledError
    if failures:
        raise failures[0]
    results = [f.result() for f in futures]
    if (
        all(done == per_segment for _, done in results[:-1])
        and sum(done for _, done in results) == size
    ):
        folded = PartsCrc(size, per_segment)
        for index, (crc, _) in enumerate(results):
            folded.add(index, crc)
        value = folded.value
        assert value is not None
        return value, size
    # The file is not the object's size: the CRC of the bytes read, in order (a segment cut
    # short by the end of the file leaves the later ones empty).
    crc, total = 0, 0
    for part_crc, done in results:
        crc = crc64_combine(crc, part_crc, done)
        total += done
    return crc, total


def _read_segment(
    path: Path,
    start: int,
    end: int | None,
    *,
    size: int,
    chunk_bytes: int,
    stop: threading.Event,
    cancelled: threading.Event,
    on_bytes: Callable[[int], None],
) -> tuple[int, int]:
    """CRC and count of bytes ``[start, end)`` of the file (``end`` None: to its end, stopping
    once past ``size``). Raises `CancelledError` once ``stop`` or ``cancelled`` is set."""
    buf = bytearray(chunk_bytes)
    view = memoryview(buf)
    crc = 0
    pos = start
    with open(path, "rb", buffering=0) as f:
        if start:
            f.seek(start)
        while (end is None and pos <= size) or (end is not None and pos < end):
            if stop.is_set() or cancelled.is_set():
                raise CancelledError
            want = chunk_bytes if end is None else min(chunk_bytes, end - pos)
            n = f.readinto(view[:want])
            if not n:
                break
            crc = crc64(view[:n], crc)
            pos += n
            on_bytes(n)
    return crc, pos - start
