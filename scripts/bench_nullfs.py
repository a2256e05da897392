"""A null FUSE filesystem for benchmarks: fusepy serving a fixed tree of files from memory.

Usage: python scripts/bench_nullfs.py MANIFEST MOUNTPOINT

MANIFEST is a JSON object ``{"files": {"dir/name": size_bytes, ...}}``; directories are implied
by the paths. Every file reads as the same repeating pattern of random bytes (a read is one
``bytes`` slice of a preallocated buffer: fusepy's ``memmove`` takes no memoryview), so the
filesystem does no I/O and almost no work per callback: its throughput is the ceiling for any
filesystem written on fusepy with the FUSE options ossfs uses (``max_read`` 128 KiB, entry/attr
timeouts, read-only, multithreaded). It runs in the foreground until unmounted
(``fusermount -u MOUNTPOINT``) or interrupted.

This is a benchmark fixture, not part of ossfs: it imports fusepy directly.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import time
from pathlib import Path

from fuse import FUSE, FuseOSError, Operations

_PATTERN_BYTES = 64 << 20  # a multiple of every read size the kernel sends (<= 128 KiB)
_TTL_S = "60"


class NullFs(Operations):  # type: ignore[misc]
    """Read-only tree of in-memory files; thread-safe (nothing changes after construction)."""

    use_ns = True

    def __init__(self, files: dict[str, int]) -> None:
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

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 1 << 17, "f_frsize": 1 << 17, "f_namemax": 255}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("mountpoint", type=Path)
    args = parser.parse_args()
    files = json.loads(args.manifest.read_text())["files"]
    FUSE(
        NullFs(files),
        str(args.mountpoint),
        foreground=True,
        nothreads=False,
        ro=True,
        fsname="nullfs",
        subtype="nullfs",
        max_read=str(1 << 17),
        entry_timeout=_TTL_S,
        attr_timeout=_TTL_S,
        negative_timeout=_TTL_S,
        default_permissions=True,
    )


if __name__ == "__main__":
    main()
