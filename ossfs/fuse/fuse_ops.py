"""The FUSE adapter: libfuse's callbacks into the `Filesystem`, through the binding (mfusepy,
fusepy's maintained fork; what it lacks is added in `ossfs.fuse.mfusepy_shim`).

mfusepy binds libfuse 3 when it is installed (``fuse3``), else libfuse 2. libfuse 3 lets the kernel
send reads of up to 1 MiB (libfuse 2: 128 KiB), so a sequential reader costs fewer callbacks.

Each callback is one line into `Filesystem`; errors are mapped to errno in one place (`_answer`):
`OssfsError` subclasses carry their errno, anything unexpected is logged with its traceback and
answered EIO (the binding alone would answer EINVAL). Every modifying operation answers EROFS.

Directories are listed once per open (``opendir``) and, on libfuse 3, read page by page with each
entry's complete attributes (READDIRPLUS with ``FUSE_FILL_DIR_PLUS``): the kernel caches them like
a LOOKUP's answer, so ``ls -l`` of N entries costs a few callbacks, not N LOOKUPs. The binding's
own readdir passes only mode and inode, so the binding's is replaced (`ossfs.fuse.mfusepy_shim`,
the one place that reaches past mfusepy's public API, also keeps libfuse's worker threads' Python
thread state from one callback to the next).

Opens set FUSE ``keep_cache`` when `Filesystem.keep_kernel_cache` says the object is the version the
path's previous open saw, so warm re-reads are served from the kernel page cache, not by Python.

With a `MountStats`, it counts what it answers (opens, reads, bytes served, errors by errno) and
the mount root's ``user.ossfs.obs.stats`` xattr (readable, not listed) answers the current snapshot
as JSON.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar, cast

import mfusepy
from mfusepy import FuseOSError, Operations

from ossfs.core.errors import OssfsError, UsageError
from ossfs.fs.filesystem import Filesystem, Stat
from ossfs.fuse.mfusepy_shim import (
    CHECKED_VERSIONS,
    BindingFUSE,
    Filler,
    binding_problems,
    installed_version,
)
from ossfs.obs.stats import STATS_XATTR, MountStats
from ossfs.read.reader import ReadData, ReadParts, read_length

__all__ = ["LIBFUSE_MAJOR", "FuseOSError", "FuseOperations", "run_fuse", "set_read_ahead"]

log = logging.getLogger(__name__)

LIBFUSE_MAJOR: int = int(mfusepy.fuse_version_major)
"""The libfuse the binding loaded: 3 (reads up to 1 MiB) or 2 (128 KiB)."""

StatDict = dict[str, int | float]
_F = TypeVar("_F", bound=Callable[..., Any])

_READDIR_PLUS: Final = 1 << 0  # enum fuse_readdir_flags: the kernel asked READDIRPLUS
_FILL_DIR_PLUS: Final = 1 << 1  # enum fuse_fill_dir_flags: the stat is complete (an entry's attrs)
_BLKSIZE: Final = 1 << 17
_LIBFUSE_MAX_THREADS: Final = 10  # libfuse 3.12+'s default -o max_threads
_NAME_ENCODING: Final = ("utf-8", "surrogateescape")  # the binding's defaults for paths

_WRITE_OPS = (
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
)


class FileInfo(Protocol):
    """The fields of libfuse's ``struct fuse_file_info`` the adapter uses (``raw_fi``)."""

    flags: int
    fh: int
    keep_cache: int


@dataclass(slots=True)
class _CallFileInfo:
    """A `FileInfo` for `FuseOperations.call` (tests and tools calling without libfuse)."""

    flags: int
    fh: int = 0
    keep_cache: int = 0


def _handle(fh: object) -> int:
    """The handle number from what the binding passes: a ``fuse_file_info`` (raw_fi) or an int."""
    return fh if isinstance(fh, int) else int(cast(FileInfo, fh).fh)


def _stat_dict(st: Stat) -> StatDict:
    mtime = st.mtime_ns  # nanoseconds: the class sets the binding's use_ns
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


