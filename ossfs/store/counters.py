"""The store's request counters: requests by operation, bytes fetched, errors by class.

It deliberately counts only what it is told (the store decides what a request is) and keeps no
history: `Counters.snapshot` is a copy of the totals so far.
"""

from __future__ import annotations

import threading

__all__ = ["Counters"]


class Counters:
    """Thread-safe named counters; one lock, taken only around dict updates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"requests": 0, "bytes_fetched": 0, "errors": 0}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def request(self, op: str) -> None:
        with self._lock:
            self._counts["requests"] += 1
            name = f"requests.{op}"
            self._counts[name] = self._counts.get(name, 0) + 1

    def error(self, cls_name: str) -> None:
        with self._lock:
            self._counts["errors"] += 1
            name = f"errors.{cls_name}"
            self._counts[name] = self._counts.get(name, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
