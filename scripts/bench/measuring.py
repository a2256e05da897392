"""Cases: the specs of each workload group, one measured run of a spec against a cleared
request log, and `run_case` (every workload of a group on one system, on a fresh mount).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mount_helpers import cpu_times, peak_rss

from bench.config import BLOCK_BYTES, MOUNTED
from bench.dataset import COLD_KEY, PKG_DIR, VERIFY_KEY, Layout
from bench.pypkg import PACKAGE
from bench.samples import Sample, aborted_gets, request_counts, settle
from bench.systems import (
    BASELINE_TREES,
    Bench,
    Mount,
    MountError,
    kind,
    missing_tool,
    ossfs_default_cache_bytes,
    python_cwd,
)
from bench.worker import run_worker
from bench.workloads import Workload, not_applicable, workloads


def ossfs_counters(root: Path) -> dict[str, float]:
    """The numbers of an ossfs mount's ``user.ossfs.obs.stats`` xattr, flattened to dotted names
    (empty when this ossfs has no such xattr)."""
    try:
        doc = json.loads(os.getxattr(root, "user.ossfs.obs.stats"))
    except (OSError, ValueError):
        return {}
    flat: dict[str, float] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[prefix.rstrip(".")] = float(value)

    walk("", doc)
    return flat


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the counters did during a case (gauges and ratios are recomputed by the report)."""
    gauges = ("uptime_s", "hit_rate", "waste_ratio", "open_handles", "inflight_bytes", "memory.")
    return {
        k: v - before.get(k, 0.0)
        for k, v in after.items()
        if not any(g in k for g in gauges) and k != "ossfs_stats"
    }


@dataclass(slots=True)
class Measured:
    """What one run of a spec gave: the worker's answer, the requests and bytes the server saw,
    ossfs's counter deltas and the daemon's CPU (user, system) during the measured part."""

    answer: dict[str, Any]
    requests: dict[str, int] = field(default_factory=dict)
    served: int = 0
    counters: dict[str, float] = field(default_factory=dict)
    daemon_cpu: tuple[float, float] | None = None


def measure(
    bench: Bench,
    spec: dict[str, Any],
    prepare: dict[str, Any] | None,
    timeout_s: float,
    counters: Callable[[], dict[str, float]] | None = None,
    *,
    daemon_pid: int | None = None,
) -> Measured:
    """Run ``prepare`` (not measured), then ``spec`` with a cleared request log. The daemon's
    CPU is counted from just before ``spec`` until the server's log has settled (read-ahead
    that finishes after the reader is done is part of the cost)."""
    if prepare is not None:
        answer = run_worker(prepare, timeout_s)
        if "error" in answer:
            return Measured(answer)
    settle(bench.server)
    bench.server.log.clear()
    before = counters() if counters else {}
    cpu_before = cpu_times([daemon_pid]) if daemon_pid is not None else None
    answer = run_worker(spec, timeout_s)
    counts, served = settle(bench.server)
    cpu = None
    if cpu_before is not None and daemon_pid is not None:
        after = cpu_times([daemon_pid])
        cpu = (after[0] - cpu_before[0], after[1] - cpu_before[1])
    requests = request_counts(counts)
    requests["aborted"] = aborted_gets(bench.server)
    delta = counter_delta(before, counters()) if counters and before else {}
    return Measured(answer, requests, served, delta, cpu)


