"""One measured case (`Sample`), the server's request log read into counts, the median of
repeated samples and the ratio of two.

It deliberately knows nothing of systems or workloads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Sample:
    """One measured case. ``value`` is in the workload's unit; ``status`` is "ok" or why not."""

    status: str
    value: float | None = None
    seconds: float | None = None
    payload_bytes: int = 0
    ops: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    bytes_served: int = 0
    peak_rss_bytes: int | None = None
    budget_bytes: int | None = None  # ossfs's memory budget (--max-memory or its default)
    extra: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)  # ossfs's own, during the case

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.value is not None


Key = tuple[str, str, str]  # profile, workload, system


def classify(op: str) -> str:
    op = op.removeprefix("S3:")
    if op == "GetObject":
        return "GET"
    if op in ("HeadObject", "GetObjectMeta"):
        return "HEAD"
    if op in ("ListObjects", "ListObjectsV2"):
        return "LIST"
    return "other"


def request_counts(counts: dict[str, int]) -> dict[str, int]:
    out = {"GET": 0, "HEAD": 0, "LIST": 0, "other": 0}
    for op, n in counts.items():
        out[classify(op)] += n
    return out


def aborted_gets(server: Any) -> int:
    """GETs whose client hung up before the end of the body: the emulator logs them with status
    500 and 0 bytes (so ``bytes_served`` does not count what they did send)."""
    return sum(1 for e in server.log.entries() if classify(e.op) == "GET" and e.status == 500)


def settle(server: Any, limit_s: float = 30.0) -> tuple[dict[str, int], int]:
    """Request counts and bytes served once the log stops moving (a handler logs after it has
    answered, and read-ahead may still be finishing)."""
    last: tuple[dict[str, int], int] | None = None
    deadline = time.monotonic() + limit_s
    while True:
        now = (server.log.counts(), server.log.bytes_served)
        if now == last or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(0.25)


def median_sample(samples: list[Sample], higher_is_better: bool) -> Sample:
    good = [s for s in samples if s.ok]
    if not good:
        return samples[-1]
    ordered = sorted(good, key=lambda s: s.value or 0.0, reverse=higher_is_better)
    return ordered[(len(ordered) - 1) // 2]


def ratio(a: Sample | None, b: Sample | None, higher_is_better: bool) -> float | None:
    """How many times better ``a`` is than ``b`` (> 1: ``a`` is faster)."""
    if a is None or b is None or not a.ok or not b.ok or not a.value or not b.value:
        return None
    return a.value / b.value if higher_is_better else b.value / a.value