def _c_stat(st: Stat) -> Any:
    """``st`` as the binding's ``struct stat``, every field libfuse passes on filled in."""
    c = mfusepy.c_stat()
    c.st_ino = st.ino
    c.st_mode = st.mode
    c.st_nlink = st.nlink
    c.st_size = st.size
    c.st_uid = st.uid
    c.st_gid = st.gid
    c.st_blocks = st.blocks
    c.st_blksize = _BLKSIZE
    seconds, nanoseconds = divmod(st.mtime_ns, 1_000_000_000)
    for spec in (c.st_mtimespec, c.st_ctimespec, c.st_atimespec):
        spec.tv_sec = seconds
        spec.tv_nsec = nanoseconds
    return c


@dataclass(slots=True)
class _DirHandle:
    """One open directory: the entries its reads page through, as (name, attributes).

    Entry ``i`` is at offset ``i`` (``.`` and ``..`` first); libfuse is told the offset of the
    entry after each one, so a later read continues where the previous one stopped, in the same
    snapshot. ``entries`` is None until the first read.
    """

    path: str
    entries: list[tuple[bytes, Stat]] | None = None


def _answer(method: _F) -> _F:
    """Map what a callback raises to the errno libfuse answers, and count failures."""

    @functools.wraps(method)
    def callback(self: FuseOperations, *args: Any) -> Any:
        try:
            return method(self, *args)
        except FuseOSError as exc:
            self._failed(exc.errno)
            raise
        except OssfsError as exc:
            self._failed(exc.errno)
            raise FuseOSError(exc.errno) from exc
        except Exception as exc:
            log.exception("unexpected error in %s%r", method.__name__, args[:1])
            self._failed(errno.EIO)
            raise FuseOSError(errno.EIO) from exc

    return cast(_F, callback)


