"""Tests of `ossfs.app.memory_budget`: the default --max-memory / --cache-size, and the refusal
of a budget above the process's memory limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.app.memory_budget import (
    OVERHEAD_BYTES,
    budgets_within,
    default_budgets,
    memory_line,
    memory_settings,
    size_at_most,
    usable_memory_bytes,
)
from ossfs.app.memory_limit import RAM, MemoryLimit, find_memory_limit
from ossfs.core.errors import UsageError
from ossfs.core.sizes import format_size, parse_size
from ossfs.obs.stats import MemorySettings

GiB = 1 << 30
MiB = 1 << 20


@pytest.mark.parametrize(
    ("usable", "given", "expected"),
    [
        (24 * GiB, (None, None), (1536 * MiB, 1152 * MiB)),  # 1/16 of RAM, cache 3/4 of it
        (2 * GiB, (None, None), (256 * MiB, 192 * MiB)),  # never below 256 MiB
        (400 * MiB, (None, None), (200 * MiB, 150 * MiB)),  # ... unless that is over half
        (320 * MiB, (None, None), (160 * MiB, 120 * MiB)),
        (224 * MiB, (None, None), (112 * MiB, 84 * MiB)),  # half, and 112 MiB left beside it
        (192 * MiB, (None, None), (80 * MiB, 60 * MiB)),  # under that: 112 MiB left beside it
        (144 * MiB, (None, None), (32 * MiB, 24 * MiB)),
        (64 * MiB, (None, None), (0, 0)),  # nothing left (refused by budgets_within)
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


GROUP = MemoryLimit(400 * MiB, "/sys/fs/cgroup/system.slice/x.service/memory.max", "/x.service")
WHERE = "this process's memory limit of 400.0 MiB (cgroup /x.service memory.max)"


def test_memory_budget_usable_memory_is_the_limit_found() -> None:
    assert usable_memory_bytes() == find_memory_limit().limit_bytes > 0


def test_memory_budget_within_the_limit_is_the_default_or_what_was_given() -> None:
    assert budgets_within(GROUP, max_memory=None, cache_size=None) == (200 * MiB, 150 * MiB)
    assert budgets_within(GROUP, max_memory=400 * MiB, cache_size=None) == (400 * MiB, 300 * MiB)
    assert budgets_within(GROUP, max_memory=None, cache_size=300 * MiB) == (400 * MiB, 300 * MiB)


def test_memory_budget_above_a_group_limit_is_refused_with_what_to_give() -> None:
    with pytest.raises(UsageError) as info:
        budgets_within(GROUP, max_memory=2 * GiB, cache_size=None)
    assert str(info.value) == (
        f"--max-memory 2.0 GiB is above {WHERE}: give at most 400MiB or raise the limit"
    )
    with pytest.raises(UsageError) as info:
        budgets_within(GROUP, max_memory=2 * GiB, cache_size=100 * MiB)
    assert str(info.value).startswith("--max-memory 2.0 GiB is above ")
    with pytest.raises(UsageError) as info:
        budgets_within(GROUP, max_memory=None, cache_size=301 * MiB)
    assert str(info.value) == (
        "--cache-size 301.0 MiB needs a memory budget of 401.3 MiB (the cache is 3/4 of it), "
        f"above {WHERE}: give at most 300MiB or raise the limit"
    )


def test_memory_budget_above_ram_is_refused_without_a_limit_to_raise() -> None:
    ram = MemoryLimit(24 * GiB - 700 * MiB, RAM)
    with pytest.raises(UsageError) as info:
        budgets_within(ram, max_memory=24 * GiB, cache_size=None)
    assert str(info.value) == (
        "--max-memory 24.0 GiB is above this process's memory limit of 23.3 GiB (RAM): "
        "give at most 23.3GiB"
    )


@given(st.integers(1, 1 << 50))
def test_memory_budget_size_at_most_is_a_size_never_above_and_within_a_tenth(n: int) -> None:
    given_back = parse_size(size_at_most(n))
    assert n - n // 10 <= given_back <= n


@given(st.integers(1 << 20, 1 << 45))
def test_memory_budget_default_is_at_most_half_the_limit_and_holds_the_cache(usable: int) -> None:
    budget, cache = default_budgets(usable, max_memory=None, cache_size=None)
    assert cache <= budget <= usable // 2
    assert budget + OVERHEAD_BYTES <= usable or budget == 0
    assert budget >= min(256 * MiB, usable // 2, usable - OVERHEAD_BYTES)


def test_memory_budget_limit_too_small_for_a_default_budget_is_refused() -> None:
    small = MemoryLimit(100 * MiB, "/sys/fs/cgroup/memory/x/memory.limit_in_bytes", "/x")
    with pytest.raises(UsageError) as info:
        budgets_within(small, max_memory=None, cache_size=None)
    assert str(info.value) == (
        "this process's memory limit of 100.0 MiB (cgroup /x memory.limit_in_bytes) is too small "
        "for ossfs: it needs 112.0 MiB for itself and 32.0 MiB or more for file data; raise the "
        "limit to 144.0 MiB or more, or give a smaller --max-memory"
    )
    # What the user gives is theirs to decide (within the limit).
    assert budgets_within(small, max_memory=16 * MiB, cache_size=None) == (16 * MiB, 12 * MiB)
    enough = MemoryLimit(144 * MiB, "/sys/fs/cgroup/memory/x/memory.limit_in_bytes", "/x")
    assert budgets_within(enough, max_memory=None, cache_size=None) == (32 * MiB, 24 * MiB)


def test_memory_budget_log_line_and_stats_name_the_limit_and_its_source() -> None:
    assert memory_line(GROUP, 200 * MiB, 150 * MiB) == (
        "memory limit 400.0 MiB (cgroup /x.service memory.max): ossfs uses up to 200.0 MiB "
        "(--max-memory), 150.0 MiB of it to cache file data (--cache-size)"
    )
    assert memory_line(None, 200 * MiB, 150 * MiB) == (
        "memory: up to 200.0 MiB (--max-memory), 150.0 MiB of it to cache file data (--cache-size)"
    )
    assert memory_settings(GROUP, 200 * MiB) == MemorySettings(
        200 * MiB, 400 * MiB, "cgroup /x.service memory.max"
    )
    assert memory_settings(None, 200 * MiB) is None


def test_cli_mount_max_memory_above_the_limit_is_one_line_exit_2(tmp_path: Path) -> None:
    limit = find_memory_limit()  # the test's group is the subprocess's
    above = limit.limit_bytes + GiB
    raise_it = " or raise the limit" if limit.group is not None else ""
    mount = ["mount", "oss://bucket", str(tmp_path / "mp"), "--anonymous"]
    result = subprocess.run(
        [sys.executable, "-m", "ossfs", *mount, "--endpoint", "h", "--max-memory", str(above)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"ossfs mount: error: --max-memory {format_size(above)} is above this process's memory "
        f"limit of {format_size(limit.limit_bytes)} ({limit.describe()}): give at most "
        f"{size_at_most(limit.limit_bytes)}{raise_it}\n"
    )
