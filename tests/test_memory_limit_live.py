"""`ossfs.app.memory_limit` in real control groups: each test makes a child group with a memory
limit, runs a Python subprocess in it (its pid written to the group's ``cgroup.procs``), and
checks what the subprocess finds; the groups are removed afterwards, also on failure.

cgroup v1: the group is made under this process's own memory group, so the subprocess stays
inside whatever accounts for the test run. cgroup v2: under the hierarchy's top (v2 lets only
a group without processes hand the memory controller to children). A test skips, saying why,
where its hierarchy is absent, has no memory controller, or cannot be written (not root).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from ossfs.core.sizes import format_size

MiB = 1 << 20
LIMIT = 300 * MiB
_RMDIR_DEADLINE_S = 10.0
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
# The same wait, then ossfs's own command line in this process.
_EXEC = (
    "import os, sys; sys.stdin.readline(); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


@dataclass(frozen=True)
class Hierarchy:
    """A mounted cgroup hierarchy: its directory and this process's group in it."""

    mount_point: Path
    root: PurePosixPath
    own_group: PurePosixPath

    def directory(self, group: PurePosixPath) -> Path:
        return self.mount_point / group.relative_to(self.root)


def _hierarchy(v1: bool) -> Hierarchy | None:
    """The v1 memory hierarchy (or the v2 one) this process is in, where mounted."""
    own: PurePosixPath | None = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy_id, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if (v1 and "memory" in controllers.split(",")) or (
            not v1 and hierarchy_id == "0" and not controllers
        ):
            own = PurePosixPath(path)
    if own is None:
        return None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        after = fields[fields.index("-") + 1 :]
        fs_type, options = after[0], after[2].split(",")
        if (fs_type == "cgroup" and v1 and "memory" in options) or (
            fs_type == "cgroup2" and not v1
        ):
            root = PurePosixPath(fields[3])
            if own.is_relative_to(root):
                return Hierarchy(Path(fields[4]), root, own)
    return None


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("making a control group needs root")


@contextlib.contextmanager
def _groups(*directories: Path) -> Iterator[None]:
    """Make ``directories`` (parents first); remove them afterwards, children first."""
    made: list[Path] = []
    try:
        for directory in directories:
            try:
                directory.mkdir()
            except OSError as exc:
                pytest.skip(f"cannot make a control group at {directory}: {exc.strerror}")
            made.append(directory)
        yield
    finally:
        for directory in reversed(made):
            _rmdir(directory)


def _rmdir(directory: Path) -> None:
    """rmdir a control group; the kernel may answer EBUSY for a moment after its last
    process was reaped."""
    deadline = time.monotonic() + _RMDIR_DEADLINE_S
    while True:
        try:
            directory.rmdir()
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling the kernel with a deadline, not synchronising


def _run_in(group: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Start ``argv`` (which waits for a line on stdin), move it into ``group``, let it go."""
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            (group / "cgroup.procs").write_text(f"{child.pid}\n")
            out, err = child.communicate("\n", timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    return subprocess.CompletedProcess(argv, child.returncode, out, err)


def _probe(group: Path) -> dict[str, str | int | None]:
    result = _run_in(group, [sys.executable, "-c", _PROBE])
    assert result.returncode == 0, result.stderr
    found: dict[str, str | int | None] = json.loads(result.stdout)
    return found


def _limit_below_ours() -> int:
    """300 MiB, or less if this process is already limited below that (v1 rounds limits
    to pages, so a multiple of the page size)."""
    from ossfs.app.memory_limit import find_memory_limit

    page = os.sysconf("SC_PAGE_SIZE")
    return min(LIMIT, find_memory_limit().limit_bytes // 2) // page * page


@pytest.mark.parametrize("where", ["on the group", "on its parent"])
def test_memory_limit_live_v1_child_group(where: str) -> None:
    _require_root()
    hierarchy = _hierarchy(v1=True)
    if hierarchy is None:
        pytest.skip("no cgroup v1 memory hierarchy is mounted for this process")
    limit = _limit_below_ours()
    name = hierarchy.own_group / f"ossfs-test-{os.getpid()}"
    top = hierarchy.directory(name)
    inner = top / "inner"
    levels = (top, inner) if where == "on its parent" else (top,)
    with _groups(*levels):
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
    _require_root()
    hierarchy = _hierarchy(v1=True)
    if hierarchy is None:
        pytest.skip("no cgroup v1 memory hierarchy is mounted for this process")
    limit = _limit_below_ours()
    name = hierarchy.own_group / f"ossfs-test-cli-{os.getpid()}"
    top = hierarchy.directory(name)
    mount = ["mount", "oss://bucket", str(tmp_path / "mp"), "--anonymous", "--endpoint", "h"]
    with _groups(top):
        (top / "memory.limit_in_bytes").write_text(f"{limit}\n")
        result = _run_in(
            top,
            [sys.executable, "-c", _EXEC, "-m", "ossfs", *mount, "--max-memory", "2GiB"],
        )
    from ossfs.app.memory_budget import size_at_most

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"ossfs mount: error: --max-memory 2.0 GiB is above this process's memory limit of "
        f"{format_size(limit)} (cgroup {name} memory.limit_in_bytes): give at most "
        f"{size_at_most(limit)} or raise the limit\n"
    )


def test_memory_limit_live_v2_child_group() -> None:
    _require_root()
    hierarchy = _hierarchy(v1=False)
    if hierarchy is None:
        pytest.skip("no cgroup v2 hierarchy is mounted for this process")
    top_dir = hierarchy.mount_point
    controllers = (top_dir / "cgroup.controllers").read_text().split()
    if "memory" not in controllers:
        pytest.skip(
            f"the cgroup v2 hierarchy at {top_dir} has no memory controller (it has: "
            f"{' '.join(controllers) or 'none'}); memory is on cgroup v1 here"
        )
    limit = _limit_below_ours()
    name = hierarchy.root / f"ossfs-test-{os.getpid()}"
    top = hierarchy.directory(name)
    inner = top / "inner"
    try:
        if "memory" not in (top_dir / "cgroup.subtree_control").read_text().split():
            (top_dir / "cgroup.subtree_control").write_text("+memory\n")
    except OSError as exc:
        pytest.skip(f"cannot give the memory controller to groups under {top_dir}: {exc}")
    with _groups(top, inner):
        (top / "cgroup.subtree_control").write_text("+memory\n")
        (top / "memory.max").write_text(f"{limit}\n")
        (inner / "memory.high").write_text(f"{limit + 64 * MiB}\n")
        found = _probe(inner)
    assert found["limit"] == limit
    assert found["source"] == str(top / "memory.max")
    assert found["group"] == str(name)
    assert found["describe"] == f"cgroup {name} memory.max"
