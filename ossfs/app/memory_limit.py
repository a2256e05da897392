"""The memory limit that applies to this process: the lowest of its control groups' limits and RAM.

A daemon started by systemd (``MemoryMax=``), in a container or in a pod runs in a child control
group, and its limit is in that group's files or in an ancestor's, not in the hierarchy's root.
`find_memory_limit` reads the process's own group from ``/proc/self/cgroup``, finds where that
hierarchy is mounted from ``/proc/self/mountinfo`` (no assumed ``/sys/fs/cgroup`` layout: v1's
memory controller may be mounted on its own or with others, anywhere), and walks from the group up
to the top of the mount, taking the lowest limit on the way:

- cgroup v2: ``memory.max`` (over it the group's processes are OOM-killed) and ``memory.high``
  (over it they are throttled and reclaimed hard: a ceiling a cache must stay under as well);
- cgroup v1: ``memory.limit_in_bytes`` of the group, and of each ancestor whose
  ``memory.use_hierarchy`` is not 0 (an ancestor without it does not count its children's
  memory; kernels since 5.16 always count it). ``memory.soft_limit_in_bytes`` is deliberately
  not a limit here: it is only a target the kernel reclaims towards when the whole machine is
  short of memory; going over it neither throttles nor kills. v1's "unlimited" is a huge number
  (9223372036854771712), and like any value above RAM it limits nothing;
- RAM: ``MemTotal`` of ``/proc/meminfo``, when lower than every group's limit.

On a hybrid machine both a v2 and a v1 memory hierarchy may be listed; whichever has the lower
limit wins. A group above the top of the mount (a container's cgroup namespace, or a bind mount
of the container's own group) cannot be seen and is not read: that is the container's limit, as
it should be. Missing files and unreadable or garbled values are skipped with a debug log.

`usage_reader` gives a callable that reads how much of that limit is in use now, for the mount's
memory-pressure monitor (`ossfs.read.pressure`): the group's usage less its inactive file cache
(the page cache the kernel reclaims first, before any process is OOM-killed), or for RAM what
``MemAvailable`` says is not available.

Deliberately not here: what to do with the limit (`ossfs.app.memory_budget`), and any write to a
control group. Every file is read under a root directory parameter, so tests build hierarchies in
a temporary directory.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

log = logging.getLogger(__name__)

RAM: Final = "RAM"
"""`MemoryLimit.source` when physical memory is the limit."""
V2_LIMIT_FILES: Final = ("memory.max", "memory.high")
V1_LIMIT_FILE: Final = "memory.limit_in_bytes"
_V1_HIERARCHY_FILE: Final = "memory.use_hierarchy"
_MOUNTINFO_ESCAPE: Final = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class MemoryLimit:
    """The memory this process may use, and where that figure came from.

    ``source``: the file the limit was read from, as this process sees its path (for example
    ``/sys/fs/cgroup/system.slice/x.service/memory.max``), or ``"RAM"`` (``MemTotal``).
    ``group``: the control group of that file as ``/proc/self/cgroup`` names groups (for
    example ``/system.slice/x.service``); None for RAM.
    """

    limit_bytes: int
    source: str
    group: str | None = None

    def __post_init__(self) -> None:
        if self.limit_bytes <= 0:
            raise ValueError(f"a memory limit must be positive, not {self.limit_bytes}")
        if (self.group is None) != (self.source == RAM):
            raise ValueError("a group's limit names its group; RAM names none")

    def describe(self) -> str:
        """Where the limit came from, in words: ``cgroup /x.service memory.max`` or ``RAM``."""
        if self.group is None:
            return RAM
        return f"cgroup {self.group} {PurePosixPath(self.source).name}"


@dataclass(frozen=True, slots=True)
class _Mount:
    """One line of mountinfo: the filesystem's directory shown (``root``) and where."""

    root: PurePosixPath
    mount_point: PurePosixPath
    fs_type: str
    options: frozenset[str]

    def holds(self, fs_type: str, controller: str) -> bool:
        """Whether this is a mount of ``fs_type`` with ``controller`` (v1; "" for v2)."""
        return self.fs_type == fs_type and (not controller or controller in self.options)

    def shows(self, group: PurePosixPath) -> bool:
        """Whether ``group``'s directory is under this mount (a group shown as ``/../x`` is
        outside this process's cgroup namespace, and under no mount of it)."""
        return ".." not in group.parts and group.is_relative_to(self.root)


def find_memory_limit(root: Path = Path("/")) -> MemoryLimit:
    """The lowest memory limit that applies to this process (see the module docstring).

    ``root``: the directory every path is read under (``/`` on a live system). Never raises
    for a missing or garbled file; without a readable ``MemTotal`` RAM comes from sysconf.
    """
    groups = _own_groups(root)
    mounts = _mounts(root)
    candidates: list[MemoryLimit] = []
    for kind, fs_type in (("", "cgroup2"), ("memory", "cgroup")):
        group = groups.get(kind)
        if group is None:
            continue
        # Mounts are sorted so that the first to show the group shows most of its ancestors.
        mount = next((m for m in mounts if m.holds(fs_type, kind) and m.shows(group)), None)
        if mount is None:
            log.debug("cgroup %s (%s) is under no mount: not read", group, fs_type)
            continue
        candidates += _walk(root, mount, group, v1=fs_type == "cgroup")
    best = MemoryLimit(_ram_bytes(root), RAM)
    for candidate in candidates:  # deepest first: a group wins a tie with its ancestors and RAM
        if candidate.limit_bytes < best.limit_bytes or (
            candidate.limit_bytes == best.limit_bytes and best.group is None
        ):
            best = candidate
    return best


