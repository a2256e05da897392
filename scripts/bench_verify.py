"""Benchmark: ``ossfs verify``: is CRC-64 the bottleneck, and what parallel ranged GETs give.

Section ``crc`` measures, in one run and side by side:
  1. crc64 throughput over SIZE bytes of in-memory chunks (no I/O at all);
  2. the raw stream rate of one SIZE-byte object from the local emulator (bytes only, no CRC);
  3. ``Verifier`` on the same object (stream + running CRC + comparison).
The ratio verify/raw tells how much the CRC costs end to end. When the ``fastcrc`` package is
importable, rows 1 and 3 are repeated with its CRC-64/XZ in place of crcmod's (a what-if for
`ossfs.core.crc64`).

Section ``parallel`` runs the emulator in its own process with the ``remote`` profiles of
``scripts/bench_suite.py`` (every answer waits 20 ms, bodies at 100 MB/s per connection, paced
smoothly or in 1 MiB pieces) and verifies, in this process, (a) one BIG object with one stream
(``streams=1``) against parallel ranged GETs (``--streams``, ``--part-size``) and (b) SMALL_COUNT
small objects with ``--jobs`` workers, both ways (they must cost the same: one GET each).
Runs are interleaved A B, B A (``--repeat``, even). Per run: seconds, MB/s, requests, bytes
fetched, this process's CPU seconds (the verifier's alone: the emulator is another process) and
its peak RSS (reset before each run). Prints tables and ratios, writes JSON.

    .venv/bin/python scripts/bench_verify.py [--sections crc,parallel] [--size 1GiB]
        [--big 512MiB] [--streams 8] [--part-size 8MiB] [--repeat 2] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import ossfs.verify.verifier
from ossfs.core.crc64 import crc64, require_fast_crc
from ossfs.core.sizes import format_size, parse_size
from ossfs.store.config import OssConfig
from ossfs.store.oss_store import OssStore
from ossfs.verify.model import MountView, Status, VerifyConfig
from ossfs.verify.verifier import Verifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mount_helpers import client_env, cpu_seconds, daemon_pids, mounted, peak_rss

BUCKET = "bench-bucket"
KEY_ID = "BenchAccessKeyId"
SECRET = "BenchAccessKeySecret"
MIB = 1 << 20

CrcFun = Callable[[bytes | memoryview, int], int]


def _fastcrc() -> CrcFun | None:
    try:
        import fastcrc
    except ImportError:
        return None
    fun: CrcFun = fastcrc.crc64.xz
    if fun(b"123456789", 0) != crc64(b"123456789"):
        raise SystemExit("fastcrc's CRC-64/XZ disagrees with ossfs.core.crc64")
    return fun


def bench_crc(size: int, chunk: int, crc_fun: CrcFun = crc64) -> dict[str, float]:
    buf = os.urandom(min(size, 64 * MIB))
    view = memoryview(buf)
    pieces = [view[i : i + chunk] for i in range(0, len(buf), chunk)]
    crc = 0
    done = 0
    t0 = time.perf_counter()
    while done < size:
        for piece in pieces:
            crc = crc_fun(piece, crc)
            done += len(piece)
            if done >= size:
                break
    seconds = time.perf_counter() - t0
    return {"bytes": done, "seconds": seconds, "mib_per_s": done / MIB / seconds}


def _emulator_available() -> bool:
    try:
        import ossfs.emulator  # noqa: F401
    except ImportError:
        return False
    return True


def bench_emulator(
    size: int, chunk: int, workdir: Path, fast: CrcFun | None
) -> dict[str, dict[str, float]]:
    from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer

    config = EmulatorConfig(
        data_dir=workdir / "data",
        buckets=(BUCKET,),
        credentials=(Credential(KEY_ID, SECRET),),
    )
    source = workdir / "object.bin"
    block = os.urandom(16 * MIB)
    with open(source, "wb") as f:
        written = 0
        while written < size:
            piece = block[: size - written]
            f.write(piece)
            written += len(piece)
    results: dict[str, dict[str, float]] = {}
    with EmulatorServer(config) as server:
        server.put_object_from_file(BUCKET, "big.bin", source)
        source.unlink()
        store = OssStore(
            OssConfig(
                endpoint=server.endpoint,
                bucket=BUCKET,
                access_key_id=KEY_ID,
                access_key_secret=SECRET,
            )
        )
        with store:
            # Warm the page cache (the emulator serves from a file) so both runs see the same.
            _, chunks = store.stream("big.bin", chunk_bytes=chunk)
            for _ in chunks:
                pass

            t0 = time.perf_counter()
            _, chunks = store.stream("big.bin", chunk_bytes=chunk)
            got = sum(len(c) for c in chunks)
            raw_s = time.perf_counter() - t0
            results["raw stream"] = {"bytes": got, "seconds": raw_s}

            results["verify"] = _bench_verify(store, chunk)
            if fast is not None:
                namespace = vars(ossfs.verify.verifier)
                original = namespace["crc64"]
                namespace["crc64"] = fast
                try:
                    results["verify (fastcrc)"] = _bench_verify(store, chunk)
                finally:
                    namespace["crc64"] = original
    for row in results.values():
        row["mib_per_s"] = row["bytes"] / MIB / row["seconds"]
    return results


def _bench_verify(store: OssStore, chunk: int) -> dict[str, float]:
    verifier = Verifier(store, VerifyConfig(jobs=1, chunk_bytes=chunk, streams=1))
    t0 = time.perf_counter()
    report = verifier.run(verifier.collect("big"))
    seconds = time.perf_counter() - t0
    (result,) = report.results
    if result.status is not Status.OK:
        raise SystemExit(f"verify did not say OK: {result}")
    return {"bytes": result.bytes_read, "seconds": seconds}


REMOTE_LATENCY_S: Final = 0.02  # as scripts/bench_suite.py's remote profiles
REMOTE_BANDWIDTH: Final = 100_000_000
PROFILE_ARGS: Final = {
    "loopback": (),
    "remote": ("--latency", str(REMOTE_LATENCY_S), "--bandwidth", str(REMOTE_BANDWIDTH)),
    "remote-chunked": (
        "--latency",
        str(REMOTE_LATENCY_S),
        "--bandwidth",
        str(REMOTE_BANDWIDTH),
        "--pacing",
        "chunked",
    ),
}


@dataclass(frozen=True)
class Way:
    """One way to verify: a name and the verify settings."""

    name: str
    config: VerifyConfig


def _seed(root: Path, big: int, small_count: int, small_size: int) -> None:
    block = os.urandom(16 * MIB)
    (root / "big").mkdir(parents=True)
    with open(root / "big" / "big.bin", "wb") as f:
        written = 0
        while written < big:
            piece = block[: big - written]
            f.write(piece)
            written += len(piece)
    (root / "small").mkdir()
    for i in range(small_count):
        (root / "small" / f"s-{i:04d}.bin").write_bytes(os.urandom(small_size))


@contextmanager
def _emulator(data: Path, seed: Path | None, profile: str) -> Iterator[str]:
    """An emulator in its own process (its CPU is not this process's); yields its endpoint."""
    env = dict(os.environ, OSS_ACCESS_KEY_ID=KEY_ID, OSS_ACCESS_KEY_SECRET=SECRET)
    argv = [sys.executable, "-m", "ossfs", "emulator", "--data", str(data), "--bucket", BUCKET]
    if seed is not None:
        argv += ["--seed", str(seed)]
    proc = subprocess.Popen(
        [*argv, *PROFILE_ARGS[profile]], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        if not endpoint.startswith("http"):
            raise SystemExit(f"the emulator did not start: {endpoint!r}")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def _mounted(endpoint: str, mountpoint: Path) -> Iterator[Path]:
    """The bucket mounted (daemonized, default options) at ``mountpoint``."""
    env = client_env(KEY_ID, SECRET)
    with mounted(f"oss://{BUCKET}", mountpoint, env=env, args=("--endpoint", endpoint)) as path:
        yield path


def _daemon(mount: MountView | None) -> list[int]:
    return [] if mount is None else daemon_pids(mount.mountpoint)


def _reset_peak_rss() -> None:
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_way(
    store: OssStore, prefix: str, way: Way, mount: MountView | None = None
) -> dict[str, float]:
    verifier = Verifier(store, way.config, mount=mount)
    targets = verifier.collect(prefix)
    before = store.stats()
    _reset_peak_rss()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    report = verifier.run(targets)
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    after = store.stats()
    if not report.summary.all_ok:
        bad = [r for r in report.results if r.status is not Status.OK][:3]
        raise SystemExit(f"verify did not say OK: {bad}")

    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    return {
        "seconds": seconds,
        "mb_per_s": report.summary.bytes / 1e6 / seconds,
        "objects": report.summary.objects,
        "gets": delta("requests.get"),
        "heads": delta("requests.head"),
        "bytes_fetched": delta("bytes_fetched"),
        "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        "peak_rss_mib": _peak_rss_mib(),
    }


def bench_parallel(args: argparse.Namespace) -> dict[str, object]:
    """Single stream against parallel ranged GETs for one big object, and many small objects
    both ways, on each profile; interleaved A B, B A."""
    if args.repeat < 2 or args.repeat % 2:
        raise SystemExit("--repeat must be even and >= 2 (runs are interleaved A B, B A)")
    big = parse_size(args.big)
    part = parse_size(args.part_size)
    small_size = parse_size(args.small_size)
    chunk = parse_size(args.chunk)
    single = VerifyConfig(jobs=args.jobs, chunk_bytes=chunk, streams=1)
    parallel = VerifyConfig(
        jobs=args.jobs, chunk_bytes=chunk, streams=args.streams, part_bytes=part
    )
    cases = {
        "big": ("big/", (Way("one stream", single), Way(f"{args.streams} streams", parallel))),
        "small": ("small/", (Way("streams=1", single), Way(f"streams={args.streams}", parallel))),
    }
    if args.through:
        cases["through"] = (
            "big/",
            (Way("one stream", single), Way(f"{args.streams} streams", parallel)),
        )
    results: dict[str, dict[str, dict[str, list[dict[str, float]]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp_name:
        tmp = Path(tmp_name)
        seed: Path | None = tmp / "seed"
        assert seed is not None
        _seed(seed, big, args.small_count, small_size)
        for profile in args.profiles.split(","):
            with _emulator(tmp / "data", seed, profile) as endpoint:
                if seed is not None:  # seeded once; the data directory stays for the others
                    subprocess.run(["rm", "-rf", str(seed)], check=True)
                    seed = None
                config = OssConfig(
                    endpoint=endpoint,
                    bucket=BUCKET,
                    access_key_id=KEY_ID,
                    access_key_secret=SECRET,
                    pool_size=args.jobs * args.streams + 2,
                )
                with OssStore(config) as store:
                    for case, (prefix, ways) in cases.items():
                        rows = results.setdefault(profile, {}).setdefault(case, {})
                        for r in range(args.repeat):
                            for way in ways if r % 2 == 0 else tuple(reversed(ways)):
                                with contextlib.ExitStack() as stack:
                                    mount: MountView | None = None
                                    if case == "through":  # a fresh mount: a cold cache
                                        mount = MountView(
                                            stack.enter_context(_mounted(endpoint, tmp / "mnt"))
                                        )
                                    daemon = _daemon(mount)
                                    cpu0 = cpu_seconds(daemon)
                                    row = _run_way(store, prefix, way, mount)
                                    if mount is not None:
                                        row["daemon_cpu_s"] = cpu_seconds(daemon) - cpu0
                                        rss = peak_rss(daemon)
                                        row["daemon_rss_mib"] = (rss or 0) / MIB
                                rows.setdefault(way.name, []).append(row)
                                print(
                                    f"{profile:<15} {case:<5} {way.name:<11} run {r + 1}: "
                                    f"{row['seconds']:6.2f} s {row['mb_per_s']:7.1f} MB/s",
                                    file=sys.stderr,
                                )
    _print_parallel(results, big, part, args)
    return {
        "big": big,
        "part_bytes": part,
        "streams": args.streams,
        "jobs": args.jobs,
        "small_count": args.small_count,
        "small_size": small_size,
        "load_avg_1m": os.getloadavg()[0],
        "runs": results,
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _print_parallel(
    results: dict[str, dict[str, dict[str, list[dict[str, float]]]]],
    big: int,
    part: int,
    args: argparse.Namespace,
) -> None:
    print(
        f"one {format_size(big)} object (part {format_size(part)}), and {args.small_count} x "
        f"{args.small_size} with {args.jobs} jobs; medians of {args.repeat} interleaved runs; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'profile':<15} {'case':<5} {'way':<11} {'s':>7} {'MB/s':>7} {'GETs':>6} "
        f"{'HEADs':>5} {'fetched MB':>10} {'CPU s':>6} {'RSS MiB':>7}"
    )
    print(header)
    for profile, cases in results.items():
        for case, ways in cases.items():
            medians: dict[str, float] = {}
            for name, rows in ways.items():
                m = {k: _median([row[k] for row in rows]) for k in rows[0]}
                medians[name] = m["mb_per_s"]
                print(
                    f"{profile:<15} {case:<5} {name:<11} {m['seconds']:7.2f} "
                    f"{m['mb_per_s']:7.1f} {m['gets']:6.0f} {m['heads']:5.0f} "
                    f"{m['bytes_fetched'] / 1e6:10.1f} {m['cpu_s']:6.2f} {m['peak_rss_mib']:7.0f}"
                    + (
                        f"  daemon {m['daemon_cpu_s']:.2f} CPU-s, {m['daemon_rss_mib']:.0f} MiB"
                        if "daemon_cpu_s" in m
                        else ""
                    )
                )
            first, second = list(medians)
            ratio = medians[second] / medians[first]
            print(f"{'':<15} {case:<5} {second} / {first}: {ratio:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="crc,parallel", help="crc, parallel or both")
    parser.add_argument("--size", default="1GiB", help="bytes to CRC and object size (1GiB)")
    parser.add_argument("--chunk", default="1MiB", help="chunk size (1MiB)")
    parser.add_argument("--big", default="512MiB", help="the large object (512MiB)")
    parser.add_argument("--streams", type=int, default=8, help="parallel GETs per object (8)")
    parser.add_argument("--part-size", default="8MiB", help="bytes per ranged GET (8MiB)")
    parser.add_argument("--small-count", type=int, default=200, help="small objects (200)")
    parser.add_argument("--small-size", default="256KiB", help="each small object (256KiB)")
    parser.add_argument("--jobs", type=int, default=4, help="objects at once (4)")
    parser.add_argument(
        "--profiles", default="remote,remote-chunked", help="remote, remote-chunked, loopback"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (even; 2)")
    parser.add_argument(
        "--through",
        action="store_true",
        help="also verify the big object through an ossfs mount (default options) of the emulator",
    )
    parser.add_argument("--json-out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    require_fast_crc()
    sections = set(args.sections.split(","))
    doc: dict[str, object] = {}
    if "parallel" in sections:
        doc["parallel"] = bench_parallel(args)
    if "crc" in sections:
        doc.update(bench_crc_section(args))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


def bench_crc_section(args: argparse.Namespace) -> dict[str, object]:
    size = parse_size(args.size)
    chunk = parse_size(args.chunk)

    fast = _fastcrc()
    rows: dict[str, dict[str, float]] = {"crc64 in memory": bench_crc(size, chunk)}
    if fast is not None:
        rows["fastcrc in memory"] = bench_crc(size, chunk, fast)
    if _emulator_available():
        with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
            rows.update(bench_emulator(size, chunk, Path(tmp), fast))
    else:
        print("emulator not available: skipping the stream and verify rows", file=sys.stderr)

    print(f"size {format_size(size)}, chunk {format_size(chunk)}")
    print(f"{'measurement':<20} {'seconds':>9} {'MiB/s':>9}")
    for name, row in rows.items():
        print(f"{name:<20} {row['seconds']:>9.2f} {row['mib_per_s']:>9.1f}")
    ratios: dict[str, float] = {}
    if "verify" in rows:
        ratios["verify / raw stream"] = (
            rows["verify"]["mib_per_s"] / rows["raw stream"]["mib_per_s"]
        )
        ratios["verify / crc64"] = (
            rows["verify"]["mib_per_s"] / rows["crc64 in memory"]["mib_per_s"]
        )
        if "verify (fastcrc)" in rows:
            ratios["verify (fastcrc) / raw stream"] = (
                rows["verify (fastcrc)"]["mib_per_s"] / rows["raw stream"]["mib_per_s"]
            )
        for name, value in ratios.items():
            print(f"{name:<30} {value:>6.2f}")
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_rss_mib:.0f} MiB")
    return {
        "size": size,
        "chunk": chunk,
        "rows": rows,
        "ratios": ratios,
        "peak_rss_mib": peak_rss_mib,
    }


if __name__ == "__main__":
    sys.exit(main())
