"""Random reads and several streams on one handle: bytes fetched per read, ops/s, MB/s.

Usage: python scripts/bench_streams.py [--size 256MiB] [--profile remote] [--repeat N]
                                       [--baseline-rev REV] [--workloads W,...] [--json-out OUT]

Starts the emulator in this process with one object of ``--size`` bytes and measures, side by
side in one run (a fresh mount for each case, the paths interleaved in a rotating order):

- ``rand4k-fadv`` / ``rand4k``: 200 seeded random 4 KiB ``pread``s of one fd, with and without
  ``POSIX_FADV_RANDOM`` (ops/s);
- ``rand256k-fadv``: 40 seeded random 256 KiB ``pread``s with ``POSIX_FADV_RANDOM`` (MB/s);
- ``streams2``: two sequential streams interleaved on one fd, 1 MiB ``pread``s at offset 0.. and
  at half the object.. in turn, to the end (MB/s);
- ``seq``: ``cat`` of the object (MB/s): sequential readers must not lose.

Paths: ``ossfs`` (this checkout), ``ossfs@REV`` (with ``--baseline-rev``), and ``oss2`` (the
direct stream, one ``get_object`` of the whole object, for the ratio). For each it reports the
GETs and bytes the server saw, bytes fetched per application read, and what the kernel asked of
the daemon (FUSE reads and their mean size, from the mount's stats xattr). Medians of the runs;
the JSON keeps every sample. Profile ``remote``: every GET's answer waits 20 ms, then flows at
100 MB/s per connection (as ``bench_read.py``); ``loopback``: no faults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mount_helpers
import oss2
from bench_read import PROFILES, make_file, settled
from mount_helpers import baseline_tree, client_env

from ossfs.core.sizes import parse_size
from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
from ossfs.obs.stats import STATS_XATTR

AK, SK, BUCKET = "bench-ak", "bench-secret-0123456789", "bench-bucket"
KEY = "big.bin"
MIB = 1 << 20
WORKLOADS = ("rand4k-fadv", "rand4k", "rand256k-fadv", "streams2", "seq")


def random_reads(path: Path, io: int, ops: int, *, fadvise: bool) -> tuple[int, int]:
    """``ops`` seeded random ``pread``s of ``io`` bytes (4 KiB aligned); (reads, bytes)."""
    size = path.stat().st_size
    rng = random.Random(42)
    offsets = [rng.randrange(0, size - io + 1) // 4096 * 4096 for _ in range(ops)]
    fd = os.open(path, os.O_RDONLY)
    try:
        if fadvise:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        n = sum(len(os.pread(fd, io, off)) for off in offsets)
    finally:
        os.close(fd)
    if n != io * ops:
        raise RuntimeError(f"short reads: {n} of {io * ops} bytes")
    return ops, n


def two_streams(path: Path) -> tuple[int, int]:
    """1 MiB ``pread``s at 0.. and at half the object.., in turn; (reads, bytes)."""
    size = path.stat().st_size
    half = size // 2
    fd = os.open(path, os.O_RDONLY)
    reads = n = 0
    try:
        for pos in range(0, half, MIB):
            for base in (0, half):
                n += len(os.pread(fd, MIB, base + pos))
                reads += 1
    finally:
        os.close(fd)
    return reads, n


def cat(path: Path) -> tuple[int, int]:
    buf = bytearray(MIB)
    reads = n = 0
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            n += k
            reads += 1
    return reads, n


TASKS: dict[str, Callable[[Path], tuple[int, int]]] = {
    "rand4k-fadv": lambda p: random_reads(p, 4096, 200, fadvise=True),
    "rand4k": lambda p: random_reads(p, 4096, 200, fadvise=False),
    "rand256k-fadv": lambda p: random_reads(p, 256 << 10, 40, fadvise=True),
    "streams2": two_streams,
    "seq": cat,
}


def served_stats(mountpoint: Path) -> dict[str, int]:
    """What the daemon answered so far (its stats xattr): FUSE reads and bytes."""
    raw = os.getxattr(mountpoint, STATS_XATTR)
    served = json.loads(raw)["served"]
    return {"reads": int(served["reads"]), "bytes": int(served["bytes"])}


@contextlib.contextmanager
def mounted(endpoint: str, mountpoint: Path, pythonpath: Path | None) -> Iterator[Path]:
    with mount_helpers.mounted(
        f"oss://{BUCKET}",
        mountpoint,
        env=client_env(AK, SK),
        args=("--endpoint", endpoint),
        pythonpath=pythonpath,
    ) as mp:
        yield mp


def measure_mount(
    server: EmulatorServer, mountpoint: Path, pythonpath: Path | None, workload: str
) -> dict[str, Any]:
    with mounted(server.endpoint, mountpoint, pythonpath) as mp:
        os.stat(mp / KEY)
        settled(server)
        server.log.clear()
        before = served_stats(mp)
        began = time.perf_counter()
        reads, n = TASKS[workload](mp / KEY)
        seconds = time.perf_counter() - began
        after = served_stats(mp)
        gets, served = settled(server)
    fuse_reads = after["reads"] - before["reads"]
    return {
        "seconds": seconds,
        "reads": reads,
        "bytes": n,
        "gets": gets,
        "served": served,
        "fuse_reads": fuse_reads,
        "fuse_bytes": after["bytes"] - before["bytes"],
    }


def measure_oss2(server: EmulatorServer) -> dict[str, Any]:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET, enable_crc=False)
    server.log.clear()
    began = time.perf_counter()
    body = bucket.get_object(KEY)
    with open(os.devnull, "wb") as sink:
        shutil.copyfileobj(body, sink, MIB)
    seconds = time.perf_counter() - began
    gets, served = settled(server)
    size = int(body.content_length)
    return {"seconds": seconds, "reads": 1, "bytes": size, "gets": gets, "served": served}


def run(args: argparse.Namespace) -> dict[str, dict[str, list[dict[str, Any]]]]:
    size = parse_size(args.size)
    workloads = args.workloads.split(",")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="ossfs-bench-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "src.bin"
        make_file(src, size)
        baseline = baseline_tree(args.baseline_rev, tmp) if args.baseline_rev else None
        paths: list[tuple[str, Path | None]] = [("ossfs", None)]
        if baseline is not None:
            paths.append((f"ossfs@{args.baseline_rev}", baseline))
        config = EmulatorConfig(
            data_dir=tmp / "data", buckets=(BUCKET,), credentials=(Credential(AK, SK),)
        )
        with EmulatorServer(config) as server:
            server.put_object_from_file(BUCKET, KEY, src)
            server.faults.set(PROFILES[args.profile])
            results["oss2"] = {"stream": [measure_oss2(server) for _ in range(args.repeat)]}
            for workload in workloads:
                for run_no in range(args.repeat):
                    order = paths[run_no % len(paths) :] + paths[: run_no % len(paths)]
                    for name, pythonpath in order:
                        sample = measure_mount(server, tmp / f"mnt-{run_no}", pythonpath, workload)
                        results.setdefault(name, {}).setdefault(workload, []).append(sample)
            server.faults.clear()
    return results


def median_of(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(samples, key=lambda s: s["seconds"])
    return ordered[(len(ordered) - 1) // 2]


def table(results: dict[str, dict[str, list[dict[str, Any]]]], profile: str) -> str:
    oss2_s = statistics.median(s["seconds"] for s in results["oss2"]["stream"])
    oss2_mbs = results["oss2"]["stream"][0]["bytes"] / oss2_s / 1e6
    lines = [
        f"Profile {profile}; direct oss2 stream {oss2_mbs:.1f} MB/s (median of "
        f"{len(results['oss2']['stream'])}). Medians per path; MB/s is 10**6 bytes a second.",
        "",
        "| workload | path | ops/s | MB/s | x oss2 stream | GETs | KiB fetched per read |"
        " FUSE reads | mean FUSE read KiB | runs (s) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for workload in WORKLOADS:
        for name, by_workload in results.items():
            if name == "oss2" or workload not in by_workload:
                continue
            runs = by_workload[workload]
            s = median_of(runs)
            mbs = s["bytes"] / s["seconds"] / 1e6
            fuse = s["fuse_reads"]
            mean = s["fuse_bytes"] / fuse / 1024 if fuse else 0.0
            times = ", ".join(f"{r['seconds']:.2f}" for r in runs)
            lines.append(
                f"| {workload} | {name} | {s['reads'] / s['seconds']:.1f} | {mbs:.1f} | "
                f"{mbs / oss2_mbs:.2f} | {s['gets']} | {s['served'] / s['reads'] / 1024:.0f} | "
                f"{fuse} | {mean:.0f} | {times} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MiB", help="object size (default 256MiB)")
    parser.add_argument("--profile", default="remote", choices=sorted(PROFILES))
    parser.add_argument("--repeat", type=int, default=2, help="runs per path (median shown)")
    parser.add_argument("--baseline-rev", help="also measure the ossfs of this git revision")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--json-out", metavar="OUT", help="write every sample as JSON")
    args = parser.parse_args()
    unknown = set(args.workloads.split(",")) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s) {sorted(unknown)}; choose from {list(WORKLOADS)}")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    results = run(args)
    print(table(results, args.profile))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
