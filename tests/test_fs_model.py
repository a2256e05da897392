"""A model-based test of the `Filesystem` core: random steps against a bucket that changes under it.

A hypothesis state machine drives the filesystem wired as a mount wires it (namespace, block
cache with a buffer pool, readers, sequential and directory read-ahead) over a `FakeStore`, and
between steps changes the bucket as another client would: new objects, overwrites (new ETag,
new bytes, maybe a new size) and deletes. Blocks are 1 KiB and objects up to 12 KiB, so reads
cross many block boundaries, read-ahead runs, and the cache evicts.

What it checks (the contracts of SEMANTICS.md sections 3 and 4, and of the handle table):

- Staleness is bounded: every answer about names (getattr, readdir, open) shows the bucket as
  it was at some filesystem call at most ``metadata_ttl_s`` ago, or as it is now. Once the TTL
  has passed with no call, names agree with the bucket exactly (listings converge).
- One version per handle: every read returns ``data[offset:offset + size]`` of a version the
  handle could have pinned at open, the same version for all its reads, or fails ESTALE/ENOENT,
  and only once that version is no longer the bucket's. A returned view never changes while it
  is held (a buffer is reused only when nobody holds it).
- No leaks: the handle table holds exactly the open handles; whenever no read-ahead task is
  queued, no block fetch is in flight and no read-ahead budget is held; the cache stays within
  its budget; after the last release and unmount nothing is left.

Read-ahead GETs run on a `ManualExecutor`: a rule runs the oldest queued one, so a bucket change
or a release can fall between a read-ahead's claim and its GET. A read first runs all queued
ones (a single-threaded test cannot wait for a worker that never runs). Name lookups' HEADs run
inline. Everything runs on one thread with a fake clock: a run is deterministic.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ossfs.core.errors import OssfsError
from ossfs.core.object_store import Piece
from ossfs.fs.filesystem import Filesystem, FsConfig, Stat
from ossfs.fs.namespace import Namespace
from ossfs.read.block_cache import BlockCache
from ossfs.read.buffers import BufferPool
from ossfs.read.handle_prefetch import PrefetchConfig
from ossfs.read.prefetch import Prefetcher
from ossfs.read.reader import ReadData
from ossfs.read.sibling_prefetch import SiblingPrefetchConfig, SiblingPrefetcher
from tests.support.executors import InlineExecutor, ManualExecutor
from tests.support.fakes import FakeStore

BLOCK: Final = 1024
MAX_OBJECT: Final = 12 * BLOCK
CACHE_BYTES: Final = 16 * BLOCK  # less than the objects together: blocks get evicted
POOL_BUFFERS: Final = 4
HELD_READS: Final = 16  # answers kept (as a FUSE reply being copied out keeps one)
TTL_S: Final = 10.0
MOUNT_NS: Final = 1_600_000_000_000_000_000
PREFETCH: Final = PrefetchConfig(
    part_size_bytes=BLOCK,
    initial_window_bytes=3 * BLOCK,
    max_window_bytes=8 * BLOCK,  # capped at a quarter of the cache: 4 blocks
    max_inflight_bytes=2 * BLOCK,  # less than a window: budget denials happen
    sequential_slack_bytes=2 * BLOCK,
    reorder_bytes=2 * BLOCK,
    max_streams=3,  # few: streams get replaced
    random_unit_bytes=BLOCK // 8,  # random reads fetch sub-block units, beside whole blocks
    random_max_bytes=BLOCK // 2,
)
SIBLINGS: Final = SiblingPrefetchConfig(
    initial_files=1,
    max_files=4,
    max_unread_bytes=3 * BLOCK,
    max_inflight_gets=2,
    min_inflight_gets=1,
    slack_files=1,
)
# Files in three directories, and a name that is a file and a directory at once ("d/sub").
KEYS: Final = (
    "a.bin",
    "b.bin",
    "d/c.bin",
    "d/d.bin",
    "d/e.bin",
    "d/f.bin",
    "d/g.bin",
    "d/sub",
    "d/sub/h.bin",
    "d/sub/i.bin",
)
DIRS: Final = ("/", "/d", "/d/sub")
FILES: Final = tuple(f"/{key}" for key in KEYS)
# Every name the keys can show, and some that are never there (one of them under a file).
PATHS: Final = (*DIRS[1:], *FILES, "/nope", "/d/nope", "/a.bin/x")

sizes = st.one_of(
    st.sampled_from([0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, MAX_OBJECT]),
    st.integers(1, BLOCK),  # small enough for directory read-ahead
    st.integers(4 * BLOCK, MAX_OBJECT),  # large enough for sequential read-ahead
    st.integers(0, MAX_OBJECT),
)
read_sizes = st.one_of(
    st.integers(0, 3 * BLOCK), st.sampled_from([1, BLOCK - 1, BLOCK, BLOCK + 1, 4 * BLOCK])
)

COVERAGE: Counter[str] = Counter()
"""What the runs reached (kinds of reads and errors, read-ahead, evictions): the test asserts
that the machine really explored, so a change that makes it vacuous fails."""


@dataclass(frozen=True, slots=True)
class Version:
    """One object version the fake bucket has held."""

    key: str
    etag: str
    mtime_ns: int
    data: bytes


Bucket = Mapping[str, Version]
Outcome = tuple[object, ...]
"""An answer, comparable with what a bucket state allows: ``("file", size, mtime_ns)``,
``("dir",)``, ``("err", errno)``, or for readdir ``("list", (name, kind...), ...)``."""
DIR: Final = "dir"


@dataclass(slots=True)
class OpenFile:
    """The model of one open handle: the versions it may have pinned (each read narrows them)."""

    fh: int
    path: str
    key: str
    candidates: set[Version]
    position: int = 0

    @property
    def size(self) -> int:
        return max(len(v.data) for v in self.candidates)


class PooledStore(FakeStore):
    """Reads GET bodies into the pool's buffers, as `OssStore` does, so the buffers of evicted
    blocks come back into use (and a reuse while a reader still holds one would show)."""

    def __init__(self, pool: BufferPool) -> None:
        super().__init__()
        self._pool = pool

    def read_range(  # type: ignore[override]  # pieces are any Piece here, not just bytearrays
        self,
        key: str,
        start: int,
        end: int,
        *,
        etag: str | None,
        piece_bytes: int,
        on_piece: Callable[[Piece], None],
    ) -> None:
        body = self.get_range(key, start, end, etag=etag)
        if piece_bytes < BLOCK:
            COVERAGE["sub-block unit GETs"] += 1
        for pos in range(0, len(body), piece_bytes):
            chunk = body[pos : pos + piece_bytes]
            buffer = self._pool.take(len(chunk))
            buffer[:] = chunk
            on_piece(buffer)


def version_bytes(number: int, size: int) -> bytes:
    """The bytes of version ``number``: any two versions differ almost everywhere."""
    return hashlib.shake_128(f"version {number}".encode()).digest(size)


def node_of(bucket: Bucket, path: str) -> Version | str | None:
    """What ``path`` is in ``bucket``: `DIR`, the file's version, or None (nothing)."""
    key = path.strip("/")
    if not key or any(k.startswith(key + "/") for k in bucket):
        return DIR  # a directory wins over a file of the same name
    return bucket.get(key)


