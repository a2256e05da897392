"""Sequential read throughput: through an ossfs mount vs the direct oss2 stream vs a local file.

Usage: python scripts/bench_read.py [--size 256MiB] [--profiles loopback,remote] [--repeat N]
                                    [--baseline-rev REV] [--mount-args "..."] [--json-out OUT]

Starts the emulator in this process with one object of ``--size`` bytes and, for each server
profile, measures side by side in one run:

- ``ossfs``: ``cat`` of the file through a fresh ``python -m ossfs mount`` (cold block cache);
- ``ossfs@REV`` (with ``--baseline-rev``): the same with the ``ossfs`` package of git revision
  REV of this repository (for before/after figures in one run);
- ``oss2``: ``bucket.get_object(key)`` copied to /dev/null (one stream, ``enable_crc=False``);
- ``local``: ``cat`` of the same bytes from a local file (page cache; the ceiling of the box).

Profiles: ``loopback`` (no faults), ``remote`` (every answer waits ``latency_s=0.02`` first
and is sent at 100 MB/s per connection in small pieces) and ``remote-chunked`` (the same rate in
1 MiB pieces with sleeps between). ``--mount-args`` are added to every mount (for example
``--max-memory 512MiB``). For each path it prints MB/s (1 MB = 10**6 bytes), the ratio to
``oss2``, the GetObject requests and bytes the emulator served, the daemon's CPU seconds per GiB
read (user + system, all threads) with its user and system parts, its page faults and voluntary
context switches per MiB (all from the run with the median CPU), and its peak RSS,
as a markdown table; ``--json-out`` writes the same rows as JSON. With ``--repeat N`` each
path is measured N times (interleaved, a fresh mount each time) and the median run is shown
(the JSON keeps every sample). Every mount is unmounted (and temporary files removed) even when
a measurement fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import mount_helpers
import oss2
from mount_helpers import baseline_tree, client_env, daemon_counters, daemon_pids, peak_rss

from ossfs.core.sizes import parse_size
from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
from ossfs.emulator.faults import FaultSettings

AK, SK, BUCKET = "bench-ak", "bench-secret-0123456789", "bench-bucket"
KEY = "big.bin"
PROFILES = {
    "loopback": FaultSettings(),
    "remote": FaultSettings(latency_s=0.02, bandwidth_bytes_per_s=100_000_000),
    "remote-chunked": FaultSettings(
        latency_s=0.02, bandwidth_bytes_per_s=100_000_000, pacing="chunked"
    ),
}


@dataclass(frozen=True, slots=True)
class Row:
    profile: str
    path: str
    seconds: float
    mb_per_s: float
    ratio_to_oss2: float | None
    get_requests: int | None
    bytes_served: int | None
    peak_rss_bytes: int | None
    samples_s: tuple[float, ...]
    daemon_cpu_s_per_gib: float | None = None
    daemon_user_s_per_gib: float | None = None
    daemon_system_s_per_gib: float | None = None
    daemon_faults_per_mib: float | None = None
    daemon_switches_per_mib: float | None = None
    daemon_cpu_samples_s: tuple[float, ...] = ()


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def settled(server: EmulatorServer) -> tuple[int, int]:
    """GetObject count and bytes served, once the server's log stops moving (it logs after
    answering, and read-ahead may still be finishing)."""
    last = (-1, -1)
    while True:
        now = (server.log.counts().get("GetObject", 0), server.log.bytes_served)
        if now == last:
            return now
        last = now
        time.sleep(0.3)


def env() -> dict[str, str]:
    return client_env(AK, SK)


@contextlib.contextmanager
def mounted(
    endpoint: str, mountpoint: Path, pythonpath: Path | None, extra: tuple[str, ...] = ()
) -> Iterator[Path]:
    with mount_helpers.mounted(
        f"oss://{BUCKET}",
        mountpoint,
        env=env(),
        args=("--endpoint", endpoint, *extra),
        pythonpath=pythonpath,
    ) as mp:
        yield mp


def timed_cat(path: Path) -> float:
    began = time.perf_counter()
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True, timeout=3600)
    return time.perf_counter() - began


def bench_mount(
    server: EmulatorServer,
    tmp: Path,
    name: str,
    pythonpath: Path | None,
    extra: tuple[str, ...] = (),
) -> tuple[float, int, int, int | None, dict[str, float]]:
    """seconds, GETs, bytes served, peak RSS and the daemon's `daemon_counters` used by one
    cold read."""
    with mounted(server.endpoint, tmp / f"mnt-{name}", pythonpath, extra) as mp:
        os.stat(mp / KEY)  # the LIST/HEAD of the lookup is not part of the read
        settled(server)
        server.log.clear()
        pids = daemon_pids(mp)
        before = daemon_counters(pids)
        seconds = timed_cat(mp / KEY)
        after = daemon_counters(pids)
        rss = peak_rss(pids)
        gets, served = settled(server)
    return seconds, gets, served, rss, {name: after[name] - before[name] for name in after}


def bench_oss2(server: EmulatorServer) -> tuple[float, int, int]:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET, enable_crc=False)
    server.log.clear()
    began = time.perf_counter()
    body = bucket.get_object(KEY)
    with open(os.devnull, "wb") as sink:
        shutil.copyfileobj(body, sink, 1 << 20)
    seconds = time.perf_counter() - began
    gets, served = settled(server)
    return seconds, gets, served


Sample = tuple[float, int | None, int | None, int | None]
"""seconds, GetObject requests, bytes served, peak RSS of the daemon"""


def median(runs: list[Sample]) -> Sample:
    """The run with the median time (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda run: run[0])
    return ordered[(len(ordered) - 1) // 2]


def run(args: argparse.Namespace) -> list[Row]:
    size = parse_size(args.size)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ossfs-bench-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "src.bin"
        make_file(src, size)
        baseline = baseline_tree(args.baseline_rev, tmp) if args.baseline_rev else None
        config = EmulatorConfig(
            data_dir=tmp / "data", buckets=(BUCKET,), credentials=(Credential(AK, SK),)
        )
        with EmulatorServer(config) as server:
            server.put_object_from_file(BUCKET, KEY, src)
            local_s = timed_cat(src)  # warm: the page cache holds it
            local_s = min(local_s, timed_cat(src))
            for profile in args.profiles.split(","):
                server.faults.set(PROFILES[profile])
                samples: dict[str, list[Sample]] = {}
                cpus: dict[str, list[dict[str, float]]] = {}
                extra = tuple(args.mount_args.split())
                for _ in range(args.repeat):
                    oss2_s, gets, served = bench_oss2(server)
                    samples.setdefault("oss2", []).append((oss2_s, gets, served, None))
                    s, gets, served, rss, used = bench_mount(server, tmp, profile, None, extra)
                    samples.setdefault("ossfs", []).append((s, gets, served, rss))
                    cpus.setdefault("ossfs", []).append(used)
                    if baseline is not None:
                        name = f"ossfs@{args.baseline_rev}"
                        s, gets, served, rss, used = bench_mount(
                            server, tmp, f"{profile}-b", baseline, extra
                        )
                        samples.setdefault(name, []).append((s, gets, served, rss))
                        cpus.setdefault(name, []).append(used)
                samples["local"] = [(local_s, None, None, None)]
                oss2_median = median(samples["oss2"])[0]
                for path, runs in samples.items():
                    seconds, gets_n, served_n, rss_n = median(runs)
                    daemon = daemon_figures(cpus.get(path, []), size)
                    rows.append(
                        Row(
                            profile=profile,
                            path=path,
                            seconds=seconds,
                            mb_per_s=size / seconds / 1e6,
                            ratio_to_oss2=oss2_median / seconds,
                            get_requests=gets_n,
                            bytes_served=served_n,
                            peak_rss_bytes=rss_n,
                            samples_s=tuple(run[0] for run in runs),
                            daemon_cpu_s_per_gib=daemon.get("cpu"),
                            daemon_user_s_per_gib=daemon.get("user"),
                            daemon_system_s_per_gib=daemon.get("system"),
                            daemon_faults_per_mib=daemon.get("faults"),
                            daemon_switches_per_mib=daemon.get("switches"),
                            daemon_cpu_samples_s=tuple(
                                (used["user_s"] + used["system_s"]) / (size / (1 << 30))
                                for used in cpus.get(path, [])
                            ),
                        )
                    )
                server.faults.clear()
    return rows


def daemon_figures(runs: list[dict[str, float]], size: int) -> dict[str, float]:
    """The daemon's figures of a path, all from the run with the median CPU (the lower middle
    one for an even count, as `median` picks): CPU-s per GiB (``cpu``, with its ``user`` and
    ``system`` parts), page faults and voluntary switches per MiB; empty without runs."""
    if not runs:
        return {}
    gib, mib = size / (1 << 30), size / (1 << 20)
    cpu = [run["user_s"] + run["system_s"] for run in runs]
    middle = sorted(range(len(runs)), key=lambda i: cpu[i])[(len(runs) - 1) // 2]
    run = runs[middle]
    return {
        "cpu": cpu[middle] / gib,
        "user": run["user_s"] / gib,
        "system": run["system_s"] / gib,
        "faults": run["minor_faults"] / mib,
        "switches": run["voluntary_switches"] / mib,
    }


def table(rows: list[Row], size: int) -> str:
    lines = [
        f"Sequential read of one {size / 1e6:.0f} MB object (MB/s: 10**6 bytes a second;"
        f" median of {len(rows[0].samples_s) if rows else 0} run(s))",
        "",
        "| profile | path | seconds | MB/s | x oss2 | GETs | MB served | daemon CPU-s/GiB |"
        " user / system | faults/MiB | switches/MiB | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def opt(value: int | None, scale: float) -> str:
        return "" if value is None else f"{value / scale:.0f}"

    for r in rows:
        ratio = "" if r.ratio_to_oss2 is None else f"{r.ratio_to_oss2:.2f}"
        cpu = split = faults = switches = ""
        if r.daemon_cpu_s_per_gib is not None:
            cpu = f"{r.daemon_cpu_s_per_gib:.2f}"
            split = f"{r.daemon_user_s_per_gib:.2f} / {r.daemon_system_s_per_gib:.2f}"
            faults = f"{r.daemon_faults_per_mib:.0f}"
            switches = f"{r.daemon_switches_per_mib:.1f}"
        lines.append(
            f"| {r.profile} | {r.path} | {r.seconds:.2f} | {r.mb_per_s:.0f} | {ratio} | "
            f"{opt(r.get_requests, 1)} | {opt(r.bytes_served, 1e6)} | {cpu} | {split} | "
            f"{faults} | {switches} | {opt(r.peak_rss_bytes, 1 << 20)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MiB", help="object size (default 256MiB)")
    parser.add_argument("--profiles", default="loopback,remote", help="comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs per path (median shown)")
    parser.add_argument("--baseline-rev", help="also measure the ossfs of this git revision")
    parser.add_argument(
        "--mount-args", default="", help='added to every mount, e.g. "--max-memory 512MiB"'
    )
    parser.add_argument("--json-out", metavar="OUT", help="write the rows as JSON")
    args = parser.parse_args()
    unknown = set(args.profiles.split(",")) - set(PROFILES)
    if unknown:
        parser.error(f"unknown profile(s) {sorted(unknown)}; choose from {sorted(PROFILES)}")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    size = parse_size(args.size)
    rows = run(args)
    print(table(rows, size))
    if args.json_out:
        report = {"size_bytes": size, "rows": [asdict(r) for r in rows]}
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
