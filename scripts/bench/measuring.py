"""Cases: the specs of each workload group, one measured run of a spec against a cleared
request log, and `run_case` (every workload of a group on one system, on a fresh mount).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mount_helpers import peak_rss

from bench.config import BLOCK_BYTES, MOUNTED
from bench.dataset import Layout
from bench.samples import Sample, aborted_gets, request_counts, settle
from bench.systems import Bench, Mount, MountError, kind, missing_tool, ossfs_default_cache_bytes
from bench.worker import run_worker
from bench.workloads import Workload, workloads


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


def measure(
    bench: Bench,
    spec: dict[str, Any],
    prepare: dict[str, Any] | None,
    timeout_s: float,
    counters: Callable[[], dict[str, float]] | None = None,
) -> tuple[dict[str, Any], dict[str, int], int, dict[str, float]]:
    """Run ``prepare`` (not measured), then ``spec`` with a cleared request log."""
    if prepare is not None:
        answer = run_worker(prepare, timeout_s)
        if "error" in answer:
            return answer, {}, 0, {}
    settle(bench.server)
    bench.server.log.clear()
    before = counters() if counters else {}
    answer = run_worker(spec, timeout_s)
    counts, served = settle(bench.server)
    requests = request_counts(counts)
    requests["aborted"] = aborted_gets(bench.server)
    delta = counter_delta(before, counters()) if counters and before else {}
    return answer, requests, served, delta


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
    extra = {k: float(v) for k, v in answer.items() if k in ("distinct_blocks", "lru_fetches")}
    if "samples" in answer:
        extra.update({f"sample_{i}_s": float(s) for i, s in enumerate(answer["samples"])})
    return Sample("ok", value, seconds, payload, ops, requests, served, extra=extra)


def case_specs(
    group: str, layout: Layout, root: str | None, oss: dict[str, str] | None
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(workload, spec, prepare) for each measurement of ``group``, in order."""
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
    raise ValueError(group)


def run_case(bench: Bench, system: str, group: str, timeout_s: float) -> dict[str, Sample]:
    """Every workload of ``group`` on ``system`` (a fresh mount for mounted systems)."""
    names = [name for name, _, _ in case_specs(group, bench.layout, "", None)]
    reason = missing_tool(system)
    if system == "oss2" and group == "seq1":
        names = ["seq1"]  # no cache: a re-read is another cold read
    if reason is not None:
        return {n: Sample(status=reason) for n in names}
    by_name = {w.name: w for w in workloads(bench.layout.sizes)}
    out: dict[str, Sample] = {}
    mount: Mount | None = None
    try:
        if kind(system) in MOUNTED:
            extra = bench.ossfs_memory_args if (kind(system), group) == ("ossfs", "seq4") else []
            mount = bench.mount_for(system, extra)
            try:
                mount.start()
            except MountError as exc:
                return {n: Sample(status=f"mount failed: {exc}"[:200]) for n in names}
            root: str | None = str(mount.mountpoint)
        elif system == "local":
            root = str(bench.local)
        else:
            root = None
        oss = bench.oss() if system == "oss2" else None
        for name, spec, prepare in case_specs(group, bench.layout, root, oss):
            if name not in names:
                continue
            counters = None
            if mount is not None and kind(system) == "ossfs":
                counters = functools.partial(ossfs_counters, mount.mountpoint)
            answer, requests, served, delta = measure(bench, spec, prepare, timeout_s, counters)
            sample = to_sample(by_name[name], answer, requests, served)
            sample.counters = delta
            if not by_name[name].metadata and requests.get("LIST", 0):
                # A read-only case lists nothing after its preparation: another process on the
                # machine walked the mount while it ran.
                sample.extra["foreign_lists"] = float(requests["LIST"])
            if mount is not None and mount.pid is not None:
                sample.peak_rss_bytes = peak_rss([mount.pid])
            if mount is not None and kind(system) == "ossfs":
                budget = ossfs_counters(mount.mountpoint).get("memory.budget_bytes")
                sample.budget_bytes = None if budget is None else int(budget)
            out[name] = sample
            if not sample.ok:
                for rest in names:
                    out.setdefault(rest, Sample(status=f"skipped: {sample.status}"[:200]))
                break
    finally:
        if mount is not None:
            mount.stop()
    return out
