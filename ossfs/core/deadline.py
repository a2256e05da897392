"""The deadline of what the calling thread is doing: a time by which every wait must end.

Responsibility: a scope (`deadline_scope`) that sets a ``time.monotonic()`` deadline for the
code inside it, and the reading of the current one (`current_deadline`). Scopes nest: an inner
scope never extends an outer one. The retrier opens one per retried operation (its time budget),
and the HTTP engine ends any wait (connecting, the answer's head, each read of its body) when it
passes: so one operation, retries included, ends within its budget however the server behaves.

It is a `contextvars.ContextVar`: per thread, and carried into nothing else (a worker thread
started inside a scope starts without one). It deliberately knows nothing about what waits.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from typing import Final

__all__ = ["current_deadline", "deadline_scope", "seconds_left"]

_DEADLINE: Final[contextvars.ContextVar[float | None]] = contextvars.ContextVar(
    "ossfs_deadline", default=None
)


@contextlib.contextmanager
def deadline_scope(seconds: float) -> Iterator[float]:
    """Run the block with a deadline ``seconds`` from now (``time.monotonic()``), or the
    enclosing scope's if that one is sooner; yields the deadline in force."""
    outer = _DEADLINE.get()
    deadline = time.monotonic() + seconds
    if outer is not None and outer < deadline:
        deadline = outer
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> float | None:
    """The ``time.monotonic()`` time the calling code must be done by; None outside a scope."""
    return _DEADLINE.get()


def seconds_left() -> float | None:
    """Seconds until `current_deadline` (0 or less once it passed); None outside a scope."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()
