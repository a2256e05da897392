"""Tests of `ossfs.app.memory_limit` over fake hierarchies: ``/proc/self/cgroup``,
``/proc/self/mountinfo``, ``/proc/meminfo`` and cgroup files written under a temporary root.

The live counterpart (a real child control group) is tests/test_memory_limit_live.py.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.app.memory_limit import RAM, MemoryLimit, find_memory_limit, usage_reader

MiB = 1 << 20
GiB = 1 << 30
RAM_BYTES = 8 * GiB
V1_UNLIMITED = "9223372036854771712"
V2_MOUNT = (
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw"
)
V1_MOUNTS = (
    "31 23 0:28 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory\n"
)


class Machine:
    """A fake root: this process's groups and mounts, RAM, and cgroup files by path."""

    def __init__(self, root: Path, *, cgroup: str, mountinfo: str, ram: int = RAM_BYTES) -> None:
        self.root = root
        self.write("/proc/self/cgroup", cgroup)
        self.write("/proc/self/mountinfo", mountinfo)
        self.write("/proc/meminfo", f"MemTotal:       {ram >> 10} kB\nMemFree:  1 kB\n")

    def write(self, path: str, text: str) -> None:
        file = self.root / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text if text.endswith("\n") else text + "\n")

    def limit(self) -> MemoryLimit:
        return find_memory_limit(self.root)


def _v2(tmp_path: Path, group: str, mountinfo: str = V2_MOUNT) -> Machine:
    return Machine(tmp_path, cgroup=f"0::{group}", mountinfo=mountinfo)


def test_memory_limit_v2_limit_on_a_parent_group(tmp_path: Path) -> None:
    m = _v2(tmp_path, "/system.slice/x.service")
    m.write("/sys/fs/cgroup/system.slice/x.service/memory.max", "max")
    m.write("/sys/fs/cgroup/system.slice/x.service/memory.high", "max")
    m.write("/sys/fs/cgroup/system.slice/memory.max", str(400 * MiB))
    assert m.limit() == MemoryLimit(
        400 * MiB, "/sys/fs/cgroup/system.slice/memory.max", "/system.slice"
    )
    assert m.limit().describe() == "cgroup /system.slice memory.max"


def test_memory_limit_v2_lowest_on_the_way_up_wins(tmp_path: Path) -> None:
    m = _v2(tmp_path, "/a/b/c")
    m.write("/sys/fs/cgroup/a/memory.max", str(300 * MiB))
    m.write("/sys/fs/cgroup/a/b/memory.max", str(500 * MiB))
    m.write("/sys/fs/cgroup/a/b/c/memory.max", str(700 * MiB))
    assert m.limit() == MemoryLimit(300 * MiB, "/sys/fs/cgroup/a/memory.max", "/a")
    m.write("/sys/fs/cgroup/a/b/c/memory.max", str(200 * MiB))
    assert m.limit() == MemoryLimit(200 * MiB, "/sys/fs/cgroup/a/b/c/memory.max", "/a/b/c")


def test_memory_limit_v2_max_everywhere_is_ram(tmp_path: Path) -> None:
    m = _v2(tmp_path, "/user.slice/session-1.scope")
    for group in ("user.slice", "user.slice/session-1.scope"):
        m.write(f"/sys/fs/cgroup/{group}/memory.max", "max")
        m.write(f"/sys/fs/cgroup/{group}/memory.high", "max")
    assert m.limit() == MemoryLimit(RAM_BYTES, RAM)
    assert m.limit().describe() == "RAM"


def test_memory_limit_v2_memory_high_below_memory_max(tmp_path: Path) -> None:
    m = _v2(tmp_path, "/app")
    m.write("/sys/fs/cgroup/app/memory.max", str(512 * MiB))
    m.write("/sys/fs/cgroup/app/memory.high", str(384 * MiB))
    assert m.limit() == MemoryLimit(384 * MiB, "/sys/fs/cgroup/app/memory.high", "/app")
    assert m.limit().describe() == "cgroup /app memory.high"


def test_memory_limit_v1_memory_co_mounted_elsewhere(tmp_path: Path) -> None:
    mounts = (
        "40 23 0:40 / /cg/cpu,memory rw,relatime - cgroup cgroup rw,cpu,memory\n"
        "41 23 0:41 / /cg/pids rw,relatime - cgroup cgroup rw,pids\n"
    )
    m = Machine(tmp_path, cgroup="5:pids:/app\n4:cpu,memory:/app/worker\n", mountinfo=mounts)
    m.write("/cg/cpu,memory/app/worker/memory.limit_in_bytes", V1_UNLIMITED)
    m.write("/cg/cpu,memory/app/memory.limit_in_bytes", str(300 * MiB))
    m.write("/cg/cpu,memory/memory.limit_in_bytes", V1_UNLIMITED)
    assert m.limit() == MemoryLimit(300 * MiB, "/cg/cpu,memory/app/memory.limit_in_bytes", "/app")
    assert m.limit().describe() == "cgroup /app memory.limit_in_bytes"


