"""`ossfs umount`: unmount an ossfs mount, including a dead one (daemon killed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ossfs.core.errors import UsageError


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_points() -> frozenset[str] | None:
    """The mount points in /proc/self/mounts, or None when it cannot be read."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as mounts:
            return frozenset(_unescape(line.split()[1]) for line in mounts if line.strip())
    except OSError:
        return None


def is_mounted(path: Path) -> bool:
    """True if ``path`` is a mount point in /proc/self/mounts (works for dead FUSE mounts too)."""
    points = mount_points()
    if points is None:
        return os.path.ismount(path)
    return os.path.realpath(path) in points


def _attempts(path: str) -> list[list[str]]:
    commands: list[list[str]] = []
    for tool in ("fusermount3", "fusermount"):
        if shutil.which(tool):
            commands.append([tool, "-u", path])
    if os.geteuid() == 0:
        commands.append(["umount", path])
        # A dead mount ("Transport endpoint is not connected") may need a lazy unmount.
        commands.append(["umount", "-l", path])
    return commands


def run_umount(mountpoint: Path) -> int:
    """Unmount ``mountpoint``; raise `UsageError` if it is not mounted or cannot be unmounted."""
    path = str(mountpoint.absolute())
    if not is_mounted(mountpoint):
        raise UsageError(f"{mountpoint} is not mounted")
    errors: list[str] = []
    for command in _attempts(path):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode == 0 and not is_mounted(mountpoint):
            return 0
        errors.append(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "")
    reason = next((e for e in reversed(errors) if e), "unmount failed")
    raise UsageError(f"cannot unmount {mountpoint}: {reason} (is a file on it still open?)")
