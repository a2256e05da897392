"""Waiting for something another thread or process does: poll a condition up to a deadline.

A test never sleeps a fixed time to let something happen: it polls what it waits for
(`wait_until`), or waits on an event the other side sets, or drives a fake clock. A fixed
sleep is either too short on a loaded machine (a flaky test) or too long everywhere (a slow
one). Deliberately not here: waiting for a quiet period (`tests.support.mounts.settled_counts`
does that, for request counts of a live daemon).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

STEP_S: Final = 0.01
"""How often a condition is polled: short enough not to add to a test's time, long enough
not to compete with what it waits for."""


def poll_until(predicate: Callable[[], bool], timeout_s: float, *, step_s: float = STEP_S) -> bool:
    """True as soon as ``predicate()`` is true, False if it still is not after ``timeout_s``.

    The predicate is tried once more at the deadline, so a slow poll never loses the last
    chance. For cleanup paths that must go on when the wait fails; a test asserts with
    `wait_until`.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(step_s)


def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str, *, step_s: float = STEP_S
) -> None:
    """Return as soon as ``predicate()`` is true; raise AssertionError naming ``what`` (what
    was waited for, e.g. "the daemon to exit") if it is still false after ``timeout_s``.

    ``timeout_s`` is a bound for a hang, not an expected duration: pick it generous (seconds,
    not milliseconds), since a loaded machine may be slow and a passing test never waits it out.
    """
    if not poll_until(predicate, timeout_s, step_s=step_s):
        raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
