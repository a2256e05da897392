"""Load through a real mount: 64 concurrent readers and thousands of open/read/close cycles
leak no threads or file descriptors in the daemon, and its RSS stays within a bound.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ossfs.emulator import EmulatorServer
from ossfs.obs.stats import STATS_XATTR
from tests.support import BUCKET
from tests.support.mounts import (
    MIB,
    Mounts,
    daemon_pid,
    data_for,
    mounts_fixture,
)
from tests.support.waiting import poll_until

pytestmark = pytest.mark.mount

READERS = 64
CYCLES = 1000
THREAD_SLACK = 8
FD_SLACK = 8
RSS_SLACK_BYTES = 64 * MIB
QUIET_S = 0.5  # how long threads and fds must stay the same to count as settled


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    yield from mounts_fixture(tmp_path)


def _resources(pid: int) -> tuple[int, int, int]:
    """(threads, open fds, RSS bytes) of process ``pid``."""
    threads = len(os.listdir(f"/proc/{pid}/task"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return threads, fds, rss_pages * os.sysconf("SC_PAGE_SIZE")


def _settled_resources(pid: int) -> tuple[int, int, int]:
    """Resources once the daemon's threads and fds stopped changing for `QUIET_S` (idle
    worker threads and pooled connections of the last burst went away), at most 15 s later.

    Nothing in the daemon announces that it is idle, so this waits for a quiet period: a
    baseline taken too early only makes the later comparison more lenient.
    """
    samples = [_resources(pid)]
    stable_since = time.monotonic()

    def quiet() -> bool:
        now = _resources(pid)
        if now[:2] != samples[-1][:2]:
            nonlocal stable_since
            stable_since = time.monotonic()
        samples.append(now)
        return time.monotonic() - stable_since >= QUIET_S

    poll_until(quiet, 15, step_s=0.1)
    return samples[-1]


def _run_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "a reader hung"
    assert not errors, errors[:3]


def test_reliability_64_readers_and_open_close_cycles_leak_nothing(
    emulator: EmulatorServer, mounts: Mounts
) -> None:
    files = {f"load/f{i:02d}.bin": data_for(i, 64 * 1024 + i * 13_001) for i in range(32)}
    files["load/big.bin"] = data_for(99, 6 * MIB + 7)
    for key, data in files.items():
        emulator.put_object(BUCKET, key, data)
    mp = mounts.mount(emulator.endpoint, "--cache-size", "8MiB")
    names = sorted(files)

    def readers(i: int) -> None:
        rng = random.Random(i)
        for _ in range(4):
            key = rng.choice(names)
            data = files[key]
            with open(mp / key, "rb") as f:
                if rng.random() < 0.5:
                    assert f.read() == data
                else:
                    for _ in range(5):
                        off = rng.randrange(len(data))
                        f.seek(off)
                        assert f.read(40_000) == data[off : off + 40_000]

    def cycles(i: int) -> None:
        rng = random.Random(1000 + i)  # i: 0-7 measured, 8-15 the warm-up
        for _ in range(CYCLES // 8):
            key = rng.choice(names)
            fd = os.open(mp / key, os.O_RDONLY)
            try:
                off = rng.randrange(len(files[key]))
                assert os.pread(fd, 4096, off) == files[key][off : off + 4096]
            finally:
                os.close(fd)

    pid = daemon_pid(mp)
    # Warm-up, the same work as measured: pools and caches reach their working size (a cycle's
    # first read may run two GETs at once: its units, and its block read ahead).
    _run_threads(READERS, readers)
    _run_threads(8, lambda i: cycles(8 + i))
    threads0, fds0, rss0 = _settled_resources(pid)
    _run_threads(READERS, readers)
    _run_threads(8, cycles)
    # Idle FUSE worker threads and pooled connections may take a moment to go away.
    latest = [_resources(pid)]

    def back_to_baseline() -> bool:
        latest.append(_resources(pid))
        threads, fds, _ = latest[-1]
        return threads <= threads0 + THREAD_SLACK and fds <= fds0 + FD_SLACK

    poll_until(back_to_baseline, 15, step_s=0.1)
    threads1, fds1, rss1 = latest[-1]
    assert threads1 <= threads0 + THREAD_SLACK, (threads0, threads1)
    assert fds1 <= fds0 + FD_SLACK, (fds0, fds1)
    assert rss1 <= rss0 + RSS_SLACK_BYTES, (rss0 >> 20, rss1 >> 20)
    doc = json.loads(os.getxattr(mp, STATS_XATTR))
    assert doc["served"]["open_handles"] == 0, doc["served"]  # every release arrived
    assert doc["served"]["opens"] >= READERS * 8 + CYCLES
    # ENOTTY answers the isatty() ioctl of Python's buffered open(); nothing else failed.
    errors = {k: v for k, v in doc["served"]["errors_by_errno"].items() if k != "ENOTTY"}
    assert not errors, doc["served"]
    assert doc["memory"]["cache_bytes"] <= doc["cache"]["capacity_bytes"] == 8 * MIB
