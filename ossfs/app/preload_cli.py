"""``ossfs preload``: arguments -> the files of a mount to read -> `Preloader` -> output, exit code.

Responsibility: check every PATH (it exists, and it is inside a live ossfs mount: its mount root
answers the stats xattr) and turn each problem into a one-line `UsageError` (exit 2); warn when
what is preloaded cannot stay cached (more than a mount's memory cache, and the mount has no
disk cache); show a progress line on stderr when stderr is a terminal; print each failure as it
happens and a summary, or with ``--json`` exactly one JSON document on stdout. Exit code 0 when
every file was read, 1 when any failed, 130 after Ctrl-C (with the summary so far).

A PATH given as a symbolic link is resolved (like ``find -H``); links met inside the tree are
not followed. It deliberately does no reading or walking itself (`ossfs.app.preload`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from ossfs.app.mount_info import mount_point_of, read_stats
from ossfs.app.preload import Failure, FileEntry, Plan, Preloader, PreloadReport, walk
from ossfs.app.progress import Progress, show_line
from ossfs.core.errors import UsageError
from ossfs.core.sizes import format_size
from ossfs.obs.stats import Json

__all__ = ["DEFAULT_JOBS", "configure_parser", "format_summary", "report_document", "run"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130
DEFAULT_JOBS: Final = 8
MAX_JOBS: Final = 256
# A mount with a disk cache (--cache-dir) reports it in a stats section named after it: then
# what is preloaded stays on disk, whatever the memory cache holds.
_DISK_CACHE_SECTION: Final = "disk_cache"  # ossfs stats: present when mounted with --cache-dir


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add preload's arguments to ``parser`` (the caller sets the handler to `run`)."""
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="files or directories inside an ossfs mount"
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"files read at once, and directories listed at once ({DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout, nothing else"
    )


@dataclass(frozen=True, slots=True)
class _Mount:
    """An ossfs mount a PATH is on, with the counters its root answered before reading."""

    root: Path
    stats: dict[str, Json]


