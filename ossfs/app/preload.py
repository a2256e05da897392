"""`ossfs preload`'s engine: walk files and directories of a mount, then read every file once.

Responsibility:

- `walk`: the regular files under the given paths, in the order the mount lists them (each
  directory's files in readdir order, then its subdirectories), so that concurrent readers open
  a directory's files in listing order and the mount's directory read-ahead fetches ahead of
  them. Directories are listed by ``jobs`` threads at once (on a slow link a tree of many
  directories costs one listing round trip per directory). Symbolic links are never followed
  (like ``cp -r``, ``du``, ``find``): they are counted, not read. A directory on another file
  system (something mounted inside the mount) is not entered. A file or directory listed twice
  (overlapping paths) is read once. A directory that cannot be listed is a failure.
- `Preloader.run`: read each file to its end with ``jobs`` threads, each in reads of
  ``chunk_bytes`` (1 MiB, the largest read FUSE passes to the mount at once). Bytes go from the
  kernel's page cache to ``/dev/null`` with ``sendfile``: never copied into this process. Each
  file is opened with ``POSIX_FADV_SEQUENTIAL`` (the kernel reads ahead twice as far) and the
  pages behind the reader are dropped with ``POSIX_FADV_DONTNEED``: the data's home is the
  mount's cache (the disk cache, else the block cache within ``--max-memory``); a second copy in
  the page cache would be outside any budget and would push out pages the node's other programs
  use. A file that cannot be opened or read (removed from the bucket since it was listed: ENOENT,
  a failed GET: EIO) is a failure with its reason; the others go on.

Ctrl-C (KeyboardInterrupt in the calling thread) stops the readers at their next read and
returns what was done, marked interrupted. Deliberately not here: arguments, output, which mount
a path is on (`ossfs.app.preload_cli`), and anything about OSS: this module only reads files.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = [
    "CHUNK_BYTES",
    "Failure",
    "FileEntry",
    "Plan",
    "PreloadReport",
    "Preloader",
    "error_text",
    "walk",
]

CHUNK_BYTES: Final = 1 << 20
_STORAGE_CLASS_XATTR: Final = "user.oss.storage_class"
_NO_SENDFILE: Final = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})
_CANCEL_GRACE_S: Final = 5.0
"""After Ctrl-C, how long the readers may take to finish their current read. A reader still in
a read after that (a stalled GET, retried for up to ``--retry-budget``) is left behind: its
thread is a daemon and ends with the process."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A regular file to read: its path and the size the listing gave (for progress)."""

    path: Path
    size: int


@dataclass(frozen=True, slots=True)
class Failure:
    """A path that could not be listed or read, and why (``"ENOENT: No such file ..."``)."""

    path: str
    error: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What `walk` found: the files to read in order, the paths it could not list, and the
    entries it left out (``symlinks`` not followed, directories on ``other_filesystems``)."""

    files: tuple[FileEntry, ...]
    failures: tuple[Failure, ...] = ()
    symlinks: int = 0
    other_filesystems: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class PreloadReport:
    """The outcome: files and bytes read, every failure (the walk's first), whether Ctrl-C
    stopped it, and the seconds the reading took (the walk excluded)."""

    plan: Plan
    files_read: int
    bytes_read: int
    failures: tuple[Failure, ...]
    seconds: float
    interrupted: bool = False

    @property
    def all_read(self) -> bool:
        return not self.failures and not self.interrupted


def error_text(exc: OSError) -> str:
    """``"ENOENT: No such file or directory"`` for an OSError with an errno, else its text."""
    if exc.errno is None:
        return str(exc) or type(exc).__name__
    name = errno.errorcode.get(exc.errno, f"errno {exc.errno}")
    return f"{name}: {exc.strerror or os.strerror(exc.errno)}"


def _reason(path: Path, exc: OSError) -> str:
    """`error_text`, and for EACCES on an object in an archive storage class, what to do."""
    text = error_text(exc)
    if exc.errno != errno.EACCES:
        return text
    try:
        storage_class = os.getxattr(path, _STORAGE_CLASS_XATTR, follow_symlinks=False).decode()
    except (OSError, UnicodeDecodeError):
        return text
    if "Archive" not in storage_class:
        return text
    return f"{text} (storage class {storage_class}: restore the object in OSS first)"


# -- the walk -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Listing:
    """One directory's entries as `_scan` found them."""

    files: list[FileEntry] = field(default_factory=list)
    subdirs: list[Path] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    symlinks: int = 0
    other_filesystems: int = 0


def _scan(directory: Path, device: int) -> _Listing:
    listing = _Listing()
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                try:
                    if entry.is_symlink():
                        listing.symlinks += 1
                    elif entry.is_dir(follow_symlinks=False):
                        if entry.stat(follow_symlinks=False).st_dev != device:
                            listing.other_filesystems += 1
                        else:
                            listing.subdirs.append(path)
                    elif entry.is_file(follow_symlinks=False):
                        size = entry.stat(follow_symlinks=False).st_size
                        listing.files.append(FileEntry(path, size))
                except OSError as exc:  # gone between the listing and its stat
                    listing.failures.append(Failure(str(path), error_text(exc)))
    except OSError as exc:
        listing.failures.append(Failure(str(directory), error_text(exc)))
    return listing


def walk(roots: Sequence[Path], *, jobs: int) -> Plan:
    """The files under ``roots`` (files or directories, already resolved), in listing order.

    Directories are listed by up to ``jobs`` threads. A root that cannot be stat'ed is a
    failure. Raises KeyboardInterrupt if interrupted (listings in progress are abandoned).
    """
    listings: dict[Path, _Listing] = {}
    seen: set[Path] = set()
    top: list[Path] = []
    failures: list[Failure] = []
    root_files: dict[Path, FileEntry] = {}
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="preload-walk")
    pending: dict[Future[_Listing], Path] = {}
    devices: dict[Path, int] = {}
    try:
        for root in roots:
            if root in seen:
                continue
            seen.add(root)
            top.append(root)
            try:
                st = root.stat()
            except OSError as exc:
                failures.append(Failure(str(root), error_text(exc)))
                continue
            if stat.S_ISDIR(st.st_mode):
                devices[root] = st.st_dev
                pending[pool.submit(_scan, root, st.st_dev)] = root
            elif stat.S_ISREG(st.st_mode):
                root_files[root] = FileEntry(root, st.st_size)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                directory = pending.pop(future)
                listing = future.result()
                listings[directory] = listing
                for sub in listing.subdirs:
                    if sub not in seen:
                        seen.add(sub)
                        pending[pool.submit(_scan, sub, devices[directory])] = sub
                        devices[sub] = devices[directory]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return _in_order(top, root_files, listings, failures)


