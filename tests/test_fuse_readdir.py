"""The FUSE adapter's own parts of the binding: directory reads (one listing per open directory,
paged answers with complete attributes for READDIRPLUS), in process over a FakeStore with a
recording filler. (The callback wrapper that keeps libfuse threads' Python thread states is
tested with the rest of the shim, in test_mfusepy_shim.py.)"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass
from typing import Any

import pytest

from ossfs.fs.filesystem import Filesystem, FsConfig
from ossfs.fs.namespace import Namespace
from ossfs.fuse import fuse_ops
from ossfs.fuse.fuse_ops import FuseOperations, FuseOSError
from ossfs.read.block_cache import BlockCache
from tests.support.fakes import FakeStore

READDIR_PLUS = 1  # enum fuse_readdir_flags
FILL_DIR_PLUS = 2  # enum fuse_fill_dir_flags
MOUNT_TIME_NS = 1_600_000_000_123_456_789


@dataclass(frozen=True)
class Filled:
    name: str
    ino: int
    mode: int
    nlink: int
    size: int
    uid: int
    gid: int
    blocks: int
    mtime_ns: int
    ctime_ns: int
    atime_ns: int
    next_offset: int
    flags: int


class Recorder:
    """A fake ``fuse_fill_dir_t``: records what it is given; full after ``room`` entries."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.filled: list[Filled] = []
        self.buf = object()

    def __call__(self, buf: Any, name: bytes, st: Any, offset: int, flags: int) -> int:
        assert buf is self.buf
        if self.room == 0:
            return 1
        self.room -= 1

        def ns(spec: Any) -> int:
            return int(spec.tv_sec) * 1_000_000_000 + int(spec.tv_nsec)

        self.filled.append(
            Filled(
                name.decode(),
                st.st_ino,
                st.st_mode,
                st.st_nlink,
                st.st_size,
                st.st_uid,
                st.st_gid,
                st.st_blocks,
                ns(st.st_mtimespec),
                ns(st.st_ctimespec),
                ns(st.st_atimespec),
                offset,
                flags,
            )
        )
        return 0


def make_ops(store: FakeStore, *, ttl_s: float = 60.0) -> FuseOperations:
    ns = Namespace(store, metadata_ttl_s=ttl_s)
    config = FsConfig(uid=7, gid=8, block_size_bytes=4096)
    fs = Filesystem(ns, store, BlockCache(1 << 16), config, mount_time_ns=MOUNT_TIME_NS)
    return FuseOperations(fs)


def read_all(
    ops: FuseOperations, fh: int, *, page: int, flags: int, offset: int = 0
) -> list[Filled]:
    """Every entry from ``offset`` on, ``page`` entries a read, each read starting where the
    previous one stopped."""
    out: list[Filled] = []
    while True:
        recorder = Recorder(page)
        assert ops.fill_dir(fh, offset, flags, recorder, recorder.buf) == 0
        if not recorder.filled:
            return out
        out += recorder.filled
        offset = recorder.filled[-1].next_offset


@pytest.fixture
def store() -> FakeStore:
    store = FakeStore()
    store.put("d/a.txt", b"x" * 1000)
    store.put("d/b.bin", b"")
    store.put("d/sub/c.txt", b"c")
    store.put("d/\u00e9t\u00e9.txt", b"utf-8")
    return store


def test_fill_dir_pages_every_entry_once_with_its_getattr_attributes(store: FakeStore) -> None:
    ops = make_ops(store)
    fh = ops.opendir("/d")
    entries = read_all(ops, fh, page=2, flags=READDIR_PLUS)
    assert [e.name for e in entries] == [".", "..", "a.txt", "b.bin", "sub", "\u00e9t\u00e9.txt"]
    assert [e.next_offset for e in entries] == [1, 2, 3, 4, 5, 6]
    assert {e.flags for e in entries} == {FILL_DIR_PLUS}
    paths = {".": "/d", "..": "/"} | {e.name: f"/d/{e.name}" for e in entries[2:]}
    for e in entries:
        want = ops.getattr(paths[e.name])
        got = {
            "st_ino": e.ino,
            "st_mode": e.mode,
            "st_nlink": e.nlink,
            "st_size": e.size,
            "st_uid": e.uid,
            "st_gid": e.gid,
            "st_blocks": e.blocks,
            "st_mtime": e.mtime_ns,
            "st_ctime": e.ctime_ns,
            "st_atime": e.atime_ns,
        }
        assert got == {k: want[k] for k in got}, e.name
    a = next(e for e in entries if e.name == "a.txt")
    assert (a.size, a.blocks, a.mode) == (1000, 2, stat.S_IFREG | 0o444)
    assert a.mtime_ns == store.head("d/a.txt").mtime_ns
    assert next(e for e in entries if e.name == "sub").mode == stat.S_IFDIR | 0o555
    assert ops.releasedir("/d", fh) == 0


