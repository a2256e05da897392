"""A null FUSE filesystem for benchmarks: mfusepy serving a fixed tree of files from memory.

Usage: python scripts/bench_nullfs.py MANIFEST MOUNTPOINT

MANIFEST is a JSON object ``{"files": {"dir/name": size_bytes, ...}}``; directories are implied
by the paths. Every file reads as the same repeating pattern of random bytes (a read is one
``bytes`` slice of a preallocated buffer: the binding's ``memmove`` takes no memoryview), so the
filesystem does no I/O and almost no work per callback: its throughput is the ceiling for any
filesystem written on mfusepy with the FUSE options ossfs uses (``max_read`` 1 MiB, entry/attr
timeouts, read-only, multithreaded). It runs in the foreground until unmounted
(``fusermount -u MOUNTPOINT``) or interrupted.

This is a benchmark fixture, not part of ossfs: it imports mfusepy directly (libfuse 3 preferred,
as `ossfs.fuse.fuse_ops` does) and raises the mount's readahead as ossfs does (root only).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import time
from ctypes.util import find_library
from pathlib import Path
from typing import Any

# As ossfs.fuse.fuse_ops: mfusepy on libfuse 3 when installed (mfusepy alone picks libfuse 2 first).
_NO_CHOICE = "FUSE_LIBRARY_PATH" not in os.environ and "FUSE_LIBRARY_NAME" not in os.environ
if _NO_CHOICE and find_library("fuse3"):
    os.environ["FUSE_LIBRARY_NAME"] = "fuse3"

from mfusepy import FUSE, FuseOSError, Operations  # noqa: E402

from ossfs.fuse.fuse_ops import set_read_ahead  # noqa: E402

_PATTERN_BYTES = 64 << 20  # a multiple of every read size the kernel sends (<= 1 MiB)
_MAX_READ = 1 << 20  # as ossfs.app.mounting: libfuse 3 reads of up to 1 MiB
_READ_AHEAD_KIB = 1024
_TTL_S = "60"


class NullFs(Operations):  # type: ignore[misc]
    """Read-only tree of in-memory files; thread-safe (nothing changes after construction)."""

    use_ns = True

    def __init__(self, files: dict[str, int], mountpoint: str = "") -> None:
        # Resolved now: in init a stat of the mount would deadlock.
        self.mountpoint = os.path.realpath(mountpoint) if mountpoint else ""
        self._now_ns = time.time_ns()
        self._sizes: dict[str, int] = {}
        self._children: dict[str, dict[str, bool]] = {"/": {}}
        for rel, size in files.items():
            path = "/" + rel.strip("/")
            self._sizes[path] = int(size)
            parent, _, name = path.rpartition("/")
            parent = parent or "/"
            self._children.setdefault(parent, {})[name] = False
            while parent != "/":  # make every ancestor directory
                grand, _, dname = parent.rpartition("/")
                grand = grand or "/"
                self._children.setdefault(parent, {})
                self._children.setdefault(grand, {})[dname] = True
                parent = grand
        self._pattern = os.urandom(_PATTERN_BYTES)
        self._inos: dict[str, int] = {}

    def _ino(self, path: str) -> int:
        ino = self._inos.get(path)
        if ino is None:
            ino = self._inos.setdefault(path, len(self._inos) + 2)
        return ino

    def _attrs(self, path: str, is_dir: bool) -> dict[str, int]:
        now = self._now_ns
        if is_dir:
            mode, size, nlink = stat.S_IFDIR | 0o555, 0, 2
        else:
            mode, size, nlink = stat.S_IFREG | 0o444, self._sizes[path], 1
        return {
            "st_ino": self._ino(path),
            "st_mode": mode,
            "st_nlink": nlink,
            "st_size": size,
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
            "st_mtime": now,
            "st_ctime": now,
            "st_atime": now,
            "st_blocks": (size + 511) // 512,
            "st_blksize": 1 << 17,
        }

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        if path in self._children:
            return self._attrs(path, True)
        if path in self._sizes:
            return self._attrs(path, False)
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str | tuple[str, dict[str, int], int]]:
        children = self._children.get(path)
        if children is None:
            raise FuseOSError(errno.ENOTDIR)
        base = path.rstrip("/")
        out: list[str | tuple[str, dict[str, int], int]] = [".", ".."]
        out.extend((name, self._attrs(f"{base}/{name}", d), 0) for name, d in children.items())
        return out

    def open(self, path: str, flags: int) -> int:
        if path not in self._sizes:
            raise FuseOSError(errno.ENOENT)
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EROFS)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        end = min(offset + size, self._sizes[path])
        if offset >= end:
            return b""
        start = offset % _PATTERN_BYTES
        if start + (end - offset) <= _PATTERN_BYTES:
            return self._pattern[start : start + end - offset]
        head = self._pattern[start:]
        return head + self._pattern[: end - offset - len(head)]

    def init_with_config(self, conn: Any, config: Any) -> None:
        if conn is None:
            return
        if hasattr(conn, "max_read"):  # libfuse 3 wants the max_read mount option repeated
            conn.max_read = _MAX_READ
        conn.max_readahead = max(int(conn.max_readahead), _READ_AHEAD_KIB << 10)
        if self.mountpoint:
            set_read_ahead(self.mountpoint, _READ_AHEAD_KIB)  # root only, as ossfs

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 1 << 17, "f_frsize": 1 << 17, "f_namemax": 255}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("mountpoint", type=Path)
    args = parser.parse_args()
    files = json.loads(args.manifest.read_text())["files"]
    FUSE(
        NullFs(files, str(args.mountpoint)),
        str(args.mountpoint),
        foreground=True,
        nothreads=False,
        ro=True,
        fsname="nullfs",
        subtype="nullfs",
        max_read=str(_MAX_READ),
        entry_timeout=_TTL_S,
        attr_timeout=_TTL_S,
        negative_timeout=_TTL_S,
        default_permissions=True,
    )


if __name__ == "__main__":
    main()
