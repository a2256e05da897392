"""Issue 15's epoch rows: a data set 4x ossfs's ``--max-memory`` read whole by 4 readers,
on fresh mounts, as one case per repeat:

- ``epoch1``: through a mount without ``--cache-dir``;
- ``epoch1c``: through a mount with a new, empty ``--cache-dir``; unmounted (the disk cache's
  writers finish first), then
- ``epoch2``: through a mount of the same bucket with the same directory;
- on the ``local`` system, ``epoch2`` is the same files read from the local directory, the
  reference of the target.

Both epoch-2 reads start from the disk, not from memory: the kernel's page cache of the local
files and of the cache directory's files is dropped first (`drop_page_cache`), as after a
reboot or on a node whose memory went to the job. With both in the page cache, the local read
is a memory copy (12.8 GB/s here) that no FUSE file system comes near (the null FUSE does
about 2 GB/s on these 2 cores): the target would measure FUSE, not the disk cache.

The two epoch-1 mounts alternate their order from one repeat to the next (ABBA over an even
number of repeats), so drift in the machine's load falls on both alike.
``scripts/bench_disk_cache.py`` is the command line of these rows alone.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any

from bench.config import EPOCH_READERS, MIB, Sizes
from bench.dataset import Layout
from bench.measuring import case_sample, measure, ossfs_counters
from bench.samples import Sample
from bench.systems import Bench, MountError, kind, missing_tool
from bench.workloads import Workload, epoch_workloads, not_applicable


def epoch_order(rep: int) -> tuple[str, str]:
    """Which epoch-1 mount comes first in repeat ``rep`` ("off": no --cache-dir; "on": with
    one): off first in even repeats, on first in odd ones (ABBA)."""
    return ("off", "on") if rep % 2 == 0 else ("on", "off")


def drop_page_cache(paths: list[Path]) -> None:
    """Write ``paths`` out and drop their pages from the kernel's page cache (only theirs: the
    machine's other work keeps its cache), so that the next read of them is from the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def epoch_spec(layout: Layout, root: str) -> dict[str, Any]:
    """The worker's task: read every epoch file under ``root`` whole, `EPOCH_READERS` threads."""
    return {
        "task": "seq",
        "root": root,
        "oss": None,
        "keys": layout.epoch,
        "threads": EPOCH_READERS,
    }


def epoch_mount_args(sizes: Sizes, cache_dir: Path | None) -> list[str]:
    """ossfs options of an epoch mount: the rows' memory budget, and the cache directory."""
    args = ["--max-memory", f"{sizes.epoch_memory // MIB}MiB"]
    return args if cache_dir is None else [*args, "--cache-dir", str(cache_dir)]


def run_epoch_case(bench: Bench, system: str, timeout_s: float, rep: int) -> dict[str, Sample]:
    """The epoch rows on ``system`` for repeat ``rep``: ossfs's three mounts, or the local read."""
    by_name = {w.name: w for w in epoch_workloads(bench.layout.sizes)}
    out: dict[str, Sample] = {}
    for name in by_name:
        reason = not_applicable(name, system)
        if reason is not None:
            out[name] = Sample(status=f"n/a: {reason}")
    if system == "local":
        drop_page_cache([bench.local / key for key in bench.layout.epoch])
        spec = epoch_spec(bench.layout, str(bench.local))
        got = measure(bench, spec, None, timeout_s)
        out["epoch2"] = case_sample(by_name["epoch2"], got, None, system)
        return out
    if kind(system) != "ossfs":
        return out
    missing = missing_tool(system)
    if missing is not None:
        return {name: Sample(status=missing) for name in by_name}
    run = functools.partial(_epoch, bench, system, timeout_s)
    for case in epoch_order(rep):
        if case == "off":
            out["epoch1"] = run(by_name["epoch1"], None)
            continue
        cache_dir = bench.tmp / f"epoch-cache-{rep}"
        try:
            out["epoch1c"] = run(by_name["epoch1c"], cache_dir)
            if out["epoch1c"].ok:
                drop_page_cache(sorted(p for p in cache_dir.rglob("*") if p.is_file()))
                out["epoch2"] = run(by_name["epoch2"], cache_dir)
            else:
                out["epoch2"] = Sample(status=f"skipped: {out['epoch1c'].status}"[:200])
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return out


def _epoch(
    bench: Bench, system: str, timeout_s: float, workload: Workload, cache_dir: Path | None
) -> Sample:
    """One epoch through a fresh mount (unmounted after it: its disk cache's writers finish)."""
    mount = bench.mount_for(system, epoch_mount_args(bench.layout.sizes, cache_dir))
    try:
        try:
            mount.start()
        except MountError as exc:
            return Sample(status=f"mount failed: {exc}"[:200])
        spec = epoch_spec(bench.layout, str(mount.mountpoint))
        counters = functools.partial(ossfs_counters, mount.mountpoint)
        prepare = {**spec, "task": "stat"}
        got = measure(bench, spec, prepare, timeout_s, counters, daemon_pid=mount.pid)
        return case_sample(workload, got, mount, system)
    finally:
        mount.stop()
