"""The workloads of the suite: name, title, unit, direction and the mount group of each.

What a workload does on a system is `bench.measuring` (its specs) and `bench.worker` (the
client side); this module only names and describes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.config import EPOCH_OVER_MEMORY, EPOCH_READERS, MIB, Sizes


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    title: str
    unit: str
    higher_is_better: bool
    group: str  # workloads of one group share a mount (and run in this order)
    metadata: bool = False  # lists as part of its work (a LIST during it is not another process's)
    needs_mount: bool = True  # False: ossfs runs it as a command (verify), not through a mount


def workloads(sizes: Sizes) -> list[Workload]:
    big = f"{sizes.seq_bytes / MIB:.0f} MiB"
    n_small, (ls_a, ls_b) = sizes.small_files, sizes.ls_counts
    return [
        Workload("seq1", f"sequential read of {big}, 1 reader", "MB/s", True, "seq1"),
        Workload("warm", "warm re-read of that file, same mount", "MB/s", True, "seq1"),
        Workload("seq4", f"sequential read, 4 readers on 4 x {big}", "MB/s", True, "seq4"),
        Workload("ttfb", "time to first byte (open + 1 byte read)", "ms", False, "ttfb"),
        Workload("rand4k", f"random 4 KiB reads x {sizes.rand4k_ops}", "ops/s", True, "rand4k"),
        Workload(
            "rand256k", f"random 256 KiB reads x {sizes.rand256k_ops}", "MB/s", True, "rand256k"
        ),
        Workload("small1", f"{n_small} files of 100 KiB, 1 reader", "files/s", True, "small1"),
        Workload("small8", f"{n_small} files of 100 KiB, 8 readers", "files/s", True, "small8"),
        Workload("ls1k", f"ls -l of {ls_a:,} entries", "s", False, "ls1k", metadata=True),
        Workload("ls10k", f"ls -l of {ls_b:,} entries", "s", False, "ls10k", metadata=True),
        Workload(
            "find",
            f"find over {sizes.find_objects:,} objects in {sizes.find_dirs:,} dirs",
            "s",
            False,
            "find",
            metadata=True,
        ),
        Workload(
            "find2k",
            f"find over {sizes.walk_objects:,} objects in {sizes.walk_dirs} dirs",
            "s",
            False,
            "find2k",
            metadata=True,
        ),
        Workload("du2k", "du -s of that tree", "s", False, "du2k", metadata=True),
        Workload(
            "cold",
            "first byte of a never-listed file 2 dirs deep, fresh mount",
            "ms",
            False,
            "cold",
            metadata=True,
        ),
        Workload(
            "twostream",
            f"2 streams on one fd: 1 MiB reads at 0 and {sizes.stream_offset / MIB:.0f} MiB, "
            "alternating",
            "MB/s",
            True,
            "twostream",
        ),
        Workload(
            "verify1",
            f"ossfs verify of one {sizes.verify_bytes / MIB:.0f} MiB object",
            "MB/s",
            True,
            "verify1",
            metadata=True,
            needs_mount=False,
        ),
        Workload(
            "verifysmall",
            f"ossfs verify of the {n_small} files of 100 KiB",
            "files/s",
            True,
            "verifysmall",
            metadata=True,
            needs_mount=False,
        ),
        Workload(
            "import",
            f"python import of a package of {sizes.pkg_subpackages * sizes.pkg_modules} modules",
            "s",
            False,
            "import",
            metadata=True,
        ),
        *epoch_workloads(sizes),
    ]


def epoch_workloads(sizes: Sizes) -> list[Workload]:
    """Issue 15's rows: one epoch over a data set 4x ossfs's --max-memory, without and with
    a fresh --cache-dir, then again through a remounted mount with the same directory (local:
    the same files from the local directory, page cache warm)."""
    data = (
        f"{sizes.epoch_files} x {sizes.epoch_file_bytes / MIB:.0f} MiB "
        f"({EPOCH_OVER_MEMORY}x --max-memory {sizes.epoch_memory / MIB:.0f}MiB), "
        f"{EPOCH_READERS} readers"
    )
    return [
        Workload("epoch1", f"epoch 1: {data}, no --cache-dir", "MB/s", True, "epoch"),
        Workload("epoch1c", "epoch 1 with an empty --cache-dir", "MB/s", True, "epoch"),
        Workload(
            "epoch2",
            "epoch 2: remounted, same --cache-dir (local: the files)",
            "MB/s",
            True,
            "epoch",
        ),
    ]


def not_applicable(workload: str, system: str) -> str | None:
    """Why ``workload`` does not run on ``system`` (None: it does). ``ossfs@REV`` is ossfs."""
    ossfs = system.partition("@")[0] == "ossfs"
    if workload == "verify1" and not ossfs and system != "oss2":
        return "verify is ossfs-only (oss2: the single stream of the same object)"
    if workload == "verifysmall" and not ossfs:
        return "verify is ossfs-only"
    if workload.startswith("epoch"):
        if system == "local":
            return None if workload == "epoch2" else "local is epoch 2's reference"
        if not ossfs:
            return "the disk cache is ossfs's (--cache-dir)"
    if workload == "import" and system == "oss2":
        return "an import needs a filesystem"
    if workload == "import" and system == "nullfs":
        return "the null FUSE serves a byte pattern, not the package's files"
    return None
