"""Flat listings of subtrees through a real mount: request counts the server saw."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ossfs.emulator import EmulatorServer
from ossfs.fs.flat_walk import MAX_SHARDS
from tests.support import BUCKET
from tests.support.mounts import Mounts, mounts_fixture, settled_counts

pytestmark = pytest.mark.mount


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    yield from mounts_fixture(tmp_path)


def test_flat_mount_cold_deep_file_costs_one_list_one_head_one_get(
    emulator: EmulatorServer, mounts: Mounts
) -> None:
    emulator.put_object(BUCKET, "cold/deep/one.bin", b"first bytes")
    emulator.put_object(BUCKET, "cold/deep/two.bin", b"other")
    mp = mounts.mount(emulator.endpoint)
    settled_counts(emulator)
    emulator.log.clear()

    assert (mp / "cold" / "deep" / "one.bin").read_bytes() == b"first bytes"

    counts = settled_counts(emulator)
    assert counts.get("ListObjectsV2", 0) == 1
    assert counts.get("HeadObject", 0) == 1
    assert counts.get("GetObject", 0) == 1


@pytest.mark.parametrize(
    ("known", "lists", "heads"),
    [
        # probed: its flat page (1,000 keys), then the next one: as many as a flat listing
        (False, 2, 1),
        # known from its parent's listing: walk by itself, then its subtree flat from MAX_SHARDS
        # subdirectories on, side by side; no directory under it listed by itself
        (True, 1 + MAX_SHARDS, 0),
    ],
)
def test_flat_mount_find_over_many_directories_lists_a_few_pages(
    emulator: EmulatorServer, mounts: Mounts, known: bool, lists: int, heads: int
) -> None:
    keys = [f"walk/d{d:03d}/f{f:02d}" for d in range(60) for f in range(20)]
    emulator.put_empty_objects(BUCKET, keys)
    mp = mounts.mount(emulator.endpoint)
    if known:
        os.listdir(mp)
    settled_counts(emulator)
    emulator.log.clear()

    found = subprocess.run(
        ["find", str(mp / "walk"), "-type", "f"], capture_output=True, text=True, check=True
    ).stdout.split()

    assert sorted(str(Path(f).relative_to(mp)) for f in found) == sorted(keys)
    counts = settled_counts(emulator)
    assert counts.get("ListObjectsV2", 0) == lists
    assert counts.get("HeadObject", 0) == heads