def test_fill_dir_plain_readdir_is_not_marked_plus_and_lists_once_per_open(
    store: FakeStore,
) -> None:
    ops = make_ops(store, ttl_s=0)  # nothing cached: every listing is a request
    fh = ops.opendir("/d")
    assert store.calls == []  # opened only (a dirfd, fchdir): nothing listed
    first = Recorder(1)
    ops.fill_dir(fh, 0, 0, first, first.buf)
    assert ("list_page", "d/", None) in store.calls  # the first read lists the directory
    store.reset_calls()
    entries = first.filled + read_all(ops, fh, page=1, flags=0, offset=1)
    assert store.calls == []  # the other reads page through that snapshot
    assert [e.name for e in entries] == [".", "..", "a.txt", "b.bin", "sub", "\u00e9t\u00e9.txt"]
    assert {e.flags for e in entries} == {0}
    ops.releasedir("/d", fh)


def test_fill_dir_offsets_stay_in_the_snapshot_and_rewind_takes_a_new_one(
    store: FakeStore,
) -> None:
    ops = make_ops(store, ttl_s=0)  # nothing cached: a new listing sees every change
    fh = ops.opendir("/d")
    first = Recorder(3)
    ops.fill_dir(fh, 0, READDIR_PLUS, first, first.buf)
    store.put("d/0-new.txt", b"n")  # sorts before a.txt
    rest = Recorder(100)
    ops.fill_dir(fh, first.filled[-1].next_offset, READDIR_PLUS, rest, rest.buf)
    seen = [e.name for e in first.filled + rest.filled]
    assert seen == [".", "..", "a.txt", "b.bin", "sub", "\u00e9t\u00e9.txt"]
    again = Recorder(100)
    ops.fill_dir(fh, 0, READDIR_PLUS, again, again.buf)  # rewinddir
    assert [e.name for e in again.filled][2:4] == ["0-new.txt", "a.txt"]
    ops.releasedir("/d", fh)


def test_fill_dir_root_and_errors(store: FakeStore) -> None:
    ops = make_ops(store)
    fh = ops.opendir("/")
    entries = read_all(ops, fh, page=10, flags=READDIR_PLUS)
    assert [e.name for e in entries] == [".", "..", "d"]
    assert entries[0].ino == entries[1].ino == ops.getattr("/")["st_ino"]
    ops.releasedir("/", fh)
    recorder = Recorder(10)
    with pytest.raises(FuseOSError) as info:
        ops.fill_dir(fh, 0, 0, recorder, recorder.buf)
    assert info.value.errno == errno.EBADF
    for path, code in (("/d/a.txt", errno.ENOTDIR), ("/missing", errno.ENOENT)):
        fh = ops.opendir(path)  # the kernel opens only directories; a read says what is wrong
        with pytest.raises(FuseOSError) as info:
            ops.fill_dir(fh, 0, READDIR_PLUS, recorder, recorder.buf)
        assert info.value.errno == code, path
        ops.releasedir(path, fh)
    assert recorder.filled == []


def test_init_asks_libfuse_for_no_paths_on_handle_calls(store: FakeStore) -> None:
    @dataclass
    class Config:
        nullpath_ok: int = 0

    config = Config()
    make_ops(store).init_with_config(None, config)
    assert config.nullpath_ok == 1
    make_ops(store).init_with_config(None, None)  # libfuse 2: no config to set


def test_getattr_of_an_open_file_without_its_path_answers_by_handle(store: FakeStore) -> None:
    ops = make_ops(store)
    fh = ops.call("open", "/d/a.txt", 0)
    assert isinstance(fh, int)
    # nullpath_ok: an fstat comes with the handle (here as the binding passes it) and no path.
    assert ops.getattr(None, fuse_ops._CallFileInfo(flags=0, fh=fh)) == ops.getattr("/d/a.txt")
    assert ops.getattr(None, fh) == ops.getattr("/d/a.txt")
    ops.release(None, fh)
    for gone in (fh, None):
        with pytest.raises(FuseOSError) as info:
            ops.getattr(None, gone)
        assert info.value.errno == errno.EBADF
