"""The disk cache (``--cache-dir``) through real mounts: it survives unmounts and ``kill -9``,
never serves a torn, flipped or outdated block, stays within its size and its filesystem, is
shared by mounts at once, and refuses a bad directory or size at mount time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ossfs.app.umount import is_mounted
from ossfs.emulator import EmulatorServer
from ossfs.read.disk.block_file import LAYOUT, decode_header, header_length
from tests.support import BUCKET
from tests.support.mounts import (
    MIB,
    Mounts,
    daemon_pid,
    data_for,
    mounts_fixture,
    run_ossfs,
    settled_counts,
    wait_daemon_gone,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.mount

BLOCK = "256KiB"
BLOCK_BYTES = 256 << 10


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    yield from mounts_fixture(tmp_path)


def _stats(mp: Path) -> dict[str, int]:
    result = run_ossfs("stats", str(mp), "--json")
    assert result.returncode == 0, result.stderr
    section: dict[str, int] = json.loads(result.stdout)["disk_cache"]
    return section


def _unmount(mounts: Mounts, mp: Path) -> None:
    """Unmount and wait for the daemon to exit (it writes what is queued first)."""
    result = run_ossfs("umount", str(mp))
    assert result.returncode == 0, result.stderr
    wait_daemon_gone(mp)


def _block_files(cache: Path) -> dict[tuple[str, int], Path]:
    """The cache's block files by (object key, block index), read from their headers."""
    found = {}
    for path in (cache / LAYOUT).glob("*/*"):
        if path.name.startswith("."):
            continue
        raw = path.read_bytes()
        header = decode_header(raw[: header_length(raw)])
        found[(header.block.key, header.block.index)] = path
    return found


