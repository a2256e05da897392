"""The disk cache's picture of its directory: which block files exist, their size on disk, and
in what order they were last used.

Responsibility: account the bytes the directory holds (file sizes as the filesystem allocates
them, what ``du`` counts) and name the least recently used file to evict next. The picture is
rebuilt from a scan of the directory (at mount, and again later: other mounts sharing the
directory write and evict too) and kept up to date with this mount's own writes, hits and
evictions in between.

Deliberately not here: any I/O (`ossfs.read.disk.disk_cache` scans, writes and unlinks), and
locking (the cache holds its lock around every call).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class Entry:
    """One block file: its size on disk and when it was last used (ns since the epoch; the
    file's mtime as scanned, or this mount's own last use)."""

    disk_bytes: int
    used_ns: int


class DiskIndex:
    """Block files by relative path, least recently used first, with their total size.

    Not thread-safe (its owner locks around it).
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self.used_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: str) -> bool:
        return path in self._entries

    def get(self, path: str) -> Entry | None:
        return self._entries.get(path)

    def add(self, path: str, disk_bytes: int, used_ns: int) -> None:
        """Record ``path`` (replacing any entry of it) as the most recently used."""
        self.remove(path)
        self._entries[path] = Entry(disk_bytes, used_ns)
        self.used_bytes += disk_bytes

    def touch(self, path: str, used_ns: int) -> None:
        """``path`` was used now: it becomes the most recently used (if known)."""
        entry = self._entries.get(path)
        if entry is not None:
            entry.used_ns = max(entry.used_ns, used_ns)
            self._entries.move_to_end(path)

    def remove(self, path: str) -> Entry | None:
        """Forget ``path``; its entry, or None if it was not known."""
        entry = self._entries.pop(path, None)
        if entry is not None:
            self.used_bytes -= entry.disk_bytes
        return entry

    def oldest(self) -> tuple[str, Entry] | None:
        """The least recently used file, or None when empty."""
        for path, entry in self._entries.items():
            return path, entry
        return None

    def paths_with_prefix(self, directory: str, prefix: str) -> list[str]:
        """Known files in ``directory`` whose name starts with ``prefix`` (O(entries))."""
        start = f"{directory}/{prefix}"
        return [path for path in self._entries if path.startswith(start)]

    def replace(self, scanned: Iterable[tuple[str, int, int]], *, kept_since_ns: int) -> None:
        """Take a scan's ``(path, disk_bytes, mtime_ns)`` as the new picture, ordered by use.

        A file this mount used more recently than its scanned mtime says (hits touch a file's
        mtime at most once a minute) keeps its later time. Files the scan did not see but this
        mount wrote or used at or after ``kept_since_ns`` (when the scan began) stay.
        """
        merged: list[tuple[int, str, int]] = []
        seen: set[str] = set()
        for path, disk_bytes, mtime_ns in scanned:
            seen.add(path)
            old = self._entries.get(path)
            used = max(mtime_ns, old.used_ns) if old is not None else mtime_ns
            merged.append((used, path, disk_bytes))
        for path, entry in self._entries.items():
            if path not in seen and entry.used_ns >= kept_since_ns:
                merged.append((entry.used_ns, path, entry.disk_bytes))
        merged.sort()
        self._entries = OrderedDict((path, Entry(size, used)) for used, path, size in merged)
        self.used_bytes = sum(size for _, _, size in merged)
