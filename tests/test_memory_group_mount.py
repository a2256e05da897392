"""Real mounts in real memory control groups, with DEFAULT options: the daemon stays inside its
group's limit while readers read through it, and is never OOM-killed.

Each case makes a memory control group with a limit (`tests.support.memory_groups`: cgroup v1
under this process's own memory group, or v2 where memory is accounted there), starts ``ossfs
mount`` inside it (the daemon it forks stays there), and runs the readers outside it, each in
its own process. The local server answers with the remote profile (20 ms to a first byte, 100
MB/s per connection), so read-ahead is active. Each case asserts the exact bytes (SHA-256 of
what every reader read against the object's), that the group saw no OOM kill (``oom_kill`` of v1
``memory.oom_control``, v2 ``memory.events``), and that the group's peak usage (v1
``memory.max_usage_in_bytes``, v2 ``memory.peak``) stayed below its limit.

Sizes are the issue's: 3 readers of 300 MiB objects in 400 MiB, 8 readers of 100 MiB objects
plus a random reader in 320 MiB (1.7 GB written once for the module: about 7 s here; each case
reads for about 5 s).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer, FaultSettings
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.support.memory_groups import MemoryGroup, memory_group, python_in
from tests.support.mounts import MIB, ossfs_env, run_ossfs
from tests.support.reader_programs import HOG, RANDOM, SEQUENTIAL
from tests.support.waiting import wait_until

pytestmark = pytest.mark.mount

REPO: Final = Path(__file__).resolve().parent.parent
LARGE_BYTES: Final = 300 * MIB
MEDIUM_BYTES: Final = 100 * MIB
LARGE_READERS: Final = 3
MEDIUM_READERS: Final = 8
RANDOM_READS: Final = 100
RANDOM_IO: Final = 128 << 10
CHUNK: Final = MIB
_BASES: Final = 8
_READ_TIMEOUT_S: Final = 300.0


@functools.cache
def _bases(seed: int) -> tuple[bytes, ...]:
    rng = random.Random(seed)
    return tuple(rng.randbytes(CHUNK) for _ in range(_BASES))


def _chunk(seed: int, index: int) -> bytes:
    return struct.pack("<QQ", seed, index) + _bases(seed)[index % _BASES][16:]


def object_chunks(seed: int, size: int) -> Iterator[bytes]:
    """The bytes of test object ``seed``, 1 MiB at a time: random, each chunk stamped with
    ``(seed, index)`` in its first 16 bytes (so no two chunks of any object are equal), made
    from 8 random bases per object (so 1.7 GB are made in well under a second)."""
    for index in range(-(-size // CHUNK)):
        yield _chunk(seed, index)[: min(CHUNK, size - index * CHUNK)]


def object_slice(seed: int, offset: int, length: int) -> bytes:
    """Bytes ``[offset, offset + length)`` of test object ``seed``."""
    first, last = offset // CHUNK, (offset + length - 1) // CHUNK
    joined = b"".join(_chunk(seed, index) for index in range(first, last + 1))
    start = offset - first * CHUNK
    return joined[start : start + length]


def _stored(emulator: EmulatorServer, key: str, seed: int, size: int) -> Stored:
    """Put test object ``seed`` under ``key``, hashing it on the way."""
    digest = hashlib.sha256()

    def chunks() -> Iterator[bytes]:
        for chunk in object_chunks(seed, size):
            digest.update(chunk)
            yield chunk

    emulator.put_object_from_chunks(BUCKET, key, chunks())
    return Stored(key, seed, size, digest.hexdigest())


@dataclass(frozen=True)
class Stored:
    key: str
    seed: int
    size: int
    sha256: str


@dataclass
class Server:
    emulator: EmulatorServer
    objects: dict[str, Stored]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """The local server with every test object, answering with the remote profile. Its 1.7 GB
    are removed afterwards (pytest keeps its temporary directories of recent runs)."""
    with tempfile.TemporaryDirectory(prefix="ossfs-memory-group-") as data:
        config = EmulatorConfig(
            data_dir=Path(data),
            buckets=(BUCKET,),
            credentials=(Credential(ACCESS_KEY_ID, ACCESS_KEY_SECRET),),
            anonymous=False,
        )
        plan = [(f"large/{i}", 100 + i, LARGE_BYTES) for i in range(LARGE_READERS)]
        plan += [(f"medium/{i}", 200 + i, MEDIUM_BYTES) for i in range(MEDIUM_READERS)]
        with EmulatorServer(config) as emulator:
            objects = {key: _stored(emulator, key, seed, size) for key, seed, size in plan}
            emulator.faults.set(FaultSettings(latency_s=0.02, bandwidth_bytes_per_s=100_000_000))
            yield Server(emulator, objects)


@dataclass(frozen=True)
class Outcome:
    budget_bytes: int
    peak_bytes: int
    oom_kills: int
    scale_seen: float | None
    stats: dict[str, object]


def start_mount_in(
    group: MemoryGroup, server: Server, mountpoint: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """``ossfs mount`` of the test bucket with default options (and ``options``), started inside
    ``group``; makes ``mountpoint``."""
    mountpoint.mkdir()
    return python_in(
        group.directory,
        "-m",
        "ossfs",
        "mount",
        f"oss://{BUCKET}",
        str(mountpoint),
        "--endpoint",
        server.emulator.endpoint,
        *options,
        env=ossfs_env(),
    )


def mount_in(group: MemoryGroup, server: Server, mountpoint: Path, log: Path) -> None:
    """``ossfs mount`` with default options, started inside ``group``."""
    result = start_mount_in(group, server, mountpoint, "--log-file", str(log))
    assert result.returncode == 0, result.stderr


def read_through(
    server: Server,
    group: MemoryGroup,
    mountpoint: Path,
    sequential: list[str],
    random_reader: str | None = None,
) -> Outcome:
    """Mounted in ``group``: read ``sequential`` objects whole and ``random_reader``'s at random
    offsets, all at once from processes outside the group; check every byte; unmount."""
    log = mountpoint.parent / f"{mountpoint.name}.log"
    others = set(group.pids())
    mount_in(group, server, mountpoint, log)
    try:
        readers = [
            (
                key,
                subprocess.Popen(
                    [sys.executable, "-c", SEQUENTIAL, str(mountpoint / key)],
                    stdout=subprocess.PIPE,
                    text=True,
                ),
            )
            for key in sequential
        ]
        if random_reader is not None:
            argv = [str(mountpoint / random_reader), str(RANDOM_READS), str(RANDOM_IO), "7"]
            readers.append(
                (
                    "random",
                    subprocess.Popen(
                        [sys.executable, "-c", RANDOM, *argv], stdout=subprocess.PIPE, text=True
                    ),
                )
            )
        got = {}
        for name, reader in readers:
            out, _ = reader.communicate(timeout=_READ_TIMEOUT_S)
            assert reader.returncode == 0, f"reader of {name} failed: {out}"
            got[name] = out.strip()
        stats = json.loads(os.getxattr(str(mountpoint), "user.ossfs.obs.stats"))
    finally:
        result = run_ossfs("umount", str(mountpoint))
        assert result.returncode == 0, result.stderr
        # The daemon leaves the group when it exits; then the group can be removed.
        wait_until(lambda: set(group.pids()) <= others, 30, "the daemon to leave its group")
    for key in sequential:
        assert got[key] == server.objects[key].sha256, f"{key}: wrong bytes"
    if random_reader is not None:
        assert got["random"] == expected_random(server.objects[random_reader])
    memory = stats["memory"]
    return Outcome(
        budget_bytes=memory["budget_bytes"],
        peak_bytes=group.peak_bytes,
        oom_kills=group.oom_kills,
        scale_seen=memory.get("scale"),
        stats=stats,
    )


def expected_random(stored: Stored) -> str:
    rng = random.Random(7)
    digest = hashlib.sha256()
    for _ in range(RANDOM_READS):
        offset = rng.randrange(0, stored.size - RANDOM_IO)
        digest.update(object_slice(stored.seed, offset, RANDOM_IO))
    return digest.hexdigest()


def report(case: str, limit_bytes: int, outcome: Outcome) -> None:
    """One line for the run's log (``pytest -s``): the figures behind docs/memory.md."""
    print(
        f"\n{case}: limit {limit_bytes / MIB:.0f} MiB, budget {outcome.budget_bytes / MIB:.0f} "
        f"MiB, group peak {outcome.peak_bytes / MIB:.0f} MiB, OOM kills {outcome.oom_kills}, "
        f"scale {outcome.scale_seen}"
    )


