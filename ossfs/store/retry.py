"""The retry policy, in one place: full-jitter exponential backoff bounded by attempts and time.

Responsibility: decide *whether* and *when* to run an attempt again, and count the retries.
It deliberately knows nothing about OSS, oss2, HTTP or FUSE: the caller supplies the attempt and
a classifier that says which exceptions are transient, and translates the final failure itself.
Sleep, clock and random source are injectable so tests run without real time passing.
Each retried call runs in a `ossfs.core.deadline` scope of the time budget, so whatever waits
inside an attempt (the HTTP engine) ends by the time the budget is spent.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from ossfs.core.deadline import deadline_scope

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "Retrier",
    "RetriesExhaustedError",
    "RetryCounters",
    "RetryPolicy",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one logical operation.

    ``max_attempts`` counts every try, the first one included (1 means no retry). The delay
    before retry ``n`` (0-based) is uniform in ``[0, min(max_delay_s, base_delay_s * 2**n)]``
    ("full jitter"). No sleep ever ends past ``total_budget_s`` measured from the first attempt:
    when the next delay would cross it, the operation gives up instead.
    """

    max_attempts: int = 6
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0
    total_budget_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("retry delays must be >= 0")
        if self.max_delay_s < self.base_delay_s:
            raise ValueError(
                f"max_delay_s ({self.max_delay_s}) must be >= base_delay_s ({self.base_delay_s})"
            )
        if self.total_budget_s < 0:
            raise ValueError(f"total_budget_s must be >= 0, got {self.total_budget_s}")

    def delay_cap_s(self, retry_index: int) -> float:
        """Upper bound of the jittered delay before retry ``retry_index`` (0-based)."""
        # Cap the exponent: 2**1100 overflows a float, and the cap is reached long before.
        exponent = min(retry_index, 60)
        return float(min(self.max_delay_s, self.base_delay_s * (2.0**exponent)))

    def delay_s(self, retry_index: int, rand: Callable[[], float]) -> float:
        """The full-jitter delay before retry ``retry_index``; ``rand`` returns [0, 1)."""
        return self.delay_cap_s(retry_index) * rand()


DEFAULT_RETRY_POLICY: Final = RetryPolicy()


class RetriesExhaustedError(Exception):
    """A transient failure persisted past the policy's attempts or time budget.

    ``last`` is the final transient exception (also chained as ``__cause__``); ``attempts`` is
    how many tries ran and ``elapsed_s`` how long they took, for the caller's error message.
    """

    def __init__(self, op: str, last: BaseException, attempts: int, elapsed_s: float) -> None:
        super().__init__(f"{op}: gave up after {attempts} attempt(s) in {elapsed_s:.2f}s: {last}")
        self.op = op
        self.last = last
        self.attempts = attempts
        self.elapsed_s = elapsed_s


class RetryCounters:
    """Thread-safe, cheap counters of retries and give-ups, per operation name.

    `snapshot` returns ``{"retries": n, "retries.<op>": n, "gave_up": n, "gave_up.<op>": n}``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"retries": 0, "gave_up": 0}

    def _add(self, name: str, op: str) -> None:
        with self._lock:
            self._counts[name] += 1
            sub = f"{name}.{op}"
            self._counts[sub] = self._counts.get(sub, 0) + 1

    def record_retry(self, op: str) -> None:
        self._add("retries", op)

    def record_gave_up(self, op: str) -> None:
        self._add("gave_up", op)

    @property
    def retries(self) -> int:
        with self._lock:
            return self._counts["retries"]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class Retrier:
    """Runs attempts under a `RetryPolicy`. Thread-safe (it holds no per-call state).

    ``sleep``, ``clock`` (monotonic seconds) and ``rand`` (uniform [0, 1)) are injectable.
    """

    def __init__(
        self,
        policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        *,
        counters: RetryCounters | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.counters = counters if counters is not None else RetryCounters()
        self._sleep = sleep
        self._clock = clock
        self._rand = rand

    def call(
        self,
        op: str,
        attempt: Callable[[], T],
        is_transient: Callable[[BaseException], bool],
        *,
        progress: Callable[[], int] | None = None,
    ) -> T:
        """Return ``attempt()``'s result, running it again after transient failures.

        An exception for which ``is_transient`` is false propagates unchanged at once. A
        transient one is retried after a jittered delay; when the attempts or the time budget
        are spent, `RetriesExhaustedError` is raised from it. ``progress``, when given, returns
        a counter that grows when an attempt got somewhere (e.g. bytes received so far); a
        failed attempt that made progress does not use up one of ``max_attempts`` (a body that
        keeps breaking but keeps advancing is resumed), though the time budget still applies.
        The attempts run in a deadline scope of the time budget (`ossfs.core.deadline`, in
        real time whatever ``clock`` is).
        """
        with deadline_scope(self.policy.total_budget_s):
            return self._call(op, attempt, is_transient, progress)

    def _call(
        self,
        op: str,
        attempt: Callable[[], T],
        is_transient: Callable[[BaseException], bool],
        progress: Callable[[], int] | None,
    ) -> T:
        policy = self.policy
        started = self._clock()
        attempts = 0
        counted_failures = 0
        while True:
            before = progress() if progress is not None else 0
            attempts += 1
            try:
                return attempt()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                advanced = progress is not None and progress() > before
                if not advanced:
                    counted_failures += 1
                elapsed = self._clock() - started
                # Back off on failures that got nowhere; a resumed body retries soon.
                delay = policy.delay_s(max(counted_failures - 1, 0), self._rand)
                if (
                    counted_failures >= policy.max_attempts
                    or elapsed + delay > policy.total_budget_s
                ):
                    self.counters.record_gave_up(op)
                    raise RetriesExhaustedError(op, exc, attempts, elapsed) from exc
                self.counters.record_retry(op)
                log.debug(
                    "retry %s: attempt %d failed (%s: %s); sleeping %.3fs",
                    op,
                    attempts,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                if delay > 0:
                    self._sleep(delay)
