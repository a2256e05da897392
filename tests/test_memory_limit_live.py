"""`ossfs.app.memory_limit` in real control groups: each test makes a child group with a memory
limit, runs a Python subprocess in it, and checks what the subprocess finds; the groups are
removed afterwards, also on failure (`tests.support.memory_groups` makes and removes them).

A test skips, saying why, where its hierarchy is absent, has no memory controller, or cannot be
written (not root).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import pytest

from ossfs.core.sizes import format_size
from tests.support.memory_groups import (
    WAIT_THEN_EXEC,
    groups,
    hierarchy,
    limit_below_ours,
    require_root,
    require_v1,
    run_in,
)

MiB = 1 << 20
LIMIT = 300 * MiB
# Waits for a line on stdin (sent once its pid is in the group), then reports what it finds.
_PROBE = """
import json, sys
sys.stdin.readline()
from ossfs.app.memory_limit import find_memory_limit
found = find_memory_limit()
with open("/proc/self/cgroup") as f:
    own = f.read()
print(json.dumps({"limit": found.limit_bytes, "source": found.source, "group": found.group,
                  "describe": found.describe(), "cgroup": own}))
"""


def _probe(group: Path) -> dict[str, str | int | None]:
    result = run_in(group, [sys.executable, "-c", _PROBE])
    assert result.returncode == 0, result.stderr
    found: dict[str, str | int | None] = json.loads(result.stdout)
    return found


@pytest.mark.parametrize("where", ["on the group", "on its parent"])
def test_memory_limit_live_v1_child_group(where: str) -> None:
    found_hierarchy = require_v1()
    limit = limit_below_ours(LIMIT)
    name = found_hierarchy.own_group / f"ossfs-test-{os.getpid()}"
    top = found_hierarchy.directory(name)
    inner = top / "inner"
    levels = (top, inner) if where == "on its parent" else (top,)
    with groups(*levels):
        # Kernels before 5.16 let a group not count its children: this test wants it to.
        with contextlib.suppress(OSError):
            (top / "memory.use_hierarchy").write_text("1\n")
        (top / "memory.limit_in_bytes").write_text(f"{limit}\n")
        set_on_group = int((top / "memory.limit_in_bytes").read_text())
        found = _probe(levels[-1])
    assert set_on_group == limit
    assert found["limit"] == set_on_group
    assert found["source"] == str(top / "memory.limit_in_bytes")
    assert found["group"] == str(name)
    assert found["describe"] == f"cgroup {name} memory.limit_in_bytes"
    cgroup = found["cgroup"]
    assert isinstance(cgroup, str)
    in_group = name / "inner" if where == "on its parent" else name
    assert any(
        "memory" in line.split(":")[1].split(",") and line.split(":")[2] == str(in_group)
        for line in cgroup.splitlines()
    ), cgroup


def test_memory_limit_live_v1_cli_refuses_max_memory_above_the_group_limit(
    tmp_path: Path,
) -> None:
    found_hierarchy = require_v1()
    limit = limit_below_ours(LIMIT)
    name = found_hierarchy.own_group / f"ossfs-test-cli-{os.getpid()}"
    top = found_hierarchy.directory(name)
    mount = ["mount", "oss://bucket", str(tmp_path / "mp"), "--anonymous", "--endpoint", "h"]
    with groups(top):
        (top / "memory.limit_in_bytes").write_text(f"{limit}\n")
        result = run_in(
            top,
            [sys.executable, "-c", WAIT_THEN_EXEC, "-m", "ossfs", *mount, "--max-memory", "2GiB"],
        )
    from ossfs.app.memory_budget import size_at_most

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"ossfs mount: error: --max-memory 2.0 GiB is above this process's memory limit of "
        f"{format_size(limit)} (cgroup {name} memory.limit_in_bytes): give at most "
        f"{size_at_most(limit)} or raise the limit\n"
    )


def test_memory_limit_live_v2_child_group() -> None:
    require_root()
    found_hierarchy = hierarchy(v1=False)
    if found_hierarchy is None:
        pytest.skip("no cgroup v2 hierarchy is mounted for this process")
    top_dir = found_hierarchy.mount_point
    controllers = (top_dir / "cgroup.controllers").read_text().split()
    if "memory" not in controllers:
        pytest.skip(
            f"the cgroup v2 hierarchy at {top_dir} has no memory controller (it has: "
            f"{' '.join(controllers) or 'none'}); memory is on cgroup v1 here"
        )
    limit = limit_below_ours(LIMIT)
    name = found_hierarchy.root / f"ossfs-test-{os.getpid()}"
    top = found_hierarchy.directory(name)
    inner = top / "inner"
    try:
        if "memory" not in (top_dir / "cgroup.subtree_control").read_text().split():
            (top_dir / "cgroup.subtree_control").write_text("+memory\n")
    except OSError as exc:
        pytest.skip(f"cannot give the memory controller to groups under {top_dir}: {exc}")
    with groups(top, inner):
        (top / "cgroup.subtree_control").write_text("+memory\n")
        (top / "memory.max").write_text(f"{limit}\n")
        (inner / "memory.high").write_text(f"{limit + 64 * MiB}\n")
        found = _probe(inner)
    assert found["limit"] == limit
    assert found["source"] == str(top / "memory.max")
    assert found["group"] == str(name)
    assert found["describe"] == f"cgroup {name} memory.max"
