"""Executors a test drives: `ManualExecutor` runs queued calls when the test says so,
`InlineExecutor` runs each call at once on the submitting thread.

With them a test decides when a background task (a read-ahead part, a directory read-ahead
GET) runs, instead of racing real worker threads. Deliberately not here: waiting for threads
(`tests.support.waiting`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ManualExecutor(Executor):
    """Queues submitted calls; the test runs them (oldest first) with `run_one`/`run_all`.

    Thread-safe: a call may be submitted from any thread and run from any other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Callable[[], None]] = []
        self._shut = False
        self.submitted = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()

        def call() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.append(call)
            self.submitted += 1
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def run_one(self) -> None:
        """Run the oldest queued call on this thread (IndexError if none is queued)."""
        with self._lock:
            call = self._queue.pop(0)
        call()

    def run_all(self) -> None:
        """Run queued calls, oldest first, until none is left (including ones they queue)."""
        while self.pending:
            self.run_one()


class InlineExecutor(Executor):
    """Runs every submitted call at once, on the submitting thread."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        future.set_result(fn(*args, **kwargs))
        return future
