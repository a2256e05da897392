"""Reliability of a real mount: the server going away and coming back, objects changing under
open files and under the metadata TTL, and a daemon killed with SIGKILL.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ossfs.app.umount import is_mounted
from ossfs.emulator import EmulatorServer
from tests.support import BUCKET
from tests.support.mounts import (
    MIB,
    Mounts,
    daemon_pid,
    data_for,
    emulator_config,
    free_port,
    mounts_fixture,
    run_ossfs,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.mount

# Generous: the default retry policy gives up on a refused connection within a few seconds.
EIO_WITHIN_S = 30.0


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    yield from mounts_fixture(tmp_path)


def _read_errno(path: Path, offset: int = 0, size: int = 65536) -> int | bytes:
    """The bytes read, or the errno of the failure (open or read)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return exc.errno or 0
    try:
        return os.pread(fd, size, offset)
    except OSError as exc:
        return exc.errno or 0
    finally:
        os.close(fd)


# -- the server goes down and comes back ---------------------------------------------------------


def test_reliability_server_down_reads_fail_eio_then_recover_without_remount(
    tmp_path: Path, mounts: Mounts
) -> None:
    port = free_port()
    server = EmulatorServer(emulator_config(tmp_path / "data", port))
    server.start()
    try:
        files = {f"f{i}.bin": data_for(i, 3 * MIB + i) for i in range(3)}
        for name, data in files.items():
            server.put_object(BUCKET, name, data)
        mp = mounts.mount(server.endpoint)
        assert sorted(os.listdir(mp)) == sorted(files)  # attributes now cached
        assert (mp / "f0.bin").read_bytes() == files["f0.bin"]

        server.stop()
        started = time.monotonic()
        outcome = _read_errno(mp / "f1.bin", 2 * MIB)
        elapsed = time.monotonic() - started
        assert outcome == errno.EIO, outcome
        assert elapsed < EIO_WITHIN_S, elapsed
        assert is_mounted(mp)
        assert sorted(os.listdir(mp)) == sorted(files)  # the mount still answers
        # Bytes read before the outage are still served (from the caches), and correct.
        assert (mp / "f0.bin").read_bytes() == files["f0.bin"]

        server.start()
        assert server.endpoint.endswith(f":{port}")
        for name, data in files.items():
            assert (mp / name).read_bytes() == data
    finally:
        server.stop()


# -- objects change under the mount ---------------------------------------------------------------


@pytest.mark.parametrize("change", ["overwrite", "delete", "shrink"])
def test_reliability_object_changed_while_open_fails_never_mixes(
    emulator: EmulatorServer, mounts: Mounts, change: str
) -> None:
    old = data_for(1, 6 * MIB + 3)
    emulator.put_object(BUCKET, "v.bin", old)
    mp = mounts.mount(emulator.endpoint, "--block-size", "256KiB", "--cache-size", "1MiB")
    fd = os.open(mp / "v.bin", os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0) == old[:4096]
        if change == "overwrite":
            emulator.put_object(BUCKET, "v.bin", data_for(2, len(old)))
        elif change == "delete":
            emulator.delete_object(BUCKET, "v.bin")
        else:
            emulator.put_object(BUCKET, "v.bin", old[: 2 * MIB])
        failures: list[int] = []
        for offset in range(0, len(old), 512 * 1024):
            try:
                got = os.pread(fd, 8192, offset)
            except OSError as exc:
                failures.append(exc.errno or 0)
                continue
            # Whatever is still served must be the old version's bytes, never the new ones.
            assert got == old[offset : offset + 8192], offset
        assert failures, "no read noticed the change"
        expected = {errno.ESTALE, errno.ENOENT} if change == "delete" else {errno.ESTALE}
        assert set(failures) <= expected, failures
    finally:
        os.close(fd)


@pytest.mark.parametrize("same_size", [True, False])
def test_reliability_new_version_visible_after_ttl_page_cache_not_stale(
    emulator: EmulatorServer, mounts: Mounts, same_size: bool
) -> None:
    old = data_for(3, 2 * MIB + 5)
    new = data_for(4, len(old) if same_size else 3 * MIB + 77)
    emulator.put_object(BUCKET, "t.bin", old)
    mp = mounts.mount(emulator.endpoint, "--metadata-ttl", "1")
    assert (mp / "t.bin").read_bytes() == old  # now in the kernel's page cache
    assert (mp / "t.bin").read_bytes() == old
    emulator.put_object(BUCKET, "t.bin", new)  # same second: same mtime, maybe same size
    time.sleep(1.6)  # the thing under test: once the 1 s TTL has passed, the new version shows
    assert (mp / "t.bin").stat().st_size == len(new)
    assert (mp / "t.bin").read_bytes() == new


def test_reliability_deleted_object_disappears_after_ttl(
    emulator: EmulatorServer, mounts: Mounts
) -> None:
    emulator.put_object(BUCKET, "gone.txt", b"here")
    mp = mounts.mount(emulator.endpoint, "--metadata-ttl", "1")
    assert (mp / "gone.txt").read_bytes() == b"here"
    emulator.delete_object(BUCKET, "gone.txt")
    time.sleep(1.6)  # the thing under test: once the 1 s TTL has passed, the deletion shows
    assert not (mp / "gone.txt").exists()
    assert "gone.txt" not in os.listdir(mp)


# -- the daemon is killed --------------------------------------------------------------------------


def test_reliability_umount_clears_mount_of_killed_daemon_and_remount_works(
    emulator: EmulatorServer, mounts: Mounts
) -> None:
    emulator.put_object(BUCKET, "a.txt", b"alive")
    mp = mounts.mount(emulator.endpoint)
    assert (mp / "a.txt").read_bytes() == b"alive"
    pid = daemon_pid(mp)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 15, "the killed daemon to be gone")
    with pytest.raises(OSError) as info:
        os.listdir(mp)
    assert info.value.errno == errno.ENOTCONN  # "Transport endpoint is not connected"
    assert is_mounted(mp)

    result = run_ossfs("umount", str(mp))
    assert result.returncode == 0, result.stderr
    assert not is_mounted(mp)
    assert os.listdir(mp) == []

    mounts.mount(emulator.endpoint, mountpoint=mp)
    assert (mp / "a.txt").read_bytes() == b"alive"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_reliability_daemon_signal_unmounts_cleanly(
    emulator: EmulatorServer, mounts: Mounts, sig: signal.Signals
) -> None:
    emulator.put_object(BUCKET, "a.txt", b"a")
    mp = mounts.mount(emulator.endpoint)
    assert (mp / "a.txt").read_bytes() == b"a"
    pid = daemon_pid(mp)
    os.kill(pid, sig)
    wait_until(lambda: not is_mounted(mp), 15, f"the daemon to unmount on {sig.name}")
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 15, f"the daemon to exit on {sig.name}")
    assert os.listdir(mp) == []