class FuseOperations(Operations):  # type: ignore[misc]
    """Binding callbacks over a `Filesystem` (mounted with ``raw_fi=True``)."""

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
        self._max_read: int | None = None  # the max_read mount option (libfuse 3 wants it twice)
        self._mountpoint: str | None = None
        self._read_ahead_kib: int | None = None
        self._initialized = False
        self._dirs_lock = threading.Lock()
        self._dirs: dict[int, _DirHandle] = {}
        self._next_dir = 1

    def call(self, op: str, *args: object) -> object:
        """Answer callback ``op`` by name as fusepy did (tests, tools): ``open`` takes flags and
        answers the handle; modifying operations raise EROFS, unknown ones ENOSYS."""
        if op == "open":
            path, flags = args
            fi = _CallFileInfo(flags=cast(int, flags))
            self.open(cast(str, path), fi)
            return fi.fh
        method = getattr(self, op, None)
        if method is None or getattr(method, "libfuse_ignore", False):
            self._failed(errno.ENOSYS)
            raise FuseOSError(errno.ENOSYS)
        return method(*args)

    def _failed(self, code: int) -> None:
        if self._stats is not None:
            self._stats.served.failed(code)

    def init_with_config(self, conn: Any, config: Any) -> None:
        self._initialized = True
        if config is not None and hasattr(config, "nullpath_ok"):
            # Calls with a handle (read, release, fstat, directory reads) come without a path:
            # libfuse need not build one from its node tree, under its lock, for every read.
            config.nullpath_ok = 1
        if conn is not None and self._max_read is not None and hasattr(conn, "max_read"):
            # libfuse 3 refuses to start unless init() repeats the max_read mount option.
            conn.max_read = self._max_read
        if conn is not None and self._mountpoint is not None and self._read_ahead_kib is not None:
            # The kernel takes the smaller of the mount's readahead (sysfs) and this answer.
            conn.max_readahead = max(int(conn.max_readahead), self._read_ahead_kib << 10)
            set_read_ahead(self._mountpoint, self._read_ahead_kib)
        if self._on_init is not None:
            self._on_init()

    @_answer
    def getattr(self, path: str | None, fh: object = None) -> StatDict:
        """Attributes of ``path``. An fstat comes with its file's handle and no path
        (nullpath_ok): the kernel passes a handle only for regular files, never directories."""
        if path is None:
            path = self._fs.handle_path(_handle(fh)) if fh is not None else None
            if path is None:
                raise FuseOSError(errno.EBADF)
        return _stat_dict(self._fs.getattr(path))

    @_answer
    def readdir(self, path: str, fh: int) -> list[str | tuple[str, StatDict, int]]:
        """All entries at once (libfuse 2, and `call`); libfuse 3 pages through `fill_dir`."""
        entries: list[str | tuple[str, StatDict, int]] = [".", ".."]
        entries.extend((name, _stat_dict(st), 0) for name, st in self._fs.readdir(path))
        return entries

    @_answer
    def opendir(self, path: str) -> int:
        """A handle for `fill_dir`; the directory is listed at its first read, not here (a
        directory opened only to be a ``dirfd`` or to ``fchdir`` to costs no request)."""
        handle = _DirHandle(path)
        with self._dirs_lock:
            fh = self._next_dir
            self._next_dir += 1
            self._dirs[fh] = handle
        return fh

    @_answer
    def releasedir(self, path: str | None, fh: int) -> int:
        with self._dirs_lock:
            self._dirs.pop(fh, None)
        return 0

    @_answer
    def fill_dir(self, fh: int, offset: int, flags: int, filler: Filler, buf: Any) -> int:
        """Answer one READDIR(PLUS) of the open directory ``fh`` from entry ``offset`` on, until
        libfuse's buffer is full.

        READDIRPLUS entries carry complete attributes (``FUSE_FILL_DIR_PLUS``): the kernel
        caches them for the attribute timeout, so ``ls -l`` costs no LOOKUP per entry. A read at
        offset 0 (the first, or after ``rewinddir``) takes a new snapshot of the directory, as
        POSIX asks; later reads page through it. libfuse serialises the reads of one handle.
        """
        with self._dirs_lock:
            handle = self._dirs.get(fh)
        if handle is None:
            raise FuseOSError(errno.EBADF)
        entries = handle.entries
        if entries is None or offset == 0:
            entries = handle.entries = self._dir_entries(handle.path)
        plus = _FILL_DIR_PLUS if flags & _READDIR_PLUS else 0
        for index in range(offset, len(entries)):
            name, st = entries[index]
            if filler(buf, name, _c_stat(st), index + 1, plus):
                break  # the buffer is full: the kernel asks again from index
        return 0

    def _dir_entries(self, path: str) -> list[tuple[bytes, Stat]]:
        children = self._fs.readdir(path)
        this = self._fs.getattr(path)
        parent = self._fs.getattr(os.path.dirname(path)) if path != "/" else this
        encoding, errors = _NAME_ENCODING
        entries = [(b".", this), (b"..", parent)]
        entries.extend((name.encode(encoding, errors), st) for name, st in children)
        return entries

    @_answer
    def readlink(self, path: str) -> str:
        return self._fs.readlink(path)

    @_answer
    def access(self, path: str, amode: int) -> int:
        self._fs.getattr(path)
        if amode & os.W_OK:
            raise FuseOSError(errno.EROFS)
        return 0

    @_answer
    def open(self, path: str, fi: FileInfo) -> int:
        fh = self._fs.open(path, fi.flags)
        fi.fh = fh
        # Keep the kernel's cached pages only while the object is unchanged since the last open.
        fi.keep_cache = 1 if self._fs.keep_kernel_cache(fh) else 0
        if self._stats is not None:
            self._stats.served.opened()
        return 0

    @_answer
    def read(self, path: str | None, size: int, offset: int, fh: object) -> ReadData | ReadParts:
        data = self._fs.read_parts(_handle(fh), offset, size)
        if self._stats is not None:
            self._stats.served.served(read_length(data))
        return data

    @_answer
    def release(self, path: str | None, fh: object) -> int:
        self._fs.release(_handle(fh))
        return 0

    @_answer
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

    @_answer
    def listxattr(self, path: str) -> list[str]:
        # STATS_XATTR is readable but not listed: cp -a, rsync -X and tar --xattrs copy every
        # listed attribute, and a copy of the counters would mean nothing.
        return self._fs.listxattr(path)

    @_answer
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        if path == "/" and name == STATS_XATTR and self._stats is not None:
            return self._stats.snapshot().to_xattr()
        return self._fs.getxattr(path, name)


