"""Memory of an ossfs mount under load: peak RSS against the budget, and what the daemon uses
besides its block buffers, optionally inside a memory control group with a limit.

Usage: python scripts/bench_memory.py [--limit MiB] [--max-memory SIZE --cache-size SIZE]
                                      [--workloads a,b] [--profile remote|loopback]
                                      [--hog MiB] [--baseline-rev REV] [--json-out OUT]

Starts the local OSS server in this process (``remote``: 20 ms to a first byte, 100 MB/s per
connection; ``loopback``: no faults), writes the objects once, and for each workload mounts
``python -m ossfs mount`` afresh inside a new memory group (root needed; cgroup v1 under this
process's own where its memory is on v1, else v2) with ``--limit`` as its limit (default 8000
MiB: no pressure) and the given options (default: none, so the default budget for that limit),
runs the readers outside the group, each in its own process, and checks every byte they read.
Workloads:

- ``seq3x300``: 3 sequential readers of 300 MiB objects;
- ``seq8x100``: 8 sequential readers of 100 MiB objects and a random reader (128 KiB reads);
- ``rand8``: 8 random readers, 256 KiB reads; ``rand16``: 16 random readers, 1 MiB reads
  (the reply of a read across two blocks is joined: the most heap a read needs);
- ``small``: 1,000 files of 100 KiB read whole by 8 readers (directory read-ahead);
- ``verify``: ``ossfs verify --through`` the mount, of the three 300 MiB objects;
- ``idle``: mounted, nothing read.

For each it reports the mount's budget, the daemon's peak RSS (VmHWM) and RSS less budget, the
most the daemon held besides its block buffers (RSS less cached and in-flight blocks, sampled
every 50 ms from its stats), the group's peak usage and its OOM kills. ``--hog MiB``: another
process of the group holds that much while the readers run. ``--baseline-rev REV``: each
workload also with the ``ossfs`` package of that git revision (system ``ossfs@REV``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import pytest
from mount_helpers import REPO, baseline_tree, client_env

sys.path.insert(0, str(REPO))
from ossfs.emulator import (
    Credential,
    EmulatorConfig,
    EmulatorServer,
    FaultSettings,
)
from tests.support.memory_groups import MemoryGroup, memory_group, python_in
from tests.support.reader_programs import HOG, RANDOM, SEQUENTIAL

MIB: Final = 1 << 20
AK: Final = "bench-ak"
SK: Final = "bench-secret-0123456789"
BUCKET: Final = "bench-bucket"
WORKLOADS: Final = ("seq3x300", "seq8x100", "rand8", "rand16", "small", "verify", "idle")
_SMALL = """
import hashlib, os, sys
digest = hashlib.sha256()
for name in sorted(os.listdir(sys.argv[1])):
    with open(os.path.join(sys.argv[1], name), "rb") as f:
        digest.update(f.read())
