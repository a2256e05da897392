"""The local disk cache: blocks kept in files under ``--cache-dir``, across remounts and crashes,
shared by every mount (on this machine or another, over NFS) that names the same directory.

Responsibility:

- **Read-back** (`lookup`, on the reading thread): open the block's file, check its header (the
  full block identity: a hash collision is a miss, never wrong bytes), its length and the
  CRC-64 of its bytes. A file that fails a check is counted, logged, unlinked and reported as a
  miss: the caller fetches the block again. Any error is a miss; a read never fails because of
  the disk.
- **Writes** (`offer`, from whichever thread fetched the block): queued for `WRITERS`
  background threads in a `WriteQueue` (at most ``queue_bytes``; a block that finds it full
  is owed, or waited for, or dropped: see `ossfs.read.disk.write_queue`). Owed blocks are
  taken from the block cache (``recall``) when their turn comes; one the cache has let go by
  then is dropped (counted in ``writes_dropped``). A writer writes a temporary file and
  renames it into place, so a crash (``kill -9``, power loss) never leaves a partial file
  under a block's name; a file torn by power loss fails its CRC-64 check instead.
- **Bounds**: the files (as allocated: what ``du`` counts) stay within ``capacity_bytes``, and
  the filesystem keeps `RESERVE_FRACTION` of its size free. The writer evicts the least
  recently used files first (this mount's own use, else the files' mtimes: a hit touches its
  file's mtime at most once a minute, so mounts sharing the directory see each other's use).
- **Sharing**: no locks, only atomic renames and unlinks. Two mounts filling one block write
  the same bytes; an eviction unlinks a file another mount may have open, which keeps reading
  it (or, over NFS, meets an error and fetches the block again). The directory is rescanned
  now and then (`DiskIndex`), since other mounts write and evict too.
- **Disk problems**: a full disk gives space back (eviction down to the reserve) and writes
  resume once there is room; any other error writing (read-only, I/O error, permissions) logs
  one line and turns the disk cache off: the mount goes on memory-only.

Deliberately not here: the file format (`block_file`), which reads consult the disk
(`tiered_store`), the directory as a whole (`cache_dir`: checked at mount, scanned, its default
size), and memory caching (`ossfs.read.block_cache`).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ossfs.core.crc64 import crc64
from ossfs.core.object_store import Piece
from ossfs.core.sizes import format_size
from ossfs.read.block_cache import Block
from ossfs.read.disk.block_file import (
    TEMP_PREFIX,
    BadBlockFileError,
    BlockId,
    encode_header,
    read_block_file,
    version_prefix,
)
from ossfs.read.disk.block_writer import BlockWriter
from ossfs.read.disk.cache_dir import (
    FILE_MODE,
    RESERVE_FRACTION,
    FreeSpace,
    Scan,
    allocated,
    default_capacity,
    make_dirs,
    scan,
)
from ossfs.read.disk.disk_index import DiskIndex
from ossfs.read.disk.disk_stats import DiskCacheStats
from ossfs.read.disk.write_queue import WriteQueue

log = logging.getLogger(__name__)

TOUCH_AFTER_NS: Final = 60 * 10**9
"""A hit sets its file's mtime when that is older than a minute (at most one metadata write
per file a minute, yet other mounts' eviction sees the use)."""
MIN_RESCAN_S: Final = 60.0
"""Rescans of the directory at most this often, and never more than 1/30 of the time."""
WRITERS: Final = 1
"""Writer threads. One: a second one overlapped the kernel's copies a little but cost more in
GIL handoffs and wake-ups than it gained: epoch 1 with the cache took 1.30 and 1.37 s with one
writer against 1.52 and 1.56 s with two (512 MiB, 2 cores; PERFORMANCE.md section 8). Sustained
writes are bounded by the device anyway (the kernel throttles writers of dirty pages)."""
_BAD_FILE_LINES: Final = 20  # warnings about bad block files per mount, then counted only