def to_sample(
    workload: Workload, answer: dict[str, Any], requests: dict[str, int], served: int
) -> Sample:
    if "error" in answer:
        return Sample(status=answer["error"], requests=requests, bytes_served=served)
    seconds = float(answer["seconds"])
    payload, ops = int(answer.get("bytes", 0)), int(answer.get("ops", 0))
    if workload.unit == "MB/s":
        value = payload / seconds / 1e6
    elif workload.unit in ("ops/s", "files/s"):
        value = ops / seconds
    elif workload.unit == "ms":
        value = seconds * 1e3
    else:
        value = seconds
    keep = ("distinct_blocks", "lru_fetches", "wall_s")
    extra = {k: float(v) for k, v in answer.items() if k in keep}
    if "samples" in answer:
        extra.update({f"sample_{i}_s": float(s) for i, s in enumerate(answer["samples"])})
    sample = Sample("ok", value, seconds, payload, ops, requests, served, extra=extra)
    if "cpu_user_s" in answer:
        sample.cpu_user_s = float(answer["cpu_user_s"])
        sample.cpu_system_s = float(answer["cpu_system_s"])
        sample.cpu_process = "verify" if "wall_s" in answer else "client"
    return sample


def case_sample(workload: Workload, got: Measured, mount: Mount | None, system: str) -> Sample:
    """The sample of one measured run, with what the mount's daemon did (CPU, peak RSS, its
    memory budget) when there is one."""
    sample = to_sample(workload, got.answer, got.requests, got.served)
    sample.counters = got.counters
    if got.daemon_cpu is not None:
        sample.cpu_user_s, sample.cpu_system_s = got.daemon_cpu
        sample.cpu_process = "daemon"
    if not workload.metadata and got.requests.get("LIST", 0):
        # A read-only case lists nothing after its preparation: another process on the
        # machine walked the mount while it ran.
        sample.extra["foreign_lists"] = float(got.requests["LIST"])
    if mount is not None and mount.pid is not None:
        sample.peak_rss_bytes = peak_rss([mount.pid])
    if mount is not None and kind(system) == "ossfs":
        budget = ossfs_counters(mount.mountpoint).get("memory.budget_bytes")
        sample.budget_bytes = None if budget is None else int(budget)
    return sample


