"""Block files written with O_DIRECT: exact bytes and length whatever the data's length and
buffer, and the buffered fallback when the file system or a write refuses O_DIRECT."""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
from pathlib import Path

import pytest

from ossfs.read.disk.block_file import BlockId, decode_header, encode_header, header_length
from ossfs.read.disk.block_writer import ALIGN, BlockWriter
from ossfs.read.disk.disk_cache import DiskCache

BUCKET = "bkt"
BLOCK = 4 * ALIGN
O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def _supports_direct(directory: Path) -> bool:
    probe = directory / "probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    probe.unlink()
    return True


@pytest.fixture
def direct_dir(tmp_path: Path) -> Path:
    """``tmp_path``, which must take O_DIRECT for these tests to mean anything."""
    if not O_DIRECT or not _supports_direct(tmp_path):
        pytest.skip("the temporary directory's file system has no O_DIRECT")
    return tmp_path


def _spy_pwrite(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, for each os.pwrite, whether its file was open with O_DIRECT."""
    seen: list[bool] = []
    real = os.pwrite

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        seen.append(bool(fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    return seen


def _header(length: int) -> bytes:
    # A key whose length leaves the data at an unaligned offset.
    return encode_header(BlockId(BUCKET, "some/key", "etag", BLOCK, 3), 0, length, None)


@pytest.mark.parametrize("length", [1, ALIGN - 1, ALIGN, 5000, BLOCK, 1 << 20])
@pytest.mark.parametrize("kind", ["mmap", "bytearray", "bytes"])
def test_direct_write_is_the_header_then_the_data_exactly(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch, length: int, kind: str
) -> None:
    payload = os.urandom(length)
    data: bytes | bytearray | mmap.mmap
    if kind == "mmap":
        data = mmap.mmap(-1, length)
        data[:] = payload
    else:
        data = bytearray(payload) if kind == "bytearray" else payload
    seen = _spy_pwrite(monkeypatch)
    writer = BlockWriter(0o600)
    header = _header(length)
    path = direct_dir / "file"
    writer.write(str(path), header, data)
    assert seen and all(seen)  # written with O_DIRECT
    assert writer.direct
    assert path.read_bytes() == header + payload  # no padding left, nothing missing
    assert (path.stat().st_mode & 0o777) == 0o600


def _cache(path: Path) -> DiskCache:
    cache = DiskCache(
        path, bucket=BUCKET, block_size=BLOCK, capacity_bytes=1 << 20, queue_bytes=1 << 20
    )
    cache.start()
    assert cache.wait_scanned(10)
    return cache


def test_disk_cache_blocks_written_direct_read_back_exact(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _spy_pwrite(monkeypatch)
    full, last = os.urandom(BLOCK), os.urandom(BLOCK // 3)  # the short last block: unaligned
    cache = _cache(direct_dir)
    cache.offer("k", "e", 0, bytearray(full), object_crc=7)
    cache.offer("k", "e", 1, bytearray(last), object_crc=7)
    cache.close()
    assert len(seen) >= 2 and all(seen)
    again = _cache(direct_dir)
    first, second = again.lookup("k", "e", 0, BLOCK), again.lookup("k", "e", 1, None)
    assert first is not None and bytes(first) == full
    assert second is not None and bytes(second) == last
    assert again.stats().crc_failures == 0
    again.close()


def _refuse_direct_open(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Opens with O_DIRECT create the file, then fail with EINVAL (tmpfs before Linux 6.6)."""
    refused: list[str] = []
    real = os.open

    def fake_open(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & O_DIRECT:
            os.close(real(path, flags & ~O_DIRECT, mode))
            refused.append(path)
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real(path, flags, mode)

    monkeypatch.setattr(os, "open", fake_open)
    return refused


def test_file_system_refusing_direct_is_written_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refused = _refuse_direct_open(monkeypatch)
    caplog.set_level(logging.DEBUG, logger="ossfs.read.disk.block_writer")
    writer = BlockWriter(0o600)
    for name in ("a", "b"):
        header = _header(5000)
        payload = os.urandom(5000)
        writer.write(str(tmp_path / name), header, payload)
        assert (tmp_path / name).read_bytes() == header + payload
    assert len(refused) == 1  # the second file did not try again
    assert not writer.direct
    assert len([r for r in caplog.records if "O_DIRECT" in r.getMessage()]) == 1


def test_disk_cache_on_a_file_system_refusing_direct_stays_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_direct_open(monkeypatch)
    data = os.urandom(BLOCK // 3)
    cache = _cache(tmp_path)
    cache.offer("k", "e", 1, bytearray(data), object_crc=None)
    cache.close()
    assert cache.stats().errors == 0
    again = _cache(tmp_path)
    block = again.lookup("k", "e", 1, None)
    assert block is not None and bytes(block) == data
    assert again.stats().enabled == 1
    again.close()
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".tmp")]
    assert leftovers == []


def test_refused_direct_write_is_redone_buffered_for_that_file(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.pwrite
    refused: list[int] = []

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    writer = BlockWriter(0o600)
    payload = os.urandom(5000)
    header = _header(5000)
    writer.write(str(direct_dir / "file"), header, payload)
    raw = (direct_dir / "file").read_bytes()
    assert raw == header + payload
    assert decode_header(raw[: header_length(raw)]).data_len == 5000
    assert refused and writer.direct  # still tried for the next file


def test_direct_write_that_takes_no_bytes_fails_instead_of_looping(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: 0)
    with pytest.raises(OSError) as caught:
        BlockWriter(0o600).write(str(direct_dir / "file"), _header(100), os.urandom(100))
    assert caught.value.errno == errno.EIO