def run(
    args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run ``ossfs preload`` for parsed ``args``; return the exit code (0, 1 or 130).

    Raises `UsageError` for a PATH that does not exist or is not inside an ossfs mount and for
    a bad ``--jobs`` (the CLI prints it, exit 2).
    """
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    jobs: int = args.jobs
    if not 1 <= jobs <= MAX_JOBS:
        raise UsageError(f"invalid --jobs {jobs}: use 1 to {MAX_JOBS}")
    mounts: dict[Path, _Mount] = {}
    roots = [_check_path(text, mounts) for text in args.paths]
    preloader = Preloader(jobs=jobs)
    try:
        plan = walk(roots, jobs=jobs)
    except KeyboardInterrupt:
        report = PreloadReport(Plan(()), 0, 0, (), 0.0, interrupted=True)
        return _finish(report, roots, [], as_json=args.json, out=out)
    warnings = _capacity_warnings(plan, mounts)
    if not args.json:
        for warning in warnings:
            err.write(f"ossfs preload: warning: {warning}\n")
    progress: Progress | None = None
    if err.isatty():
        progress = Progress(
            err, total_bytes=plan.total_bytes, total_objects=len(plan.files), unit="files"
        )
    if not args.json:
        for failure in plan.failures:
            show_line(format_failure(failure), out, progress)

    def on_file(entry: FileEntry, failure: Failure | None) -> None:
        del entry
        if progress is not None:
            progress.object_done()
        if failure is not None and not args.json:
            show_line(format_failure(failure), out, progress)

    try:
        report = preloader.run(
            plan, on_file=on_file, on_bytes=progress.add_bytes if progress is not None else None
        )
    finally:
        if progress is not None:
            progress.close()
    return _finish(report, roots, warnings, as_json=args.json, out=out)


def _finish(
    report: PreloadReport, roots: list[Path], warnings: list[str], *, as_json: bool, out: TextIO
) -> int:
    if as_json:
        json.dump(report_document(roots, report, warnings), out, indent=2)
        out.write("\n")
    else:
        out.write(format_summary(report) + "\n")
    out.flush()
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if report.all_read else EXIT_FAILED


def _check_path(text: str, mounts: dict[Path, _Mount]) -> Path:
    """The real path of PATH ``text``, which must exist inside a live ossfs mount (recorded in
    ``mounts``); `UsageError` otherwise."""
    path = Path(text)
    problem: OSError | None = None
    try:
        os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{text}: no such file or directory") from None
    except OSError as exc:  # a dead mount says so below
        problem = exc
    real = Path(os.path.realpath(path))
    root = mount_point_of(real)
    if root not in mounts:
        not_ossfs = (
            f"{text} is not inside an ossfs mount ({root} is not one): "
            "give files or directories of a mounted bucket"
        )
        mounts[root] = _Mount(root, read_stats(root, not_ossfs=not_ossfs))
    if problem is not None:
        raise UsageError(f"{text}: {problem.strerror}")
    return real


def _capacity_warnings(plan: Plan, mounts: dict[Path, _Mount]) -> list[str]:
    """One warning per mount that gets more to preload than its memory cache holds and has no
    disk cache: only the last part read would stay cached."""
    roots = sorted(mounts, key=lambda p: len(p.parts), reverse=True)
    planned = dict.fromkeys(roots, 0)
    for entry in plan.files:
        root = next((r for r in roots if entry.path.is_relative_to(r)), None)
        if root is not None:
            planned[root] += entry.size
    warnings = []
    for root, nbytes in planned.items():
        doc = mounts[root].stats
        disk = doc.get(_DISK_CACHE_SECTION)
        if isinstance(disk, dict) and disk.get("enabled"):
            continue
        cache = doc.get("cache")
        capacity = cache.get("capacity_bytes") if isinstance(cache, dict) else None
        if isinstance(capacity, int) and nbytes > capacity:
            warnings.append(
                f"{format_size(nbytes)} to preload on {root} is more than its memory cache "
                f"({format_size(capacity)}) and it has no disk cache: only the part read last "
                "stays cached; mount it with --cache-dir DIR to keep it all"
            )
    return warnings


def format_failure(failure: Failure) -> str:
    return f"FAILED {failure.path}: {failure.error}"


def format_summary(report: PreloadReport) -> str:
    """One line: what was read, how fast, how much failed, what was left out."""
    plan = report.plan
    seconds = max(report.seconds, 1e-9)
    text = (
        f"{report.files_read} of {_count(len(plan.files), 'file')} read, "
        f"{format_size(report.bytes_read)} in {report.seconds:.1f}s "
        f"({format_size(report.bytes_read / seconds)}/s), {len(report.failures)} failed"
    )
    if plan.symlinks:
        text += f", {_count(plan.symlinks, 'symbolic link')} not followed"
    if plan.other_filesystems:
        text += f", {_count(plan.other_filesystems, 'directory', 'directories')} on other file "
        text += "systems left out"
    if report.interrupted:
        text = "interrupted: " + text
    return text


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def report_document(
    roots: list[Path], report: PreloadReport, warnings: list[str]
) -> dict[str, object]:
    """The ``--json`` document: the resolved PATHs, the counts, every failure, the warnings."""
    plan = report.plan
    return {
        "paths": [str(r) for r in roots],
        "files": len(plan.files),
        "bytes": plan.total_bytes,
        "files_read": report.files_read,
        "bytes_read": report.bytes_read,
        "failed": len(report.failures),
        "seconds": round(report.seconds, 3),
        "interrupted": report.interrupted,
        "symlinks_skipped": plan.symlinks,
        "other_filesystems_skipped": plan.other_filesystems,
        "failures": [{"path": f.path, "error": f.error} for f in report.failures],
        "warnings": warnings,
    }
