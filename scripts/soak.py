"""Soak test: a mount read for minutes while the server injects faults; no wrong byte, ever.

Usage: python scripts/soak.py [--minutes 10] [--tree-size 192MiB] [--cache-size 32MiB]
                              [--readers 8] [--error-rate 0.05] [--reset-rate 0.01]
                              [--truncate-rate 0.01] [--spike-s 0.3] [--seed N] [--json-out OUT]

Starts the emulator in this process on 127.0.0.1 with a mixed tree of ``--tree-size`` bytes
(0-byte files up to several MiB, nested directories), mounts it with ``python -m ossfs mount
--debug --log-file`` (block cache ``--cache-size``, smaller than the tree, so GETs never stop),
turns the faults on (503/500 answers, connections reset mid-body, bodies cut short, and latency
spikes of ``--spike-s`` seconds now and then) and, until ``--minutes`` have passed, repeats:

- ``cp -r`` of the whole tree out of the mount, every copied file compared with the source;
- ``--readers`` threads doing random ``pread``s (random file, offset and size) for a while,
  every result compared with the source bytes;
- the kernel's page cache is dropped between rounds (as root) so reads reach the daemon.

It prints, and writes as JSON with ``--json-out``: bytes read through the mount, reads, rounds,
faults injected by kind (the server's counters), requests by operation, retries and give-ups
(from the mount's debug log, and the daemon's own counters from ``user.ossfs.obs.stats``), reads
that failed with an error (EIO after exhausted retries is allowed under faults, and counted),
wrong bytes (must be 0; the exit code is 1 otherwise), and the daemon's RSS, threads and open
fds at the start, after the first round and at the end (its peak RSS, and its RSS after each
round). The mount is unmounted and temporary files removed even when the run fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mount_helpers
from mount_helpers import client_env, daemon_pids, peak_rss

from ossfs.core.sizes import parse_size
from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
from ossfs.obs.stats import STATS_XATTR

AK, SK, BUCKET = "soak-ak", "soak-secret-0123456789", "soak-bucket"
MIB = 1 << 20
READ_SIZES = (1, 100, 4096, 65_536, 131_072, 1 << 20, 3 << 20)


@dataclass
class Tally:
    """Counts shared by the reader threads (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    bytes_read: int = 0
    reads: int = 0
    read_errors: int = 0
    wrong_reads: int = 0
    wrong_bytes: int = 0
    errors_by_errno: dict[str, int] = field(default_factory=dict)

    def read_ok(self, got: bytes, want: bytes) -> None:
        wrong = 0
        if got != want:
            wrong = abs(len(got) - len(want)) + sum(
                1 for a, b in zip(got, want, strict=False) if a != b
            )
        with self.lock:
            self.reads += 1
            self.bytes_read += len(got)
            if wrong:
                self.wrong_reads += 1
                self.wrong_bytes += wrong

    def read_failed(self, exc: OSError) -> None:
        name = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        with self.lock:
            self.reads += 1
            self.read_errors += 1
            self.errors_by_errno[name] = self.errors_by_errno.get(name, 0) + 1


@dataclass(frozen=True, slots=True)
class Resources:
    rss_bytes: int
    threads: int
    fds: int


def env() -> dict[str, str]:
    return client_env(AK, SK)


def make_tree(total: int, seed: int) -> dict[str, bytes]:
    """A mixed tree of about ``total`` bytes: edge sizes, many small files, several big ones."""
    rng = random.Random(seed)
    tree: dict[str, bytes] = {}
    edges = (0, 1, 4095, 4096, 65_537, MIB - 1, MIB, MIB + 1)
    for i, size in enumerate(edges):
        tree[f"edges/e{i}-{size}.bin"] = rng.randbytes(size)
    used = sum(map(len, tree.values()))
    i = 0
    while used < total:
        big = i % 4 == 0
        size = min(rng.randrange(MIB, 9 * MIB) if big else rng.randrange(200_000), total - used)
        tree[f"d{i % 7}/s{i % 3}/f{i:05d}.bin"] = rng.randbytes(size)
        used += size
        i += 1
    return tree


def daemon_pid(mountpoint: Path) -> int | None:
    pids = daemon_pids(mountpoint)
    return pids[0] if pids else None


def resources(pid: int | None) -> Resources | None:
    if pid is None:
        return None
    try:
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        return Resources(
            rss_bytes=rss_pages * os.sysconf("SC_PAGE_SIZE"),
            threads=len(os.listdir(f"/proc/{pid}/task")),
            fds=len(os.listdir(f"/proc/{pid}/fd")),
        )
    except OSError:
        return None


def drop_page_cache() -> None:
    if os.geteuid() == 0:
        with contextlib.suppress(OSError), open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


@contextlib.contextmanager
def mounted(endpoint: str, mountpoint: Path, log_file: Path, cache_size: str) -> Iterator[Path]:
    with mount_helpers.mounted(
        f"oss://{BUCKET}",
        mountpoint,
        env=env(),
        args=(
            *("--endpoint", endpoint, "--cache-size", cache_size),
            *("--debug", "--log-file", str(log_file)),
        ),
    ) as mp:
        yield mp


class LatencySpikes:
    """Latency ``spike_s`` on every GET for 0.1 s out of each 0.6 s, until stopped."""

    def __init__(self, server: EmulatorServer, spike_s: float) -> None:
        self._server = server
        self._spike_s = spike_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        if self._spike_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._server.faults.update(latency_s=0.0)

    def _run(self) -> None:
        while True:
            self._server.faults.update(latency_s=self._spike_s)
            if self._stop.wait(0.1):
                return
            self._server.faults.update(latency_s=0.0)
            if self._stop.wait(0.5):
                return


def copy_round(mp: Path, tree: dict[str, bytes], out: Path, tally: Tally, deadline: float) -> None:
    """``cp -r`` of the mount, every file compared with its source (missing = wrong)."""
    shutil.rmtree(out, ignore_errors=True)
    timeout = max(deadline - time.monotonic(), 0) + 300
    result = subprocess.run(
        ["cp", "-r", str(mp), str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    failed = {
        line for line in result.stderr.splitlines() if line.strip()
    }  # cp goes on past a failed file and says so on stderr
    for key, want in tree.items():
        copied = out / key
        try:
            got = copied.read_bytes()
        except OSError:
            with tally.lock:
                tally.reads += 1
                tally.read_errors += 1
                tally.errors_by_errno["cp failed"] = tally.errors_by_errno.get("cp failed", 0) + 1
            continue
        tally.read_ok(got, want)
    if failed:
        print(f"  cp reported {len(failed)} line(s), e.g. {sorted(failed)[0]}", flush=True)
    shutil.rmtree(out, ignore_errors=True)


def pread_round(
    mp: Path, tree: dict[str, bytes], tally: Tally, *, readers: int, seconds: float, seed: int
) -> None:
    keys = [k for k, v in tree.items() if v]
    stop_at = time.monotonic() + seconds

    def reader(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while time.monotonic() < stop_at:
            key = rng.choice(keys)
            want_all = tree[key]
            try:
                fd = os.open(mp / key, os.O_RDONLY)
            except OSError as exc:
                tally.read_failed(exc)
                continue
            try:
                for _ in range(rng.randrange(1, 20)):
                    offset = rng.randrange(len(want_all) + 10)
                    size = rng.choice(READ_SIZES)
                    try:
                        got = os.pread(fd, size, offset)
                    except OSError as exc:
                        tally.read_failed(exc)
                        continue
                    tally.read_ok(got, want_all[offset : offset + size])
            finally:
                os.close(fd)

    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 600)


def read_mount_stats(mp: Path) -> dict[str, object] | None:
    """The daemon's own counters (``store``, ``served``, ``cache``...) from the mount root."""
    try:
        doc = json.loads(os.getxattr(mp, STATS_XATTR))
    except (OSError, ValueError):
        return None
    return {name: doc[name] for name in ("store", "served", "cache", "memory") if name in doc}


def count_log(log_file: Path) -> dict[str, int]:
    retries: dict[str, int] = {}
    gave_up = 0
    retry_re = re.compile(r" DEBUG ossfs\.store\.retry: retry (\w+): ")
    with open(log_file, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = retry_re.search(line)
            if m:
                retries[m.group(1)] = retries.get(m.group(1), 0) + 1
            elif "(gave up after" in line:
                gave_up += 1
    return {
        "retries": sum(retries.values()),
        **{f"retries.{op}": n for op, n in sorted(retries.items())},
        "gave_up": gave_up,
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    config = EmulatorConfig(
        data_dir=tmp / "data", buckets=(BUCKET,), credentials=(Credential(AK, SK),)
    )
    tree = make_tree(parse_size(args.tree_size, what="--tree-size"), args.seed)
    tally = Tally()
    log_file = tmp / "mount.log"
    began = time.monotonic()
    deadline = began + args.minutes * 60
    with EmulatorServer(config) as server:
        for key, data in tree.items():
            server.put_object(BUCKET, key, data)
        print(
            f"tree: {len(tree)} files, {sum(map(len, tree.values())) / MIB:.0f} MiB; "
            f"soak for {args.minutes:g} min",
            flush=True,
        )
        with mounted(server.endpoint, tmp / "mnt", log_file, args.cache_size) as mp:
            pid = daemon_pid(mp)
            start = resources(pid)
            server.log.clear()
            server.faults.update(
                error_rate=args.error_rate,
                reset_rate=args.reset_rate,
                truncate_rate=args.truncate_rate,
            )
            spikes = LatencySpikes(server, args.spike_s)
            spikes.start()
            rounds = 0
            warm: Resources | None = None
            rss_by_round: list[int | None] = []
            try:
                while time.monotonic() < deadline:
                    rounds += 1
                    copy_round(mp, tree, tmp / "copy", tally, deadline)
                    drop_page_cache()
                    left = deadline - time.monotonic()
                    if left > 1:
                        pread_round(
                            mp,
                            tree,
                            tally,
                            readers=args.readers,
                            seconds=min(60.0, left),
                            seed=rounds,
                        )
                        drop_page_cache()
                    now = resources(pid)
                    if rounds == 1:
                        warm = now
                    rss_by_round.append(now.rss_bytes if now else None)
                    print(
                        f"round {rounds}: {time.monotonic() - began:6.0f}s "
                        f"{tally.bytes_read / MIB:9.0f} MiB read, {tally.reads} reads, "
                        f"{tally.read_errors} errors, {tally.wrong_bytes} wrong bytes, "
                        f"daemon RSS {(now.rss_bytes if now else 0) / MIB:.0f} MiB",
                        flush=True,
                    )
            finally:
                spikes.stop()
                server.faults.clear()
            end = resources(pid)
            peak = peak_rss([pid] if pid is not None else [])
            mount_stats = read_mount_stats(mp)
            faults = server.log.fault_counts()
            requests = server.log.counts()
    log_counts = count_log(log_file)
    elapsed = time.monotonic() - began
    return {
        "minutes": args.minutes,
        "elapsed_s": round(elapsed, 1),
        "tree_files": len(tree),
        "tree_bytes": sum(map(len, tree.values())),
        "rounds": rounds,
        "bytes_read": tally.bytes_read,
        "mb_per_s": round(tally.bytes_read / 1e6 / elapsed, 1),
        "reads": tally.reads,
        "read_errors": tally.read_errors,
        "read_errors_by_kind": tally.errors_by_errno,
        "wrong_reads": tally.wrong_reads,
        "wrong_bytes": tally.wrong_bytes,
        "faults_injected": faults,
        "server_requests": requests,
        "mount_log": log_counts,
        "mount_stats": mount_stats,
        "daemon_start": asdict(start) if start else None,
        "daemon_after_round_1": asdict(warm) if warm else None,
        "daemon_end": asdict(end) if end else None,
        "daemon_peak_rss_bytes": peak,
        "daemon_rss_by_round": rss_by_round,
        "settings": {
            "tree_size": args.tree_size,
            "cache_size": args.cache_size,
            "readers": args.readers,
            "error_rate": args.error_rate,
            "reset_rate": args.reset_rate,
            "truncate_rate": args.truncate_rate,
            "spike_s": args.spike_s,
            "seed": args.seed,
        },
    }


def print_report(report: dict[str, object]) -> None:
    def mib(value: object) -> str:
        return f"{int(value) / MIB:.0f} MiB" if isinstance(value, int) else "-"

    def res(name: str) -> dict[str, int]:
        value = report[name]
        return value if isinstance(value, dict) else {}

    start, warm, end = res("daemon_start"), res("daemon_after_round_1"), res("daemon_end")
    stats = res("mount_stats")
    rows = [
        ("elapsed", f"{report['elapsed_s']} s, {report['rounds']} rounds"),
        ("bytes read", f"{mib(report['bytes_read'])} ({report['mb_per_s']} MB/s)"),
        ("reads", str(report["reads"])),
        ("read errors", f"{report['read_errors']} {report['read_errors_by_kind']}"),
        ("wrong bytes", f"{report['wrong_bytes']} (in {report['wrong_reads']} reads)"),
        ("faults injected", str(report["faults_injected"])),
        ("mount retries (log)", str(report["mount_log"])),
        ("mount counters", str(stats.get("store"))),
        ("server requests", str(report["server_requests"])),
        (
            "daemon RSS start/after round 1/end",
            " / ".join(mib(r.get("rss_bytes")) for r in (start, warm, end)),
        ),
        ("daemon peak RSS", mib(report["daemon_peak_rss_bytes"])),
        (
            "daemon threads start/after round 1/end",
            " / ".join(str(r.get("threads")) for r in (start, warm, end)),
        ),
        (
            "daemon fds start/after round 1/end",
            " / ".join(str(r.get("fds")) for r in (start, warm, end)),
        ),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--tree-size", default="192MiB", help="bytes in the tree (192MiB)")
    parser.add_argument("--cache-size", default="32MiB", help="the mount's block cache (32MiB)")
    parser.add_argument("--readers", type=int, default=8, help="pread threads (default 8)")
    parser.add_argument("--error-rate", type=float, default=0.05, help="503/500 rate (0.05)")
    parser.add_argument("--reset-rate", type=float, default=0.01, help="mid-body resets (0.01)")
    parser.add_argument("--truncate-rate", type=float, default=0.01, help="short bodies (0.01)")
    parser.add_argument("--spike-s", type=float, default=0.3, help="latency spikes (0.3 s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the tree's contents")
    parser.add_argument("--json-out", metavar="OUT", help="write the figures as JSON")
    args = parser.parse_args()
    if not os.path.exists("/dev/fuse"):
        print("soak: FUSE is not available (/dev/fuse missing)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ossfs-soak-") as tmp:
        report = run(args, Path(tmp))
    print_report(report)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["wrong_bytes"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