def test_memory_limit_v1_unlimited_sentinel_is_ram(tmp_path: Path) -> None:
    m = Machine(tmp_path, cgroup="4:memory:/app\n1:cpu:/\n", mountinfo=V1_MOUNTS)
    m.write("/sys/fs/cgroup/memory/app/memory.limit_in_bytes", V1_UNLIMITED)
    m.write("/sys/fs/cgroup/memory/memory.limit_in_bytes", V1_UNLIMITED)
    assert m.limit() == MemoryLimit(RAM_BYTES, RAM)


def test_memory_limit_v1_soft_limit_is_not_a_limit(tmp_path: Path) -> None:
    m = Machine(tmp_path, cgroup="4:memory:/app\n", mountinfo=V1_MOUNTS)
    m.write("/sys/fs/cgroup/memory/app/memory.limit_in_bytes", str(GiB))
    m.write("/sys/fs/cgroup/memory/app/memory.soft_limit_in_bytes", str(100 * MiB))
    assert m.limit() == MemoryLimit(GiB, "/sys/fs/cgroup/memory/app/memory.limit_in_bytes", "/app")


def test_memory_limit_v1_ancestor_without_use_hierarchy_does_not_count(tmp_path: Path) -> None:
    m = Machine(tmp_path, cgroup="4:memory:/a/b\n", mountinfo=V1_MOUNTS)
    m.write("/sys/fs/cgroup/memory/a/memory.limit_in_bytes", str(200 * MiB))
    m.write("/sys/fs/cgroup/memory/a/memory.use_hierarchy", "1")
    assert m.limit().limit_bytes == 200 * MiB
    m.write("/sys/fs/cgroup/memory/a/memory.use_hierarchy", "0")
    assert m.limit() == MemoryLimit(RAM_BYTES, RAM)
    # The group's own limit applies whatever its use_hierarchy says.
    m.write("/sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", str(300 * MiB))
    m.write("/sys/fs/cgroup/memory/a/b/memory.use_hierarchy", "0")
    assert m.limit().limit_bytes == 300 * MiB


@pytest.mark.parametrize(
    ("cgroup", "mountinfo", "file", "group"),
    [
        # cgroup v2 with a cgroup namespace: the container's group is the namespace's root.
        ("0::/", V2_MOUNT, "/sys/fs/cgroup/memory.max", "/"),
        # v2 without a namespace: the runtime bind-mounts the container's own group.
        (
            "0::/kubepods/pod1/abc",
            "30 23 0:26 /kubepods/pod1/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw",
            "/sys/fs/cgroup/memory.max",
            "/kubepods/pod1/abc",
        ),
        # v1 without a namespace (docker): the same, per controller.
        (
            "4:memory:/docker/abc\n0::/",
            "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/docker/abc",
        ),
    ],
)
def test_memory_limit_container_sees_its_own_group_at_the_mount_point(
    tmp_path: Path, cgroup: str, mountinfo: str, file: str, group: str
) -> None:
    m = Machine(tmp_path, cgroup=cgroup, mountinfo=mountinfo)
    m.write(file, str(400 * MiB))
    assert m.limit() == MemoryLimit(400 * MiB, file, group)


def test_memory_limit_hybrid_machine_takes_the_lower_hierarchy(tmp_path: Path) -> None:
    mounts = V1_MOUNTS + "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    m = Machine(tmp_path, cgroup="4:memory:/svc\n0::/svc\n", mountinfo=mounts)
    m.write("/sys/fs/cgroup/memory/svc/memory.limit_in_bytes", str(300 * MiB))
    m.write("/sys/fs/cgroup/unified/svc/memory.max", str(500 * MiB))
    assert m.limit().source == "/sys/fs/cgroup/memory/svc/memory.limit_in_bytes"
    m.write("/sys/fs/cgroup/unified/svc/memory.max", str(250 * MiB))
    assert m.limit().source == "/sys/fs/cgroup/unified/svc/memory.max"