def usage_reader(limit: MemoryLimit, root: Path = Path("/")) -> Callable[[], int | None]:
    """A callable answering how many bytes of ``limit`` are in use now (None if unreadable).

    A group's limit: its usage less its inactive file cache: cgroup v1 ``memory.usage_in_bytes``
    less ``total_inactive_file`` of ``memory.stat``, v2 ``memory.current`` less
    ``inactive_file``. RAM: ``MemTotal`` less ``MemAvailable`` of ``/proc/meminfo``. Each call
    reads two small files (or one), so call it from a timer, not per request."""
    if limit.group is None:
        return lambda: _ram_in_use(root)
    directory = PurePosixPath(limit.source).parent
    if PurePosixPath(limit.source).name == V1_LIMIT_FILE:
        usage_file, inactive = directory / "memory.usage_in_bytes", "total_inactive_file"
    else:
        usage_file, inactive = directory / "memory.current", "inactive_file"
    stat_file = directory / "memory.stat"

    def in_use() -> int | None:
        usage = _read(root, usage_file)
        if usage is None or not usage.isdigit():
            return None
        return max(0, int(usage) - _stat_value(_read(root, stat_file), inactive))

    return in_use


def _stat_value(text: str | None, name: str) -> int:
    """The value of ``name`` in a ``memory.stat`` text; 0 when absent."""
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.isdigit():
            return int(value)
    return 0


def _ram_in_use(root: Path) -> int | None:
    """``MemTotal - MemAvailable`` in bytes, or None without them."""
    values: dict[str, int] = {}
    for line in (_read(root, PurePosixPath("/proc/meminfo")) or "").splitlines():
        name, _, value = line.partition(":")
        kib = value.split()
        if name in ("MemTotal", "MemAvailable") and kib and kib[0].isdigit():
            values[name] = int(kib[0]) << 10
    if len(values) != 2:
        return None
    return max(0, values["MemTotal"] - values["MemAvailable"])


def _walk(root: Path, mount: _Mount, group: PurePosixPath, *, v1: bool) -> list[MemoryLimit]:
    """The limits set on ``group`` and its ancestors visible under ``mount``, deepest first."""
    below = group.relative_to(mount.root)
    found: list[MemoryLimit] = []
    levels = [below, *below.parents] if below.parts else [below]
    for i, level in enumerate(levels):
        directory = mount.mount_point / level
        name = mount.root / level
        if v1:
            # An ancestor counts its children's memory only with use_hierarchy (the group's own
            # limit always applies to it).
            if i > 0 and _read(root, directory / _V1_HIERARCHY_FILE) == "0":
                break
            files: tuple[str, ...] = (V1_LIMIT_FILE,)
        else:
            files = V2_LIMIT_FILES
        for file in files:
            limit = _limit(root, directory / file)
            if limit is not None:
                found.append(MemoryLimit(limit, str(directory / file), str(name)))
    return found


def _own_groups(root: Path) -> dict[str, PurePosixPath]:
    """This process's groups by hierarchy: ``""`` for v2, ``"memory"`` for v1's memory one."""
    text = _read(root, PurePosixPath("/proc/self/cgroup"))
    groups: dict[str, PurePosixPath] = {}
    for line in (text or "").splitlines():
        hierarchy_id, sep, rest = line.partition(":")
        controllers, sep2, path = rest.partition(":")
        if not (sep and sep2 and path.startswith("/")):
            log.debug("unexpected /proc/self/cgroup line %r: skipped", line)
            continue
        if hierarchy_id == "0" and not controllers:
            groups[""] = PurePosixPath(path)
        elif "memory" in controllers.split(","):
            groups["memory"] = PurePosixPath(path)
    return groups


def _mounts(root: Path) -> list[_Mount]:
    """The cgroup mounts of mountinfo, those showing the most of their hierarchy first (a
    shorter ``root``: more ancestors of a group can be read)."""
    text = _read(root, PurePosixPath("/proc/self/mountinfo"))
    mounts: list[_Mount] = []
    for line in (text or "").splitlines():
        fields = line.split()
        # ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS
        try:
            dash = fields.index("-", 6)
            fs_type, super_options = fields[dash + 1], fields[dash + 3]
        except (ValueError, IndexError):
            log.debug("unexpected mountinfo line %r: skipped", line)
            continue
        if fs_type in ("cgroup", "cgroup2"):
            mounts.append(
                _Mount(
                    PurePosixPath(_unescape(fields[3])),
                    PurePosixPath(_unescape(fields[4])),
                    fs_type,
                    frozenset(super_options.split(",")),
                )
            )
    return sorted(mounts, key=lambda m: len(m.root.parts))


def _unescape(field: str) -> str:
    """A mountinfo path: the kernel writes space, tab, newline and backslash as ``\\ooo``."""
    return _MOUNTINFO_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _limit(root: Path, path: PurePosixPath) -> int | None:
    """A limit file's bytes; None when absent, ``max`` (unlimited) or not a positive number."""
    text = _read(root, path)
    if text is None or text == "max":
        return None
    if not text.isdigit() or int(text) == 0:
        log.debug("%s holds %r, not a limit: ignored", path, text[:40])
        return None
    return int(text)


def _ram_bytes(root: Path) -> int:
    """``MemTotal`` from meminfo, else the page count from sysconf."""
    for line in (_read(root, PurePosixPath("/proc/meminfo")) or "").splitlines():
        name, _, value = line.partition(":")
        kib = value.split()
        if name == "MemTotal" and len(kib) == 2 and kib[0].isdigit() and kib[1] == "kB":
            return int(kib[0]) << 10
    log.debug("no MemTotal in /proc/meminfo: RAM from sysconf")
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _read(root: Path, path: PurePosixPath) -> str | None:
    """The stripped text of ``path`` (absolute, as this process sees it) under ``root``."""
    try:
        return (root / path.relative_to("/")).read_text(errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return None
