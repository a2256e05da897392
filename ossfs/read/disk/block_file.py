"""What one cached block is on disk: its name, and its file's header and checks.

A block file holds a header and the block's bytes. The header names the block in full (bucket,
object key, ETag, block size, index), so two blocks whose names hash alike can never stand in
for each other, and carries the CRC-64 of the bytes (checked on every read-back) and, when a GET
announced it, the whole object's CRC-64 (so the reader's end-to-end check still runs when every
block comes from disk). The header has a CRC-64 of its own: a flipped bit anywhere in the file
is noticed.

Files are named by a hash of the object version (bucket, key, ETag, block size) and the block's
index: ``v1/<2 hex>/<38 hex>.<index>``. All blocks of one version share a directory and a name
prefix, so they can be found without knowing the object's size.

Also here: reading a block file's bytes back from an open file, checked (`read_block_file`),
and writing one (`write_block_file`). Deliberately not here: which file, opening, naming and
renaming it (`ossfs.read.disk.disk_cache`, `block_writer`), and which blocks to keep.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ossfs.core.crc64 import Buffer, crc64
from ossfs.core.object_store import Piece

LAYOUT: Final = "v1"
"""The top directory of this layout inside the cache directory (another layout gets another)."""
TEMP_PREFIX: Final = ".tmp-"
"""Files being written are named so; they are renamed to their block's name once complete."""
MAGIC: Final = b"OSSFSBK1"
# magic, header length, data length, data CRC-64, object CRC-64, has object CRC, block size,
# index, then the lengths of bucket, key and etag; the three strings follow, then the header's
# own CRC-64 (of every header byte before it).
_FIXED: Final = struct.Struct("<8sIQQQBQQHIH")
_CRC: Final = struct.Struct("<Q")
MAX_HEADER_BYTES: Final = 64 << 10
_PROBE_BYTES: Final = 4096  # the first read of a file: its header, unless the key is long
"""No header is longer (keys are at most 1,023 bytes in OSS; this leaves room)."""


class BadBlockFileError(Exception):
    """The file is not a whole, intact block file of this layout (torn, flipped or foreign)."""


@dataclass(frozen=True, slots=True)
class BlockId:
    """One block of one object version, as the disk cache keys it.

    ``block_size`` is the mount's block size (the same object read with another block size is
    another set of blocks); ``index`` counts blocks from 0.
    """

    bucket: str
    key: str
    etag: str
    block_size: int
    index: int

    @property
    def version_hash(self) -> str:
        """40 hex digits naming the object version (bucket, key, ETag, block size)."""
        return version_hash(self.bucket, self.key, self.etag, self.block_size)

    @property
    def relpath(self) -> str:
        """The block's file, relative to the cache directory."""
        digest = self.version_hash
        return f"{LAYOUT}/{digest[:2]}/{digest[2:]}.{self.index}"


def version_hash(bucket: str, key: str, etag: str, block_size: int) -> str:
    """40 hex digits naming one object version read in ``block_size`` blocks."""
    text = f"{bucket}\0{key}\0{etag}\0{block_size}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).hexdigest()[:40]