def missing_errnos(bucket: Bucket, path: str) -> set[int]:
    """The errors for a ``path`` that ``bucket`` does not have: ENOENT, and ENOTDIR if it goes
    through a file (known from a cached listing, no request needed)."""
    parts = path.strip("/").split("/")
    ancestors = ("/".join(parts[:n]) for n in range(1, len(parts)))
    through_file = any(isinstance(node_of(bucket, a), Version) for a in ancestors)
    return {errno.ENOENT, errno.ENOTDIR} if through_file else {errno.ENOENT}


def stat_view(bucket: Bucket, path: str) -> set[Outcome]:
    """What getattr of ``path`` may answer when the bucket is ``bucket``."""
    node = node_of(bucket, path)
    if node == DIR:
        return {("dir",)}
    if isinstance(node, Version):
        return {("file", len(node.data), node.mtime_ns)}
    return {("err", e) for e in missing_errnos(bucket, path)}


def listing_view(bucket: Bucket, path: str) -> Outcome:
    """Readdir of ``path`` in ``bucket``: names in order with their kinds (and file sizes)."""
    prefix = path.strip("/") + "/" if path != "/" else ""
    children: dict[str, Outcome] = {}
    for key in bucket:
        if not key.startswith(prefix):
            continue
        name, sep, _ = key[len(prefix) :].partition("/")
        if sep:
            children[name] = (name, "dir")
        elif name not in children:
            version = bucket[key]
            children[name] = (name, "file", len(version.data), version.mtime_ns)
    return ("list", *(children[name] for name in sorted(children)))


