"""Real memory control groups for tests (no tests here): make a child group with a limit, run a
process in it, read what the kernel says it used, remove the group afterwards, also on failure.

cgroup v1: a group is made under this process's own memory group, so whatever runs in it stays
inside what accounts for the test run. cgroup v2: under the hierarchy's top (v2 lets only a group
without processes hand the memory controller to children). Callers skip, saying why, where a
hierarchy is absent, has no memory controller, or cannot be written (not root).

A process is moved into a group before it does anything: it is started waiting for a line on
its stdin (`WAIT_THEN_EXEC` waits, then becomes the command it was given), its pid is written to
the group's ``cgroup.procs``, and then it is let go. Whatever it forks stays in the group.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

import pytest

MiB: Final = 1 << 20
_RMDIR_DEADLINE_S: Final = 10.0
_ARGV: Final = "[sys.executable, *sys.argv[1:]]"
WAIT_THEN_EXEC: Final = f"import os, sys; sys.stdin.readline(); os.execv(sys.executable, {_ARGV})"
"""``python -c WAIT_THEN_EXEC ARGS...`` waits for a line on stdin, then runs ``python ARGS...``
in the same process (so in the group it was moved to meanwhile)."""


@dataclass(frozen=True)
class Hierarchy:
    """A mounted cgroup hierarchy: its directory, the group shown at its top, this process's
    group in it, and whether it is v1."""

    mount_point: Path
    root: PurePosixPath
    own_group: PurePosixPath
    v1: bool

    def directory(self, group: PurePosixPath) -> Path:
        return self.mount_point / group.relative_to(self.root)


def hierarchy(*, v1: bool) -> Hierarchy | None:
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
                return Hierarchy(Path(fields[4]), root, own, v1)
    return None


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("making a control group needs root")


def require_v1() -> Hierarchy:
    """This process's v1 memory hierarchy, as root; skips (saying why) otherwise."""
    require_root()
    found = hierarchy(v1=True)
    if found is None:
        pytest.skip("no cgroup v1 memory hierarchy is mounted for this process")
    return found


@contextlib.contextmanager
def groups(*directories: Path) -> Iterator[None]:
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
            rmdir(directory)


def rmdir(directory: Path) -> None:
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


def run_in(
    group: Path,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Start ``argv`` (which waits for a line on stdin, see `WAIT_THEN_EXEC`), move it into
    ``group``, let it go, and wait for it to exit (killed after ``timeout_s``)."""
    with subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
    ) as child:
        try:
            (group / "cgroup.procs").write_text(f"{child.pid}\n")
            out, err = child.communicate("\n", timeout=timeout_s)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    return subprocess.CompletedProcess(list(argv), child.returncode, out, err)


def python_in(
    group: Path, *args: str, env: Mapping[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python ARGS...`` run inside ``group`` from its first instruction."""
    return run_in(
        group, [sys.executable, "-c", WAIT_THEN_EXEC, *args], env=env, timeout_s=timeout_s
    )


def limit_below_ours(wanted: int) -> int:
    """``wanted`` bytes, or less if this process is already limited below twice that (v1 rounds
    limits to pages, so a multiple of the page size)."""
    from ossfs.app.memory_limit import find_memory_limit

    page = os.sysconf("SC_PAGE_SIZE")
    return min(wanted, find_memory_limit().limit_bytes // 2) // page * page


@dataclass(frozen=True)
class MemoryGroup:
    """A memory control group's directory and what its files say (v1 or v2)."""

    directory: Path
    name: PurePosixPath
    v1: bool

    def set_limit(self, limit_bytes: int) -> None:
        file = "memory.limit_in_bytes" if self.v1 else "memory.max"
        (self.directory / file).write_text(f"{limit_bytes}\n")

    @property
    def limit_bytes(self) -> int:
        file = "memory.limit_in_bytes" if self.v1 else "memory.max"
        return int((self.directory / file).read_text())

    @property
    def peak_bytes(self) -> int:
        """The most the group has used since it was made (v1 ``memory.max_usage_in_bytes``,
        v2 ``memory.peak``)."""
        file = "memory.max_usage_in_bytes" if self.v1 else "memory.peak"
        return int((self.directory / file).read_text())

    @property
    def usage_bytes(self) -> int:
        file = "memory.usage_in_bytes" if self.v1 else "memory.current"
        return int((self.directory / file).read_text())

    @property
    def oom_kills(self) -> int:
        """Processes of the group the kernel's OOM killer ended (v1 ``memory.oom_control``,
        v2 ``memory.events``: their ``oom_kill`` line)."""
        file = "memory.oom_control" if self.v1 else "memory.events"
        for line in (self.directory / file).read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
        raise AssertionError(f"no oom_kill line in {self.directory / file}")

    def stat(self) -> dict[str, int]:
        """``memory.stat``, name -> value."""
        out: dict[str, int] = {}
        for line in (self.directory / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            out[name] = int(value)
        return out

    def pids(self) -> list[int]:
        return [int(p) for p in (self.directory / "cgroup.procs").read_text().split()]


@contextlib.contextmanager
def v1_memory_group(found: Hierarchy, tag: str, limit_bytes: int) -> Iterator[MemoryGroup]:
    """A new v1 memory group under this process's own, counting its children's memory, with
    ``limit_bytes`` as its limit; removed on the way out (its processes must be gone by then)."""
    name = found.own_group / f"ossfs-test-{tag}-{os.getpid()}"
    directory = found.directory(name)
    with groups(directory):
        # Kernels before 5.16 let a group not count its children: these groups must.
        with contextlib.suppress(OSError):
            (directory / "memory.use_hierarchy").write_text("1\n")
        group = MemoryGroup(directory, name, v1=True)
        group.set_limit(limit_bytes)
        yield group


@contextlib.contextmanager
def memory_group(tag: str, limit_bytes: int) -> Iterator[MemoryGroup]:
    """A new memory group with ``limit_bytes`` as its limit, removed on the way out (its
    processes must be gone by then): cgroup v1 where this process's memory is accounted on v1
    (under its own group), else v2 (under the hierarchy's top, where it has the memory
    controller). Skips, saying why, where neither can be made or it is not run as root."""
    require_root()
    found = hierarchy(v1=True)
    if found is not None:
        with v1_memory_group(found, tag, limit_bytes) as group:
            yield group
        return
    found = hierarchy(v1=False)
    if found is None:
        pytest.skip("no cgroup hierarchy with a memory controller is mounted for this process")
    top = found.mount_point
    if "memory" not in (top / "cgroup.controllers").read_text().split():
        pytest.skip(f"the cgroup v2 hierarchy at {top} has no memory controller")
    try:
        if "memory" not in (top / "cgroup.subtree_control").read_text().split():
            (top / "cgroup.subtree_control").write_text("+memory\n")
    except OSError as exc:
        pytest.skip(f"cannot give the memory controller to groups under {top}: {exc}")
    name = found.root / f"ossfs-test-{tag}-{os.getpid()}"
    directory = found.directory(name)
    with groups(directory):
        group = MemoryGroup(directory, name, v1=False)
        group.set_limit(limit_bytes)
        with contextlib.suppress(OSError):  # no swap: over the limit is an OOM kill, as on v1
            (directory / "memory.swap.max").write_text("0\n")
        yield group