def version_prefix(bucket: str, key: str, etag: str, block_size: int) -> tuple[str, str]:
    """The directory (relative to the cache directory) and name prefix of a version's blocks."""
    digest = version_hash(bucket, key, etag, block_size)
    return f"{LAYOUT}/{digest[:2]}", f"{digest[2:]}."


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def encode_header(block: BlockId, data_crc: int, data_len: int, object_crc: int | None) -> bytes:
    """The header of ``block``'s file, for ``data_len`` bytes of CRC-64 ``data_crc``."""
    bucket, key, etag = _text(block.bucket), _text(block.key), _text(block.etag)
    length = _FIXED.size + len(bucket) + len(key) + len(etag) + _CRC.size
    fixed = _FIXED.pack(
        MAGIC,
        length,
        data_len,
        data_crc,
        object_crc or 0,
        object_crc is not None,
        block.block_size,
        block.index,
        len(bucket),
        len(key),
        len(etag),
    )
    body = fixed + bucket + key + etag
    return body + _CRC.pack(crc64(body))


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded header: the block it names, its data's length and CRC-64, the object's CRC-64
    if it was known, and where the data starts (``length``)."""

    block: BlockId
    length: int
    data_len: int
    data_crc: int
    object_crc: int | None


def header_length(prefix: Buffer) -> int:
    """The header's length from the first `header_probe_bytes` of a file.

    Raises `BadBlockFileError` if those bytes do not start a header of this layout.
    """
    if len(prefix) < _FIXED.size:
        raise BadBlockFileError("shorter than a header")
    magic, length = struct.unpack_from("<8sI", prefix)
    if magic != MAGIC or not _FIXED.size + _CRC.size <= length <= MAX_HEADER_BYTES:
        raise BadBlockFileError("no header of this layout")
    return int(length)


def header_probe_bytes() -> int:
    """How many bytes `header_length` needs."""
    return _FIXED.size


def decode_header(raw: Buffer) -> Header:
    """The header in ``raw`` (exactly its `header_length` bytes).

    Raises `BadBlockFileError` if it is torn, flipped or not of this layout.
    """
    view = memoryview(raw)
    length = header_length(view)
    if len(view) != length:
        raise BadBlockFileError("torn header")
    (stored,) = _CRC.unpack_from(view, length - _CRC.size)
    if crc64(view[: length - _CRC.size]) != stored:
        raise BadBlockFileError("header CRC-64 mismatch")
    (_m, _l, data_len, data_crc, object_crc, has_object_crc, block_size, index, nb, nk, ne) = (
        _FIXED.unpack_from(view)
    )
    if _FIXED.size + nb + nk + ne + _CRC.size != length:
        raise BadBlockFileError("header lengths disagree")
    pos = _FIXED.size
    strings = []
    try:
        for n in (nb, nk, ne):
            strings.append(bytes(view[pos : pos + n]).decode("utf-8", "surrogatepass"))
            pos += n
    except UnicodeDecodeError as exc:  # pragma: no cover - the header CRC matched
        raise BadBlockFileError("header text is not UTF-8") from exc
    block = BlockId(strings[0], strings[1], strings[2], block_size, index)
    return Header(block, length, data_len, data_crc, object_crc if has_object_crc else None)


def read_block_file(
    fd: int, block: BlockId, length: int | None, file_size: int, take: Callable[[int], Piece]
) -> tuple[Piece, Header]:
    """The data of the block file open at ``fd`` (``file_size`` bytes), checked: its header
    must name ``block`` and announce ``length`` bytes (None: any), the file must hold exactly
    those, and their CRC-64 must match. The data is read into ``take(length)``.

    Raises `BadBlockFileError` for a file that fails a check, OSError as reading does.
    """
    head = os.pread(fd, _PROBE_BYTES, 0)
    size = header_length(head)
    if size > len(head):
        head += os.pread(fd, size - len(head), len(head))
    header = decode_header(head[:size])
    if header.block != block:
        raise BadBlockFileError(f"holds {header.block}")
    if length is None:
        length = header.data_len
    if header.data_len != length or file_size != size + length:
        raise BadBlockFileError(f"{file_size - size} bytes, expected {length}")
    data = take(length)
    view = memoryview(data)
    done = 0
    while done < length:
        got = os.preadv(fd, [view[done:]], size + done)
        if got <= 0:
            raise BadBlockFileError("ends early")
        done += got
    if crc64(data) != header.data_crc:
        raise BadBlockFileError("CRC-64 of its bytes does not match")
    return data, header


def write_block_file(fd: int, header: bytes, data: Buffer) -> None:
    """Write a block file's ``header`` then its ``data`` to ``fd`` (one system call, unless the
    kernel takes less)."""
    written = os.writev(fd, [header, data])
    if written < len(header):
        _write_rest(fd, memoryview(header)[written:])
        written = len(header)
    _write_rest(fd, memoryview(data)[written - len(header) :])


def _write_rest(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]
