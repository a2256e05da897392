"""The cache directory as a whole: created and checked at mount, its default size, its
filesystem's free space, and scans of the block files in it.

Deliberately not here: single block files (`block_file`, `disk_cache`) and what a scan's
result is used for (`disk_index`, `disk_cache`).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ossfs.read.disk.block_file import LAYOUT, TEMP_PREFIX

DIR_MODE: Final = 0o700
"""The cache holds bucket data: its directories are the owner's alone."""
FILE_MODE: Final = 0o600
DEFAULT_SHARE: Final = 0.75
"""Without ``--cache-dir-size``: 3/4 of what is free at mount plus what the cache holds."""
TEMP_MAX_AGE_NS: Final = 3600 * 10**9
"""A temporary file older than an hour is a crashed writer's leftover: a scan removes it."""
_ALLOCATION: Final = 4096
RESERVE_FRACTION: Final = 0.05
"""The disk cache never fills its filesystem beyond 95%: it evicts to leave this much free."""
FREE_CHECK_S: Final = 2.0
"""How long the filesystem's free space, once asked, is trusted."""


class CacheDirError(Exception):
    """``--cache-dir`` cannot be used (the message says why and what to do)."""


def prepare_directory(path: Path) -> None:
    """Create ``path`` (mode 700) if missing and check that files can be written there.

    Raises `CacheDirError` if it is not a directory, cannot be created or is not writable.
    """
    if path.exists() and not path.is_dir():
        raise CacheDirError(f"--cache-dir {path} is not a directory: give a directory")
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        make_dirs(str(path), LAYOUT)
        probe = path / f"{TEMP_PREFIX}probe-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
        try:
            os.write(fd, b"ossfs")
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CacheDirError(
            f"--cache-dir {path} is not usable ({exc.strerror}): give a writable directory"
        ) from None


def make_dirs(root: str, rel: str) -> int:
    """Create the directories of ``rel`` under ``root`` that are missing, each with mode 700
    (``os.makedirs`` gives the ones above the last its default mode); how many it created."""
    made = 0
    path = root
    for part in rel.split("/"):
        path = f"{path}/{part}"
        try:
            os.mkdir(path, DIR_MODE)
            made += 1
        except FileExistsError:
            pass
    return made


def default_capacity(free_bytes: int, held_bytes: int) -> int:
    """The size limit without ``--cache-dir-size``: `DEFAULT_SHARE` of the free space plus what
    the cache holds already (a remount keeps what it has)."""
    return int((free_bytes + held_bytes) * DEFAULT_SHARE)


def allocated(nbytes: int) -> int:
    """Bytes a file of ``nbytes`` takes on disk (whole 4 KiB blocks)."""
    return -(-nbytes // _ALLOCATION) * _ALLOCATION


@dataclass(frozen=True, slots=True)
class Scan:
    """The block files found: ``(relative path, bytes on disk, mtime ns)`` each, and the bytes
    of the layout's directories themselves (``du`` counts them too)."""

    files: list[tuple[str, int, int]]
    dir_bytes: int


def scan(root: str, now_ns: int) -> Scan:
    """The block files under ``root`` now; temporary files older than `TEMP_MAX_AGE_NS` (at
    ``now_ns``) are removed on the way, younger ones (being written) skipped.

    Raises OSError if the layout's top directory cannot be read (a missing one is empty);
    entries that vanish or fail meanwhile are skipped (other mounts evict while it runs).
    """
    top = f"{root}/{LAYOUT}"
    try:
        subdirs = [e for e in os.scandir(top) if e.is_dir(follow_symlinks=False)]
        dir_bytes = os.stat(top).st_blocks * 512
    except FileNotFoundError:
        return Scan([], 0)
    files: list[tuple[str, int, int]] = []
    for sub in subdirs:
        try:
            dir_bytes += sub.stat(follow_symlinks=False).st_blocks * 512
            entries = list(os.scandir(sub.path))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.name.startswith(TEMP_PREFIX):
                if now_ns - st.st_mtime_ns > TEMP_MAX_AGE_NS:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                continue
            files.append((f"{LAYOUT}/{sub.name}/{entry.name}", st.st_blocks * 512, st.st_mtime_ns))
    return Scan(files, dir_bytes)


class FreeSpace:
    """The free space of a directory's filesystem and the reserve to leave free there
    (`RESERVE_FRACTION` of its size), asked at most every `FREE_CHECK_S`. Thread-safe enough:
    two callers may both ask the filesystem."""

    def __init__(self, root: str) -> None:
        self._root = root
        self._known: tuple[float, int, int] | None = None  # (when, free bytes, reserve bytes)

    def now(self) -> tuple[int, int] | None:
        """(free bytes, reserve bytes); None if the filesystem cannot be asked."""
        now = time.monotonic()
        known = self._known
        if known is None or now - known[0] > FREE_CHECK_S:
            try:
                st = os.statvfs(self._root)
            except OSError:
                return None
            size = st.f_blocks * st.f_frsize
            known = (now, st.f_bavail * st.f_frsize, int(size * RESERVE_FRACTION))
            self._known = known
        return known[1], known[2]

    def forget(self) -> None:
        """Ask the filesystem again next time (it filled up: what is free changed)."""
        self._known = None
