"""Benchmark: ``ossfs preload`` against ``cp -r`` of the same files, each on a fresh mount.

Usage: python scripts/bench_preload.py [--quick] [--repeat N] [--jobs 1,4,8,16]
                                       [--profile remote|loopback] [--json-out FILE]

The target of issue 15: preloading 1,000 small files, and one 1 GiB object, over ``remote`` is
at least as fast as reading them with ``cp -r``. One run starts the local OSS server in this
process with the profile of ``bench_suite.py`` (``remote``: 20 ms before each answer, 100 MB/s
per connection; ``loopback``: no faults), writes 1,000 files of 100 KiB in one directory and
one object of 1 GiB (``--quick``: 250 files, 256 MiB), then for each data set runs, on a fresh
mount each time (cold caches), ``cp -r`` of it to a local directory and ``ossfs preload`` of it
with each ``--jobs``. Cases run interleaved in a rotating order, ``--repeat`` times (even counts
are fairest); the table shows medians: seconds, MB/s (10**6 bytes a second), the GETs and body
bytes the server saw (noise cannot move those) and the mount daemon's CPU seconds, and each
preload's speed relative to ``cp -r`` (above 1: preload is faster). Every sample goes to
``--json-out``. The machine's load moves the seconds; run it on an idle box, or compare ratios
within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from mount_helpers import client_env, cpu_seconds, daemon_pids, mounted

AK: Final = "bench-ak"
SK: Final = "bench-secret-0123456789"
BUCKET: Final = "bench-bucket"
MIB: Final = 1 << 20
SMALL_BYTES: Final = 100 * 1024
REMOTE_LATENCY_S: Final = 0.02  # the same profile as bench_suite.py's "remote"
REMOTE_BANDWIDTH: Final = 100_000_000
QUIET_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class Sample:
    data: str
    method: str
    seconds: float
    nbytes: int
    files: int
    gets: int
    bytes_served: int
    daemon_cpu_s: float


def build_data(server: Any, small_files: int, big_bytes: int, tmp: Path) -> dict[str, int]:
    """Write the two data sets; return bytes per data set."""
    for i in range(small_files):
        server.put_object(BUCKET, f"small/f{i:05d}", os.urandom(SMALL_BYTES))
    source = tmp / "big.src"
    chunk = os.urandom(16 * MIB)
    with open(source, "wb") as f:
        left = big_bytes
        while left:
            f.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
    server.put_object_from_file(BUCKET, "big/object.bin", source)
    source.unlink()
    return {"small": small_files * SMALL_BYTES, "big": big_bytes}


def settled(server: Any, limit_s: float = 60.0) -> dict[str, int]:
    """The server's request counts once nothing new arrived for `QUIET_S` (read-ahead ended)."""
    counts = server.log.counts()
    since = time.monotonic()
    deadline = since + limit_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = server.log.counts()
        if now != counts:
            counts, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET_S:
            break
    return dict(counts)


def run_case(
    server: Any, data: str, method: str, *, nbytes: int, files: int, tmp: Path, env: dict[str, str]
) -> Sample:
    mountpoint = tmp / "mnt"
    with mounted(f"oss://{BUCKET}", mountpoint, env=env, args=["--endpoint", server.endpoint]):
        os.listdir(mountpoint)
        settled(server)
        server.log.clear()
        pids = daemon_pids(mountpoint)
        cpu0 = cpu_seconds(pids)
        if method == "cp -r":
            dest = tmp / "copy"
            command = ["cp", "-r", str(mountpoint / data), str(dest)]
        else:
            jobs = method.rsplit(" ", 1)[1]
            dest = None
            command = [sys.executable, "-m", "ossfs", "preload", "-j", jobs, str(mountpoint / data)]
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"{method} failed: {result.stderr.strip()}")
        cpu = cpu_seconds(pids) - cpu0
        counts = settled(server)
        served = server.log.bytes_served
        if dest is not None:
            shutil.rmtree(dest)
    return Sample(
        data, method, seconds, nbytes, files, counts.get("GetObject", 0), served, round(cpu, 2)
    )


def table(samples: list[Sample], methods: list[str]) -> str:
    lines = [
        "| data | method | s | MB/s | files/s | GETs | MB served | daemon CPU s | vs cp -r |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for data in dict.fromkeys(s.data for s in samples):
        base = None
        for method in methods:
            mine = [s for s in samples if s.data == data and s.method == method]
            if not mine:
                continue
            sec = statistics.median(s.seconds for s in mine)
            if method == "cp -r":
                base = sec
            first = mine[0]
            lines.append(
                f"| {data} | {method} | {sec:.2f} | {first.nbytes / sec / 1e6:,.0f} | "
                f"{first.files / sec:,.0f} | {statistics.median(s.gets for s in mine):.0f} | "
                f"{statistics.median(s.bytes_served for s in mine) / 1e6:,.1f} | "
                f"{statistics.median(s.daemon_cpu_s for s in mine):.2f} | "
                f"{'' if base is None or method == 'cp -r' else f'{base / sec:.2f}'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="250 files, 256 MiB")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--jobs", default="4,8,16", help="preload --jobs values to compare")
    parser.add_argument("--profile", choices=("remote", "loopback"), default="remote")
    parser.add_argument("--data", default="small,big", help="data sets: small, big")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)

    from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
    from ossfs.emulator.faults import FaultSettings

    small_files = 250 if args.quick else 1000
    big_bytes = (256 if args.quick else 1024) * MIB
    methods = ["cp -r", *(f"preload -j {j}" for j in args.jobs.split(","))]
    datas = args.data.split(",")
    env = client_env(AK, SK)
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="ossfs-bench-preload-") as tmp_name:
        tmp = Path(tmp_name)
        config = EmulatorConfig(
            data_dir=tmp / "data", buckets=(BUCKET,), credentials=(Credential(AK, SK),)
        )
        with EmulatorServer(config) as server:
            print("writing the data sets ...", file=sys.stderr)
            sizes = build_data(server, small_files, big_bytes, tmp)
            counts = {"small": small_files, "big": 1}
            if args.profile == "remote":
                server.faults.set(
                    FaultSettings(
                        latency_s=REMOTE_LATENCY_S, bandwidth_bytes_per_s=REMOTE_BANDWIDTH
                    )
                )
            for rep in range(args.repeat):
                order = methods[rep % len(methods) :] + methods[: rep % len(methods)]
                if rep % 2:
                    order.reverse()
                for data in datas:
                    for method in order:
                        sample = run_case(
                            server,
                            data,
                            method,
                            nbytes=sizes[data],
                            files=counts[data],
                            tmp=tmp,
                            env=env,
                        )
                        samples.append(sample)
                        print(
                            f"  {data:5} {method:14} {sample.seconds:7.2f} s  "
                            f"{sample.gets:5} GETs  cpu {sample.daemon_cpu_s:.2f} s",
                            file=sys.stderr,
                        )
    load = os.getloadavg()
    print(
        f"profile {args.profile}, {args.repeat} repeats, medians; load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print(table(samples, methods))
    if args.json_out:
        args.json_out.write_text(
            json.dumps({"profile": args.profile, "samples": [asdict(s) for s in samples]}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
