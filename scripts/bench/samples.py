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
    # CPU seconds of the process that did the work, during the measured part: a mount's daemon,
    # the oss2 client (the worker) or the ``ossfs verify`` process; ``cpu_process`` says which.
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    cpu_process: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.value is not None

    @property
    def cpu_s(self) -> float | None:
        """User plus system CPU seconds (None: not measured)."""
        if self.cpu_user_s is None or self.cpu_system_s is None:
            return None
        return self.cpu_user_s + self.cpu_system_s


def amplification(sample: Sample) -> tuple[float, bool] | None:
    """Network bytes per application byte: bytes the server sent over bytes the workload read,
    and whether that is only a lower bound (the server logs a GET whose client hung up mid-body
    with 0 bytes, so any aborted GET hides what it did send). None when nothing was read."""
    if not sample.payload_bytes:
        return None
    return sample.bytes_served / sample.payload_bytes, bool(sample.requests.get("aborted", 0))


def cpu_per_gib(sample: Sample) -> float | None:
    """CPU seconds (user plus system) per GiB the workload read; None without both."""
    cpu = sample.cpu_s
    if cpu is None or not sample.payload_bytes:
        return None
    return cpu / (sample.payload_bytes / (1 << 30))


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