def test_memory_limit_prefers_the_mount_that_shows_the_most_ancestors(tmp_path: Path) -> None:
    mounts = (
        "50 23 0:26 /a/b /srv/b rw - cgroup2 cgroup2 rw\n"
        "51 23 0:26 /elsewhere /srv/e rw - cgroup2 cgroup2 rw\n"
        "52 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    )
    m = _v2(tmp_path, "/a/b", mounts)
    m.write("/sys/fs/cgroup/a/memory.max", str(300 * MiB))
    assert m.limit() == MemoryLimit(300 * MiB, "/sys/fs/cgroup/a/memory.max", "/a")


def test_memory_limit_mountinfo_escapes_are_decoded(tmp_path: Path) -> None:
    mounts = r"60 23 0:26 / /run/my\040cgroups rw - cgroup2 cgroup2 rw"
    m = _v2(tmp_path, "/app", mounts)
    m.write("/run/my cgroups/app/memory.max", str(300 * MiB))
    assert m.limit().source == "/run/my cgroups/app/memory.max"


def test_memory_limit_ram_lower_than_every_group(tmp_path: Path) -> None:
    m = _v2(tmp_path, "/app")
    m.write("/sys/fs/cgroup/app/memory.max", str(RAM_BYTES + GiB))
    assert m.limit() == MemoryLimit(RAM_BYTES, RAM)
    m.write("/sys/fs/cgroup/app/memory.max", str(RAM_BYTES))  # a tie names the group
    assert m.limit() == MemoryLimit(RAM_BYTES, "/sys/fs/cgroup/app/memory.max", "/app")


def test_memory_limit_group_outside_the_namespace_or_any_mount_is_not_read(
    tmp_path: Path,
) -> None:
    m = _v2(tmp_path, "/../sibling")
    m.write("/sys/fs/cgroup/memory.max", str(300 * MiB))
    assert m.limit() == MemoryLimit(RAM_BYTES, RAM)
    m = _v2(tmp_path, "/other", "30 23 0:26 /mine /sys/fs/cgroup rw - cgroup2 cgroup2 rw")
    assert m.limit() == MemoryLimit(RAM_BYTES, RAM)


def test_memory_limit_missing_files_are_ram(tmp_path: Path) -> None:
    ram = MemoryLimit(RAM_BYTES, RAM)
    m = _v2(tmp_path, "/app")  # no limit files at all
    assert m.limit() == ram
    (tmp_path / "proc/self/mountinfo").unlink()
    m.write("/sys/fs/cgroup/app/memory.max", str(300 * MiB))
    assert m.limit() == ram  # nowhere to find the group
    m.write("/proc/self/mountinfo", V2_MOUNT)
    (tmp_path / "proc/self/cgroup").unlink()
    assert m.limit() == ram  # no group to look for
    (tmp_path / "proc/meminfo").unlink()
    from_sysconf = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert find_memory_limit(tmp_path) == MemoryLimit(from_sysconf, RAM)


def test_memory_limit_garbage_is_ignored_with_a_debug_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ossfs.app.memory_limit")
    m = Machine(
        tmp_path,
        cgroup="garbage\n0::relative/path\n0::/a/b\n",
        mountinfo="nonsense\n1 2 3\n" + V2_MOUNT,
    )
    m.write("/sys/fs/cgroup/a/b/memory.max", "lots")
    m.write("/sys/fs/cgroup/a/b/memory.high", "-5")
    m.write("/sys/fs/cgroup/a/memory.max", "0")
    (tmp_path / "sys/fs/cgroup/a/memory.high").mkdir()  # unreadable: a directory
    m.write("/sys/fs/cgroup/memory.max", str(300 * MiB))  # the root: still read
    assert m.limit() == MemoryLimit(300 * MiB, "/sys/fs/cgroup/memory.max", "/")
    logged = caplog.text
    assert "unexpected /proc/self/cgroup line 'garbage'" in logged
    assert "unexpected mountinfo line 'nonsense'" in logged
    assert "/sys/fs/cgroup/a/b/memory.max holds 'lots', not a limit" in logged
    assert "/sys/fs/cgroup/a/b/memory.high holds '-5'" in logged
    assert "/sys/fs/cgroup/a/memory.max holds '0'" in logged
    assert "cannot read /sys/fs/cgroup/a/memory.high" in logged
    m.write("/proc/meminfo", "MemTotal: many\n")
    from_sysconf = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert m.limit().limit_bytes == min(300 * MiB, from_sysconf)
    assert "no MemTotal in /proc/meminfo" in caplog.text


def test_memory_limit_value_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryLimit(0, RAM)
    with pytest.raises(ValueError, match="names"):
        MemoryLimit(MiB, "/sys/fs/cgroup/memory.max")
    with pytest.raises(ValueError, match="names"):
        MemoryLimit(MiB, RAM, "/app")


@given(
    limits=st.lists(
        st.one_of(st.none(), st.just("max"), st.integers(1, 2 * RAM_BYTES)), min_size=1, max_size=5
    ),
    highs=st.lists(st.one_of(st.none(), st.integers(1, 2 * RAM_BYTES)), min_size=5, max_size=5),
)
def test_memory_limit_is_the_minimum_over_the_path_and_ram(
    limits: list[int | str | None], highs: list[int | None]
) -> None:
    """The lowest figure wins; of equal ones the deepest group's (``memory.max`` before
    ``memory.high``), and a group's over RAM."""
    groups = [f"/g{i}" for i in range(len(limits))]
    with tempfile.TemporaryDirectory() as tmp:
        m = _v2(Path(tmp), "".join(groups))
        written: list[tuple[int, str, str]] = []  # (bytes, file, group), shallowest first
        for depth, (limit, high) in enumerate(zip(limits, highs, strict=False)):
            group = "".join(groups[: depth + 1])
            for name, value in (("memory.max", limit), ("memory.high", high)):
                if value is not None:
                    m.write(f"/sys/fs/cgroup{group}/{name}", str(value))
                if isinstance(value, int):
                    written.append((value, f"/sys/fs/cgroup{group}/{name}", group))
        found = m.limit()
    expected = MemoryLimit(RAM_BYTES, RAM)
    deepest_first = sorted(written, key=lambda w: -w[2].count("/"))  # stable: max before high
    for value, file, group in deepest_first:
        if value < expected.limit_bytes or (
            value == expected.limit_bytes and expected.group is None
        ):
            expected = MemoryLimit(value, file, group)
    assert found == expected


# -- usage of the limit, for the memory-pressure monitor ------------------------------------------
def test_memory_limit_usage_v1_is_usage_less_inactive_file_cache(tmp_path: Path) -> None:
    m = Machine(tmp_path, cgroup="4:memory:/svc", mountinfo=V1_MOUNTS)
    m.write("/sys/fs/cgroup/memory/svc/memory.limit_in_bytes", str(400 * MiB))
    m.write("/sys/fs/cgroup/memory/svc/memory.usage_in_bytes", str(300 * MiB))
    m.write(
        "/sys/fs/cgroup/memory/svc/memory.stat",
        f"cache {120 * MiB}\ninactive_file {10 * MiB}\ntotal_inactive_file {100 * MiB}\n",
    )
    in_use = usage_reader(m.limit(), tmp_path)
    assert in_use() == 200 * MiB  # the hierarchical figure, as the limit is hierarchical
    m.write("/sys/fs/cgroup/memory/svc/memory.usage_in_bytes", str(350 * MiB))
    assert in_use() == 250 * MiB  # read again at each call


def test_memory_limit_usage_v2_is_current_less_inactive_file(tmp_path: Path) -> None:
    m = _v2(tmp_path, "/system.slice/x.service")
    m.write("/sys/fs/cgroup/system.slice/memory.max", str(400 * MiB))
    m.write("/sys/fs/cgroup/system.slice/memory.current", str(300 * MiB))
    m.write("/sys/fs/cgroup/system.slice/memory.stat", f"anon {250 * MiB}\ninactive_file {MiB}\n")
    assert usage_reader(m.limit(), tmp_path)() == 299 * MiB


def test_memory_limit_usage_of_ram_is_what_is_not_available(tmp_path: Path) -> None:
    m = _v2(tmp_path, "/")
    m.write("/proc/meminfo", "MemTotal: 8388608 kB\nMemFree: 1 kB\nMemAvailable: 6291456 kB\n")
    assert m.limit().source == RAM
    assert usage_reader(m.limit(), tmp_path)() == 2 * GiB


def test_memory_limit_usage_unreadable_is_none(tmp_path: Path) -> None:
    m = _v2(tmp_path, "/svc")
    m.write("/sys/fs/cgroup/svc/memory.max", str(400 * MiB))
    in_use = usage_reader(m.limit(), tmp_path)
    assert in_use() is None  # no memory.current
    m.write("/sys/fs/cgroup/svc/memory.current", "garbled")
    assert in_use() is None
    m.write("/sys/fs/cgroup/svc/memory.current", str(5 * MiB))
    assert in_use() == 5 * MiB  # no memory.stat: nothing to take off
    ram = _v2(tmp_path / "ram", "/")
    assert usage_reader(ram.limit(), tmp_path / "ram")() is None  # no MemAvailable