def case_specs(
    group: str,
    layout: Layout,
    root: str | None,
    oss: dict[str, str] | None,
    verify_cwd: str | None = None,
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(workload, spec, prepare) for each measurement of ``group``, in order. ``root``: read
    through this directory; else ``oss``: talk to the server with oss2, or, with ``verify_cwd``
    (where ``python -m ossfs`` finds the ossfs measured), run ``ossfs verify``."""
    base: dict[str, Any] = {"root": root, "oss": oss}
    sizes = layout.sizes

    def prep(**kw: Any) -> dict[str, Any] | None:
        return {**base, "task": "stat", **kw} if root else None

    big = layout.big
    if group == "seq1":
        spec = {**base, "task": "seq", "keys": big[:1]}
        return [("seq1", spec, prep(keys=big[:1])), ("warm", spec, None)]
    if group == "seq4":
        return [("seq4", {**base, "task": "seq", "keys": big}, prep(keys=big))]
    if group == "ttfb":
        return [("ttfb", {**base, "task": "ttfb", "keys": big}, prep(keys=big))]
    if group in ("rand4k", "rand256k"):
        io, ops = (
            (4096, sizes.rand4k_ops) if group == "rand4k" else (256 * 1024, sizes.rand256k_ops)
        )
        spec = {**base, "task": "random", "keys": big[:1], "size": sizes.seq_bytes}
        cache_blocks = ossfs_default_cache_bytes() // BLOCK_BYTES
        spec.update(io=io, ops=ops, seed=42, cache_blocks=cache_blocks)
        return [(group, spec, prep(keys=big[:1]))]
    if group in ("small1", "small8"):
        spec = {**base, "task": "small", "keys": layout.small, "threads": int(group[-1])}
        return [(group, spec, prep(dirs=["small"]))]
    if group in ("ls1k", "ls10k"):
        count = sizes.ls_counts[0 if group == "ls1k" else 1]
        spec = {**base, "task": "ls", "dir": layout.ls_dir(count), "expect": count}
        return [(group, spec, None)]
    if group == "find":
        return [
            ("find", {**base, "task": "find", "dir": "tree", "expect": sizes.find_objects}, None)
        ]
    if group in ("find2k", "du2k"):
        task = group.removesuffix("2k")
        return [(group, {**base, "task": task, "dir": "walk", "expect": sizes.walk_objects}, None)]
    if group == "cold":
        # No preparation: the file and both its directories are looked up for the first time.
        spec = {**base, "task": "cold", "keys": [COLD_KEY], "list_prefix": "cold/"}
        return [("cold", {**spec, "warm_key": big[0]}, None)]
    if group == "twostream":
        offset = sizes.stream_offset
        spec = {**base, "task": "twostream", "keys": big[:1], "offset": offset, "length": offset}
        return [("twostream", spec, prep(keys=big[:1]))]
    if group == "verify1":
        if verify_cwd is None:  # oss2: the single stream of the same object
            return [("verify1", {**base, "task": "seq", "keys": [VERIFY_KEY]}, None)]
        prefix, name = VERIFY_KEY.rsplit("/", 1)
        spec = {**base, "task": "verify", "prefix": prefix, "keys": [name], "expect": 1}
        return [("verify1", {**spec, "cwd": verify_cwd}, None)]
    if group == "verifysmall":
        spec = {**base, "task": "verify", "prefix": "small", "keys": []}
        return [("verifysmall", {**spec, "expect": sizes.small_files, "cwd": verify_cwd}, None)]
    if group == "import":
        modules = sizes.pkg_subpackages * sizes.pkg_modules
        spec = {**base, "task": "import", "dir": PKG_DIR, "package": PACKAGE, "expect": modules}
        return [("import", spec, None)]
    raise ValueError(group)


def run_case(bench: Bench, system: str, group: str, timeout_s: float) -> dict[str, Sample]:
    """Every workload of ``group`` on ``system`` (a fresh mount for mounted systems, except for
    workloads that need none: ossfs verify)."""
    by_name = {w.name: w for w in workloads(bench.layout.sizes)}
    names = [name for name, _, _ in case_specs(group, bench.layout, "", None)]
    if system == "oss2" and group == "seq1":
        names = ["seq1"]  # no cache: a re-read is another cold read
    reasons = {n: not_applicable(n, system) for n in names}
    out = {n: Sample(status=f"n/a: {r}") for n, r in reasons.items() if r is not None}
    names = [n for n in names if n not in out]
    reason = missing_tool(system)
    if reason is not None:
        return {**out, **{n: Sample(status=reason) for n in names}}
    if not names:
        return out
    needs_mount = all(by_name[n].needs_mount for n in names)
    mount: Mount | None = None
    try:
        root: str | None = None
        if kind(system) in MOUNTED and needs_mount:
            extra = bench.ossfs_memory_args if (kind(system), group) == ("ossfs", "seq4") else []
            mount = bench.mount_for(system, extra)
            try:
                mount.start(list_root=group != "cold")
            except MountError as exc:
                return {**out, **{n: Sample(status=f"mount failed: {exc}"[:200]) for n in names}}
            root = str(mount.mountpoint)
        elif system == "local":
            root = str(bench.local)
        ossfs_command = kind(system) == "ossfs" and not needs_mount
        oss = bench.oss() if system == "oss2" or ossfs_command else None
        verify_cwd = str(BASELINE_TREES.get(system, python_cwd())) if ossfs_command else None
        for name, spec, prepare in case_specs(group, bench.layout, root, oss, verify_cwd):
            if name not in names:
                continue
            counters = None
            if mount is not None and kind(system) == "ossfs":
                counters = functools.partial(ossfs_counters, mount.mountpoint)
            pid = mount.pid if mount is not None else None
            got = measure(bench, spec, prepare, timeout_s, counters, daemon_pid=pid)
            sample = case_sample(by_name[name], got, mount, system)
            out[name] = sample
            if not sample.ok:
                for rest in names:
                    out.setdefault(rest, Sample(status=f"skipped: {sample.status}"[:200]))
                break
    finally:
        if mount is not None:
            mount.stop()
    return out
