"""The data set: its object keys (`Layout`) and writing it to the server, to the local mirror and
to the null FUSE's manifest.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.config import BUCKET, MIB, SEQ_READERS, SMALL_BYTES, Sizes
from bench.pypkg import write_package

COLD_KEY: Final = "cold/deep/one.bin"  # never listed before the cold row reads it
COLD_BYTES: Final = 4 * MIB
VERIFY_KEY: Final = "verify/big.bin"
PKG_DIR: Final = "pypkg"  # the import row's sys.path entry (the package is pypkg/benchpkg)


@dataclass(frozen=True, slots=True)
class Layout:
    """Object keys of the data set (the same relative paths in every mount and locally)."""

    sizes: Sizes

    @property
    def big(self) -> list[str]:
        return [f"seq/big-{i}.bin" for i in range(SEQ_READERS)]

    @property
    def small(self) -> list[str]:
        return [f"small/f{i:05d}.bin" for i in range(self.sizes.small_files)]

    @property
    def epoch(self) -> list[str]:
        """The epoch rows' files (issue 15's disk cache: 4x the mount's memory in all)."""
        return [f"epoch/f{i:03d}.bin" for i in range(self.sizes.epoch_files)]

    def ls_dir(self, count: int) -> str:
        return f"ls{count}"

    def ls_keys(self, count: int) -> list[str]:
        return [f"{self.ls_dir(count)}/e{i:06d}" for i in range(count)]

    @property
    def tree(self) -> list[str]:
        s = self.sizes
        return [
            f"tree/d{d:04d}/f{f:04d}" for d in range(s.find_dirs) for f in range(s.find_per_dir)
        ]

    @property
    def walk(self) -> list[str]:
        """The tree of the find2k/du2k walks."""
        s = self.sizes
        dirs, files = range(s.walk_dirs), range(s.walk_per_dir)
        return [f"walk/d{d:03d}/f{f:02d}" for d in dirs for f in files]

    @property
    def cold_siblings(self) -> list[str]:
        """Empty objects beside and near `COLD_KEY`, so that its listings are not trivial."""
        return [f"cold/{d}/f{i:02d}" for d in ("deep", "side") for i in range(20)]

    def empty(self) -> list[str]:
        """Every empty object of the data set."""
        out = [*self.tree, *self.walk, *self.cold_siblings]
        for count in self.sizes.ls_counts:
            out += self.ls_keys(count)
        return out

    def files(self) -> dict[str, int]:
        """Key -> size of every object except the Python package's (written by `build_data`)."""
        out = dict.fromkeys(self.big, self.sizes.seq_bytes)
        out.update(dict.fromkeys(self.small, SMALL_BYTES))
        out.update(dict.fromkeys(self.empty(), 0))
        out[COLD_KEY] = COLD_BYTES
        out[VERIFY_KEY] = self.sizes.verify_bytes
        return out


def write_random_file(path: Path, size: int) -> None:
    chunk = os.urandom(MIB)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n


def large_files(root: Path, min_bytes: int = 1 << 20) -> list[Path]:
    """The files under ``root`` of at least ``min_bytes`` (the emulator's large objects)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_size >= min_bytes)


def read_through(paths: list[Path]) -> None:
    """Read ``paths`` once so that the page cache holds them."""
    for path in paths:
        with path.open("rb", buffering=0) as f:
            while f.read(8 << 20):
                pass


def build_data(
    server: Any, layout: Layout, local: Path, manifest: Path, *, epoch: bool = False
) -> None:
    """Write the data set to the emulator, to the local mirror and to the null FUSE manifest
    (``epoch``: with the epoch rows' files, distinct random files in the local mirror too)."""
    local.mkdir(parents=True)
    (local / "seq").mkdir()
    first = local / layout.big[0]
    write_random_file(first, layout.sizes.seq_bytes)
    for key in layout.big:
        server.put_object_from_file(BUCKET, key, first)
        if key != layout.big[0]:
            # Hard links: the local rows measure the page cache, not distinct disk files.
            os.link(first, local / key)
    rng = random.Random(5)
    (local / "small").mkdir()
    for key in layout.small:
        data = rng.randbytes(SMALL_BYTES)
        server.put_object(BUCKET, key, data)
        (local / key).write_bytes(data)
    empty = layout.empty()
    for start in range(0, len(empty), 20_000):
        server.put_empty_objects(BUCKET, empty[start : start + 20_000])
    for key in empty:
        path = local / key
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True)
        path.touch()
    for key, size in ((COLD_KEY, COLD_BYTES), (VERIFY_KEY, layout.sizes.verify_bytes)):
        path = local / key
        path.parent.mkdir(parents=True, exist_ok=True)
        write_random_file(path, size)
        server.put_object_from_file(BUCKET, key, path)
    files = layout.files()
    if epoch:
        (local / "epoch").mkdir()
        for key in layout.epoch:
            write_random_file(local / key, layout.sizes.epoch_file_bytes)
            server.put_object_from_file(BUCKET, key, local / key)
            files[key] = layout.sizes.epoch_file_bytes
    pkg = local / PKG_DIR
    for path in write_package(pkg, layout.sizes.pkg_subpackages, layout.sizes.pkg_modules):
        key = path.relative_to(local).as_posix()
        server.put_object(BUCKET, key, path.read_bytes())
        files[key] = path.stat().st_size
    manifest.write_text(json.dumps({"files": files}))
