"""The workloads of the suite: name, title, unit, direction and the mount group of each.

What a workload does on a system is `bench.measuring` (its specs) and `bench.worker` (the
client side); this module only names and describes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.config import MIB, Sizes


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    title: str
    unit: str
    higher_is_better: bool
    group: str  # workloads of one group share a mount (and run in this order)
    metadata: bool = False  # HEAD/LIST only


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
    ]