def _read_only(name: str) -> Callable[..., int]:
    def refuse(self: FuseOperations, *args: object) -> int:
        raise FuseOSError(errno.EROFS)

    refuse.__name__ = refuse.__qualname__ = name
    return _answer(refuse)


for _name in _WRITE_OPS:
    setattr(FuseOperations, _name, _read_only(_name))


def _mount_device(target: str) -> str | None:
    """``major:minor`` of the newest mount on the absolute, resolved path ``target``, from
    /proc/self/mountinfo. Reading it does not touch the FUSE mount, so it is safe in ``init``
    (where any stat of the mount deadlocks: the kernel holds requests until init answers)."""
    found = None
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point == target:
                found = fields[2]
    return found


def set_read_ahead(mountpoint: str, kib: int) -> bool:
    """Raise the kernel readahead of the FUSE mount on ``mountpoint`` (absolute and resolved:
    no symlink resolution here) to ``kib`` KiB.

    The kernel caps a FUSE mount's readahead at its default (128 KiB) whatever ``max_readahead``
    the filesystem answers at init; only root can raise it, through the mount's BDI in sysfs.
    With libfuse 3 a larger window lets sequential readers send reads of up to 1 MiB.
    """
    device = _mount_device(mountpoint)
    if device is None:
        return False
    try:
        with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w", encoding="ascii") as f:
            f.write(str(kib))
    except OSError as exc:
        log.debug("readahead of %s stays at the kernel default: %s", mountpoint, exc)
        return False
    return True


def _max_idle_threads(options: Mapping[str, str | bool]) -> int:
    """libfuse 3's ``max_idle_threads`` for a loop of at most ``-o max_threads`` workers.

    Its default, -1 (keep every idle worker), makes libfuse 3.14.0 print "Ignoring invalid max
    threads value 4294967295" on every mount (fixed in 3.14.1). Saying the worker limit itself
    keeps the same behaviour: no more workers than that are ever idle, so none is ever ended
    (the shim's thread-state pinning relies on it). Before 3.12 there is no ``max_threads``
    and 10 was the default of this option.
    """
    value = options.get("max_threads")
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return _LIBFUSE_MAX_THREADS


def run_fuse(
    operations: FuseOperations,
    mountpoint: str,
    *,
    fsname: str,
    options: Mapping[str, str | bool],
    read_ahead_kib: int | None = None,
) -> None:
    """Mount and serve until unmounted (blocks). ``options`` become ``-o`` mount options;
    ``read_ahead_kib``: the kernel readahead window to ask for (root only; else the default).

    Raises `UsageError`, before mounting, when the installed mfusepy changed what the binding
    relies on (`ossfs.fuse.mfusepy_shim`)."""
    problems = binding_problems()
    if problems:
        raise UsageError(
            f"the installed mfusepy {installed_version()} is not one ossfs works with "
            f"({problems[0]}): install a release it supports (pip install 'mfusepy=="
            f"{CHECKED_VERSIONS[-1]}')"
        )
    kwargs = cast(dict[str, object], dict(options))
    max_read = options.get("max_read")
    operations._max_read = int(max_read) if isinstance(max_read, str) else None
    operations._mountpoint = os.path.realpath(mountpoint)  # now: in init it would deadlock
    operations._read_ahead_kib = read_ahead_kib
    mount_options: dict[str, object] = {"ro": True, "fsname": fsname, "subtype": "ossfs"}
    if LIBFUSE_MAJOR == 3:
        mount_options["max_idle_threads"] = _max_idle_threads(options)
    mount_options.update(kwargs)  # a passed-through -o fsname=... wins (no duplicate keyword)
    try:
        BindingFUSE(
            operations, mountpoint, raw_fi=True, foreground=True, nothreads=False, **mount_options
        )
    except RuntimeError as exc:
        if not operations._initialized:
            raise  # the mount never came up: libfuse has said why on stderr
        # libfuse 3 reports a loop ended by SIGTERM/SIGINT/SIGHUP as error 8 (libfuse 2: 0); it
        # has unmounted by now, so this is the normal end of serving.
        log.debug("libfuse ended its loop with code %s", exc)
