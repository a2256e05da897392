"""An in-memory `ObjectStore` that records every call, for unit tests of the layers above it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from ossfs.core.crc64 import crc64
from ossfs.core.errors import ArchivedError, NotFoundError, StaleError
from ossfs.core.object_store import ListPage, ObjectMeta

Call = tuple[object, ...]


def order(key: str) -> bytes:
    """The order OSS lists keys in: their UTF-8 bytes."""
    return key.encode("utf-8", "surrogateescape")


class FakeStore:
    """Objects in a dict; ``calls`` lists ("op", args...) in order; thread-safe.

    ``calls`` entries: ("probe",), ("head", key), ("list_page", prefix, token),
    ("get_range", key, start, end), ("symlink_target", key), ("stream", key, start).
    ``lists`` has every list_page's (prefix, delimiter, token, start_after), in order.
    `read_range` goes through `get_range` (one call, recorded as such), so a subclass that
    scripts `get_range` scripts both.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, bytes] = {}
        self._meta: dict[str, ObjectMeta] = {}
        self._symlinks: dict[str, str] = {}
        self.calls: list[Call] = []
        self.lists: list[tuple[str, str, str | None, str]] = []
        self._served: set[tuple[str, str]] = set()
        self._version = 0

    # -- fixtures -------------------------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes = b"",
        *,
        storage_class: str = "Standard",
        restore: str | None = None,
        user_meta: tuple[tuple[str, str], ...] = (),
        content_type: str | None = None,
    ) -> ObjectMeta:
        with self._lock:
            self._version += 1
            meta = ObjectMeta(
                key=key,
                size=len(data),
                etag=f"ETAG{self._version:028X}",
                mtime_ns=1_700_000_000_000_000_000 + self._version * 1_000_000_000,
                crc64=crc64(data),
                storage_class=storage_class,
                restore=restore,
                user_meta=user_meta,
                content_type=content_type,
            )
            self._data[key] = data
            self._meta[key] = meta
            return meta

    def put_symlink(self, key: str, target: str) -> ObjectMeta:
        meta = self.put(key, b"")
        with self._lock:
            meta = replace(meta, object_type="Symlink")
            self._meta[key] = meta
            self._symlinks[key] = target
        return meta

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)
            self._meta.pop(key, None)
            self._symlinks.pop(key, None)

    def count(self, op: str) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c[0] == op)

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.lists.clear()

    # -- ObjectStore ----------------------------------------------------------------------------
    def probe(self) -> None:
        with self._lock:
            self.calls.append(("probe",))

    def head(self, key: str) -> ObjectMeta:
        with self._lock:
            self.calls.append(("head", key))
            meta = self._meta.get(key)
        if meta is None:
            raise NotFoundError(key)
        return meta

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "/",
        token: str | None = None,
        max_keys: int = 1000,
        start_after: str = "",
    ) -> ListPage:
        with self._lock:
            self.calls.append(("list_page", prefix, token))
            self.lists.append((prefix, delimiter, token, start_after))
            keys = sorted(
                (k for k in self._meta if k.startswith(prefix) and order(k) > order(start_after)),
                key=order,
            )
            metas = dict(self._meta)
        entries: list[tuple[str, ObjectMeta | None]] = []
        seen_prefixes: set[str] = set()
        for key in keys:
            rest = key[len(prefix) :]
            cut = rest.find(delimiter) if delimiter else -1
            if cut >= 0:
                common = prefix + rest[: cut + len(delimiter)]
                if common not in seen_prefixes:
                    seen_prefixes.add(common)
                    entries.append((common, None))
            else:
                entries.append((key, metas[key]))
        entries.sort(key=lambda e: order(e[0]))
        if token is not None:
            entries = [e for e in entries if order(e[0]) > order(token)]
        page = entries[:max_keys]
        next_token = page[-1][0] if len(entries) > max_keys else None
        return self.listed(
            ListPage(
                objects=tuple(m for _, m in page if m is not None),
                prefixes=tuple(name for name, m in page if m is None),
                next_token=next_token,
            ),
            delimiter=delimiter,
            start_after=start_after,
        )

    def listed(self, page: ListPage, *, delimiter: str, start_after: str) -> ListPage:
        """The page `list_page` answers with: a hook for fakes that change or hold listings
        (without restating `list_page`'s signature); this one answers ``page`` as it is."""
        return page

    def read_range(
        self,
        key: str,
        start: int,
        end: int,
        *,
        etag: str | None,
        piece_bytes: int,
        on_piece: Callable[[bytearray], None],
    ) -> None:
        body = self.get_range(key, start, end, etag=etag)
        for pos in range(0, len(body), piece_bytes):
            on_piece(bytearray(body[pos : pos + piece_bytes]))

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        with self._lock:
            self.calls.append(("get_range", key, start, end))
            meta = self._meta.get(key)
            data = self._data.get(key)
        if meta is None or data is None:
            raise NotFoundError(key)
        if etag is not None and etag != meta.etag:
            raise StaleError(key)
        if meta.is_frozen:
            raise ArchivedError(key)
        if not 0 <= start < end <= meta.size:
            raise ValueError(f"bad range [{start}, {end}) for size {meta.size}")
        with self._lock:
            self._served.add((key, meta.etag))
        return data[start:end]

    def announced_crc64(self, key: str, etag: str) -> int | None:
        """Like OSS, every GET announces the whole-object CRC: known once a range was read."""
        with self._lock:
            meta = self._meta.get(key)
            served = (key, etag) in self._served
        if meta is None or meta.etag != etag or not served:
            return None
        return meta.crc64

    def symlink_target(self, key: str) -> str:
        with self._lock:
            self.calls.append(("symlink_target", key))
            target = self._symlinks.get(key)
        if target is None:
            raise NotFoundError(key)
        return target

    def stream(
        self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
    ) -> tuple[ObjectMeta, Iterator[bytes]]:
        with self._lock:
            self.calls.append(("stream", key, start))
            meta = self._meta.get(key)
            data = self._data.get(key)
        if meta is None or data is None:
            raise NotFoundError(key)
        if etag is not None and etag != meta.etag:
            raise StaleError(key)
        body = data[start:]
        return meta, (body[i : i + chunk_bytes] for i in range(0, len(body), chunk_bytes))


class LeakyStore(FakeStore):
    """A `FakeStore` whose listings also name keys outside the prefix asked for, as a
    misbehaving server might: the object ``elsewhere/x`` at the end of every page, and the
    common prefix ``other/`` in every delimited page; ``flat_only``: flat pages only."""

    STRAY_KEY = "elsewhere/x"

    def __init__(self, *, flat_only: bool = False) -> None:
        super().__init__()
        self._flat_only = flat_only

    def listed(self, page: ListPage, *, delimiter: str, start_after: str) -> ListPage:
        if self._flat_only and delimiter:
            return page
        stray = ObjectMeta(key=self.STRAY_KEY, size=1, etag="E", mtime_ns=0)
        prefixes = (*page.prefixes, "other/") if delimiter else page.prefixes
        return ListPage((*page.objects, stray), prefixes, page.next_token)