def check(limit_bytes: int, outcome: Outcome) -> None:
    assert outcome.oom_kills == 0
    assert outcome.peak_bytes < limit_bytes


def test_memory_group_400mib_three_readers_of_objects_larger_than_the_cache(
    server: Server, tmp_path: Path
) -> None:
    limit = 400 * MIB
    with memory_group("three", limit) as group:
        outcome = read_through(
            server, group, tmp_path / "mnt", [f"large/{i}" for i in range(LARGE_READERS)]
        )
    report("400 MiB, 3 sequential readers", limit, outcome)
    check(limit, outcome)
    assert outcome.budget_bytes == 200 * MIB  # the default: half the limit


def test_memory_group_320mib_eight_readers_and_a_random_reader(
    server: Server, tmp_path: Path
) -> None:
    limit = 320 * MIB
    with memory_group("eight", limit) as group:
        outcome = read_through(
            server,
            group,
            tmp_path / "mnt",
            [f"medium/{i}" for i in range(MEDIUM_READERS)],
            random_reader="large/0",
        )
    report("320 MiB, 8 sequential readers and a random reader", limit, outcome)
    check(limit, outcome)
    assert outcome.budget_bytes == 160 * MIB


def test_memory_group_192mib_below_the_minimum_default_budget_fits(
    server: Server, tmp_path: Path
) -> None:
    """Under the 256 MiB a default budget is at least elsewhere: the limit less the 112 MiB
    the daemon itself needs beside it, 80 MiB."""
    limit = 192 * MIB
    with memory_group("small", limit) as group:
        outcome = read_through(
            server, group, tmp_path / "mnt", ["medium/0", "medium/1"], random_reader="large/1"
        )
    report("192 MiB, 2 sequential readers and a random reader", limit, outcome)
    check(limit, outcome)
    assert outcome.budget_bytes == 80 * MIB


