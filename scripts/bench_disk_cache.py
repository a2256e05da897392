"""The disk cache (``--cache-dir``, issue 15): the suite's epoch rows alone.

Usage: python scripts/bench_disk_cache.py [--profiles loopback,remote] [--max-memory 128MiB]
                                          [--repeat N] [--out-dir bench-results/disk-cache]

Runs ``scripts/bench_suite.py --workloads epoch1,epoch1c,epoch2 --systems ossfs,local`` with
the rest of the suite's data set shrunk to almost nothing: 8 files, 4x ``--max-memory`` in all,
read by 4 readers through ossfs with that ``--max-memory``; epoch 1 without and with a fresh
``--cache-dir`` (alternating which goes first, so use an even ``--repeat``), epoch 2 through a
remounted mount with the same directory, and the same files read from a local directory (page
cache warm). The report ends with issue 15's targets. `bench.epoch` says what each row does.
"""

from __future__ import annotations

import argparse
import sys

import bench_suite
from bench.config import REPO


def suite_argv(args: argparse.Namespace) -> list[str]:
    """The suite's command line for these rows (the other data shrunk to the minimum)."""
    return [
        "--quick",
        "--workloads=epoch1,epoch1c,epoch2",
        "--systems=ossfs,local",
        f"--profiles={args.profiles}",
        f"--repeat={args.repeat}",
        f"--epoch-memory={args.max_memory}",
        f"--out-dir={args.out_dir}",
        "--seq-size=1MiB",
        "--verify-size=1MiB",
        "--small-files=1",
        "--find-dirs=1",
        "--find-per-dir=1",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--profiles", default="loopback,remote")
    parser.add_argument("--max-memory", default="128MiB", help="ossfs --max-memory (128MiB)")
    parser.add_argument("--repeat", type=int, default=2, help="even (default 2)")
    parser.add_argument("--out-dir", default=str(REPO / "bench-results" / "disk-cache"))
    args = parser.parse_args()
    if args.repeat < 2 or args.repeat % 2:
        parser.error("--repeat must be even (the epoch-1 order alternates)")
    return bench_suite.main(suite_argv(args))


if __name__ == "__main__":
    sys.exit(main())
