"""Real FUSE mounts in tests: when they can run, and the `mount` marker every such test carries.

A test that makes a real mount is marked ``@pytest.mark.mount`` (or its module sets
``pytestmark = pytest.mark.mount``), and that marker is all it needs: the suite's conftest
skips every marked test, with the reason `fuse_missing_reason` gives, only where FUSE truly is
absent (no ``/dev/fuse`` or no ``fusermount3``). ``pytest -m "not mount"`` is then the fast
loop without any mount.

A mount test cannot forget its marker: at collection, a test that uses one of the fixtures in
`MOUNT_FIXTURES` without the marker is a usage error; while tests run, the shared helpers that
start a mount (`tests.support.mounts.run_ossfs` and the like) call `require_mount_marker`,
which fails an unmarked test. Deliberately not here: how to mount (`tests.support.mounts`).
"""

from __future__ import annotations

import os
import shutil
from typing import Final

import pytest

MOUNT_HELPER: Final = "fusermount3"
"""libfuse 3's mount helper (Debian package fuse3, installed by scripts/setup.sh)."""

MOUNT_FIXTURES: Final = frozenset({"mount", "mounts", "mounted", "peer_mount", "helper_ossfs"})
"""Names of fixtures that make (or let a test make) a real mount, in any test module: a test
using one must be marked ``mount``. Add a new mount fixture's name here."""

_current: pytest.Item | None = None


def fuse_missing_reason() -> str | None:
    """Why a real FUSE mount cannot be made on this machine, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "FUSE is not available: /dev/fuse is missing"
    if shutil.which(MOUNT_HELPER) is None:
        return f"FUSE's mount helper {MOUNT_HELPER} is missing (Debian package fuse3)"
    return None


def is_mount_test(item: pytest.Item) -> bool:
    return item.get_closest_marker("mount") is not None


def unmarked_mount_tests(items: list[pytest.Item]) -> list[str]:
    """Node ids of ``items`` that use a fixture of `MOUNT_FIXTURES` without the marker."""
    unmarked = []
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & MOUNT_FIXTURES and not is_mount_test(item):
            unmarked.append(item.nodeid)
    return unmarked


def set_current_test(item: pytest.Item | None) -> None:
    """The test now running (set by the conftest around each test; None between tests)."""
    global _current
    _current = item


def require_mount_marker(what: str) -> None:
    """Fail the running test unless it is marked ``mount``; ``what`` names the mount it makes.

    Outside a test (a script importing the helpers) this does nothing.
    """
    item = _current
    if item is not None and not is_mount_test(item):
        raise AssertionError(
            f"{item.nodeid} makes a real mount ({what}) but is not marked @pytest.mark.mount"
        )
