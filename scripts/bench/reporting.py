"""The markdown report: a table of figures and one of requests per profile, ossfs's memory and
counters, and the targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.config import MIB, Sizes
from bench.samples import Key, Sample, ratio
from bench.systems import kind
from bench.targets import Target
from bench.workloads import Workload


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "s":
        return f"{value:.2f}"
    if unit == "ms":
        return f"{value:.1f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def report(
    *,
    results: dict[Key, Sample],
    sizes: Sizes,
    systems: Sequence[str],
    profiles: Sequence[str],
    chosen: Sequence[Workload],
    targets: list[Target],
    header: str,
) -> str:
    lines = [header, ""]
    peers = [s for s in systems if s != "ossfs"]
    for profile in profiles:
        rows = [w for w in chosen if any((profile, w.name, s) in results for s in systems)]
        if not rows:
            continue
        lines += [
            f"### {profile}: figures (x = how many times better ossfs is; > 1: ossfs wins)",
            "",
        ]
        head = ["workload", "unit", *systems, *(f"ossfs/{p}" for p in peers if "ossfs" in systems)]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
        for w in rows:
            cells = [w.title, w.unit + ("" if w.higher_is_better else " (lower is better)")]
            for s in systems:
                sample = results.get((profile, w.name, s))
                if sample is None:
                    cells.append("")
                elif sample.ok:
                    disturbed = " (!)" if sample.extra.get("foreign_lists") else ""
                    cells.append(fmt(sample.value, w.unit) + disturbed)
                else:
                    cells.append(f"fail: {sample.status[:60]}")
            if "ossfs" in systems:
                mine = results.get((profile, w.name, "ossfs"))
                for p in peers:
                    r = ratio(mine, results.get((profile, w.name, p)), w.higher_is_better)
                    cells.append("" if r is None else f"{r:.2f}x")
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        lines.append("")
        lines += [
            f"### {profile}: requests, bytes served (amplification = served / read), peak RSS",
            "",
            "| workload | system | GET | aborted GETs | HEAD | LIST | other | MB served | "
            "amplification | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in rows:
            for s in systems:
                sample = results.get((profile, w.name, s))
                if sample is None or not sample.ok or s in ("local", "nullfs"):
                    continue
                rq = sample.requests
                amp = sample.bytes_served / sample.payload_bytes if sample.payload_bytes else None
                rss = None if sample.peak_rss_bytes is None else sample.peak_rss_bytes / MIB
                lines.append(
                    f"| {w.name} | {s} | {rq.get('GET', 0)} | {rq.get('aborted', 0)} | "
                    f"{rq.get('HEAD', 0)} | "
                    f"{rq.get('LIST', 0)} | {rq.get('other', 0)} | "
                    f"{sample.bytes_served / 1e6:.1f} | {fmt(amp)} | {fmt(rss)} |"
                )
        lines.append("")
    lines += memory_rows(results, profiles, chosen)
    counter_rows = [
        (p, w, results[(p, w.name, "ossfs")])
        for p in profiles
        for w in chosen
        if (p, w.name, "ossfs") in results and results[(p, w.name, "ossfs")].counters
    ]
    if counter_rows:
        lines += [
            "### ossfs's own counters during each case (`user.ossfs.obs.stats`)",
            "",
            "| profile | workload | FUSE reads | cache hits | misses | joined | prefetch parts | "
            "MB prefetched | prefetch waste | budget denials |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p, w, sample in counter_rows:
            c = sample.counters
            pre = c.get("prefetch.bytes_prefetched", 0.0)
            waste = c.get("prefetch.bytes_unused", 0.0) / pre if pre else None
            lines.append(
                f"| {p} | {w.name} | {c.get('served.reads', 0):.0f} | "
                f"{c.get('cache.hits', 0):.0f} | {c.get('cache.misses', 0):.0f} | "
                f"{c.get('cache.joined', 0):.0f} | {c.get('prefetch.parts_issued', 0):.0f} | "
                f"{pre / 1e6:.1f} | {'-' if waste is None else f'{waste:.1%}'} | "
                f"{c.get('prefetch.budget_denials', 0):.0f} |"
            )
        lines.append("")
    lines += ["### Targets of issue 5", "", "| target | measured | verdict |", "|---|---|---|"]
    for t in targets:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[t.met]
        note = f" ({t.note})" if t.note else ""
        lines.append(f"| {t.name} | {t.measured} | {verdict}{note} |")
    return "\n".join(lines) + "\n"


def memory_rows(
    results: dict[Key, Sample], profiles: Sequence[str], chosen: Sequence[Workload]
) -> list[str]:
    """The table of every ossfs system's peak RSS against its memory budget, per workload."""
    rows = [
        (p, w, s, results[(p, w.name, s)])
        for p in profiles
        for w in chosen
        for s in sorted({key[2] for key in results if kind(key[2]) == "ossfs"})
        if (p, w.name, s) in results and results[(p, w.name, s)].peak_rss_bytes is not None
    ]
    if not rows:
        return []
    lines = [
        "### ossfs: peak RSS against the memory budget (the daemon's VmHWM; `warm` shares "
        "`seq1`'s mount)",
        "",
        "| profile | workload | system | budget MiB | peak RSS MiB | RSS / budget | "
        "RSS - budget MiB |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for p, w, system, sample in rows:
        rss = (sample.peak_rss_bytes or 0) / MIB
        budget = None if sample.budget_bytes is None else sample.budget_bytes / MIB
        share = f"{rss / budget:.2f}" if budget else "-"
        over = "-" if budget is None else f"{rss - budget:+.0f}"
        lines.append(
            f"| {p} | {w.name} | {system} | {fmt(budget)} | {rss:.0f} | {share} | {over} |"
        )
    lines.append("")
    return lines
