"""The FUSE-agnostic read-only filesystem: attributes, directories, handles, reads, xattrs.

It speaks paths, `Stat` values and `ossfs.core.errors` classes; it knows nothing of fusepy (that is
`fuse_ops`) or of oss2 (that is `oss_store`), and read-ahead only through the interfaces it
defines (`SequentialReadAhead`, `DirectoryReadAhead`: the app passes the concrete ones in).
Every method is thread-safe: FUSE calls them from many threads at once.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
import threading
from dataclasses import dataclass
from typing import Protocol

from cachetools import LRUCache

from ossfs.core.errors import (
    ArchivedError,
    IsADirectoryError_,
    NoAttributeError,
    OssfsError,
    ReadOnlyError,
    StaleError,
    UnsupportedAttributeError,
)
from ossfs.core.nodes import Node, NodeKind
from ossfs.core.object_store import ObjectMeta, ObjectStore
from ossfs.fs.namespace import Namespace
from ossfs.read.block_cache import BlockCache
from ossfs.read.reader import ObjectReader, ReadAhead, ReadData, ReadParts, joined

log = logging.getLogger(__name__)

USER_NAMESPACE = "user."
"""The only extended-attribute namespace the filesystem has (see `UnsupportedAttributeError`)."""
XATTR_PREFIX = "user.oss."
MOUNT_PREFIX_XATTR = "user.ossfs.prefix"
"""On the mount root: the key prefix the mount shows (so `verify --through` maps keys to paths)."""
_HEAD_CACHE_ENTRIES = 4096
# Paths whose last-opened version is remembered for the kernel page cache (see `keep_kernel_cache`);
# a forgotten path only costs one invalidation at its next open.
_KERNEL_CACHE_PATHS = 65536
# What statfs reports: a read-only filesystem with no free space and "plenty" of room, so tools
# that check capacity before reading (rsync, df) show sensible numbers.
_STATFS_BLOCKS = 1 << 40
_STATFS_FILES = 1 << 40
_NAME_MAX = 255


class SequentialReadAhead(Protocol):
    """Read-ahead for sequential readers of open files (`ossfs.read.prefetch.Prefetcher`)."""

    def attach(self, reader: ObjectReader) -> ReadAhead:
        """The read-ahead policy of ``reader``, a newly opened file's (called once per open)."""
        ...


class DirectoryReadAhead(Protocol):
    """Read-ahead of the files a directory walk opens next
    (`ossfs.read.sibling_prefetch.SiblingPrefetcher`)."""

    def on_open(self, node: Node) -> None:
        """Told of every opened file before its first read; never waits for the network and
        never raises for remote failures."""
        ...

    def close(self) -> None:
        """Stop for good (unmounted)."""
        ...


@dataclass(frozen=True, slots=True)
class FsConfig:
    """Ownership and permissions shown for every entry, and the read block size."""

    uid: int
    gid: int
    file_mode: int = 0o444
    dir_mode: int = 0o555
    block_size_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.block_size_bytes <= 0:
            raise ValueError("block_size_bytes must be positive")
        for mode in (self.file_mode, self.dir_mode):
            if not 0 <= mode <= 0o7777:
                raise ValueError(f"invalid mode {mode:o}")


@dataclass(frozen=True, slots=True)
class Stat:
    """What getattr answers; times in nanoseconds since the epoch."""

    ino: int
    mode: int
    nlink: int
    size: int
    uid: int
    gid: int
    mtime_ns: int
    blocks: int


@dataclass(frozen=True, slots=True)
class StatFs:
    block_size: int
    blocks: int
    blocks_free: int
    files: int
    files_free: int
    name_max: int


@dataclass(slots=True)
class _Handle:
    node: Node
    reader: ObjectReader
    etag: str
    keep_kernel_cache: bool = False
    failed: bool = False  # a read failed: pages it cached may be unverified (CRC) or stale


