"""Tests of the retry policy and loop, with a fake clock and sleep (no real time passes)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.store.retry import Retrier, RetriesExhaustedError, RetryCounters, RetryPolicy


class FakeTime:
    """A clock that only moves when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, Transient)


def make_retrier(policy: RetryPolicy, fake: FakeTime, rand: float = 1.0) -> Retrier:
    return Retrier(policy, sleep=fake.sleep, clock=fake.clock, rand=lambda: rand)


def failing(times: int, exc: Callable[[], Exception] = Transient) -> Callable[[], str]:
    state = {"left": times}

    def attempt() -> str:
        if state["left"] > 0:
            state["left"] -= 1
            raise exc()
        return "ok"

    return attempt


def test_retry_policy_rejects_invalid_values() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=-1.0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=2.0, max_delay_s=1.0)
    with pytest.raises(ValueError):
        RetryPolicy(total_budget_s=-0.1)


def test_retry_policy_delay_cap_doubles_then_saturates() -> None:
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=0.5)
    caps = [policy.delay_cap_s(i) for i in range(5)]
    assert caps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert policy.delay_cap_s(10_000) == 0.5


@given(
    retry_index=st.integers(min_value=0, max_value=10_000),
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_retry_policy_delay_is_full_jitter_within_cap(retry_index: int, u: float) -> None:
    policy = RetryPolicy(base_delay_s=0.01, max_delay_s=3.0)
    delay = policy.delay_s(retry_index, lambda: u)
    assert 0.0 <= delay <= policy.delay_cap_s(retry_index)
    assert delay == pytest.approx(policy.delay_cap_s(retry_index) * u)


def test_retrier_returns_first_success_without_sleeping() -> None:
    fake = FakeTime()
    retrier = make_retrier(RetryPolicy(), fake)
    assert retrier.call("op", lambda: 42, is_transient) == 42
    assert fake.sleeps == []
    assert retrier.counters.retries == 0


def test_retrier_retries_transient_failures_with_backoff() -> None:
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.1, max_delay_s=10.0, total_budget_s=100.0)
    retrier = make_retrier(policy, fake)
    assert retrier.call("get", failing(3), is_transient) == "ok"
    assert fake.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert retrier.counters.snapshot() == {"retries": 3, "retries.get": 3, "gave_up": 0}


def test_retrier_propagates_non_transient_at_once() -> None:
    fake = FakeTime()
    retrier = make_retrier(RetryPolicy(), fake)
    with pytest.raises(Fatal):
        retrier.call("op", failing(1, Fatal), is_transient)
    assert fake.sleeps == []
    assert retrier.counters.retries == 0


def test_retrier_gives_up_after_max_attempts() -> None:
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.01, total_budget_s=100)
    retrier = make_retrier(policy, fake)
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise Transient("boom")

    with pytest.raises(RetriesExhaustedError) as info:
        retrier.call("head", attempt, is_transient)
    assert len(calls) == 3
    assert info.value.attempts == 3
    assert isinstance(info.value.last, Transient)
    assert info.value.__cause__ is info.value.last
    assert "head" in str(info.value)
    snap = retrier.counters.snapshot()
    assert snap["retries"] == 2
    assert snap["gave_up.head"] == 1


def test_retrier_never_sleeps_past_total_budget() -> None:
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=1000, base_delay_s=0.5, max_delay_s=4.0, total_budget_s=5.0)
    retrier = make_retrier(policy, fake)

    def attempt() -> None:
        fake.now += 0.25  # each attempt itself takes time
        raise Transient()

    with pytest.raises(RetriesExhaustedError):
        retrier.call("op", attempt, is_transient)
    # Every sleep ended within the budget (measured from the first attempt's start).
    assert fake.now <= 5.0 + 0.25
    assert sum(fake.sleeps) <= 5.0
    assert len(fake.sleeps) >= 2


def test_retrier_zero_budget_means_no_retry_with_delay() -> None:
    fake = FakeTime()
    retrier = make_retrier(RetryPolicy(total_budget_s=0.0), fake)
    with pytest.raises(RetriesExhaustedError) as info:
        retrier.call("op", failing(1), is_transient)
    assert info.value.attempts == 1
    assert fake.sleeps == []


def test_retrier_progress_does_not_use_up_attempts() -> None:
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.1, max_delay_s=1.0, total_budget_s=100)
    retrier = make_retrier(policy, fake)
    received = {"n": 0}

    def attempt() -> str:
        received["n"] += 10
        if received["n"] < 50:
            raise Transient("broken body")
        return "done"

    assert retrier.call("get", attempt, is_transient, progress=lambda: received["n"]) == "done"
    # Four failures, each with progress: no attempt used up and no backoff growth.
    assert fake.sleeps == pytest.approx([0.1, 0.1, 0.1, 0.1])


def test_retrier_without_progress_counts_attempts() -> None:
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.1, max_delay_s=1.0, total_budget_s=100)
    retrier = make_retrier(policy, fake)
    with pytest.raises(RetriesExhaustedError):
        retrier.call("get", failing(5), is_transient, progress=lambda: 0)
    assert len(fake.sleeps) == 1


def test_retry_counters_are_thread_safe() -> None:
    counters = RetryCounters()

    def work() -> None:
        for _ in range(1000):
            counters.record_retry("get")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counters.snapshot()["retries.get"] == 8000
    assert counters.retries == 8000