def _in_order(
    top: Iterable[Path],
    root_files: dict[Path, FileEntry],
    listings: dict[Path, _Listing],
    failures: list[Failure],
) -> Plan:
    """Depth first from each root: a directory's files, then its subdirectories in order;
    a file is taken once even when overlapping roots name it twice."""
    files: list[FileEntry] = []
    taken: set[Path] = set()
    symlinks = other = 0
    stack = list(reversed(list(top)))
    while stack:
        path = stack.pop()
        entry = root_files.get(path)
        if entry is not None:
            if path not in taken:
                taken.add(path)
                files.append(entry)
            continue
        listing = listings.pop(path, None)
        if listing is None:  # a root that failed, or a directory taken by another root
            continue
        for entry in listing.files:
            if entry.path not in taken:
                taken.add(entry.path)
                files.append(entry)
        failures.extend(listing.failures)
        symlinks += listing.symlinks
        other += listing.other_filesystems
        stack.extend(reversed(listing.subdirs))
    return Plan(tuple(files), tuple(failures), symlinks, other)


# -- the reading ----------------------------------------------------------------------------------


class _CancelledError(Exception):
    """`Preloader.cancel` was called while a file was being read."""


class Preloader:
    """Reads the files of a `Plan` with ``jobs`` threads. One `run` at a time."""

    def __init__(
        self,
        *,
        jobs: int,
        chunk_bytes: int = CHUNK_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if jobs < 1 or chunk_bytes < 1:
            raise ValueError("jobs and chunk_bytes must be positive")
        self._jobs = jobs
        self._chunk_bytes = chunk_bytes
        self._clock = clock
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Make the readers stop at their next read (a file stopped so is not a failure)."""
        self._cancelled.set()

    def run(
        self,
        plan: Plan,
        *,
        on_file: Callable[[FileEntry, Failure | None], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> PreloadReport:
        """Read every file of ``plan``; never raises for what a file or the mount does.

        ``on_file`` is called once per file finished (with its failure, or None) and
        ``on_bytes`` with each read's length, both from reader threads (they must be
        thread-safe). KeyboardInterrupt in the calling thread cancels the readers, waits a
        moment for them, and returns the report so far with ``interrupted`` set.
        """
        started = self._clock()
        files = plan.files
        lock = threading.Lock()
        next_index = 0
        read_files = 0
        read_bytes = 0
        failures: list[Failure] = []
        all_done = threading.Event()
        running = min(self._jobs, len(files))

        def count_bytes(n: int) -> None:
            nonlocal read_bytes
            with lock:
                read_bytes += n
            if on_bytes is not None:
                on_bytes(n)

        def reader() -> None:
            nonlocal next_index, read_files, running
            try:
                with open(os.devnull, "wb", buffering=0) as sink:
                    while not self._cancelled.is_set():
                        with lock:
                            if next_index >= len(files):
                                return
                            entry = files[next_index]
                            next_index += 1
                        try:
                            self._read(entry.path, sink.fileno(), count_bytes)
                            failure = None
                        except _CancelledError:
                            return
                        except OSError as exc:
                            failure = Failure(str(entry.path), _reason(entry.path, exc))
                        with lock:
                            if failure is None:
                                read_files += 1
                            else:
                                failures.append(failure)
                        if on_file is not None:
                            on_file(entry, failure)
            finally:
                with lock:
                    running -= 1
                    if running == 0:
                        all_done.set()

        if running == 0:
            all_done.set()
        for i in range(running):
            threading.Thread(target=reader, name=f"preload-{i}", daemon=True).start()
        interrupted = False
        try:
            all_done.wait()
        except KeyboardInterrupt:
            interrupted = True
            self.cancel()
            all_done.wait(_CANCEL_GRACE_S)
        with lock:
            return PreloadReport(
                plan,
                read_files,
                read_bytes,
                (*plan.failures, *failures),
                self._clock() - started,
                interrupted=interrupted,
            )

    def _read(self, path: Path, sink: int, on_bytes: Callable[[int], None]) -> None:
        """Read ``path`` to its end (a symlink in its place is refused: ELOOP)."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            offset = 0
            buffer: bytearray | None = None
            while True:
                if self._cancelled.is_set():
                    raise _CancelledError
                if buffer is None:
                    try:
                        n = os.sendfile(sink, fd, offset, self._chunk_bytes)
                    except OSError as exc:
                        if offset or exc.errno not in _NO_SENDFILE:
                            raise
                        buffer = bytearray(self._chunk_bytes)  # a file system without splice
                        continue
                else:
                    n = os.preadv(fd, [buffer], offset)
                if n == 0:
                    return
                os.posix_fadvise(fd, offset, n, os.POSIX_FADV_DONTNEED)
                offset += n
                on_bytes(n)
        finally:
            os.close(fd)
