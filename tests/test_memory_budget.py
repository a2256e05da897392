"""Tests of `ossfs.app.memory_budget`: the default --max-memory / --cache-size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ossfs.app import memory_budget
from ossfs.app.memory_budget import default_budgets, usable_memory_bytes

GiB = 1 << 30
MiB = 1 << 20


@pytest.mark.parametrize(
    ("usable", "given", "expected"),
    [
        (24 * GiB, (None, None), (1536 * MiB, 1152 * MiB)),  # 1/16 of RAM, cache 3/4 of it
        (2 * GiB, (None, None), (256 * MiB, 192 * MiB)),  # never below 256 MiB
        (24 * GiB, (512 * MiB, None), (512 * MiB, 384 * MiB)),  # a given budget is kept
        (24 * GiB, (None, 256 * MiB), (1536 * MiB, 256 * MiB)),  # a given cache is kept
        (4 * GiB, (None, 1 * GiB), (1 * GiB * 4 // 3, 1 * GiB)),  # the budget grows to fit it
        (24 * GiB, (1 * GiB, 2 * GiB), (1 * GiB, 2 * GiB)),  # both given: left to validation
    ],
)
def test_memory_budget_defaults(
    usable: int, given: tuple[int | None, int | None], expected: tuple[int, int]
) -> None:
    max_memory, cache_size = given
    assert default_budgets(usable, max_memory=max_memory, cache_size=cache_size) == expected


def test_memory_budget_usable_memory_is_ram_or_a_lower_cgroup_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < usable_memory_bytes() <= ram
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    monkeypatch.setattr(memory_budget, "_CGROUP_LIMITS", (v2, v1))
    assert usable_memory_bytes() == ram  # neither file
    v2.write_text("max\n")
    v1.write_text("9223372036854771712\n")  # v1's "unlimited"
    assert usable_memory_bytes() == ram
    v1.write_text(f"{ram // 2}\n")
    assert usable_memory_bytes() == ram // 2
    v2.write_text(f"{ram // 4}\n")
    assert usable_memory_bytes() == ram // 4
    v2.write_text("garbage\n")
    assert usable_memory_bytes() == ram // 2
