"""The benchmark suite of issues 5 and 17: ossfs side by side with its peers, on one local OSS
server.

Usage: python scripts/bench_suite.py [--quick] [--profiles loopback,remote] [--systems ...]
                                     [--workloads ...] [--repeat N] [--out-dir bench-results]

One run starts the emulator in this process (OSS dialect for ossfs and oss2, S3 dialect for the
peers, the same storage behind both), writes one data set, and measures every workload on every
system, side by side:

- ``ossfs``: a fresh ``python -m ossfs mount -f`` of this work tree for each case;
- ``oss2``: the SDK directly (``get_object`` + ``shutil.copyfileobj``, ``enable_crc=False``);
- ``s3fs`` (s3fs-fuse) and ``rclone`` (``rclone mount``, default VFS settings) on the S3 dialect;
- ``nullfs``: ``scripts/bench_nullfs.py``, fusepy serving the same tree from memory (the ceiling
  for any fusepy filesystem with the FUSE options ossfs uses);
- ``local``: the same tree in a local directory, page cache warm (the limit of the box).

Profiles: ``loopback`` (no faults); ``remote`` (every answer, GET, HEAD, LIST and the probe, waits
20 ms; bodies flow at 100 MB/s per connection in small pieces, each on time); ``remote-chunked``
(the same, but bodies are written 1 MiB at a time with a sleep to keep the rate, as some servers
and proxies do). Workloads (the ``--quick`` sizes in brackets):

- ``seq1``: sequential read of one large object, 1 GiB [256 MiB], then ``warm``: the same file
  again in the same mount; ``seq4``: 4 readers on 4 such objects at once (ossfs gets
  ``--max-memory`` when it has that option);
- ``ttfb``: open + read of 1 byte of each of the 4 large objects (median);
- ``rand4k`` / ``rand256k``: seeded random ``pread``s (``POSIX_FADV_RANDOM``, like fio) of one
  large object, a fixed count;
- ``small1`` / ``small8``: N files of 100 KiB, 1,000 [250], read whole by 1 and by 8 readers,
  after the directory has been listed;
- ``ls1k`` / ``ls10k``: ``ls -l`` of 1,000 and 10,000 entries; ``find``: ``find -type f`` over
  100,000 [10,000] objects in 1,000 [100] directories;
- ``find2k`` / ``du2k``: ``find -type f`` and ``du -s`` over 100 directories x 20 objects (oss2:
  one flat ListObjectsV2 of the prefix, the reference of a walk);
- ``cold``: on a fresh mount whose root was never listed, open + 1 byte of a file two
  directories deep (oss2: one LIST + one GET, the two round trips of the target);
- ``twostream``: two sequential streams on one fd, 1 MiB reads at 0 and 128 MiB, alternating;
- ``verify1`` / ``verifysmall``: ``ossfs verify`` of one 512 MiB [128 MiB] object and of the
  small files (ossfs only; oss2: the single stream of the same object);
- ``import``: ``import`` of a synthetic Python package of 600 [64] modules from the mount;
- ``epoch1`` / ``epoch1c`` / ``epoch2`` (issue 15's disk cache; ossfs, and ``local`` for
  ``epoch2``): 8 files, 4x ``--epoch-memory`` (128 MiB) in all, read by 4 readers through a
  mount with that ``--max-memory``, without and with a fresh ``--cache-dir`` (alternating
  which goes first), then through a remounted mount with the same directory (`bench.epoch`).

Each case runs in a worker subprocess (so no client shares the emulator's GIL), on a fresh mount
(cold caches), with a timeout. It reports the headline figure (MB/s = 10**6 bytes a second,
ops/s, files/s, ms or s), the requests the server saw (GET/HEAD/LIST/other) and the bytes it
served (and so network bytes per application byte), the CPU time (user and system) of the
process doing the work (the mount daemon; the oss2 client; the ``ossfs verify`` process) and per
GiB read, and the mount daemon's peak RSS (VmHWM), for ossfs also against its memory budget (a
table of its own: budget, peak RSS, their ratio and difference). A row that does not apply to
a system (verify on a peer) says why. With ``--repeat N`` each case
runs N times, systems interleaved in a rotating order, and the median is shown. A system that is
missing or fails to mount is reported as such; the rest still runs. Output: a markdown report on
stdout and in ``OUT/report.md``, every sample in ``OUT/results.json``, a bar chart in
``OUT/chart.svg``. Every mount is unmounted and every process reaped, even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.chart import chart_svg
from bench.config import (
    AK,
    BUCKET,
    FULL,
    PROFILES,
    QUICK,
    REMOTE_BANDWIDTH,
    REMOTE_LATENCY_S,
    REPO,
    SK,
    SYSTEMS,
    Sizes,
)
from bench.dataset import Layout, build_data, large_files, read_through
from bench.epoch import run_epoch_case
from bench.measuring import run_case
from bench.reporting import fmt, report
from bench.samples import Key, Sample, median_sample
from bench.systems import (
    BASELINE_TREES,
    Bench,
    Mount,
    make_mount_root,
    ossfs_memory_args,
    remove_mount_root,
    snapshot_ossfs,
)
from bench.targets import evaluate_targets
from bench.targets_issue15 import evaluate_issue15
from bench.targets_issue17 import evaluate_issue17
from bench.worker import run_worker, worker
from bench.workloads import workloads
from mount_helpers import baseline_tree


def git_rev() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "ossfs"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return result.stdout.strip() + ("+dirty" if dirty else "")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from ossfs.core.sizes import parse_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--workloads", help="comma-separated workload names (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median shown)")
    parser.add_argument("--seq-size", help="large object size (1GiB; --quick 256MiB)")
    parser.add_argument("--small-files", type=int, help="number of 100 KiB files")
    parser.add_argument("--find-dirs", type=int, help="directories of the find tree")
    parser.add_argument("--find-per-dir", type=int, help="objects per directory of the find tree")
    parser.add_argument("--random-ops", type=int, help="random 4 KiB reads (256 KiB: a fifth)")
    parser.add_argument(
        "--verify-size", help="the object of the verify1 row (512MiB; --quick 128MiB)"
    )
    parser.add_argument("--timeout", type=float, help="seconds per measurement")
    parser.add_argument("--max-memory", default="512MiB", help="ossfs --max-memory for seq4")
    parser.add_argument(
        "--epoch-memory",
        help="ossfs --max-memory of the epoch rows; their data set is 4x this (128MiB)",
    )
    parser.add_argument(
        "--baseline-rev",
        metavar="REV",
        help="also measure the ossfs of this git revision (system ossfs@REV, interleaved)",
    )
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench-results")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    base = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.seq_size:
        changes["seq_bytes"] = parse_size(args.seq_size)
    if args.verify_size:
        changes["verify_bytes"] = parse_size(args.verify_size)
    if args.small_files:
        changes["small_files"] = args.small_files
    if args.find_dirs:
        changes["find_dirs"] = args.find_dirs
    if args.find_per_dir:
        changes["find_per_dir"] = args.find_per_dir
    if args.random_ops:
        changes["rand4k_ops"] = args.random_ops
        changes["rand256k_ops"] = max(1, args.random_ops // 5)
    if args.timeout:
        changes["timeout_s"] = args.timeout
    if args.epoch_memory:
        changes["epoch_memory"] = parse_size(args.epoch_memory)
    args.sizes = Sizes(**{**asdict(base), **changes})
    for name, allowed in (("profiles", PROFILES), ("systems", SYSTEMS)):
        chosen = getattr(args, name).split(",")
        unknown = set(chosen) - set(allowed)
        if unknown:
            parser.error(f"unknown {name} {sorted(unknown)}; choose from {list(allowed)}")
        setattr(args, name, [x for x in allowed if x in chosen])
    if args.baseline_rev:
        at = args.systems.index("ossfs") + 1 if "ossfs" in args.systems else 0
        args.systems.insert(at, f"ossfs@{args.baseline_rev}")
    names = [w.name for w in workloads(args.sizes)]
    if args.workloads:
        unknown = set(args.workloads.split(",")) - set(names)
        if unknown:
            parser.error(f"unknown workloads {sorted(unknown)}; choose from {names}")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def run(args: argparse.Namespace) -> int:
    from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
    from ossfs.emulator.faults import FaultSettings

    sizes: Sizes = args.sizes
    systems: list[str] = args.systems
    profiles: list[str] = args.profiles
    every = workloads(sizes)
    wanted = set(args.workloads.split(",")) if args.workloads else {w.name for w in every}
    if "warm" in wanted:
        wanted.add("seq1")  # warm is the second read of the seq1 case
    chosen = [w for w in every if w.name in wanted]
    groups = list(dict.fromkeys(w.group for w in chosen))
    memory_args: list[str] = []
    settings = {
        "loopback": FaultSettings(),
        "remote": FaultSettings(latency_s=REMOTE_LATENCY_S, bandwidth_bytes_per_s=REMOTE_BANDWIDTH),
        "remote-chunked": FaultSettings(
            latency_s=REMOTE_LATENCY_S, bandwidth_bytes_per_s=REMOTE_BANDWIDTH, pacing="chunked"
        ),
    }
    samples: dict[Key, list[Sample]] = {}
    began = time.monotonic()
    rev = git_rev()
    with tempfile.TemporaryDirectory(prefix="ossfs-suite-") as tmp_name:
        tmp = Path(tmp_name)
        snapshot_ossfs(tmp)
        if args.baseline_rev:
            BASELINE_TREES[f"ossfs@{args.baseline_rev}"] = baseline_tree(args.baseline_rev, tmp)
        if "ossfs" in systems or BASELINE_TREES:
            memory_args = ossfs_memory_args(args.max_memory)
        mount_root = make_mount_root(tmp)
        try:
            config = EmulatorConfig(
                data_dir=tmp / "data",
                buckets=(BUCKET,),
                credentials=(Credential(AK, SK),),
                anonymous=True,  # the S3 dialect is anonymous; the OSS one still checks signatures
                s3_port=0,
            )
            with EmulatorServer(config) as server:
                layout = Layout(sizes)
                print(
                    f"writing the data set ({len(layout.files()):,} objects) ...", file=sys.stderr
                )
                build_data(
                    server, layout, tmp / "local", tmp / "manifest.json", epoch="epoch" in groups
                )
                bench = Bench(
                    server,
                    layout,
                    tmp,
                    tmp / "local",
                    tmp / "manifest.json",
                    memory_args,
                    mount_root,
                )
                # warm the local file into the page cache (the local rows are the page-cache limit)
                run_worker({"task": "seq", "root": str(bench.local), "keys": layout.big}, 600)
                server_files = large_files(tmp / "data")
                for profile in profiles:
                    server.faults.set(settings[profile])
                    for group in groups:
                        # Warm the server for the group: its copies of the data in the page
                        # cache, and one untimed pass of the direct oss2 stream (else whichever
                        # system runs first is slower: the first 4 x 1 GiB run came out at half
                        # the rate of the other two, for ossfs and s3fs alike).
                        read_through(server_files)
                        if "oss2" in systems and group != "epoch":  # no oss2 epoch rows
                            run_case(bench, "oss2", group, sizes.timeout_s)
                        for rep in range(args.repeat):
                            order = systems[rep % len(systems) :] + systems[: rep % len(systems)]
                            for system in order:
                                t0 = time.monotonic()
                                if group == "epoch":
                                    got = run_epoch_case(bench, system, sizes.timeout_s, rep)
                                else:
                                    got = run_case(bench, system, group, sizes.timeout_s)
                                for name, sample in got.items():
                                    samples.setdefault((profile, name, system), []).append(sample)
                                    shown = fmt(sample.value) if sample.ok else sample.status
                                    print(
                                        f"[{time.monotonic() - began:6.0f}s] {profile:8} {name:8} "
                                        f"{system:7} {shown} ({time.monotonic() - t0:.1f}s)",
                                        file=sys.stderr,
                                        flush=True,
                                    )
                    server.faults.clear()
        finally:
            Mount.stop_all()
            remove_mount_root(mount_root)
    by_name = {w.name: w for w in every}
    results = {
        key: median_sample(runs, by_name[key[1]].higher_is_better) for key, runs in samples.items()
    }
    targets = evaluate_targets(results, sizes, memory_args, profiles)
    targets += evaluate_issue17(results, sizes, profiles)
    targets += evaluate_issue15(results, profiles)
    header = (
        f"## ossfs benchmark suite ({'quick' if args.quick else 'full'} sizes; ossfs {rev}; "
        f"median of {args.repeat} run(s); {os.cpu_count()} CPUs; "
        f"{time.monotonic() - began:.0f} s)\n\n"
        "MB/s = 10**6 bytes a second. Each case runs on a fresh mount (cold caches) except "
        "`warm` (the second read in the `seq1` mount) and `local` (page cache warm). "
        f"`remote` = {REMOTE_LATENCY_S * 1e3:.0f} ms before every answer (GET, HEAD, LIST), "
        f"{REMOTE_BANDWIDTH / 1e6:.0f} MB/s per connection in small pieces; `remote-chunked`: "
        "the same rate in 1 MiB pieces with sleeps between. Requests and bytes are what the server "
        "saw during the measured part only (mount, `stat` and listing before it excluded, except "
        "in `ls`/`find`/`du`); an aborted GET (the client hung up mid-body) is logged with 0 "
        "bytes, so `MB served` undercounts for clients that abort streams (see `aborted GETs`) "
        "and their network bytes per application byte are lower bounds (`>=`). CPU-s: the "
        "mount daemon's, else the oss2 client's (its worker process) or the `ossfs verify` "
        "process's (interpreter start included), from just before the measured part until the "
        "server's log settles. "
        "(!) marks "
        "a read case during which the server saw LISTs: another process walked the mount, so "
        "that figure is disturbed. ossfs (and the null FUSE's imports) ran from a copy of the "
        "work tree's `ossfs` package taken at the start (`+dirty`: with uncommitted changes)."
    )
    text = report(
        results=results,
        sizes=sizes,
        systems=systems,
        profiles=profiles,
        chosen=chosen,
        targets=targets,
        header=header,
    )
    print(text)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text)
    (out / "chart.svg").write_text(chart_svg(results, systems, profiles, chosen))
    doc = {
        "ossfs_rev": rev,
        "quick": args.quick,
        "repeat": args.repeat,
        "sizes": asdict(sizes),
        "profiles": {p: settings[p].to_json() for p in profiles},
        "ossfs_seq4_args": memory_args,
        "workloads": [asdict(w) for w in chosen],
        "results": [
            {
                "profile": k[0],
                "workload": k[1],
                "system": k[2],
                "median": asdict(results[k]),
                "samples": [asdict(s) for s in samples[k]],
            }
            for k in samples
        ],
        "targets": [asdict(t) for t in targets],
    }
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(
        f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'chart.svg'}", file=sys.stderr
    )
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(sys.stdin.read()))))
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except KeyboardInterrupt:
        Mount.stop_all()
        return 130


if __name__ == "__main__":
    sys.exit(main())
