"""The markdown report: per profile a table of figures and one of requests, bytes (network
bytes per application byte), CPU and RSS; why a row does not apply to a system; ossfs's memory
and counters; and the targets, by issue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.config import MIB, Sizes
from bench.samples import Key, Sample, amplification, cpu_per_gib, ratio
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


def amplification_cell(sample: Sample) -> str:
    """Network bytes per application byte, ``>=`` when aborted GETs make it a lower bound."""
    amp = amplification(sample)
    if amp is None:
        return "-"
    value, lower_bound = amp
    return (">= " if lower_bound else "") + fmt(value)


def cpu_cells(sample: Sample) -> tuple[str, str]:
    """(CPU-s as ``user+system`` with the process it was measured on, CPU-s per GiB read)."""
    if sample.cpu_user_s is None or sample.cpu_system_s is None:
        return "-", "-"
    where = {"daemon": "", "client": " (client)", "verify": " (verify)"}.get(sample.cpu_process, "")
    return f"{sample.cpu_user_s:.2f}+{sample.cpu_system_s:.2f}{where}", fmt(cpu_per_gib(sample))


def figures_table(
    results: dict[Key, Sample], systems: Sequence[str], profile: str, rows: Sequence[Workload]
) -> list[str]:
    peers = [s for s in systems if s != "ossfs"]
    lines = [f"### {profile}: figures (x = how many times better ossfs is; > 1: ossfs wins)", ""]
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
            elif sample.status.startswith("n/a"):
                cells.append("n/a")
            else:
                cells.append(f"fail: {sample.status[:60]}")
        if "ossfs" in systems:
            mine = results.get((profile, w.name, "ossfs"))
            for p in peers:
                r = ratio(mine, results.get((profile, w.name, p)), w.higher_is_better)
                cells.append("" if r is None else f"{r:.2f}x")
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines.append("")
    return lines


def requests_table(
    results: dict[Key, Sample], systems: Sequence[str], profile: str, rows: Sequence[Workload]
) -> list[str]:
    lines = [
        f"### {profile}: requests, bytes served, network bytes per application byte, CPU, peak RSS",
        "",
        "| workload | system | GET | aborted GETs | HEAD | LIST | other | MB served | "
        "net B / app B | CPU-s user+sys | CPU-s / GiB | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in rows:
        for s in systems:
            sample = results.get((profile, w.name, s))
            if sample is None or not sample.ok or s in ("local", "nullfs"):
                continue
            rq = sample.requests
            rss = None if sample.peak_rss_bytes is None else sample.peak_rss_bytes / MIB
            cpu, per_gib = cpu_cells(sample)
            lines.append(
                f"| {w.name} | {s} | {rq.get('GET', 0)} | {rq.get('aborted', 0)} | "
                f"{rq.get('HEAD', 0)} | {rq.get('LIST', 0)} | {rq.get('other', 0)} | "
                f"{sample.bytes_served / 1e6:.1f} | {amplification_cell(sample)} | {cpu} | "
                f"{per_gib} | {fmt(rss)} |"
            )
    lines.append("")
    return lines


def not_applicable_notes(
    results: dict[Key, Sample], systems: Sequence[str], chosen: Sequence[Workload]
) -> list[str]:
    """One line per workload and reason of the ``n/a`` cells (the same on every profile)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for w in chosen:
        for s in systems:
            for key, sample in results.items():
                if key[1:] == (w.name, s) and sample.status.startswith("n/a"):
                    where = seen.setdefault((w.name, sample.status.removeprefix("n/a: ")), [])
                    if s not in where:
                        where.append(s)
    if not seen:
        return []
    lines = ["Not applicable (n/a):", ""]
    lines += [f"- `{wl}` on {', '.join(who)}: {why}" for (wl, why), who in seen.items()]
    return [*lines, ""]


def targets_tables(targets: Sequence[Target]) -> list[str]:
    lines: list[str] = []
    for issue in sorted({t.issue for t in targets}):
        lines += [f"### Targets of issue {issue}", ""]
        lines += ["| target | measured | verdict |", "|---|---|---|"]
        for t in targets:
            if t.issue != issue:
                continue
            verdict = {True: "met", False: "**missed**", None: "not measured"}[t.met]
            note = f" ({t.note})" if t.note else ""
            lines.append(f"| {t.name} | {t.measured} | {verdict}{note} |")
        lines.append("")
    return lines


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
    for profile in profiles:
        rows = [w for w in chosen if any((profile, w.name, s) in results for s in systems)]
        if rows:
            lines += figures_table(results, systems, profile, rows)
            lines += requests_table(results, systems, profile, rows)
    lines += not_applicable_notes(results, systems, chosen)
    lines += memory_rows(results, profiles, chosen)
    lines += counter_rows(results, profiles, chosen)
    lines += targets_tables(targets)
    return "\n".join(lines).rstrip("\n") + "\n"


def counter_rows(
    results: dict[Key, Sample], profiles: Sequence[str], chosen: Sequence[Workload]
) -> list[str]:
    """The table of ossfs's own counters during each case (none when it has no such xattr)."""
    rows = [
        (p, w, results[(p, w.name, "ossfs")])
        for p in profiles
        for w in chosen
        if (p, w.name, "ossfs") in results and results[(p, w.name, "ossfs")].counters
    ]
    if not rows:
        return []
    lines = [
        "### ossfs's own counters during each case (`user.ossfs.obs.stats`)",
        "",
        "| profile | workload | FUSE reads | cache hits | misses | joined | prefetch parts | "
        "MB prefetched | prefetch waste | budget denials |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p, w, sample in rows:
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
    return lines


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
