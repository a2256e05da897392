"""Verify of objects larger than a part: range planning, parallel ranged GETs pinned to the
version, part CRCs folded in order whatever order the parts finish in, and the verdicts for a
failing range, a short range, a corrupt range and an object overwritten mid-read."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.core.crc64 import crc64
from ossfs.core.errors import RemoteIOError
from ossfs.core.object_store import ObjectMeta, ObjectStore
from ossfs.verify import file_reads
from ossfs.verify.model import MountView, ObjectResult, Status, Target, VerifyConfig
from ossfs.verify.parts import Part, plan_parts
from ossfs.verify.verifier import Verifier
from tests.support.fakes import FakeStore
from tests.support.faulty_store import FaultyStore
from tests.support.waiting import wait_until

PART = 64
CHUNK = 16
WAIT_S = 10.0  # a hang fails the test instead of blocking it
DATA = bytes((i * 7 + i // 256) % 256 for i in range(5 * PART + 20))  # 6 parts, the last short


def _verifier(store: ObjectStore, **config: int) -> Verifier:
    cfg = VerifyConfig(**{"chunk_bytes": CHUNK, "part_bytes": PART, "streams": 3, **config})
    return Verifier(store, cfg, sleep=lambda s: None, rand=lambda: 0.5)


def _verify(store: ObjectStore, key: str = "big", **config: int) -> ObjectResult:
    verifier = _verifier(store, **config)
    (result,) = verifier.run(verifier.collect(key)).results
    return result


def _ranges(store: FaultyStore, key: str = "big") -> list[tuple[object, object]]:
    return [(c[2], c[3]) for c in store.calls if c[0] == "read_range" and c[1] == key]


def _faulty(data: bytes = DATA) -> tuple[FakeStore, FaultyStore]:
    inner = FakeStore()
    inner.put("big", data)
    return inner, FaultyStore(inner)


def _part_start(start: int) -> Callable[[tuple[object, ...]], bool]:
    return lambda call: call[2] == start


# -- planning -----------------------------------------------------------------------------------


def test_plan_parts_cover_the_object_in_order() -> None:
    assert plan_parts(0, 8) == ()
    assert plan_parts(8, 8) == (Part(0, 0, 8),)
    assert plan_parts(20, 8) == (Part(0, 0, 8), Part(1, 8, 16), Part(2, 16, 20))
    with pytest.raises(ValueError):
        plan_parts(10, 0)


@given(size=st.integers(min_value=0, max_value=10_000), part=st.integers(1, 3000))
def test_plan_parts_are_contiguous_half_open_and_bounded(size: int, part: int) -> None:
    parts = plan_parts(size, part)
    assert [p.index for p in parts] == list(range(len(parts)))
    assert [p.start for p in parts] == list(range(0, size, part))
    assert all(p.end == q.start for p, q in itertools.pairwise(parts))
    assert (parts[-1].end if parts else 0) == size
    assert all(0 < p.end - p.start <= part for p in parts)


# -- the happy path: requests, pinning, bounded memory ------------------------------------------


class PinRecordingStore(FakeStore):
    """Records the ETag each ranged read was pinned to, and how many were in flight at most
    (FakeStore's ``read_range`` reads through ``get_range``)."""

    def __init__(self) -> None:
        super().__init__()
        self.pins: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.while_in_flight: Callable[[int], None] = lambda start: None

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        with self._lock:
            self.pins.append(etag)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.while_in_flight(start)
            return super().get_range(key, start, end, etag=etag)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_large_object_is_headed_then_read_in_pinned_parts() -> None:
    store = PinRecordingStore()
    meta = store.put("big", DATA)
    seen: list[int] = []
    verifier = _verifier(store)
    targets = verifier.collect("")
    store.reset_calls()
    (result,) = verifier.run(targets, on_bytes=seen.append).results
    assert result == ObjectResult(
        "big", len(DATA), Status.OK, crc64(DATA), crc64(DATA), None, len(DATA)
    )
    assert store.calls[0] == ("head", "big")
    assert sorted(c for c in store.calls if c[0] == "get_range") == [
        ("get_range", "big", p.start, p.end) for p in plan_parts(len(DATA), PART)
    ]
    assert store.count("stream") == 0
    assert store.pins == [meta.etag] * 6  # every range pinned to the HEADed version
    assert max(seen) == CHUNK and sum(seen) == len(DATA)


def test_parts_in_flight_never_exceed_streams_and_reach_it() -> None:
    streams = 3
    barrier = threading.Barrier(streams, timeout=30)

    def meet(start: int) -> None:
        if start < streams * PART:
            barrier.wait()  # breaks (and the test fails) unless `streams` parts run at once

    store = PinRecordingStore()
    store.while_in_flight = meet
    store.put("big", DATA)
    assert _verify(store, streams=streams).status is Status.OK
    assert store.max_in_flight == streams


def test_objects_up_to_one_part_and_streams_1_stay_one_stream() -> None:
    store = FakeStore()
    store.put("small", DATA[:PART])
    store.put("big", DATA)
    verifier = _verifier(store, streams=1)
    targets = verifier.collect("")
    store.reset_calls()
    report = verifier.run(targets)
    assert report.summary.all_ok
    assert sorted(store.calls) == [("stream", "big", 0), ("stream", "small", 0)]
    store.reset_calls()
    verifier = _verifier(store)
    assert verifier.run([Target("small", targets[1].listed)]).summary.all_ok
    assert store.calls == [("stream", "small", 0)]  # no HEAD, no ranges


def test_parts_finishing_out_of_order_are_folded_in_order() -> None:
    """Part 0 is held until every other part is in: the CRC still comes out right."""
    _, store = _faulty()
    held = store.stall("read_range", match=_part_start(0))
    counted: list[int] = []
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        with lock:
            counted.append(n)

    verifier = _verifier(store)
    targets = verifier.collect("")
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(verifier.run, targets, on_bytes=on_bytes)
        try:
            held.wait_reached(WAIT_S)
            wait_until(lambda: sum(counted) == len(DATA) - PART, WAIT_S, "parts 1-5 read")
            assert not running.done()
        finally:
            held.release()
        (result,) = running.result(WAIT_S).results
    assert result.status is Status.OK
    assert result.computed_crc64 == crc64(DATA) == result.expected_crc64


# -- failures: a failing range, a short range, a corrupt range ----------------------------------


def test_a_range_that_fails_once_is_retried_and_ok() -> None:
    _, store = _faulty()
    failed = store.fail("read_range", RemoteIOError("reset"), match=_part_start(2 * PART))
    result = _verify(store)
    assert (result.status, result.computed_crc64, result.resumes) == (Status.OK, crc64(DATA), 1)
    assert failed.fired == 1
    assert _ranges(store).count((2 * PART, 3 * PART)) == 2


def test_a_range_broken_mid_body_resumes_at_the_byte_it_reached() -> None:
    _, store = _faulty()
    store.cut("read_range", piece=2, keep=5, error=RemoteIOError("reset"), match=_part_start(PART))
    result = _verify(store)
    assert (result.status, result.computed_crc64, result.resumes) == (Status.OK, crc64(DATA), 1)
    assert (PART + CHUNK + 5, 2 * PART) in _ranges(store)


def test_a_short_range_is_resumed_not_taken_as_the_object() -> None:
    _, store = _faulty()
    short = store.cut("read_range", piece=3, keep=0, match=_part_start(3 * PART))
    result = _verify(store)
    assert short.fired == 1
    assert (result.status, result.computed_crc64, result.resumes) == (Status.OK, crc64(DATA), 1)
    assert (3 * PART + 2 * CHUNK, 4 * PART) in _ranges(store)


def test_a_range_that_keeps_failing_gives_error_never_mismatch() -> None:
    _, store = _faulty()
    store.fail("read_range", RemoteIOError("reset"), match=_part_start(4 * PART), times=None)
    result = _verify(store, max_attempts=3)
    assert result.status is Status.ERROR and result.error is not None
    assert result.error.startswith("gave up after 3 failed attempt(s) in a row")
    assert "reset" in result.error
    assert _ranges(store).count((4 * PART, 5 * PART)) == 3
    assert result.bytes_read < len(DATA) and result.computed_crc64 is None


def test_a_range_that_keeps_coming_short_gives_error() -> None:
    _, store = _faulty()
    store.cut("read_range", piece=1, keep=0, match=lambda c: c[2] == PART, times=None)
    result = _verify(store, max_attempts=2)
    assert result.status is Status.ERROR and result.error is not None
    assert "gave up after 2 failed attempt(s)" in result.error and "ended at" in result.error


def test_a_corrupt_range_is_a_mismatch_with_both_crcs() -> None:
    _, store = _faulty()
    store.corrupt("read_range", piece=2, offset=3, match=_part_start(5 * PART))
    result = _verify(store)
    assert result.status is Status.MISMATCH and result.error == "CRC-64 differs"
    bad = bytearray(DATA)
    bad[5 * PART + CHUNK + 3] ^= 0xFF
    assert result.expected_crc64 == crc64(DATA)
    assert result.computed_crc64 == crc64(bytes(bad))
    assert result.bytes_read == len(DATA)


def test_an_object_without_a_crc_is_no_crc() -> None:
    class NoCrcStore(FakeStore):
        def announced_crc64(self, key: str, etag: str) -> int | None:
            return None

        def head(self, key: str) -> ObjectMeta:
            return replace(super().head(key), crc64=None)

    store = NoCrcStore()
    store.put("big", DATA)
    result = _verify(store)
    assert result.status is Status.NO_CRC and result.computed_crc64 == crc64(DATA)


# -- the object changes while it is read --------------------------------------------------------


class OverwritingStore(FakeStore):
    """Replaces ``big`` with ``versions[n]`` when the n-th overwrite's range (the one starting at
    ``at``) is first asked for, just before it is served (so that range is already stale)."""

    def __init__(self, versions: list[bytes], at: int) -> None:
        super().__init__()
        self.versions = list(versions)
        self.at = at

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        if start == self.at:
            with self._lock:
                nxt = self.versions.pop(0) if self.versions else None
            if nxt is not None:
                self.put(key, nxt)
        return super().get_range(key, start, end, etag=etag)


def test_an_overwrite_mid_object_restarts_with_the_new_version_never_mixes() -> None:
    new = bytes(reversed(DATA)) + b"longer now"
    store = OverwritingStore([new], at=2 * PART)
    store.put("big", DATA)
    result = _verify(store)
    assert result.status is Status.OK and result.restarts == 1
    assert result.computed_crc64 == result.expected_crc64 == crc64(new)
    assert result.size == result.bytes_read == len(new)
    assert store.count("head") == 2


def test_an_object_that_keeps_changing_is_error() -> None:
    store = OverwritingStore([bytes([i]) * len(DATA) for i in range(10)], at=PART)
    store.put("big", DATA)
    result = _verify(store, max_restarts=2)
    assert result.status is Status.ERROR and result.restarts == 3
    assert result.error is not None and "changed 3 times" in result.error


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_stops_the_parts_as_error() -> None:
    _, store = _faulty()
    held = store.stall("read_range", piece=1, match=_part_start(0))
    verifier = _verifier(store)
    targets = verifier.collect("")
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(verifier.run, targets)
        try:
            held.wait_reached(WAIT_S)
            verifier.cancel()
        finally:
            held.release()
        (result,) = running.result(WAIT_S).results
    assert (result.status, result.error) == (Status.ERROR, "cancelled")


def test_an_overwrite_seen_by_one_part_wins_over_another_part_giving_up() -> None:
    """Part 1 gives up first; then part 2 finds the object overwritten: the object changed, so
    it is read again (OK, one restart), not reported as the ERROR of a part of a gone version."""
    inner, store = _faulty()
    failing = store.stall("read_range", match=_part_start(PART))
    gave_up = store.fail("read_range", RemoteIOError("reset"), match=_part_start(PART))
    held = store.stall("read_range", match=_part_start(2 * PART))
    new = bytes(reversed(DATA))
    verifier = _verifier(store, max_attempts=1)
    targets = verifier.collect("")
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(verifier.run, targets)
        try:
            failing.wait_reached(WAIT_S)
            held.wait_reached(WAIT_S)
            failing.release()
            wait_until(lambda: gave_up.fired == 1, WAIT_S, "part 1 failed")
            inner.put("big", new)
        finally:
            failing.release()
            held.release()
        (result,) = running.result(WAIT_S).results
    assert (result.status, result.restarts) == (Status.OK, 1)
    assert result.computed_crc64 == crc64(new)


# -- through a mount: a large file read as parallel segments ------------------------------------


@pytest.mark.parametrize(
    ("shown", "status", "error"),
    [
        (DATA, Status.OK, None),
        (DATA[:200] + b"X" + DATA[201:], Status.MISMATCH, "CRC-64 differs"),
        (DATA[:-7], Status.MISMATCH, f"read {len(DATA) - 7} bytes, but the object has {len(DATA)}"),
        (DATA[:130], Status.MISMATCH, f"read 130 bytes, but the object has {len(DATA)}"),
        (DATA + b"more", Status.MISMATCH, "the object has"),
    ],
)
def test_through_a_large_file_is_read_in_parallel_segments(
    tmp_path: Path, shown: bytes, status: Status, error: str | None
) -> None:
    store = FakeStore()
    store.put("big", DATA)
    (tmp_path / "big").write_bytes(shown)
    opened: list[int] = []
    real_open = open

    def counting_open(file: Path, mode: str, buffering: int = -1) -> IO[Any]:
        opened.append(1)
        return real_open(file, mode, buffering=buffering)

    verifier = Verifier(
        store,
        VerifyConfig(chunk_bytes=CHUNK, part_bytes=PART, streams=3),
        mount=MountView(tmp_path),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(file_reads, "open", counting_open, raising=False)
        (result,) = verifier.run(verifier.collect("")).results
    assert (result.status, result.expected_crc64) == (status, crc64(DATA))
    assert result.error is not None and error in result.error if error else result.error is None
    if len(shown) <= len(DATA):
        assert result.bytes_read == len(shown)
        assert result.computed_crc64 == crc64(shown)
    assert len(opened) == 3  # 6 parts in 3 segments of 2, one handle each