def test_memory_group_too_small_for_ossfs_refuses_to_start(server: Server, tmp_path: Path) -> None:
    limit = 100 * MIB
    mountpoint = tmp_path / "mnt"
    with memory_group("tiny", limit) as group:
        result = start_mount_in(group, server, mountpoint)
        assert group.oom_kills == 0
    assert result.returncode == 2
    limit_file = "memory.limit_in_bytes" if group.v1 else "memory.max"
    assert result.stderr == (
        f"ossfs mount: error: this process's memory limit of 100.0 MiB (cgroup {group.name} "
        f"{limit_file}) is too small for ossfs: it needs 112.0 MiB for itself and "
        "32.0 MiB or more for file data; raise the limit to 144.0 MiB or more, or give a "
        "smaller --max-memory\n"
    )
    assert not os.path.ismount(mountpoint)


def test_memory_group_shared_with_a_hungry_process_shrinks_instead_of_dying(
    server: Server, tmp_path: Path
) -> None:
    """Another process of the group holds 140 MiB of the 320: the daemon's default budget of
    160 MiB and its own needs no longer fit. Its memory monitor shrinks the block cache and
    read-ahead to the room left (``shrinks`` in its stats), and every reader still gets every
    byte, without an OOM kill."""
    limit = 320 * MIB
    with memory_group("shared", limit) as group:
        hog = subprocess.Popen(
            [sys.executable, "-c", HOG, str(140 * MIB)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            (group.directory / "cgroup.procs").write_text(f"{hog.pid}\n")
            assert hog.stdin is not None and hog.stdout is not None
            hog.stdin.write("\n")
            hog.stdin.flush()
            assert hog.stdout.readline() == "ready\n"
            outcome = read_through(
                server,
                group,
                tmp_path / "mnt",
                [f"medium/{i}" for i in range(MEDIUM_READERS)],
                random_reader="large/0",
            )
        finally:
            hog.communicate("\n", timeout=30)
    report("320 MiB shared with 140 MiB held by another process", limit, outcome)
    check(limit, outcome)
    memory = outcome.stats["memory"]
    assert isinstance(memory, dict)
    assert memory["shrinks"] > 0
