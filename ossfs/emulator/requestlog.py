"""The request log: per-operation counts, bytes served, injected faults and recent entries.

Thread-safe; kept in memory only. Tests assert on it (what actually went over the wire) and the
admin API exposes it as ``/_emulator/stats``.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One answered request. ``bytes`` counts body bytes actually sent."""

    op: str
    bucket: str | None
    key: str | None
    range: str | None
    status: int
    bytes: int
    request_id: str


class RequestLog:
    """Counters and a bounded ring of recent `LogEntry` values. Thread-safe."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._faults: collections.Counter[str] = collections.Counter()
        self._entries: collections.deque[LogEntry] = collections.deque(maxlen=max_entries)
        self._bytes = 0

    def count(self, op: str) -> None:
        """Count a request as soon as its operation is known, before it is answered.

        A client that has its answer must already find its request counted: tests read the
        counts right after a response.
        """
        with self._lock:
            self._counts[op] += 1

    def record(self, entry: LogEntry, *, counted: bool = False) -> None:
        """Log a finished request (and count it, unless `count` already did)."""
        with self._lock:
            if not counted:
                self._counts[entry.op] += 1
            self._bytes += entry.bytes
            self._entries.append(entry)

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def fault_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    def entries(self, op: str | None = None) -> list[LogEntry]:
        with self._lock:
            return [e for e in self._entries if op is None or e.op == op]

    @property
    def bytes_served(self) -> int:
        with self._lock:
            return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()
            self._faults.clear()
            self._entries.clear()
            self._bytes = 0

    def snapshot(self, recent: int = 100) -> dict[str, object]:
        """JSON-ready stats: counts, bytes_served, faults and the last ``recent`` entries."""
        with self._lock:
            last = list(self._entries)[-recent:] if recent else []
            return {
                "counts": dict(self._counts),
                "bytes_served": self._bytes,
                "faults": dict(self._faults),
                "recent": [asdict(e) for e in last],
            }
