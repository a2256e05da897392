"""Value types shared by every layer, and the `ObjectStore` protocol.

This module imports no oss2: `oss_store` implements the protocol on top of oss2, tests implement
it with fakes. Ranges are half-open ``[start, end)`` everywhere.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

ARCHIVE_CLASSES = frozenset({"Archive", "ColdArchive", "DeepColdArchive"})

Piece = bytearray | mmap.mmap
"""A writable buffer a ranged GET was read into: a bytearray, or an anonymous mapping (what
`ossfs.read.buffers` hands out for whole blocks).
Use ``memoryview(piece)`` for bytes-like access."""


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """One object version as listed or HEADed. ``etag`` is without quotes."""

    key: str
    size: int
    etag: str
    mtime_ns: int
    crc64: int | None = None
    storage_class: str = "Standard"
    object_type: str = "Normal"
    content_type: str | None = None
    restore: str | None = None
    user_meta: tuple[tuple[str, str], ...] = field(default=())

    @property
    def is_symlink(self) -> bool:
        return self.object_type == "Symlink"

    @property
    def is_frozen(self) -> bool:
        """True for an archive-class object that is not (yet) restored and readable."""
        if self.storage_class not in ARCHIVE_CLASSES:
            return False
        return self.restore is None or 'ongoing-request="false"' not in self.restore


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a delimited listing: objects, common prefixes and the next page's token."""

    objects: tuple[ObjectMeta, ...]
    prefixes: tuple[str, ...]
    next_token: str | None


class ObjectStore(Protocol):
    """What the filesystem needs from OSS. Every method is thread-safe.

    Errors are `ossfs.core.errors` classes: NotFoundError, AccessDeniedError, ArchivedError,
    StaleError (If-Match failed), RemoteIOError (after retries).
    """

    def probe(self) -> None:
        """Check that the bucket exists and the credentials work (one cheap request)."""
        ...

    def head(self, key: str) -> ObjectMeta:
        """HEAD one key."""
        ...

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "/",
        token: str | None = None,
        max_keys: int = 1000,
        start_after: str = "",
    ) -> ListPage:
        """One ListObjectsV2 page under ``prefix``: keys (or common prefixes) in key order,
        after ``start_after`` when it is given, from ``token`` when it is given."""
        ...

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        """Exactly the bytes ``[start, end)`` of ``key``; ``etag`` pins the version (If-Match)."""
        ...

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
        """Exactly the bytes ``[start, end)`` of ``key`` (``start < end``), as consecutive
        pieces of ``piece_bytes`` (the last may be shorter), each handed to ``on_piece`` whole,
        in order, as soon as it has arrived; ``etag`` pins the version (If-Match).

        A failure raises after the pieces already handed over (those are exact); ``on_piece``
        is never called with partial or wrong bytes. ``on_piece`` owns each piece it is given.
        """
        ...

    def announced_crc64(self, key: str, etag: str) -> int | None:
        """The whole-object CRC-64 (``x-oss-hash-crc64ecma``) that a GET of this version
        carried, if one did (no request is sent)."""
        ...

    def symlink_target(self, key: str) -> str:
        """The key a symlink object points at."""
        ...

    def stream(
        self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
    ) -> tuple[ObjectMeta, Iterator[bytes]]:
        """Stream the object from ``start`` to its end: its metadata, then its bytes in chunks."""
        ...
