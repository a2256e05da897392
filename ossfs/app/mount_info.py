"""Which mount a path is on, and an ossfs mount's live counters (its root's stats xattr).

Responsibility: find the mount point of a path (the nearest ancestor in the mount table) and
read the counters an ossfs mount's root answers (``user.ossfs.obs.stats``), turning every way
that can fail (not ossfs, a dead mount, no permission) into a one-line `UsageError`. What the
counters mean and how they are shown is `ossfs.obs.stats`'s.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ossfs.app.umount import mount_points
from ossfs.core.errors import UsageError
from ossfs.obs.stats import STATS_XATTR, Json, parse_stats

__all__ = ["mount_point_of", "read_stats"]


def mount_point_of(path: Path) -> Path:
    """The mount point ``path`` is on: the nearest ancestor of its real path (itself included)
    that the mount table lists, or ``/``."""
    real = Path(os.path.realpath(path))
    points = mount_points()
    for candidate in (real, *real.parents):
        listed = os.fspath(candidate) in points if points is not None else None
        if listed or (listed is None and os.path.ismount(candidate)):
            return candidate
    return Path("/")


def read_stats(path: Path, *, not_ossfs: str) -> dict[str, Json]:
    """The counters the ossfs mount on ``path`` (its root) answers.

    Raises `UsageError` when ``path`` does not exist, is a dead mount, may not be read, or is
    not the root of an ossfs mount (then the message is ``not_ossfs``).
    """
    try:
        raw = os.getxattr(path, STATS_XATTR)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: give the directory ossfs is mounted on") from None
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            raise UsageError(
                f"{path} is a dead mount (its daemon is gone): run 'ossfs umount {path}'"
            ) from None
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOTDIR):
            raise UsageError(not_ossfs) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise UsageError(
                f"cannot read the counters of {path}: permission denied; run as the user who "
                "mounted it, or mount with --allow-other"
            ) from None
        raise UsageError(f"cannot read the counters of {path}: {exc.strerror}") from None
    try:
        return parse_stats(raw)
    except ValueError:
        raise UsageError(not_ossfs) from None