def _du(path: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "--block-size=1", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return int(out.split()[0])


def _seed(emulator: EmulatorServer) -> dict[str, bytes]:
    files = {f"d/big{i}.bin": data_for(i, 2 * MIB + 1000 * i + 7) for i in range(2)}
    files |= {f"d/small{i:02d}.txt": data_for(100 + i, 3000 + i) for i in range(12)}
    for key, data in files.items():
        emulator.put_object(BUCKET, key, data)
    return files


def _put_and_mount(
    emulator: EmulatorServer, mounts: Mounts, cache: Path, files: dict[str, bytes], *extra: str
) -> tuple[Path, tuple[str, ...]]:
    """Put ``files`` in the bucket and mount it with ``--cache-dir cache``; the mount point and
    the options (to mount again with)."""
    for key, data in files.items():
        emulator.put_object(BUCKET, key, data)
    args = ("--cache-dir", str(cache), "--block-size", BLOCK, *extra)
    return mounts.mount(emulator.endpoint, *args), args


def _read_all(mp: Path, files: dict[str, bytes]) -> None:
    for key, data in sorted(files.items()):
        assert (mp / key).read_bytes() == data, key


def test_disk_cache_remount_serves_every_byte_without_a_get(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    files = _seed(emulator)
    cache = tmp_path / "missing" / "cache"
    args = ("--cache-dir", str(cache), "--block-size", BLOCK)
    mp = mounts.mount(emulator.endpoint, *args)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    _read_all(mp, files)
    assert settled_counts(emulator).get("GetObject", 0) > 0
    _unmount(mounts, mp)

    emulator.log.clear()
    mp = mounts.mount(emulator.endpoint, *args, mountpoint=mp)
    _read_all(mp, files)
    assert settled_counts(emulator).get("GetObject", 0) == 0, [
        (e.key, e.range, e.bytes) for e in emulator.log.entries("GetObject")
    ]
    stats = _stats(mp)
    assert stats["hits"] >= len(files)
    assert stats["crc_failures"] == 0


def test_disk_cache_kill_9_while_filling_then_remount_exact(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    data = data_for(7, 12 * MIB + 5)
    cache = tmp_path / "cache"
    mp, args = _put_and_mount(emulator, mounts, cache, {"big.bin": data})
    pid = daemon_pid(mp)

    def read() -> None:
        with contextlib.suppress(OSError):  # the daemon is killed under it
            (mp / "big.bin").read_bytes()

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: _stats(mp)["bytes_written"] > 0, 30, "the first blocks on disk")
    os.kill(pid, signal.SIGKILL)
    reader.join(30)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 15, "the killed daemon to be gone")
    assert run_ossfs("umount", str(mp)).returncode == 0
    # What a crash can leave: a writer's temporary file, and (power loss) a block file whose
    # bytes never reached the disk.
    blocks = _block_files(cache)
    torn = blocks[("big.bin", min(index for _, index in blocks))]
    torn.write_bytes(torn.read_bytes()[: BLOCK_BYTES // 2])
    (torn.parent / ".tmp-99999-1").write_bytes(b"half a block")

    mp = mounts.mount(emulator.endpoint, *args, mountpoint=mp)
    assert (mp / "big.bin").read_bytes() == data
    assert _stats(mp)["crc_failures"] == 1


def test_disk_cache_flipped_byte_is_refetched_and_counted(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    data = data_for(8, 3 * BLOCK_BYTES + 11)
    cache = tmp_path / "cache"
    mp, args = _put_and_mount(emulator, mounts, cache, {"f.bin": data})
    assert (mp / "f.bin").read_bytes() == data
    _unmount(mounts, mp)
    victim = _block_files(cache)[("f.bin", 1)]
    raw = bytearray(victim.read_bytes())
    raw[-100] ^= 0x20
    victim.write_bytes(raw)

    emulator.log.clear()
    mp = mounts.mount(emulator.endpoint, *args, mountpoint=mp)
    assert (mp / "f.bin").read_bytes() == data
    gets = [e.range for e in emulator.log.entries("GetObject")]
    assert gets == [f"bytes={BLOCK_BYTES}-{2 * BLOCK_BYTES - 1}"]
    stats = _stats(mp)
    assert stats["crc_failures"] == 1
    assert stats["hits"] == 3


def test_disk_cache_overwritten_object_new_bytes_after_ttl(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    old = data_for(9, 2 * BLOCK_BYTES + 3)
    new = data_for(10, len(old))
    files = {"v.bin": old}
    mp, args = _put_and_mount(emulator, mounts, tmp_path / "c", files, "--metadata-ttl", "1")
    assert (mp / "v.bin").read_bytes() == old
    wait_until(lambda: _stats(mp)["bytes_written"] >= len(old), 30, "the old version on disk")
    emulator.put_object(BUCKET, "v.bin", new)
    time.sleep(1.6)  # the thing under test: once the 1 s TTL has passed, the new version shows
    assert (mp / "v.bin").read_bytes() == new
    _unmount(mounts, mp)
    mp = mounts.mount(emulator.endpoint, *args, mountpoint=mp)
    assert (mp / "v.bin").read_bytes() == new


def test_disk_cache_two_mounts_share_a_directory_concurrently(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    files = _seed(emulator)
    cache = tmp_path / "cache"
    args = ("--cache-dir", str(cache), "--block-size", BLOCK)
    mps = [mounts.mount(emulator.endpoint, *args) for _ in range(2)]
    problems: list[str] = []

    def read(mp: Path, rounds: int) -> None:
        for _ in range(rounds):
            for key, data in sorted(files.items()):
                try:
                    if (mp / key).read_bytes() != data:
                        problems.append(f"{mp}/{key}: wrong bytes")
                except OSError as exc:
                    problems.append(f"{mp}/{key}: {exc}")

    threads = [threading.Thread(target=read, args=(mp, 3)) for mp in mps for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert problems == []
    for mp in mps:
        assert _stats(mp)["crc_failures"] == 0


def test_disk_cache_on_a_tiny_filesystem_that_fills_up(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    files = {f"f{i}.bin": data_for(20 + i, 2 * MIB + i) for i in range(4)}
    for key, data in files.items():
        emulator.put_object(BUCKET, key, data)
    cache = tmp_path / "tiny"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(cache)], check=True)
    try:
        mp = mounts.mount(emulator.endpoint, "--cache-dir", str(cache), "--block-size", BLOCK)
        # Something else fills the filesystem after the mount.
        (cache / "filler").write_bytes(bytes(3 * MIB))
        _read_all(mp, files)
        assert is_mounted(mp)
        _read_all(mp, files)
        stats = _stats(mp)
        assert stats["enabled"] == 1
        assert stats["evictions"] + stats["writes_dropped"] + stats["errors"] > 0
        _unmount(mounts, mp)
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)


def test_disk_cache_size_limit_holds(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    files = {f"f{i}.bin": data_for(30 + i, 3 * MIB + i) for i in range(3)}
    cache = tmp_path / "cache"
    cap = 4 * MIB
    mp, _ = _put_and_mount(emulator, mounts, cache, files, "--cache-dir-size", "4MiB")
    _read_all(mp, files)
    wait_until(
        lambda: _stats(mp)["bytes_written"] + _stats(mp)["writes_dropped"] > 0,
        30,
        "blocks on disk",
    )
    assert _stats(mp)["evictions"] > 0
    _unmount(mounts, mp)
    assert _du(cache) <= cap + BLOCK_BYTES


@pytest.mark.parametrize(
    ("case", "size"),
    [("file", None), ("read-only", None), ("read-only-missing", None), ("ok", "lots"), ("ok", "0")],
)
def test_disk_cache_bad_inputs_one_line_exit_2(
    emulator: EmulatorServer, tmp_path: Path, case: str, size: str | None
) -> None:
    mp = tmp_path / "mnt"
    mp.mkdir()
    target = tmp_path / "dir"
    ro = False
    if case == "file":
        target.write_bytes(b"not a directory")
    elif case.startswith("read-only"):
        target.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], check=True
        )
        ro = True
        if case == "read-only-missing":
            target = target / "sub"
    try:
        args = ["mount", f"oss://{BUCKET}", str(mp), "--endpoint", emulator.endpoint]
        args += ["--cache-dir", str(target)]
        if size is not None:
            args += ["--cache-dir-size", size]
        result = run_ossfs(*args)
    finally:
        if ro:
            subprocess.run(["umount", "-l", str(tmp_path / "dir")], check=False)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cache-dir" in result.stderr
    assert not is_mounted(mp)