def stat_outcome(st_: Stat) -> Outcome:
    if stat.S_ISDIR(st_.mode):
        assert st_.mode & 0o7777 == 0o555 and st_.mtime_ns == MOUNT_NS
        return ("dir",)
    assert stat.S_ISREG(st_.mode) and st_.mode & 0o7777 == 0o444 and st_.nlink == 1
    return ("file", st_.size, st_.mtime_ns)


class FilesystemModel(RuleBasedStateMachine):
    """The filesystem against a model of the bucket's history (see the module docstring)."""

    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.pool = BufferPool(BLOCK, POOL_BUFFERS)
        self.store = PooledStore(self.pool)
        self.cache = BlockCache(CACHE_BYTES, self.pool)
        self.tasks = ManualExecutor()
        self.namespace = Namespace(
            self.store,
            metadata_ttl_s=TTL_S,
            clock=lambda: self.now,
            lookup_executor=InlineExecutor(),
        )
        self.prefetcher = Prefetcher(self.tasks, PREFETCH)
        self.siblings = SiblingPrefetcher(
            self.store,
            self.cache,
            self.namespace.listed_children,
            self.tasks,
            block_size_bytes=BLOCK,
            config=SIBLINGS,
            clock=lambda: self.now,
        )
        self.fs = Filesystem(
            self.namespace,
            self.store,
            self.cache,
            FsConfig(uid=0, gid=0, block_size_bytes=BLOCK),
            mount_time_ns=MOUNT_NS,
            prefetcher=self.prefetcher,
            sibling_prefetcher=self.siblings,
        )
        self.bucket: dict[str, Version] = {}
        self.versions = 0
        self.state = 0  # bumped by every change of the bucket
        # The bucket states calls could have seen: state number -> (time of the last call, state).
        self.seen: dict[int, tuple[float, Bucket]] = {}
        self.open: dict[int, OpenFile] = {}
        # The latest reads' answers as returned (maybe views of cached blocks), and their bytes.
        self.held: deque[tuple[ReadData, bytes]] = deque(maxlen=HELD_READS)

    # -- the bucket, changed by another client --------------------------------------------------
    @initialize(objects=st.dictionaries(st.sampled_from(KEYS), sizes, min_size=3))
    def fill_bucket(self, objects: dict[str, int]) -> None:
        for key, size in objects.items():
            self.put(key, size)

    @rule(key=st.sampled_from(KEYS), size=st.one_of(sizes, sizes, st.none()))
    def change_object(self, key: str, size: int | None) -> None:
        """Another client puts a new object or a new version (a new ETag), or deletes one."""
        if size is not None:
            self.put(key, size)
        elif self.bucket.pop(key, None) is not None:
            self.store.delete(key)
            self.state += 1

    def put(self, key: str, size: int) -> None:
        self.versions += 1
        data = version_bytes(self.versions, size)
        meta = self.store.put(key, data)
        self.bucket[key] = Version(key, meta.etag, meta.mtime_ns, data)
        self.state += 1

    @rule(seconds=st.sampled_from([0.5, 3.0, TTL_S + 0.5]))
    def advance_clock(self, seconds: float) -> None:
        """Time passes. Once the TTL has passed since the last call, every cached answer has
        expired: names agree with the bucket exactly (checked for all of them)."""
        self.now += seconds
        if self.allowed() == [self.bucket]:
            for path in DIRS:
                self.list_directory(path)
            for path in PATHS:
                self.getattr(path)
            COVERAGE["converged"] += 1

    def observed(self) -> None:
        """A call that may ask the bucket (and cache the answer) is about to be made."""
        self.seen[self.state] = (self.now, dict(self.bucket))

    def allowed(self) -> list[Bucket]:
        """The bucket states an answer may show now: seen within the TTL, and the current."""
        recent = [bucket for t, bucket in self.seen.values() if t >= self.now - TTL_S]
        return [*recent, self.bucket]

    # -- names ----------------------------------------------------------------------------------
    @rule(path=st.sampled_from(PATHS))
    def getattr(self, path: str) -> None:
        self.observed()
        try:
            got = stat_outcome(self.fs.getattr(path))
        except OssfsError as exc:
            got = ("err", exc.errno)
        allowed = set().union(*(stat_view(bucket, path) for bucket in self.allowed()))
        assert got in allowed, f"getattr {path}: {got}, allowed {allowed}"
        COVERAGE[f"getattr {got[0]}"] += 1
        if got == ("err", errno.ENOTDIR):
            COVERAGE["getattr ENOTDIR"] += 1

    @rule(path=st.sampled_from(DIRS))
    def readdir(self, path: str) -> None:
        self.list_directory(path)

    def list_directory(self, path: str) -> Outcome:
        """Readdir of ``path``, checked; returns its answer."""
        self.observed()
        try:
            got: Outcome = ("list", *self._entries(path))
        except OssfsError as exc:
            got = ("err", exc.errno)
        states = self.allowed()
        allowed: set[Outcome] = set()
        for bucket in states:
            node = node_of(bucket, path)
            if node == DIR:
                # A lookup that saw one state, then a listing of another (cached or fresh).
                allowed.update(listing_view(other, path) for other in states)
            elif isinstance(node, Version):
                allowed.add(("err", errno.ENOTDIR))
            else:
                allowed.update(("err", e) for e in missing_errnos(bucket, path))
        assert got in allowed, f"readdir {path}: {got}, allowed {allowed}"
        COVERAGE["readdir"] += 1
        return got

    def _entries(self, path: str) -> list[Outcome]:
        return [(name, *stat_outcome(st_)) for name, st_ in self.fs.readdir(path)]

    # -- handles --------------------------------------------------------------------------------
    @rule(target=handles, path=st.one_of(st.sampled_from(FILES), st.sampled_from(PATHS)))
    def open_file(self, path: str) -> object:
        """Open ``path``; the handle may have pinned the file's version of any allowed state."""
        self.observed()
        states = self.allowed()
        nodes = [node_of(bucket, path) for bucket in states]
        try:
            fh = self.fs.open(path, os.O_RDONLY)
        except OssfsError as exc:
            allowed = {errno.EISDIR} if DIR in nodes else set()
            for bucket, node in zip(states, nodes, strict=True):
                if node is None:
                    allowed.update(missing_errnos(bucket, path))
            assert exc.errno in allowed, f"open {path}: {exc!r}, allowed {allowed}"
            COVERAGE[f"open {errno.errorcode[exc.errno]}"] += 1
            return multiple()
        candidates = {node for node in nodes if isinstance(node, Version)}
        assert candidates, f"open {path} succeeded, but it is no file in {nodes}"
        assert fh not in self.open
        handle = OpenFile(fh, path, path.strip("/"), candidates)
        self.open[fh] = handle
        COVERAGE["open"] += 1
        return handle

    @rule(
        handle=handles,
        percent=st.integers(0, 110),
        aligned=st.booleans(),
        nudge=st.integers(-1, 1),
        size=read_sizes,
    )
    def read_at(self, handle: OpenFile, percent: int, aligned: bool, nudge: int, size: int) -> None:
        """A read anywhere: at a percentage of the object's size (past EOF above 100), maybe
        at a block boundary, maybe one byte off."""
        offset = handle.size * percent // 100
        if aligned:
            offset -= offset % BLOCK
        self.read(handle, max(0, offset + nudge), size)

    @rule(handle=handles, size=read_sizes, count=st.integers(1, 4))
    def read_on(self, handle: OpenFile, size: int, count: int) -> None:
        """A sequential reader: each read starts where the handle's last one ended (at EOF,
        it starts over)."""
        for _ in range(count):
            if handle.position >= handle.size:
                handle.position = 0
            self.read(handle, handle.position, size)

    def read(self, handle: OpenFile, offset: int, size: int) -> None:
        """Read through ``handle``, checked against the versions it may have pinned."""
        self.tasks.run_all()
        self.check_nothing_in_flight()  # else the read would wait forever for a lost fetch
        current = self.bucket.get(handle.key)
        try:
            data = self.fs.read(handle.fh, offset, size)
        except OssfsError as exc:
            assert exc.errno in (errno.ESTALE, errno.ENOENT), f"read {handle.path}: {exc!r}"
            gone = {v for v in handle.candidates if v != current}
            assert gone, f"read {handle.path}: {exc!r}, but its version is the bucket's"
            handle.candidates = gone
            COVERAGE[f"read {errno.errorcode[exc.errno]}"] += 1
            return
        got = bytes(data)
        same = {v for v in handle.candidates if v.data[offset : offset + size] == got}
        assert same, f"read {handle.path} [{offset}, +{size}): bytes of no single version"
        handle.candidates = same
        handle.position = offset + len(got)
        self.held.append((data, got))
        COVERAGE["read"] += 1
        if got and offset // BLOCK != (offset + len(got) - 1) // BLOCK:
            COVERAGE["read across blocks"] += 1
        if not got:
            COVERAGE["read at or past EOF"] += 1
        if got and current not in same:
            COVERAGE["read of a replaced version"] += 1

    @rule(handle=consumes(handles))
    def release(self, handle: OpenFile) -> None:
        self.fs.release(handle.fh)
        del self.open[handle.fh]

    @precondition(lambda self: self.tasks.pending > 0)
    @rule()
    def run_read_ahead(self) -> None:
        """A read-ahead worker runs the oldest queued GET (maybe after the bucket changed, or
        after its handle was released)."""
        self.tasks.run_one()

    @rule(
        path=st.sampled_from(DIRS),
        chunk=st.integers(BLOCK // 2, 3 * BLOCK),
        change_at=st.integers(0, 3),
        change_ahead=st.integers(0, 3),
        change_size=st.one_of(sizes, st.none()),
    )
    def copy_directory(
        self, path: str, chunk: int, change_at: int, change_ahead: int, change_size: int | None
    ) -> None:
        """``cp -r`` of one directory level: list it, then open, read whole and release each
        file in listing order (what directory read-ahead is for). While the ``change_at``-th
        file is open, another client replaces the file ``change_ahead`` places after it in the
        listing (0: this one, after its first read), or deletes it (``change_size`` None)."""
        listing = self.list_directory(path)
        names = [e[0] for e in listing[1:] if isinstance(e, tuple) and e[1] == "file"]
        keys = [f"{path}/{name}".strip("/") for name in names]
        for number, key in enumerate(keys):
            handle = self.open_file(f"/{key}")
            change = keys[number + change_ahead :][:1] if number == change_at else []
            if change and change_ahead:
                self.change_object(change.pop(), change_size)
            if not isinstance(handle, OpenFile):
                continue
            while handle.position < handle.size:
                before = handle.position
                self.read(handle, handle.position, chunk)
                if change:
                    self.change_object(change.pop(), change_size)
                if handle.position == before:
                    break  # the read failed: cp gives up on this file
            self.release(handle)
        COVERAGE["directory copied"] += 1

    # -- invariants and teardown ----------------------------------------------------------------
    @invariant()
    def handle_table_matches(self) -> None:
        assert self.fs.open_handles() == len(self.open)

    @invariant()
    def held_answers_unchanged(self) -> None:
        for data, got in self.held:
            assert bytes(data) == got, "a block's buffer was reused while a read's answer held it"

    @invariant()
    def within_budgets(self) -> None:
        assert self.cache.used_bytes <= CACHE_BYTES
        assert 0 <= self.prefetcher.stats().inflight_bytes <= PREFETCH.max_inflight_bytes
        if not self.tasks.pending:
            self.check_nothing_in_flight()

    def check_nothing_in_flight(self) -> None:
        assert self.cache.inflight_count == 0, "a block fetch claimed and never settled"
        assert self.cache.reserved_bytes == 0, "block memory reserved for a fetch never settled"
        if not self.open:  # read-ahead that arrived holds its budget until read or released
            assert self.prefetcher.stats().inflight_bytes == 0, "read-ahead budget never returned"
        assert self.siblings.stats().inflight_gets == 0, "a directory read-ahead GET left over"

    def teardown(self) -> None:
        """Release everything, let the workers finish, unmount: nothing may be left."""
        for fh in list(self.open):
            self.fs.release(fh)
        self.open.clear()
        assert self.fs.open_handles() == 0
        self.tasks.run_all()
        self.check_nothing_in_flight()
        self.fs.close()
        assert self.siblings.stats().unread_bytes == 0
        self.namespace.close()
        prefetch, siblings = self.prefetcher.stats(), self.siblings.stats()
        COVERAGE["read-ahead parts"] += prefetch.parts_issued
        COVERAGE["read-ahead parts failed"] += prefetch.parts_failed
        COVERAGE["read-ahead parts abandoned"] += prefetch.parts_abandoned
        COVERAGE["read-ahead budget denials"] += prefetch.budget_denials
        COVERAGE["sibling files prefetched"] += siblings.files_prefetched
        COVERAGE["sibling files failed"] += siblings.files_failed
        COVERAGE["cache evictions"] += self.cache.stats().evictions
        COVERAGE["buffers reused"] += self.pool.reused


# About 10,000 steps (~6 s of CPU here). Derandomized and without an example database: every
# run explores the same sequences, so a failure reproduces and a pass is no luck.
MODEL_SETTINGS: Final = settings(
    max_examples=250,
    stateful_step_count=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_fs_model_agrees_with_a_changing_bucket() -> None:
    COVERAGE.clear()
    run_state_machine_as_test(FilesystemModel, settings=MODEL_SETTINGS)
    expected = {
        "open",
        "open ENOENT",
        "open EISDIR",
        "getattr err",
        "getattr ENOTDIR",
        "readdir",
        "converged",
        "read",
        "read across blocks",
        "read at or past EOF",
        "read of a replaced version",
        "read ESTALE",
        "read ENOENT",
        "read-ahead parts",
        "read-ahead parts failed",
        "read-ahead parts abandoned",
        "read-ahead budget denials",
        "sub-block unit GETs",
        "sibling files prefetched",
        "sibling files failed",
        "cache evictions",
        "buffers reused",
    }
    missed = sorted(name for name in expected if COVERAGE[name] == 0)
    assert not missed, f"the model never reached {missed}: {COVERAGE}"
