"""The fusepy adapter: the only module that imports fusepy.

Each callback is one line into `Filesystem`; errors are mapped to errno in one place (`__call__`):
`OssfsError` subclasses carry their errno, anything unexpected is logged with its traceback and
answered EIO (fusepy alone would answer EINVAL). Every modifying operation answers EROFS.

With a `MountStats`, it counts what it answers (opens, reads, bytes served, errors by errno) and
the mount root's ``user.ossfs.stats`` xattr (readable, not listed) answers the current snapshot
as JSON.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Mapping
from typing import cast

from fuse import FUSE, FuseOSError, Operations

from ossfs.errors import OssfsError
from ossfs.fs import Filesystem, Stat
from ossfs.stats import STATS_XATTR, MountStats

log = logging.getLogger(__name__)

StatDict = dict[str, int | float]

_WRITE_OPS = frozenset(
    {
        "chmod",
        "chown",
        "create",
        "link",
        "mkdir",
        "mknod",
        "removexattr",
        "rename",
        "rmdir",
        "setxattr",
        "symlink",
        "truncate",
        "unlink",
        "utimens",
        "write",
    }
)


def _stat_dict(st: Stat) -> StatDict:
    mtime = st.mtime_ns  # nanoseconds: the class sets fusepy's use_ns
    return {
        "st_ino": st.ino,
        "st_mode": st.mode,
        "st_nlink": st.nlink,
        "st_size": st.size,
        "st_uid": st.uid,
        "st_gid": st.gid,
        "st_mtime": mtime,
        "st_ctime": mtime,
        "st_atime": mtime,
        "st_blocks": st.blocks,
        "st_blksize": 1 << 17,
    }


class FuseOperations(Operations):  # type: ignore[misc]
    """fusepy callbacks over a `Filesystem`."""

    use_ns = True

    def __init__(
        self,
        fs: Filesystem,
        *,
        on_init: Callable[[], None] | None = None,
        stats: MountStats | None = None,
    ) -> None:
        self._fs = fs
        self._on_init = on_init
        self._stats = stats

    def __call__(self, op: str, *args: object) -> object:
        try:
            return self._dispatch(op, args)
        except FuseOSError as exc:
            if self._stats is not None:
                self._stats.served.failed(exc.errno)
            raise

    def _dispatch(self, op: str, args: tuple[object, ...]) -> object:
        if op in _WRITE_OPS:
            raise FuseOSError(errno.EROFS)
        method = getattr(self, op, None)
        if method is None:
            raise FuseOSError(errno.ENOSYS)
        try:
            return method(*args)
        except OssfsError as exc:
            raise FuseOSError(exc.errno) from exc
        except FuseOSError:
            raise
        except Exception as exc:
            log.exception("unexpected error in %s%r", op, args[:1])
            raise FuseOSError(errno.EIO) from exc

    def init(self, path: str) -> None:
        if self._on_init is not None:
            self._on_init()

    def getattr(self, path: str, fh: int | None = None) -> StatDict:
        return _stat_dict(self._fs.getattr(path))

    def readdir(self, path: str, fh: int) -> list[str | tuple[str, StatDict, int]]:
        entries: list[str | tuple[str, StatDict, int]] = [".", ".."]
        entries.extend((name, _stat_dict(st), 0) for name, st in self._fs.readdir(path))
        return entries

    def readlink(self, path: str) -> str:
        return self._fs.readlink(path)

    def access(self, path: str, amode: int) -> int:
        self._fs.getattr(path)
        if amode & os.W_OK:
            raise FuseOSError(errno.EROFS)
        return 0

    def open(self, path: str, flags: int) -> int:
        fh = self._fs.open(path, flags)
        if self._stats is not None:
            self._stats.served.opened()
        return fh

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        data = self._fs.read(fh, offset, size)
        if self._stats is not None:
            self._stats.served.served(len(data))
        return data

    def release(self, path: str, fh: int) -> int:
        self._fs.release(fh)
        return 0

    def statfs(self, path: str) -> StatDict:
        s = self._fs.statfs()
        return {
            "f_bsize": s.block_size,
            "f_frsize": s.block_size,
            "f_blocks": s.blocks,
            "f_bfree": s.blocks_free,
            "f_bavail": s.blocks_free,
            "f_files": s.files,
            "f_ffree": s.files_free,
            "f_favail": s.files_free,
            "f_namemax": s.name_max,
        }

    def listxattr(self, path: str) -> list[str]:
        # STATS_XATTR is readable but not listed: cp -a, rsync -X and tar --xattrs copy every
        # listed attribute, and a copy of the counters would mean nothing.
        return self._fs.listxattr(path)

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        if path == "/" and name == STATS_XATTR and self._stats is not None:
            return self._stats.snapshot().to_xattr()
        return self._fs.getxattr(path, name)


def run_fuse(
    operations: FuseOperations,
    mountpoint: str,
    *,
    fsname: str,
    options: Mapping[str, str | bool],
) -> None:
    """Mount and serve until unmounted (blocks). ``options`` become ``-o`` mount options."""
    kwargs = cast(dict[str, object], dict(options))
    FUSE(
        operations,
        mountpoint,
        foreground=True,
        nothreads=False,
        ro=True,
        fsname=fsname,
        subtype="ossfs",
        **kwargs,
    )
