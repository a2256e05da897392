"""The suite's constants (credentials of the local server, systems, profiles, the remote link)
and the sizes of a full and a ``--quick`` run.

It deliberately holds no behaviour: the workloads are `bench.workloads`, the data set
`bench.dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

AK: Final = "bench-ak"
SK: Final = "bench-secret-0123456789"
BUCKET: Final = "bench-bucket"
SCRIPTS: Final = Path(__file__).resolve().parent.parent
REPO: Final = SCRIPTS.parent
MIB: Final = 1 << 20
BLOCK_BYTES: Final = MIB  # ossfs's default --block-size: the unit of the random-read target
SMALL_BYTES: Final = 100 * 1024
SEQ_READERS: Final = 4
SYSTEMS: Final = ("ossfs", "oss2", "s3fs", "rclone", "nullfs", "local")
MOUNTED: Final = frozenset({"ossfs", "s3fs", "rclone", "nullfs"})
PEERS: Final = ("s3fs", "rclone")
PROFILES: Final = ("loopback", "remote", "remote-chunked")
REMOTE_LATENCY_S: Final = 0.02
REMOTE_BANDWIDTH: Final = 100_000_000
EPOCH_OVER_MEMORY: Final = 4  # issue 15: the epoch data set is 4x the mount's --max-memory
EPOCH_READERS: Final = 4


@dataclass(frozen=True, slots=True)
class Sizes:
    seq_bytes: int
    small_files: int
    rand4k_ops: int
    rand256k_ops: int
    ls_counts: tuple[int, int]
    find_dirs: int
    find_per_dir: int
    timeout_s: float
    walk_dirs: int = 100  # the tree of the find2k/du2k walks (issue 17: 100 dirs x 20 files)
    walk_per_dir: int = 20
    verify_bytes: int = 512 * MIB  # the object of the verify1 row
    pkg_subpackages: int = 30  # the synthetic Python package of the import row
    pkg_modules: int = 20  # modules per subpackage
    epoch_memory: int = 128 * MIB  # ossfs --max-memory of the epoch rows (issue 15)
    epoch_files: int = 8  # their data set: this many files, 4x epoch_memory in all

    @property
    def epoch_file_bytes(self) -> int:
        return EPOCH_OVER_MEMORY * self.epoch_memory // self.epoch_files

    @property
    def find_objects(self) -> int:
        return self.find_dirs * self.find_per_dir

    @property
    def walk_objects(self) -> int:
        return self.walk_dirs * self.walk_per_dir

    @property
    def stream_offset(self) -> int:
        """Where the second of the two interleaved streams starts (128 MiB, or half a smaller
        object); each stream reads this many bytes."""
        return min(128 * MIB, self.seq_bytes // 2)


FULL = Sizes(1 << 30, 1000, 2000, 400, (1000, 10_000), 1000, 100, 1800.0)
QUICK = Sizes(
    256 * MIB,
    250,
    300,
    60,
    (1000, 10_000),
    100,
    100,
    300.0,
    verify_bytes=128 * MIB,
    pkg_subpackages=8,
    pkg_modules=8,
)