class DiskCache:
    """Blocks of one mount's bucket and block size in ``directory``. Thread-safe.

    `start` the writer threads (in the process that serves: threads do not survive a fork) and
    `close` them at unmount (they write what is queued first).
    """

    def __init__(
        self,
        directory: Path,
        *,
        bucket: str,
        block_size: int,
        capacity_bytes: int | None,
        queue_bytes: int,
        take_buffer: Callable[[int], Piece] | None = None,
        give_buffer: Callable[[object, int], bool] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """``capacity_bytes``: the size limit; None: `default_capacity`, decided after the
        first scan. ``queue_bytes``: blocks waiting to be written, at most. ``take_buffer``:
        where read-back blocks are read into (the mount's `BufferPool.take`). ``give_buffer``:
        offered each written block with the writer's count of references to it
        (`BufferPool.give`): once the block cache has let it go too, its buffer is reused
        instead of a new one being mapped for the next GET."""
        self._root = str(directory)
        self._bucket = bucket
        self._block_size = block_size
        self._capacity = capacity_bytes
        self._take: Callable[[int], Piece] = take_buffer or bytearray
        self._give = give_buffer
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._jobs = WriteQueue(queue_bytes, block_size)
        self._recall: Callable[[str, str, int], Block | None] | None = None
        self._in_fetch: Callable[[str, str, int], bool] | None = None
        self._index = DiskIndex()
        self._dir_bytes = 0  # the directories themselves (du counts them)
        self._object_crcs: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._on = True
        self._full = False
        self._free = FreeSpace(self._root)
        self._next_scan = 0.0
        self._scanned = threading.Event()
        self._threads: list[threading.Thread] = []
        self._temp_serial = itertools.count(1)
        self._writer = BlockWriter(FILE_MODE)  # O_DIRECT where the file system takes it
        self._pending = 0  # bytes of files being written (room already made for them)
        self._bad_lines = 0
        self._hits = self._misses = self._bytes_read = self._bytes_written = 0
        self._dropped = self._evictions = self._crc_failures = self._errors = 0

    # -- the mount's side -------------------------------------------------------------------------
    @property
    def block_size(self) -> int:
        return self._block_size

    @property
    def enabled(self) -> bool:
        return self._on

    @property
    def directory(self) -> str:
        return self._root

    def set_recall(
        self,
        recall: Callable[[str, str, int], Block | None],
        pending: Callable[[str, str, int], bool] | None = None,
    ) -> None:
        """Where the writers find the blocks they owe (by key, etag and index), if still there:
        the block cache's `peek`; ``pending``: whether a block not there yet is still being
        fetched (its fetch was offered it before it was cached: asked again a little later).
        Without ``recall``, a block that finds the queue full is dropped."""
        self._recall = recall
        self._in_fetch = pending
        self._jobs.owe_when_full()

    def start(self) -> None:
        """Start the writer threads: the directory is scanned before anything is written."""
        for number in range(WRITERS):
            thread = threading.Thread(
                target=self._run, args=(number == 0,), name=f"disk-cache-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wait_scanned(self, timeout_s: float) -> bool:
        """True once the first scan is done (tests, and the capacity's log line)."""
        return self._scanned.wait(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the writer (waits at most ``timeout_s``)."""
        self._jobs.close()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def lookup(self, key: str, etag: str, index: int, length: int | None) -> Piece | None:
        """The intact block ``index`` (``length`` bytes; None: as long as its file says) of
        that object version, or None.

        Never raises for the disk's sake: a missing, torn, corrupt or unreadable file is None
        (and a bad one is removed)."""
        if not self._on:
            return None
        block = BlockId(self._bucket, key, etag, self._block_size, index)
        rel = block.relpath
        try:
            fd = os.open(f"{self._root}/{rel}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._read_failed(exc)
            return None
        try:
            data, disk_bytes = self._read(fd, block, length)
        except BadBlockFileError as exc:
            self._bad_file(rel, block, exc)
            return None
        except OSError as exc:
            self._read_failed(exc)
            return None
        finally:
            os.close(fd)
        now = self._clock_ns()
        with self._lock:
            self._hits += 1
            self._bytes_read += len(data)
            if rel in self._index:
                self._index.touch(rel, now)
            else:  # another mount wrote it since the last scan
                self._index.add(rel, disk_bytes, now)
        return data

    def exists(self, key: str, etag: str, index: int) -> bool:
        """Whether a file for that block is there now (not whether it is intact)."""
        if not self._on:
            return False
        rel = BlockId(self._bucket, key, etag, self._block_size, index).relpath
        return os.path.exists(f"{self._root}/{rel}")

    def offer(
        self,
        key: str,
        etag: str,
        index: int,
        block: Block,
        object_crc: int | None,
        *,
        wait_s: float = 0.0,
    ) -> None:
        """Queue a block fetched from OSS to be written. If the queue is full: wait up to
        ``wait_s`` for room (0: not at all), then owe it (written later from the block cache,
        with `set_recall`) or drop it (`ossfs.read.disk.write_queue.WriteQueue.offer`).

        ``object_crc``: the whole object's CRC-64 if known (kept in the header for the
        reader's end-to-end check). The block must not change afterwards (cache blocks never
        do): the writer reads it later, on its own thread."""
        if not self._on:
            return
        name = BlockId(self._bucket, key, etag, self._block_size, index)
        if self._jobs.offer(name, block, object_crc, wait_s):
            return
        with self._lock:
            self._dropped += 1
            first = self._dropped == 1 and not self._jobs.closing
        if first:
            log.info(
                "disk cache %s: the disk is slower than the reads; blocks that find its writers "
                "%s behind are not written (writes_dropped in ossfs stats)",
                self._root,
                format_size(self._jobs.queue_bytes),
            )

    @property
    def waiting_offers(self) -> int:
        """How many `offer` calls are waiting for room in the queue now (tests)."""
        return self._jobs.waiting_offers

    def object_crc(self, key: str, etag: str) -> int | None:
        """The whole-object CRC-64 a block file read back carried for that version, if any."""
        with self._lock:
            return self._object_crcs.get((key, etag))

    def discard_version(self, key: str, etag: str) -> None:
        """Remove every block file of that object version (its bytes failed the reader's
        whole-object check)."""
        directory, prefix = version_prefix(self._bucket, key, etag, self._block_size)
        try:
            names = [n for n in os.listdir(f"{self._root}/{directory}") if n.startswith(prefix)]
        except OSError:
            return
        for name in names:
            rel = f"{directory}/{name}"
            self._unlink(rel)

    def stats(self) -> DiskCacheStats:
        waits, wait_ms = self._jobs.waits
        with self._lock:
            return DiskCacheStats(
                hits=self._hits,
                misses=self._misses,
                bytes_read=self._bytes_read,
                bytes_written=self._bytes_written,
                writes_dropped=self._dropped,
                read_ahead_waits=waits,
                read_ahead_wait_ms=wait_ms,
                evictions=self._evictions,
                crc_failures=self._crc_failures,
                errors=self._errors,
                used_bytes=self._index.used_bytes + self._dir_bytes,
                capacity_bytes=self._capacity or 0,
                blocks=len(self._index),
                enabled=int(self._on),
            )

    # -- reading ----------------------------------------------------------------------------------
    def _read(self, fd: int, block: BlockId, length: int | None) -> tuple[Piece, int]:
        """The block's bytes from its open file, checked (``length`` of them; None: as many as
        its header says); and the file's size on disk."""
        st = os.fstat(fd)
        data, header = read_block_file(fd, block, length, st.st_size, self._take)
        if header.object_crc is not None:
            self._remember_crc(block, header.object_crc)
        if self._clock_ns() - st.st_mtime_ns > TOUCH_AFTER_NS:
            with contextlib.suppress(OSError):
                os.utime(fd)  # other mounts' eviction sees the use
        return data, st.st_blocks * 512

    def _read_failed(self, exc: OSError) -> None:
        """A miss: the file is not there, or went while it was read (evicted by another
        mount: over NFS that is ESTALE); any other error is the disk's (`_failed`)."""
        if exc.errno not in (errno.ENOENT, errno.ESTALE):
            self._failed("reading", exc)
        with self._lock:
            self._misses += 1

    def _remember_crc(self, block: BlockId, crc: int) -> None:
        with self._lock:
            self._object_crcs[(block.key, block.etag)] = crc
            self._object_crcs.move_to_end((block.key, block.etag))
            if len(self._object_crcs) > 4096:
                self._object_crcs.popitem(last=False)

    def _bad_file(self, rel: str, block: BlockId, exc: BadBlockFileError) -> None:
        with self._lock:
            self._crc_failures += 1
            self._misses += 1
            self._bad_lines += 1
            lines = self._bad_lines
        if lines <= _BAD_FILE_LINES:
            log.warning(
                "disk cache: block %d of %s (etag %s) failed its check in %s/%s (%s): removed, "
                "fetched again%s",
                block.index,
                block.key,
                block.etag,
                self._root,
                rel,
                exc,
                "; further ones are only counted (ossfs stats)" if lines == _BAD_FILE_LINES else "",
            )
        self._unlink(rel)

    # -- the writer thread ------------------------------------------------------------------------
    def _run(self, scanner: bool) -> None:
        """A writer thread; the ``scanner`` also scans the directory, first and now and then."""
        if scanner:
            try:
                self._scan()
            finally:
                self._scanned.set()
        else:
            self._scanned.wait()
        done = 0  # the queue's bytes of the block just written, freed with the next job
        while True:
            job = self._jobs.next_job(done, self._next_scan if scanner else None)
            done = 0
            if job is None and self._jobs.drained:
                return
            try:
                if job is not None:
                    block, data, crc, done = job
                    job = None
                    written = self._write_job(block, data, crc)
                    data = None
                    if written is not None and self._give is not None:
                        self._give(written, 1)  # ``written``: this frame's one reference
                    written = None
                if scanner and time.monotonic() >= self._next_scan and not self._jobs.closing:
                    self._scan()
            except Exception:  # a bug, not the disk: say so once and stop using the disk
                log.exception("disk cache %s: the writer failed; turned off", self._root)
                with self._lock:
                    self._on = False

    def _write_job(self, block: BlockId, data: Block | None, crc: int | None) -> Block | None:
        """Write a queued block, or an owed one (``data`` None) looked up in the block cache:
        owed again while it is still being fetched, dropped if the cache has let it go. The
        bytes written, if any (for the buffer pool)."""
        if data is None and self._recall is not None:
            data = self._recall(block.key, block.etag, block.index)
        if data is None:
            if self._in_fetch is not None and self._in_fetch(block.key, block.etag, block.index):
                self._jobs.owe_again(block, crc)
            else:
                with self._lock:
                    self._dropped += 1
            return None
        self._write(block, data, crc)
        return data

    def _write(self, block: BlockId, data: Block, object_crc: int | None) -> None:
        if not self._on:
            return
        header = encode_header(block, crc64(data), len(data), object_crc)
        disk_bytes = allocated(len(header) + len(data))
        if not self._make_room(disk_bytes):
            with self._lock:
                self._dropped += 1
            return
        rel = block.relpath
        directory = f"{self._root}/{rel.rpartition('/')[0]}"
        temp = f"{directory}/{TEMP_PREFIX}{os.getpid()}-{next(self._temp_serial)}"
        try:
            try:
                self._writer.write(temp, header, data)
            except FileNotFoundError:  # first block of this directory (or the cache was wiped)
                made = make_dirs(self._root, rel.rpartition("/")[0])
                with self._lock:
                    self._dir_bytes += made * allocated(1)
                self._writer.write(temp, header, data)
            os.rename(temp, f"{self._root}/{rel}")
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            with self._lock:
                self._pending -= disk_bytes
            self._failed("writing", exc)
            return
        with self._lock:
            self._pending -= disk_bytes
            self._index.add(rel, disk_bytes, self._clock_ns())
            self._bytes_written += len(data)
            self._full = False

    def _make_room(self, nbytes: int) -> bool:
        """Evict least recently used files until ``nbytes`` more fit, and count them as
        pending (the caller settles them); False if they cannot fit."""
        limit = self._limit()
        tries = 0
        while True:
            with self._lock:
                if self._index.used_bytes + self._dir_bytes + self._pending + nbytes <= limit:
                    self._pending += nbytes
                    return True
                oldest = self._index.oldest()
                if oldest is None:
                    return False
            rel, entry = oldest
            tries += 1
            try:
                mtime_ns = os.stat(f"{self._root}/{rel}").st_mtime_ns
            except OSError:  # evicted by another mount
                with self._lock:
                    self._index.remove(rel)
                continue
            if mtime_ns > entry.used_ns and tries <= 64:
                # Another mount used it since: it goes to its place in line, not out.
                with self._lock:
                    self._index.touch(rel, mtime_ns)
                continue
            if self._unlink(rel):
                with self._lock:
                    self._evictions += 1

    def _limit(self) -> int:
        """What the files may hold now: the capacity, and no more than leaves the reserve free."""
        free = self._free.now()
        if free is None:
            return 0
        with self._lock:
            held = self._index.used_bytes + self._dir_bytes
        room = held + free[0] - free[1]
        return min(self._capacity, room) if self._capacity is not None else room

    def _unlink(self, rel: str) -> bool:
        """Remove a block file and forget it; False if it could not be removed."""
        try:
            os.unlink(f"{self._root}/{rel}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._failed("removing a file from", exc)
            return False
        with self._lock:
            self._index.remove(rel)
        return True

    def _failed(self, doing: str, exc: OSError) -> None:
        """An I/O error: counted; a full disk gives room back; anything else turns the cache
        off (one log line either way)."""
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        with self._lock:
            self._errors += 1
            was_full, was_on = self._full, self._on
            if full:
                self._full = True
                self._free.forget()  # ask the filesystem again: the reserve is given back
            else:
                self._on = False
        if full and not was_full:
            log.warning(
                "disk cache %s is full (%s): evicting to leave %.0f%% of its filesystem free; "
                "reads go on from OSS meanwhile",
                self._root,
                exc.strerror,
                RESERVE_FRACTION * 100,
            )
        elif not full and was_on:
            log.warning(
                "disk cache %s turned off after an error %s it (%s): the mount goes on with "
                "its memory cache only",
                self._root,
                doing,
                exc.strerror or exc,
            )

    def _scan(self) -> None:
        """Take the directory's files as they are now (other mounts write and evict too),
        remove crashed writers' leftovers, and decide the default capacity once."""
        began = time.monotonic()
        since = self._clock_ns()
        try:
            found = scan(self._root, since)
        except OSError as exc:
            self._failed("scanning", exc)
            found = Scan([], 0)
        files, dir_bytes = found.files, found.dir_bytes
        with self._lock:
            self._index.replace(files, kept_since_ns=since)
            self._dir_bytes = dir_bytes
            held = self._index.used_bytes + dir_bytes
        first = not self._scanned.is_set()
        default = first and self._capacity is None
        if default:
            try:
                fs = os.statvfs(self._root)
                self._capacity = default_capacity(fs.f_bavail * fs.f_frsize, held)
            except OSError as exc:
                self._capacity = 0
                self._failed("scanning", exc)
        if first:
            log.info(
                "disk cache %s: %d blocks, %s held; size limit %s%s",
                self._root,
                len(files),
                format_size(held),
                format_size(self._capacity or 0),
                " (3/4 of the free space plus what it holds)" if default else "",
            )
        took = time.monotonic() - began
        self._next_scan = time.monotonic() + max(MIN_RESCAN_S, 30 * took)
