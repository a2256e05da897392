"""The disk cache (``--cache-dir``) against reading from the bucket and from local disk.

Usage: python scripts/bench_disk_cache.py [--profile loopback|remote] [--max-memory MiB]
                                          [--files N] [--readers N] [--repeats N]
                                          [--json-out OUT]

Starts the local OSS server in this process (``remote``: 20 ms to a first byte, 100 MB/s per
connection; ``loopback``: no faults) with a data set of ``--files`` objects, 4x ``--max-memory``
in all, and the same files in a local directory beside the cache directories. Then, ``--repeats``
times (an even number: the order alternates, ABBA), on fresh mounts:

- **epoch 1, cache off**: read every file through a mount without ``--cache-dir``;
- **epoch 1, cache on**: the same with a new, empty ``--cache-dir``; unmount (the writer
  finishes its queue), mount again with the same directory, and
- **epoch 2**: read every file again through that remounted mount; and, right after,
- **local**: read the same files from the local directory.

Each read is ``--readers`` threads reading whole files with 1 MiB reads, every byte checked
(SHA-256). Reported per run: seconds and MB/s, GETs and bytes the server served, the daemon's
CPU-seconds, and the disk cache's counters (``ossfs stats``). The local files and the disk
cache's files are both in the kernel's page cache (just written, nothing dropped): "local" is
the speed of reading page cache, the most a disk read can be.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from mount_helpers import REPO, client_env, cpu_seconds, daemon_pids, mounted

sys.path.insert(0, str(REPO))
from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer, FaultSettings

MIB: Final = 1 << 20
AK: Final = "bench-ak"
SK: Final = "bench-secret-0123456789"
BUCKET: Final = "bench-bucket"


def read_all(paths: list[Path], readers: int) -> dict[str, str]:
    """SHA-256 of every file, read whole with 1 MiB reads by ``readers`` threads."""

    def digest(path: Path) -> tuple[str, str]:
        h = hashlib.sha256()
        buf = bytearray(MIB)
        view = memoryview(buf)
        fd = os.open(path, os.O_RDONLY)
        try:
            while n := os.readv(fd, [buf]):
                h.update(view[:n])
        finally:
            os.close(fd)
        return path.name, h.hexdigest()

    with concurrent.futures.ThreadPoolExecutor(readers) as pool:
        return dict(pool.map(digest, paths))


def disk_stats(mountpoint: Path, env: dict[str, str]) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-m", "ossfs", "stats", str(mountpoint), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    section: dict[str, int] = json.loads(out).get("disk_cache", {})
    return section


def timed_read(
    server: EmulatorServer,
    mountpoint: Path,
    expected: dict[str, str],
    *,
    readers: int,
    env: dict[str, str],
) -> dict[str, object]:
    names = sorted(expected)
    pids = daemon_pids(mountpoint)
    server.log.clear()
    cpu0 = cpu_seconds(pids)
    began = time.monotonic()
    got = read_all([mountpoint / name for name in names], readers)
    seconds = time.monotonic() - began
    if got != expected:
        raise SystemExit(f"wrong bytes read through {mountpoint}")
    nbytes = sum((mountpoint / name).stat().st_size for name in names)
    return {
        "seconds": round(seconds, 3),
        "mb_s": round(nbytes / seconds / 1e6, 1),
        "gets": server.log.counts().get("GetObject", 0),
        "bytes_served": server.log.bytes_served,
        "daemon_cpu_s": round(cpu_seconds(pids) - cpu0, 2),
        "disk_cache": disk_stats(mountpoint, env),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("loopback", "remote"), default="loopback")
    parser.add_argument("--max-memory", type=int, default=256, help="MiB (default 256)")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="even (default 2)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    if args.repeats % 2:
        parser.error("--repeats must be even (the order alternates)")
    size = 4 * args.max_memory * MIB // args.files
    env = client_env(AK, SK)
    mount_args = ["--max-memory", f"{args.max_memory}MiB"]
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-disk-cache-", dir="/var/tmp") as tmp:
        base = Path(tmp)
        local = base / "local"
        local.mkdir()
        config = EmulatorConfig(
            data_dir=base / "data", buckets=(BUCKET,), credentials=(Credential(AK, SK),)
        )
        with EmulatorServer(config) as server:
            names = [f"f{i:03d}.bin" for i in range(args.files)]
            expected = {}
            for i, name in enumerate(names):
                data = random.Random(i).randbytes(size)
                server.put_object(BUCKET, name, data)
                (local / name).write_bytes(data)
                expected[name] = hashlib.sha256(data).hexdigest()
            if args.profile == "remote":
                server.faults.set(FaultSettings(latency_s=0.02, bandwidth_bytes_per_s=100_000_000))
            url = f"oss://{BUCKET}"
            endpoint = ["--endpoint", server.endpoint]
            for rep in range(args.repeats):
                order = ("off", "on") if rep % 2 == 0 else ("on", "off")
                for case in order:
                    mp = base / f"mnt-{rep}-{case}"
                    row: dict[str, object] = {"rep": rep, "case": case}
                    if case == "off":
                        with mounted(url, mp, env=env, args=[*endpoint, *mount_args]):
                            row["epoch1"] = timed_read(
                                server, mp, expected, readers=args.readers, env=env
                            )
                    else:
                        cache = base / f"cache-{rep}"
                        with_cache = [*endpoint, *mount_args, "--cache-dir", str(cache)]
                        with mounted(url, mp, env=env, args=with_cache):
                            row["epoch1"] = timed_read(
                                server, mp, expected, readers=args.readers, env=env
                            )
                        with mounted(url, mp, env=env, args=with_cache):
                            row["epoch2"] = timed_read(
                                server, mp, expected, readers=args.readers, env=env
                            )
                        began = time.monotonic()
                        if read_all([local / n for n in names], args.readers) != expected:
                            raise SystemExit("wrong bytes read locally")
                        seconds = time.monotonic() - began
                        row["local"] = {
                            "seconds": round(seconds, 3),
                            "mb_s": round(len(names) * size / seconds / 1e6, 1),
                        }
                    runs.append(row)
                    print(json.dumps(row), file=sys.stderr)
    load = os.getloadavg()
    print(
        f"profile {args.profile}, {args.files} files of {size / MIB:.0f} MiB "
        f"(4x --max-memory {args.max_memory}MiB), {args.readers} readers, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(f"{'run':<10}{'MB/s':>9}{'GETs':>7}{'CPU s':>8}{'dropped':>9}")
    for row in runs:
        for part in ("epoch1", "epoch2", "local"):
            part_row = row.get(part)
            if not isinstance(part_row, dict):
                continue
            got: dict[str, object] = part_row
            dc = got.get("disk_cache")
            dropped = dc.get("writes_dropped", "") if isinstance(dc, dict) else ""
            label = f"{part}-{row['case']}" if part == "epoch1" else part
            print(
                f"{label:<10}{got['mb_s']!s:>9}{got.get('gets', '')!s:>7}"
                f"{got.get('daemon_cpu_s', '')!s:>8}{dropped!s:>9}"
            )
    summary = summarize(runs)
    for key, value in summary.items():
        print(f"{key}: {value}")
    if args.json_out is not None:
        args.json_out.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json_out": str(args.json_out)},
                    "load": load,
                    "runs": runs,
                    "summary": summary,
                },
                indent=2,
                default=str,
            )
        )
    return 0


def summarize(runs: list[dict[str, object]]) -> dict[str, float]:
    def total(case: str, part: str, field: str) -> float:
        values = [
            float(row[part][field])  # type: ignore[index]
            for row in runs
            if row["case"] == case and isinstance(row.get(part), dict)
        ]
        return sum(values)

    off_s = total("off", "epoch1", "seconds")
    on_s = total("on", "epoch1", "seconds")
    return {
        "epoch1_on_vs_off_time": round(on_s / off_s, 3),
        "epoch1_on_vs_off_cpu": round(
            total("on", "epoch1", "daemon_cpu_s") / total("off", "epoch1", "daemon_cpu_s"), 3
        ),
        "epoch2_vs_local_speed": round(
            total("on", "local", "seconds") / total("on", "epoch2", "seconds"), 3
        ),
        "epoch2_gets": total("on", "epoch2", "gets"),
    }


if __name__ == "__main__":
    sys.exit(main())
