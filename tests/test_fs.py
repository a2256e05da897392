"""The FUSE-agnostic filesystem on a FakeStore: attributes, opens, reads, xattrs, errno."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from ossfs.core.errors import OssfsError
from ossfs.fs.filesystem import Filesystem, FsConfig
from ossfs.fs.namespace import Namespace
from ossfs.read.block_cache import BlockCache
from tests.support.fakes import FakeStore

BLOCK = 4096
MOUNT_NS = 1_600_000_000_000_000_000


def make_fs(store: FakeStore, **config: int) -> Filesystem:
    ns = Namespace(store, metadata_ttl_s=60.0)
    return Filesystem(
        ns,
        store,
        BlockCache(16 * BLOCK),
        FsConfig(uid=1000, gid=1000, block_size_bytes=BLOCK, **config),
        mount_time_ns=MOUNT_NS,
    )


def errno_of(exc: pytest.ExceptionInfo[OssfsError]) -> int:
    return exc.value.errno


def test_fs_getattr_of_listed_entries_sends_no_head() -> None:
    store = FakeStore()
    meta = store.put("d/a.txt", b"hello")
    store.put("d/sub/b.txt", b"x")
    fs = make_fs(store, file_mode=0o440, dir_mode=0o550)
    names = dict(fs.readdir("/d"))
    assert set(names) == {"a.txt", "sub"}
    store.reset_calls()
    st = fs.getattr("/d/a.txt")
    assert stat.S_ISREG(st.mode) and st.mode & 0o7777 == 0o440
    assert (st.size, st.mtime_ns, st.uid, st.gid, st.blocks) == (5, meta.mtime_ns, 1000, 1000, 1)
    sub = fs.getattr("/d/sub")
    assert stat.S_ISDIR(sub.mode) and sub.mode & 0o7777 == 0o550 and sub.mtime_ns == MOUNT_NS
    assert store.calls == []


def test_fs_small_file_read_is_one_get_and_no_head() -> None:
    store = FakeStore()
    store.put("a.txt", b"0123456789")
    fs = make_fs(store)
    fs.readdir("/")
    store.reset_calls()
    fh = fs.open("/a.txt", os.O_RDONLY)
    assert fs.read(fh, 2, 5) == b"23456"
    assert fs.read(fh, 0, 100) == b"0123456789"
    assert fs.read(fh, 10, 100) == b""
    fs.release(fh)
    assert store.calls == [("get_range", "a.txt", 0, 10)]
    assert fs.open_handles() == 0


def test_fs_zero_byte_file_sends_no_get() -> None:
    store = FakeStore()
    store.put("empty", b"")
    fs = make_fs(store)
    fh = fs.open("/empty", os.O_RDONLY)
    assert fs.read(fh, 0, 4096) == b""
    assert store.count("get_range") == 0


@pytest.mark.parametrize("flags", [os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_APPEND, os.O_CREAT])
def test_fs_open_for_writing_is_erofs(flags: int) -> None:
    store = FakeStore()
    store.put("a.txt", b"x")
    with pytest.raises(OssfsError) as info:
        make_fs(store).open("/a.txt", flags)
    assert errno_of(info) == errno.EROFS


def test_fs_errno_for_missing_directory_and_archive() -> None:
    store = FakeStore()
    store.put("d/a.txt", b"x")
    store.put("cold.bin", b"frozen", storage_class="Archive")
    store.put("thawed.bin", b"warm", storage_class="Archive", restore='ongoing-request="false"')
    fs = make_fs(store)
    cases = {"/missing": errno.ENOENT, "/d": errno.EISDIR, "/cold.bin": errno.EACCES}
    for path, expected in cases.items():
        with pytest.raises(OssfsError) as info:
            fs.open(path, os.O_RDONLY)
        assert errno_of(info) == expected, path
    fh = fs.open("/thawed.bin", os.O_RDONLY)
    assert fs.read(fh, 0, 10) == b"warm"


def test_fs_replaced_object_is_estale_and_invalidated() -> None:
    store = FakeStore()
    store.put("v.bin", bytes(3 * BLOCK))
    fs = make_fs(store)
    fh = fs.open("/v.bin", os.O_RDONLY)
    assert fs.read(fh, 0, 10) == bytes(10)
    store.put("v.bin", b"\x01" * (3 * BLOCK))
    assert fs.read(fh, 5, 10) == bytes(10)  # cached block of the pinned version
    with pytest.raises(OssfsError) as info:
        fs.read(fh, 2 * BLOCK, 10)
    assert errno_of(info) == errno.ESTALE
    fh2 = fs.open("/v.bin", os.O_RDONLY)  # the next open sees the new version
    assert fs.read(fh2, 2 * BLOCK, 3) == b"\x01\x01\x01"


def test_fs_keeps_kernel_cache_only_while_the_etag_is_unchanged() -> None:
    store = FakeStore()
    store.put("k.bin", b"a" * 10)
    fs = Filesystem(
        Namespace(store, metadata_ttl_s=0.0),
        store,
        BlockCache(16 * BLOCK),
        FsConfig(uid=0, gid=0, block_size_bytes=BLOCK),
        mount_time_ns=MOUNT_NS,
    )

    def keeps() -> tuple[int, bool]:
        fh = fs.open("/k.bin", os.O_RDONLY)
        return fh, fs.keep_kernel_cache(fh)

    first, keep = keeps()
    assert not keep  # nothing is known about what the kernel holds
    fs.release(first)
    old, keep = keeps()
    assert keep  # same etag as the previous open: warm re-reads stay in the page cache
    store.put("k.bin", b"b" * 10)
    fh, keep = keeps()
    assert not keep  # a new version: the kernel drops its pages at this open
    fs.release(fh)
    fh, keep = keeps()
    assert not keep  # `old` is still open and may have refilled the cache with the old version
    fs.release(fh)
    fs.release(old)
    fh, keep = keeps()
    assert not keep  # once more: `old` was open since the last invalidation
    fs.release(fh)
    fh, keep = keeps()
    assert keep
    assert not fs.keep_kernel_cache(fh + 1000)  # unknown handle
    fs.release(fh)


def test_fs_failed_read_drops_the_kernel_cache_at_the_next_opens() -> None:
    store = FakeStore()
    store.put("k.bin", bytes(3 * BLOCK))
    fs = make_fs(store)
    fs.release(fs.open("/k.bin", os.O_RDONLY))
    bad = fs.open("/k.bin", os.O_RDONLY)
    assert fs.keep_kernel_cache(bad)
    assert fs.read(bad, 0, 10) == bytes(10)
    store.put("k.bin", b"\x01" * (3 * BLOCK))  # the pinned version is gone: the read fails
    with pytest.raises(OssfsError):
        fs.read(bad, 2 * BLOCK, 10)
    fh = fs.open("/k.bin", os.O_RDONLY)
    assert not fs.keep_kernel_cache(fh)
    fs.release(fh)
    fh = fs.open("/k.bin", os.O_RDONLY)
    assert not fs.keep_kernel_cache(fh)  # `bad` is still open
    fs.release(fh)
    fs.release(bad)
    fs.release(fs.open("/k.bin", os.O_RDONLY))
    fh = fs.open("/k.bin", os.O_RDONLY)
    assert fs.keep_kernel_cache(fh)


def test_fs_xattrs_cost_one_head_per_version_and_foreign_names_none() -> None:
    store = FakeStore()
    meta = store.put("a.txt", b"abc", user_meta=(("owner", "me"),), content_type="text/plain")
    fs = make_fs(store)
    fs.readdir("/")
    store.reset_calls()
    for name in ("security.selinux", "system.posix_acl_access", "trusted.x"):
        with pytest.raises(OssfsError) as info:
            fs.getxattr("/a.txt", name)
        assert errno_of(info) == errno.ENOTSUP  # no such namespace: ls stops asking
    with pytest.raises(OssfsError) as info:
        fs.getxattr("/a.txt", "user.other")
    assert errno_of(info) == errno.ENODATA
    with pytest.raises(OssfsError) as info:
        fs.getxattr("/missing", "security.selinux")
    assert errno_of(info) == errno.ENOENT
    assert store.calls == []
    names = fs.listxattr("/a.txt")
    assert "user.oss.etag" in names and "user.oss.meta.owner" in names
    assert "user.oss.restore" not in names
    assert fs.getxattr("/a.txt", "user.oss.etag") == meta.etag.encode()
    assert fs.getxattr("/a.txt", "user.oss.crc64ecma") == str(meta.crc64).encode()
    assert fs.getxattr("/a.txt", "user.oss.content_type") == b"text/plain"
    assert store.count("head") == 1
    assert fs.listxattr("/") == ["user.ossfs.prefix"]
    assert fs.getxattr("/", "user.ossfs.prefix") == b""


def test_fs_xattrs_of_a_changed_object_are_stale_not_the_new_versions() -> None:
    """Within the TTL a file's attributes and an open show the listed version: its xattrs must
    not describe another one (verify --through compares bytes with user.oss.crc64ecma)."""
    store = FakeStore()
    store.put("a.txt", b"one")
    fs = make_fs(store)
    fs.readdir("/")
    new = store.put("a.txt", b"version two")
    assert fs.getattr("/a.txt").size == 3
    with pytest.raises(OssfsError) as info:
        fs.getxattr("/a.txt", "user.oss.crc64ecma")
    assert errno_of(info) == errno.ESTALE
    # The path was forgotten: the next lookup sees the new version, and its xattrs match it.
    assert fs.getattr("/a.txt").size == len(b"version two")
    assert fs.getxattr("/a.txt", "user.oss.crc64ecma") == str(new.crc64).encode()
    assert fs.getxattr("/a.txt", "user.oss.etag") == new.etag.encode()


def test_fs_symlink_attributes_and_target() -> None:
    store = FakeStore()
    store.put("d/t.txt", b"target")
    store.put_symlink("d/link", "d/t.txt")
    fs = make_fs(store)
    st = fs.getattr("/d/link")
    assert stat.S_ISLNK(st.mode) and st.size == len("t.txt")
    assert fs.readlink("/d/link") == "t.txt"


def test_fs_statfs_is_sane() -> None:
    s = make_fs(FakeStore()).statfs()
    assert s.block_size == BLOCK and s.blocks > 0 and s.blocks_free == 0 and s.name_max == 255


def test_fs_unreadable_symlink_does_not_fail_its_directory() -> None:
    class BrokenLinks(FakeStore):
        def symlink_target(self, key: str) -> str:
            raise OssfsError(f"{key}: retries exhausted")

    store = BrokenLinks()
    store.put("d/a.txt", b"x")
    store.put_symlink("d/link", "d/a.txt")
    fs = make_fs(store)
    listing = dict(fs.readdir("/d"))
    assert stat.S_ISLNK(listing["link"].mode) and listing["link"].size == 0
    with pytest.raises(OssfsError):
        fs.readlink("/d/link")
