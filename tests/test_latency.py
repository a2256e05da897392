"""The store's first-byte time: the best of the last few requests."""

from __future__ import annotations

import pytest

from ossfs.store.latency import SAMPLES, FirstByteLatency


def test_latency_unknown_until_the_first_sample_then_the_best_so_far() -> None:
    latency = FirstByteLatency()
    assert latency.best() is None
    latency.note(0.03)
    assert latency.best() == 0.03  # one sample is an answer: noise only ever adds to it
    for _ in range(SAMPLES - 1):
        latency.note(0.02)
        assert latency.best() == 0.02


def test_latency_is_the_shortest_of_the_last_samples_only() -> None:
    latency = FirstByteLatency(samples=3)
    for seconds in (0.001, 0.05, 0.04):
        latency.note(seconds)
    assert latency.best() == 0.001  # queueing only ever adds: the best one is the link
    latency.note(0.06)  # the 0.001 s sample is no longer among the last 3
    assert latency.best() == 0.04
    latency.note(0.002)
    assert latency.best() == 0.002


def test_latency_rejects_no_samples() -> None:
    with pytest.raises(ValueError, match="samples"):
        FirstByteLatency(samples=0)