class Filesystem:
    """A read-only view of the objects under the namespace's root prefix."""

    def __init__(
        self,
        namespace: Namespace,
        store: ObjectStore,
        cache: BlockCache,
        config: FsConfig,
        *,
        mount_time_ns: int,
        prefetcher: SequentialReadAhead | None = None,
        sibling_prefetcher: DirectoryReadAhead | None = None,
    ) -> None:
        """``prefetcher``: read-ahead for sequential readers of open files (None: none).
        ``sibling_prefetcher``: read-ahead of the small files a directory walk opens next."""
        self._ns = namespace
        self._prefetcher = prefetcher
        self._siblings = sibling_prefetcher
        self._store = store
        self._cache = cache
        self._config = config
        self._mount_time_ns = mount_time_ns
        self._lock = threading.Lock()
        self._handles: dict[int, _Handle] = {}
        self._next_fh = itertools.count(1)
        self._heads: LRUCache[tuple[str, str], ObjectMeta] = LRUCache(maxsize=_HEAD_CACHE_ENTRIES)
        # Per path: the etag of its last open, and whether only that version can be in the
        # kernel's page cache (no handle of another version was open when it was last opened).
        self._kernel_versions: LRUCache[str, tuple[str, bool]] = LRUCache(
            maxsize=_KERNEL_CACHE_PATHS
        )

    # -- metadata -------------------------------------------------------------------------------
    def getattr(self, path: str) -> Stat:
        """Attributes of ``path``; raises NotFoundError. Listed entries cost no request."""
        return self._stat(self._ns.lookup(path))

    def readdir(self, path: str) -> list[tuple[str, Stat]]:
        """Children of a directory (without "." and "..") with their attributes."""
        return [(node.name, self._stat(node)) for node in self._ns.readdir(path)]

    def readlink(self, path: str) -> str:
        return self._ns.readlink(path)

    def statfs(self) -> StatFs:
        return StatFs(
            block_size=self._config.block_size_bytes,
            blocks=_STATFS_BLOCKS,
            blocks_free=0,
            files=_STATFS_FILES,
            files_free=0,
            name_max=_NAME_MAX,
        )

    def _stat(self, node: Node) -> Stat:
        cfg = self._config
        meta = node.meta
        mtime_ns = meta.mtime_ns if meta is not None else self._mount_time_ns
        if node.kind is NodeKind.DIR:
            return Stat(
                node.inode, stat.S_IFDIR | cfg.dir_mode, 2, 0, cfg.uid, cfg.gid, mtime_ns, 0
            )
        if node.kind is NodeKind.SYMLINK:
            try:
                size = len(os.fsencode(self._ns.readlink(node.path)))
            except OssfsError as exc:
                # One unreadable link must not fail its whole directory listing; readlink
                # itself still reports the error.
                log.warning("symlink %s: target unreadable (%s); size shown as 0", node.key, exc)
                size = 0
            return Stat(node.inode, stat.S_IFLNK | 0o777, 1, size, cfg.uid, cfg.gid, mtime_ns, 0)
        size = meta.size if meta is not None else 0
        blocks = (size + 511) // 512
        return Stat(
            node.inode, stat.S_IFREG | cfg.file_mode, 1, size, cfg.uid, cfg.gid, mtime_ns, blocks
        )

    # -- handles and reads ----------------------------------------------------------------------
    def open(self, path: str, flags: int) -> int:
        """Open a file for reading and pin its version; returns a handle number.

        Raises ReadOnlyError for any write access, IsADirectoryError_ for directories,
        ArchivedError for unrestored archive objects, NotFoundError.
        """
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC):
            raise ReadOnlyError(path)
        node = self._ns.lookup(path)
        if node.kind is NodeKind.DIR:
            raise IsADirectoryError_(path)
        meta = node.meta
        if meta is None:  # pragma: no cover - files always carry their metadata
            raise OssfsError(f"{path}: no metadata")
        if meta.is_frozen:
            log.warning(
                "cannot open %s: its object %s is in %s storage and not restored (restore it in "
                "OSS first)",
                path,
                meta.key,
                meta.storage_class,
            )
            raise ArchivedError(meta.key)
        block_size = self._config.block_size_bytes
        prefetcher = self._prefetcher
        reader = ObjectReader(
            self._store,
            self._cache,
            meta,
            block_size_bytes=block_size,
            # An object of one block has nothing to read ahead of its first read.
            read_ahead=prefetcher.attach
            if prefetcher is not None and meta.size > block_size
            else None,
        )
        fh = next(self._next_fh)
        with self._lock:
            keep = self._kernel_cache_valid(node.path, meta.etag)
            self._handles[fh] = _Handle(node, reader, meta.etag, keep)
        if self._siblings is not None:
            # Last thing before the reply: the read-ahead worker it wakes then finds the GIL
            # free sooner (with 8 readers: about a quarter fewer context switches per file).
            try:
                self._siblings.on_open(node)
            except BaseException:
                self.release(fh)
                raise
        return fh

    def handle_path(self, fh: int) -> str | None:
        """The path open file handle ``fh`` was opened at (None: no such handle)."""
        handle = self._handles.get(fh)
        return handle.node.path if handle is not None else None

    def keep_kernel_cache(self, fh: int) -> bool:
        """Whether the kernel may keep the pages it cached for this handle's path (FUSE
        ``keep_cache``): true only when the path's previous open pinned the same etag and no
        handle of another version, and none whose read failed, could have filled the cache since.
        False makes the kernel drop the path's cached pages at this open, so a changed object is
        never served stale, and bytes a failed whole-file CRC check refused are not served again.
        """
        handle = self._handles.get(fh)
        return handle is not None and handle.keep_kernel_cache

    def _kernel_cache_valid(self, path: str, etag: str) -> bool:
        """Decide `keep_kernel_cache` for a new open of ``path`` at ``etag`` (under the lock)."""
        previous = self._kernel_versions.get(path)
        # A still-open handle of another version (or one whose read failed) reads into the same
        # kernel inode: pages it fills after this open must be dropped again at the next one.
        mixed = any(
            h.node.path == path and (h.etag != etag or h.failed) for h in self._handles.values()
        )
        self._kernel_versions[path] = (etag, not mixed)
        return previous == (etag, True) and not mixed

    def read(self, fh: int, offset: int, size: int) -> ReadData:
        """Bytes ``[offset, offset+size)`` of the version pinned at open (short at EOF; may be
        a read-only view of a cached block)."""
        return joined(self.read_parts(fh, offset, size))

    def read_parts(self, fh: int, offset: int, size: int) -> ReadData | ReadParts:
        """`read`, in views of the blocks it spans (`ossfs.read.reader.ReadParts`) when more
        than one: for the FUSE binding, which copies each into its reply."""
        handle = self._handles.get(fh)
        if handle is None:
            raise OssfsError(f"bad file handle {fh}")
        try:
            return handle.reader.read_parts(offset, size)
        except OssfsError as exc:
            with self._lock:  # the next open drops what this handle put in the page cache
                handle.failed = True
                self._kernel_versions.pop(handle.node.path, None)
            if exc.errno in (errno.ESTALE, errno.ENOENT):
                self._ns.invalidate(handle.node.path)
            # The store has already logged the remote cause once, at WARNING.
            log.debug("read %s [%d, +%d): %s", handle.node.key, offset, size, _describe(exc))
            raise

    def release(self, fh: int) -> None:
        with self._lock:
            handle = self._handles.pop(fh, None)
        if handle is not None:
            handle.reader.close()

    def open_handles(self) -> int:
        with self._lock:
            return len(self._handles)

    def close(self) -> None:
        """Unmounted: stop directory read-ahead (what it fetched and nobody opened is waste)."""
        if self._siblings is not None:
            self._siblings.close()

    # -- extended attributes --------------------------------------------------------------------
    def listxattr(self, path: str) -> list[str]:
        return sorted(self._xattrs(path))

    def getxattr(self, path: str, name: str) -> bytes:
        """The value of attribute ``name`` of ``path``. Raises NotFoundError,
        UnsupportedAttributeError for a name outside the ``user.`` namespace, NoAttributeError
        for a ``user.`` name the object does not have (neither costs a request)."""
        if not name.startswith(XATTR_PREFIX) and name != MOUNT_PREFIX_XATTR:
            self._ns.lookup(path)
            if not name.startswith(USER_NAMESPACE):
                raise UnsupportedAttributeError(f"{path}: {name}")
            raise NoAttributeError(f"{path}: {name}")
        value = self._xattrs(path).get(name)
        if value is None:
            raise NoAttributeError(f"{path}: {name}")
        return value

    def _xattrs(self, path: str) -> dict[str, bytes]:
        node = self._ns.lookup(path)
        if path == "/":
            return {MOUNT_PREFIX_XATTR: self._ns.root_prefix.encode()}
        if node.kind is NodeKind.DIR and node.meta is None:
            return {}
        meta = self._full_meta(node)
        attrs: dict[str, str | None] = {
            "etag": meta.etag,
            "crc64ecma": str(meta.crc64) if meta.crc64 is not None else None,
            "storage_class": meta.storage_class,
            "object_type": meta.object_type,
            "content_type": meta.content_type,
            "restore": meta.restore,
        }
        for name, value in meta.user_meta:
            attrs[f"meta.{name}"] = value
        return {XATTR_PREFIX + k: v.encode() for k, v in attrs.items() if v is not None}

    def _full_meta(self, node: Node) -> ObjectMeta:
        """Listings lack CRC, content type and user metadata: HEAD once per object version.

        Raises StaleError when the HEAD finds another version of a file than the one its
        attributes (and an open) show: its xattrs must not describe bytes it does not serve.
        The path is forgotten, so the next lookup sees the new version."""
        listed = node.meta
        assert listed is not None
        cache_key = (listed.key, listed.etag)
        with self._lock:
            cached = self._heads.get(cache_key)
        if cached is not None:
            return cached
        meta = self._store.head(listed.key)
        if node.kind is NodeKind.FILE and meta.etag != listed.etag:
            self._ns.invalidate(node.path)
            raise StaleError(f"{node.path}: the object changed since it was listed")
        if node.kind is NodeKind.SYMLINK:
            # HEAD of a symlink describes its target; keep the link's own identity.
            meta = ObjectMeta(
                key=listed.key,
                size=listed.size,
                etag=listed.etag,
                mtime_ns=listed.mtime_ns,
                crc64=meta.crc64,
                storage_class=meta.storage_class,
                object_type="Symlink",
                content_type=meta.content_type,
                restore=meta.restore,
                user_meta=meta.user_meta,
            )
        with self._lock:
            self._heads[cache_key] = meta
        return meta


def _describe(exc: OssfsError) -> str:
    return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc}"