print(digest.hexdigest())
"""


@dataclass(frozen=True, slots=True)
class Stored:
    key: str
    sha256: str
    size: int
    seed: int


@functools.cache
def _bases(seed: int) -> tuple[bytes, ...]:
    rng = random.Random(seed)
    return tuple(rng.randbytes(MIB) for _ in range(8))


def _chunk(seed: int, index: int) -> bytes:
    return struct.pack("<QQ", seed, index) + _bases(seed)[index % 8][16:]


def chunks(seed: int, size: int) -> Iterator[bytes]:
    """Object ``seed``'s bytes, 1 MiB at a time (random bases, each chunk stamped)."""
    for index in range(-(-size // MIB)):
        yield _chunk(seed, index)[: min(MIB, size - index * MIB)]


def expected_random(stored: Stored, count: int, io: int, seed: int) -> str:
    """The SHA-256 `RANDOM` prints for ``stored`` when every byte is right."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    for _ in range(count):
        offset = rng.randrange(0, stored.size - io)
        first, last = offset // MIB, (offset + io - 1) // MIB
        joined = b"".join(_chunk(stored.seed, i) for i in range(first, last + 1))
        digest.update(joined[offset - first * MIB : offset - first * MIB + io])
    return digest.hexdigest()


@functools.cache
def expected_small() -> str:
    digest = hashlib.sha256()
    for i in range(1000):
        digest.update(b"".join(chunks(10_000 + i, 100 * 1024)))
    return digest.hexdigest()


def put(server: EmulatorServer, key: str, seed: int, size: int) -> Stored:
    digest = hashlib.sha256()

    def hashed() -> Iterator[bytes]:
        for chunk in chunks(seed, size):
            digest.update(chunk)
            yield chunk

    server.put_object_from_chunks(BUCKET, key, hashed())
    return Stored(key, digest.hexdigest(), size, seed)


@dataclass(slots=True)
class Row:
    workload: str
    system: str
    budget_bytes: int | None = None
    peak_rss_bytes: int | None = None
    overhead_bytes: int | None = None
    block_bytes: int | None = None
    group_peak_bytes: int | None = None
    oom_kills: int | None = None
    scale: float | None = None
    seconds: float | None = None
    status: str = "ok"


class Sampler:
    """Samples the daemon's stats every 50 ms: the most RSS less block bytes, and the most
    block bytes (cached and reserved)."""

    def __init__(self, mountpoint: Path) -> None:
        self._mountpoint = mountpoint
        self._stop = threading.Event()
        self.overhead = 0
        self.blocks = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                doc = json.loads(os.getxattr(str(self._mountpoint), "user.ossfs.obs.stats"))
                cache = doc["cache"]
                blocks = int(cache["used_bytes"]) + int(cache.get("reserved_bytes", 0))
                self.overhead = max(self.overhead, int(doc["memory"]["rss_bytes"]) - blocks)
                self.blocks = max(self.blocks, blocks)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def vm_hwm(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


Reader = tuple[subprocess.Popen[str], str | None]
"""A reader process, and the SHA-256 it must print (None: its exit code says it all)."""


def readers(
    workload: str, mountpoint: Path, objects: dict[str, Stored], server: EmulatorServer
) -> list[Reader]:
    python = sys.executable

    def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)

    def randoms(count: int, io: int, seed: int) -> Reader:
        argv = (str(mountpoint / "big/0"), str(count), str(io), str(seed))
        return run(python, "-c", RANDOM, *argv), expected_random(objects["big/0"], count, io, seed)

    out: list[Reader] = []
    if workload in ("seq3x300", "seq8x100"):
        keys = [f"big/{i}" for i in range(3)] if workload == "seq3x300" else []
        keys += [f"mid/{i}" for i in range(8)] if workload == "seq8x100" else []
        for key in keys:
            out.append((run(python, "-c", SEQUENTIAL, str(mountpoint / key)), objects[key].sha256))
        if workload == "seq8x100":
            out.append(randoms(200, 128 << 10, 1))
    elif workload in ("rand8", "rand16"):
        count, io = (8, 256 << 10) if workload == "rand8" else (16, MIB)
        out += [randoms(300, io, seed) for seed in range(count)]
    elif workload == "small":
        for _ in range(8):
            out.append((run(python, "-c", _SMALL, str(mountpoint / "small")), expected_small()))
    elif workload == "verify":
        argv = [python, "-m", "ossfs", "verify", f"oss://{BUCKET}/big/", "--json"]
        argv += ["--endpoint", server.endpoint, "--through", str(mountpoint)]
        out.append((run(*argv, env=client_env(AK, SK)), None))
    return out


def measure(
    workload: str,
    system: str,
    *,
    cwd: Path,
    server: EmulatorServer,
    objects: dict[str, Stored],
    args: argparse.Namespace,
) -> Row:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return measure_in_group(
                workload, system, Path(tmp), cwd=cwd, server=server, objects=objects, args=args
            )
    except pytest.skip.Exception as exc:  # no memory group can be made here
        return Row(workload, system, status=f"not measured: {exc}")


def measure_in_group(
    workload: str,
    system: str,
    tmp: Path,
    *,
    cwd: Path,
    server: EmulatorServer,
    objects: dict[str, Stored],
    args: argparse.Namespace,
) -> Row:
    row = Row(workload, system)
    with memory_group(f"bench-{workload}", args.limit * MIB) as group:
        mountpoint = tmp / "mnt"
        mountpoint.mkdir()
        hog = start_hog(group, args.hog) if args.hog else None
        try:
            row = run_mounted(
                workload,
                system,
                cwd=cwd,
                server=server,
                objects=objects,
                args=args,
                group=group,
                mountpoint=mountpoint,
            )
        finally:
            if hog is not None:
                hog.communicate("\n", timeout=60)
        row.group_peak_bytes = group.peak_bytes
        row.oom_kills = group.oom_kills
    return row


def start_hog(group: MemoryGroup, mib: int) -> subprocess.Popen[str]:
    hog = subprocess.Popen(
        [sys.executable, "-c", HOG, str(mib * MIB)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    (group.directory / "cgroup.procs").write_text(f"{hog.pid}\n")
    assert hog.stdin is not None and hog.stdout is not None
    hog.stdin.write("\n")
    hog.stdin.flush()
    if hog.stdout.readline() != "ready\n":
        raise RuntimeError("the hog did not start")
    return hog


def run_mounted(
    workload: str,
    system: str,
    *,
    cwd: Path,
    server: EmulatorServer,
    objects: dict[str, Stored],
    args: argparse.Namespace,
    group: MemoryGroup,
    mountpoint: Path,
) -> Row:
    row = Row(workload, system)
    others = set(group.pids())
    options = [*(["--max-memory", args.max_memory] if args.max_memory else [])]
    options += ["--cache-size", args.cache_size] if args.cache_size else []
    env = client_env(AK, SK)
    with contextlib.chdir(cwd):  # ``python -m`` runs the package of its working directory
        mounted = python_in(
            group.directory,
            "-m",
            "ossfs",
            "mount",
            f"oss://{BUCKET}",
            str(mountpoint),
            "--endpoint",
            server.endpoint,
            *options,
            env=env,
        )
    if mounted.returncode != 0:
        row.status = f"mount failed: {mounted.stderr.strip()}"[:200]
        return row
    daemon = next(iter(set(group.pids()) - others))
    sampler = Sampler(mountpoint)
    try:
        started = time.monotonic()
        good = True
        for proc, expected in readers(workload, mountpoint, objects, server):
            output, _ = proc.communicate(timeout=1800)
            good &= proc.returncode == 0 and expected in (None, output.strip())
        row.seconds = time.monotonic() - started
        if workload == "idle":
            time.sleep(1.0)  # a mount at rest: a second of it
        row.peak_rss_bytes = vm_hwm(daemon)
        with contextlib.suppress(OSError, ValueError, KeyError):
            memory = json.loads(os.getxattr(str(mountpoint), "user.ossfs.obs.stats"))["memory"]
            row.budget_bytes = int(memory["budget_bytes"])
            row.scale = memory.get("scale")
        row.status = "ok" if good else "WRONG BYTES or a reader failed"
    finally:
        sampler.stop()
        row.overhead_bytes, row.block_bytes = sampler.overhead, sampler.blocks
        subprocess.run(
            [sys.executable, "-m", "ossfs", "umount", str(mountpoint)],
            env=env,
            capture_output=True,
            check=False,
            cwd=REPO,
        )
        deadline = time.monotonic() + 30
        while set(group.pids()) - others and time.monotonic() < deadline:
            time.sleep(0.1)
    return row


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| workload | system | budget MiB | peak RSS MiB | RSS - budget | besides blocks MiB | "
        "group peak MiB | OOM kills | scale | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        over = (
            "-"
            if r.peak_rss_bytes is None or r.budget_bytes is None
            else f"{(r.peak_rss_bytes - r.budget_bytes) / MIB:+.0f}"
        )
        lines.append(
            f"| {r.workload} | {r.system} | {mib(r.budget_bytes)} | {mib(r.peak_rss_bytes)} | "
            f"{over} | {mib(r.overhead_bytes)} | {mib(r.group_peak_bytes)} | "
            f"{'-' if r.oom_kills is None else r.oom_kills} | "
            f"{'-' if r.scale is None else f'{r.scale:.2f}'} | {r.status} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--limit", type=int, default=8000, help="the group's limit in MiB")
    parser.add_argument("--max-memory", help="ossfs --max-memory (default: its default)")
    parser.add_argument("--cache-size", help="ossfs --cache-size (default: its default)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--profile", choices=("remote", "loopback"), default="remote")
    parser.add_argument("--hog", type=int, default=0, help="MiB another process of the group holds")
    parser.add_argument("--baseline-rev", metavar="REV")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    chosen = [w for w in args.workloads.split(",") if w]
    unknown = set(chosen) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        systems = [("ossfs", REPO)]
        if args.baseline_rev:
            systems.append(
                (f"ossfs@{args.baseline_rev}", baseline_tree(args.baseline_rev, Path(tmp)))
            )
        config = EmulatorConfig(
            data_dir=Path(tmp) / "data",
            buckets=(BUCKET,),
            credentials=(Credential(AK, SK),),
            anonymous=False,
        )
        with EmulatorServer(config) as server:
            print("writing the objects ...", file=sys.stderr)
            objects = {f"big/{i}": put(server, f"big/{i}", i, 300 * MIB) for i in range(3)}
            objects |= {f"mid/{i}": put(server, f"mid/{i}", 100 + i, 100 * MIB) for i in range(8)}
            for i in range(1000):
                put(server, f"small/f{i:04d}", 10_000 + i, 100 * 1024)
            if args.profile == "remote":
                server.faults.set(FaultSettings(latency_s=0.02, bandwidth_bytes_per_s=100_000_000))
            rows: list[Row] = []
            for workload in chosen:
                for system, cwd in systems:
                    row = measure(
                        workload, system, cwd=cwd, server=server, objects=objects, args=args
                    )
                    print(f"{workload} {system}: {row.status}", file=sys.stderr)
                    rows.append(row)
    where = f"limit {args.limit} MiB" + (
        f", {args.hog} MiB held by another process" if args.hog else ""
    )
    options = " ".join(
        f"{flag} {value}"
        for flag, value in (("--max-memory", args.max_memory), ("--cache-size", args.cache_size))
        if value
    )
    print(f"## ossfs memory, {args.profile} profile, {where}, {options or 'default options'}\n")
    print(table(rows))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.status == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
