"""Faults on the wire, through a real mount: 503/500s, resets and cut-short bodies mid-body,
latency spikes. Whatever the server does, ``cp -r`` through the mount is byte-identical to the
source, and both the server's fault counters and the mount's retry log show the faults were hit.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ossfs.emulator import EmulatorServer
from ossfs.obs.stats import STATS_XATTR
from tests.support import BUCKET
from tests.support.mounts import (
    MIB,
    Mounts,
    data_for,
    files_under,
    mounts_fixture,
)

pytestmark = pytest.mark.mount

# A mixed tree of about 48 MiB: empty files, tiny ones, block edges, several-MiB ones.
TREE_SIZES: tuple[int, ...] = (
    0,
    1,
    100,
    4095,
    4096,
    65_537,
    MIB - 1,
    MIB,
    MIB + 1,
    2 * MIB + 333,
    3 * MIB,
    5 * MIB + 12_345,
    7 * MIB + 1,
    9 * MIB - 7,
    11 * MIB + 4321,
    6 * MIB + 17,
)
SMALL_FILES = 150


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    yield from mounts_fixture(tmp_path)


def _mount_stats(mp: Path) -> dict[str, object]:
    """The daemon's own counters (the mount root's ``user.ossfs.obs.stats`` xattr, JSON)."""
    doc = json.loads(os.getxattr(mp, STATS_XATTR))
    assert isinstance(doc, dict)
    return doc


def put_mixed_tree(emulator: EmulatorServer, prefix: str = "tree/") -> dict[str, bytes]:
    """About 48 MiB in nested directories; returns key -> bytes."""
    tree: dict[str, bytes] = {}
    for i, size in enumerate(TREE_SIZES):
        tree[f"{prefix}big/{i:02d}-{size}.bin"] = data_for(i, size)
    for i in range(SMALL_FILES):
        tree[f"{prefix}small/d{i % 8}/f{i:03d}.dat"] = data_for(1000 + i, (i * 7919) % 20_000)
    tree[f"{prefix}deep/a/b/c/d/e/leaf.txt"] = b"leaf\n"
    for key, data in tree.items():
        emulator.put_object(BUCKET, key, data)
    return tree


class LatencySpikes:
    """Turns the server's latency on (``spike_s``) for a moment now and then, until stopped."""

    def __init__(self, emulator: EmulatorServer, spike_s: float = 0.2) -> None:
        self._emulator = emulator
        self._spike_s = spike_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LatencySpikes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._emulator.faults.update(latency_s=0.0)

    def _run(self) -> None:
        # The spikes' timing is the fault under test (not synchronisation): 100 ms of latency
        # every 500 ms, until the test stops them.
        while True:
            self._emulator.faults.update(latency_s=self._spike_s)
            if self._stop.wait(0.1):
                return
            self._emulator.faults.update(latency_s=0.0)
            if self._stop.wait(0.4):
                return


def test_reliability_cp_r_under_faults_is_byte_identical(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    tree = put_mixed_tree(emulator)
    assert sum(map(len, tree.values())) > 45 * MIB
    log_file = tmp_path / "mount.log"
    mp = mounts.mount(emulator.endpoint, "--debug", "--log-file", str(log_file))
    emulator.log.clear()
    emulator.faults.update(error_rate=0.05, reset_rate=0.01, truncate_rate=0.01)
    out = tmp_path / "copy"
    with LatencySpikes(emulator):
        subprocess.run(["cp", "-r", str(mp / "tree"), str(out)], check=True, timeout=240)
    emulator.faults.clear()
    assert files_under(out) == {k.removeprefix("tree/"): v for k, v in tree.items()}
    faults = emulator.log.fault_counts()
    assert faults.get("error", 0) > 0, faults
    assert faults.get("latency", 0) > 0, faults
    retries = len(re.findall(r"DEBUG ossfs\.store\.retry: retry ", log_file.read_text()))
    assert retries >= faults["error"] // 2, (retries, faults)
    store = _mount_stats(mp)["store"]
    assert isinstance(store, dict)
    assert store["retries"] == retries, (store, retries)
    assert store.get("gave_up", 0) == 0, store


def test_reliability_broken_bodies_are_resumed_through_the_mount(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    """Resets and cut-short bodies often enough that each kind is surely hit many times."""
    data = data_for(77, 8 * MIB + 999)
    emulator.put_object(BUCKET, "resume.bin", data)
    log_file = tmp_path / "mount.log"
    mp = mounts.mount(
        emulator.endpoint,
        *("--block-size", "64KiB", "--cache-size", "256KiB"),
        *("--debug", "--log-file", str(log_file)),
    )
    emulator.log.clear()
    emulator.faults.update(reset_rate=0.2, truncate_rate=0.2, key_prefix="resume")
    copy = tmp_path / "resume.bin"
    subprocess.run(["cp", str(mp / "resume.bin"), str(copy)], check=True, timeout=240)
    assert copy.read_bytes() == data
    rng = random.Random(5)
    fd = os.open(mp / "resume.bin", os.O_RDONLY)
    try:
        # cp left the whole file in the kernel's page cache (kept across opens while the object
        # is unchanged): without dropping it, the preads would never reach ossfs, and cp's few
        # large GETs alone may miss one kind of fault.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for _ in range(120):
            offset = rng.randrange(len(data))
            size = rng.choice([1, 4096, 100_000, 300_000])
            assert os.pread(fd, size, offset) == data[offset : offset + size]
    finally:
        os.close(fd)
    emulator.faults.clear()
    faults = emulator.log.fault_counts()
    assert faults.get("reset", 0) > 0 and faults.get("truncate", 0) > 0, faults
    assert "DEBUG ossfs.store.retry: retry get" in log_file.read_text()


def test_reliability_directory_read_ahead_under_faults_never_serves_wrong_bytes(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    """Small files read in listing order: their read-ahead GETs (on the curl loop) meet 5xx
    answers, resets and cut-short bodies; each failed one is fetched again by its reader."""
    files = {
        f"walk/f{i:03d}.dat": data_for(3000 + i, 2000 + (i * 997) % 60_000) for i in range(200)
    }
    for key, data in files.items():
        emulator.put_object(BUCKET, key, data)
    log_file = tmp_path / "mount.log"
    mp = mounts.mount(emulator.endpoint, "--log-file", str(log_file), "--log-level", "debug")
    assert "directory read-ahead: up to" in log_file.read_text()
    assert "on one thread (libcurl's multi interface)" in log_file.read_text()
    os.listdir(mp / "walk")
    emulator.log.clear()
    emulator.faults.update(error_rate=0.1, reset_rate=0.1, truncate_rate=0.1, key_prefix="walk/")
    for key in sorted(files):
        assert (mp / key).read_bytes() == files[key], key
    emulator.faults.clear()
    faults = emulator.log.fault_counts()
    assert all(faults.get(kind, 0) > 0 for kind in ("error", "reset", "truncate")), faults
    siblings = _mount_stats(mp)["sibling_prefetch"]
    assert isinstance(siblings, dict)
    assert siblings["files_prefetched"] > len(files) // 2, siblings
    assert siblings["files_failed"] > 0, siblings
    store = _mount_stats(mp)["store"]
    assert isinstance(store, dict)
    assert store.get("gave_up", 0) == 0, store
