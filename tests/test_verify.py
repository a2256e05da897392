"""Unit tests of the verify engine on `FakeStore` and its fault-injecting subclasses."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ossfs.core.crc64 import crc64
from ossfs.core.errors import AccessDeniedError, NotFoundError, RemoteIOError
from ossfs.core.object_store import ObjectMeta, ObjectStore
from ossfs.verify.model import MountView, ObjectResult, Status, Summary, Target, VerifyConfig
from ossfs.verify.verifier import Verifier
from tests.support.fakes import FakeStore
from tests.support.faulty_store import FaultyStore
from tests.support.waiting import wait_until

CHUNK = 16
WAIT_S = 10.0  # a hang fails the test instead of blocking it


def _verifier(store: ObjectStore, **config: int) -> Verifier:
    cfg = VerifyConfig(**{"chunk_bytes": CHUNK, "jobs": 2, **config})
    return Verifier(store, cfg, sleep=lambda s: None, rand=lambda: 0.5)


def _verify_all(verifier: Verifier, prefix: str = "") -> dict[str, ObjectResult]:
    report = verifier.run(verifier.collect(prefix))
    return {r.key: r for r in report.results}


# -- fault-injecting fakes ----------------------------------------------------------------------


class CorruptStore(FakeStore):
    """Flips one bit in the bodies of ``corrupt`` keys; the metadata keeps the true CRC."""

    def __init__(self) -> None:
        super().__init__()
        self.corrupt: set[str] = set()

    def stream(
        self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
    ) -> tuple[ObjectMeta, Iterator[bytes]]:
        meta, chunks = super().stream(key, start=start, etag=etag, chunk_bytes=chunk_bytes)
        if key not in self.corrupt:
            return meta, chunks

        def flipped() -> Iterator[bytes]:
            for i, chunk in enumerate(chunks):
                yield bytes([chunk[0] ^ 1]) + chunk[1:] if i == 0 else chunk

        return meta, flipped()


class NoCrcStore(FakeStore):
    """Serves every object without a CRC-64 header."""

    def stream(
        self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
    ) -> tuple[ObjectMeta, Iterator[bytes]]:
        meta, chunks = super().stream(key, start=start, etag=etag, chunk_bytes=chunk_bytes)
        return replace(meta, crc64=None), chunks


class BreakingStore(FakeStore):
    """Each stream of a key in ``breaks`` fails after ``chunks_per_stream`` chunks, as a broken
    connection would (``RemoteIOError`` from the iterator), while ``breaks[key]`` > 0."""

    def __init__(self, chunks_per_stream: int = 1) -> None:
        super().__init__()
        self.breaks: dict[str, int] = {}
        self.chunks_per_stream = chunks_per_stream
        self.starts: list[int] = []

    def stream(
        self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
    ) -> tuple[ObjectMeta, Iterator[bytes]]:
        meta, chunks = super().stream(key, start=start, etag=etag, chunk_bytes=chunk_bytes)
        self.starts.append(start)
        if self.breaks.get(key, 0) <= 0:
            return meta, chunks
        self.breaks[key] -= 1

        def broken() -> Iterator[bytes]:
            for i, chunk in enumerate(chunks):
                if i == self.chunks_per_stream:
                    break
                yield chunk
            raise RemoteIOError(f"stream {key!r}: connection reset")

        return meta, broken()


class ChangingStore(FakeStore):
    """While ``changes[key]`` > 0, each stream of ``key`` replaces the object after its first
    chunk and then breaks, so the resumed request (pinned to the old ETag) gets StaleError."""

    def __init__(self) -> None:
        super().__init__()
        self.changes: dict[str, int] = {}

    def stream(
        self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
    ) -> tuple[ObjectMeta, Iterator[bytes]]:
        meta, chunks = super().stream(key, start=start, etag=etag, chunk_bytes=chunk_bytes)
        if self.changes.get(key, 0) <= 0:
            return meta, chunks
        self.changes[key] -= 1

        def changing() -> Iterator[bytes]:
            yield next(chunks)
            self.put(key, b"new version " * 10)
            raise RemoteIOError("connection reset")

        return meta, changing()


# -- OK, MISMATCH, NO-CRC -----------------------------------------------------------------------


def test_verify_all_good_objects_are_ok() -> None:
    store = FakeStore()
    data = {f"p/{i}.bin": bytes(range(i * 7 % 256)) * (i + 1) for i in range(10)}
    for key, body in data.items():
        store.put(key, body)
    report = _verifier(store).run(_verifier(store).collect("p/"))
    assert [r.status for r in report.results] == [Status.OK] * 10
    for r in report.results:
        assert r.computed_crc64 == r.expected_crc64 == crc64(data[r.key])
        assert r.bytes_read == r.size == len(data[r.key])
    assert report.summary.all_ok
    assert report.summary.bytes == sum(len(b) for b in data.values())


def test_verify_corrupt_object_is_mismatch_with_both_crcs() -> None:
    store = CorruptStore()
    for i in range(5):
        store.put(f"k{i}", b"x" * 100 + bytes([i]))
    store.corrupt.add("k3")
    results = _verify_all(_verifier(store))
    bad = results.pop("k3")
    assert bad.status is Status.MISMATCH
    assert bad.expected_crc64 == crc64(b"x" * 100 + b"\x03")
    assert bad.computed_crc64 == crc64(b"y" + b"x" * 99 + b"\x03")
    assert all(r.status is Status.OK for r in results.values())


def test_verify_missing_crc_is_no_crc_not_ok() -> None:
    store = NoCrcStore()
    store.put("a", b"hello")
    (result,) = _verify_all(_verifier(store)).values()
    assert result.status is Status.NO_CRC
    assert result.expected_crc64 is None
    assert result.computed_crc64 == crc64(b"hello")
    assert result.error is not None and "x-oss-hash-crc64ecma" in result.error


def test_verify_zero_byte_object_is_ok_with_crc_zero() -> None:
    store = FakeStore()
    store.put("empty", b"")
    (result,) = _verify_all(_verifier(store)).values()
    assert result == ObjectResult("empty", 0, Status.OK, 0, 0, None, 0)


def test_verify_short_body_is_mismatch_naming_the_sizes() -> None:
    class ShortStore(FakeStore):
        def stream(
            self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
        ) -> tuple[ObjectMeta, Iterator[bytes]]:
            meta, chunks = super().stream(key, start=start, etag=etag, chunk_bytes=chunk_bytes)
            return meta, iter(list(chunks)[:-1])

    store = ShortStore()
    store.put("a", b"z" * 40)
    (result,) = _verify_all(_verifier(store)).values()
    assert result.status is Status.MISMATCH
    assert result.bytes_read == 32
    assert result.error == "read 32 bytes, but the object has 40"


# -- listing and targets ------------------------------------------------------------------------


def test_collect_skips_directory_markers_and_pages_the_listing() -> None:
    store = FakeStore()
    store.put("d/", b"")
    store.put("d/sub/", b"")
    store.put("d/slash-with-data/", b"data")
    for i in range(2100):
        store.put(f"d/sub/{i:05d}", b"")
    targets = _verifier(store).collect("d/")
    keys = [t.key for t in targets]
    assert len(keys) == 2101
    assert keys[0] == "d/slash-with-data/"
    assert "d/" not in keys and "d/sub/" not in keys
    assert [c for c in store.calls if c[0] == "list_page"] == [
        ("list_page", "d/", None),
        ("list_page", "d/", "d/sub/00996"),
        ("list_page", "d/", "d/sub/01996"),
    ]


def test_collect_explicit_keys_probes_and_marks_missing_keys() -> None:
    store = FakeStore()
    store.put("p/a", b"1")
    store.put("p/b", b"2")
    verifier = _verifier(store)
    targets = verifier.collect("p/", ["b", "nope", "a"])
    assert [t.key for t in targets] == ["p/b", "p/nope", "p/a"]
    assert store.calls[0] == ("probe",)
    assert targets[1].error is not None and "nope" in targets[1].error
    results = verifier.run(targets).results
    assert [r.status for r in results] == [Status.OK, Status.ERROR, Status.OK]
    assert store.count("stream") == 2


def test_verify_frozen_archive_object_is_error_without_a_read() -> None:
    store = FakeStore()
    store.put("cold", b"abc", storage_class="Archive")
    store.put("thawed", b"abc", storage_class="Archive", restore='ongoing-request="false"')
    results = _verify_all(_verifier(store))
    assert results["cold"].status is Status.ERROR
    assert results["cold"].error is not None and "restore" in results["cold"].error
    assert results["thawed"].status is Status.OK
    assert ("stream", "cold", 0) not in store.calls


def test_verify_missing_object_is_error_with_reason() -> None:
    store = FakeStore()
    store.put("gone", b"abc")
    targets = _verifier(store).collect("")
    store.delete("gone")
    (result,) = _verifier(store).run(targets).results
    assert result.status is Status.ERROR
    assert result.error == "NotFoundError: gone"


# -- retries, resumes, restarts -----------------------------------------------------------------


def test_verify_resumes_broken_stream_with_pinned_etag_and_running_crc() -> None:
    store = BreakingStore(chunks_per_stream=2)
    data = bytes(range(256)) * 2
    store.put("big", data)
    store.breaks["big"] = 3
    (result,) = _verify_all(_verifier(store, max_attempts=2)).values()
    assert result.status is Status.OK
    assert result.computed_crc64 == crc64(data)
    assert result.resumes == 3
    assert store.starts == [0, 32, 64, 96]


def test_verify_gives_up_after_max_attempts_without_progress() -> None:
    store = BreakingStore(chunks_per_stream=0)
    store.put("flaky", b"q" * 100)
    store.breaks["flaky"] = 100
    (result,) = _verify_all(_verifier(store, max_attempts=4)).values()
    assert result.status is Status.ERROR
    assert result.error is not None
    assert result.error.startswith("gave up after 4 failed attempt(s) in a row")
    assert "connection reset" in result.error
    assert store.count("stream") == 4


def test_verify_restarts_from_zero_when_object_changes() -> None:
    store = ChangingStore()
    store.put("moving", b"old version " * 10)
    store.changes["moving"] = 1
    (result,) = _verify_all(_verifier(store)).values()
    assert result.status is Status.OK
    assert result.restarts == 1
    assert result.computed_crc64 == crc64(b"new version " * 10)
    assert [c for c in store.calls if c[0] == "stream"] == [
        ("stream", "moving", 0),
        ("stream", "moving", CHUNK),
        ("stream", "moving", 0),
    ]


def test_verify_object_that_keeps_changing_is_error() -> None:
    store = ChangingStore()
    store.put("moving", b"old version " * 10)
    store.changes["moving"] = 100
    (result,) = _verify_all(_verifier(store, max_restarts=2)).values()
    assert result.status is Status.ERROR
    assert result.restarts == 3
    assert result.error is not None and "changed 3 times" in result.error


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=300),
    chunk=st.integers(min_value=1, max_value=64),
    chunks_per_stream=st.integers(min_value=1, max_value=5),
    breaks=st.integers(min_value=0, max_value=20),
)
def test_verify_resumed_crc_equals_whole_object_crc(
    data: bytes, chunk: int, chunks_per_stream: int, breaks: int
) -> None:
    store = BreakingStore(chunks_per_stream=chunks_per_stream)
    store.put("obj", data)
    store.breaks["obj"] = breaks
    verifier = Verifier(
        store, VerifyConfig(chunk_bytes=chunk, jobs=1, max_attempts=2), sleep=lambda s: None
    )
    (result,) = verifier.run(verifier.collect("")).results
    assert result.status is Status.OK
    assert result.computed_crc64 == crc64(data)
    assert result.bytes_read == len(data)


# -- failures injected by FaultyStore -----------------------------------------------------------


def _objects(count: int) -> tuple[FakeStore, FaultyStore, dict[str, bytes]]:
    inner = FakeStore()
    data = {f"o{i}": bytes([i]) * 50 for i in range(count)}
    for key, body in data.items():
        inner.put(key, body)
    return inner, FaultyStore(inner), data


def test_verify_reports_objects_that_fail_and_goes_on_with_the_others() -> None:
    _, store, data = _objects(6)
    denied = store.fail("stream", AccessDeniedError("o2: forbidden"), key="o2", times=None)
    reset = store.fail("stream", RemoteIOError("o4: connection reset"), key="o4", times=None)
    verifier = _verifier(store, max_attempts=3)
    report = verifier.run(verifier.collect(""))
    results = {r.key: r for r in report.results}
    assert results.pop("o2").error == "AccessDeniedError: o2: forbidden"  # not retried
    failed = results.pop("o4")
    assert failed.status is Status.ERROR and failed.error is not None
    assert failed.error.startswith("gave up after 3 failed attempt(s) in a row")
    assert "o4: connection reset" in failed.error
    for key, result in results.items():
        assert result.status is Status.OK and result.computed_crc64 == crc64(data[key])
    assert (report.summary.ok, report.summary.error) == (4, 2)
    assert (denied.fired, reset.fired) == (1, 3)


def test_verify_corruption_after_a_resume_is_still_a_mismatch() -> None:
    """The stream breaks after two chunks, and the resumed one is corrupted: the running CRC
    carries on from the resume point, so the object is a MISMATCH, not OK or a fresh start."""
    _, store, data = _objects(3)
    store.cut("stream", piece=3, error=RemoteIOError("reset"), key="o1")
    store.corrupt("stream", piece=1, offset=2, key="o1", call=2)
    verifier = _verifier(store)
    report = verifier.run(verifier.collect(""))
    results = {r.key: r for r in report.results}
    bad = results.pop("o1")
    assert bad.status is Status.MISMATCH and bad.error == "CRC-64 differs"
    assert bad.resumes == 1 and bad.bytes_read == 50
    assert bad.expected_crc64 == crc64(data["o1"]) != bad.computed_crc64
    assert [c for c in store.calls if c[0] == "stream" and c[1] == "o1"] == [
        ("stream", "o1", 0),
        ("stream", "o1", 2 * CHUNK),
    ]
    assert all(r.status is Status.OK for r in results.values())


def test_verify_an_object_held_up_in_the_store_does_not_hold_up_the_others() -> None:
    _, store, _ = _objects(6)
    stall = store.stall("stream", key="o0")
    verifier = _verifier(store, jobs=2)
    targets = verifier.collect("")
    finished: list[str] = []
    lock = threading.Lock()

    def on_result(result: ObjectResult) -> None:
        with lock:
            finished.append(result.key)

    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(verifier.run, targets, on_result=on_result)
        try:
            stall.wait_reached(WAIT_S)
            wait_until(lambda: len(finished) == 5, WAIT_S, "the 5 objects not held up")
            assert "o0" not in finished and not running.done()
        finally:
            stall.release()
        report = running.result(WAIT_S)
    assert report.summary.all_ok and finished[-1] == "o0"


# -- concurrency, memory, callbacks -------------------------------------------------------------


def test_verify_jobs_reads_objects_concurrently() -> None:
    jobs = 4
    barrier = threading.Barrier(jobs, timeout=30)

    class MeetingStore(FakeStore):
        def stream(
            self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
        ) -> tuple[ObjectMeta, Iterator[bytes]]:
            barrier.wait()  # breaks (and the test fails) unless `jobs` streams are open at once
            return super().stream(key, start=start, etag=etag, chunk_bytes=chunk_bytes)

    store = MeetingStore()
    for i in range(jobs * 3):
        store.put(f"o{i:02d}", bytes([i]) * 50)
    verifier = _verifier(store, jobs=jobs)
    report = verifier.run(verifier.collect(""))
    assert [r.key for r in report.results] == [f"o{i:02d}" for i in range(jobs * 3)]
    assert report.summary.ok == jobs * 3


def test_verify_reads_in_bounded_chunks_and_reports_every_byte() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        with lock:
            seen.append(n)

    store = FakeStore()
    store.put("a", b"a" * 1000)
    store.put("b", b"b" * 33)
    verifier = _verifier(store)
    finished: list[str] = []
    report = verifier.run(
        verifier.collect(""), on_bytes=on_bytes, on_result=lambda r: finished.append(r.key)
    )
    assert max(seen) == CHUNK
    assert sum(seen) == 1033 == report.summary.bytes
    assert sorted(finished) == ["a", "b"]


def test_verify_cancel_stops_reading_as_error() -> None:
    store = FakeStore()
    store.put("a", b"a" * 1000)
    verifier = _verifier(store)
    verifier.cancel()
    (result,) = verifier.run(verifier.collect("")).results
    assert result.status is Status.ERROR
    assert result.error == "cancelled"


def test_summary_counts_each_status() -> None:
    results = [
        ObjectResult("a", 1, Status.OK, bytes_read=1),
        ObjectResult("b", 2, Status.MISMATCH, bytes_read=2),
        ObjectResult("c", 3, Status.NO_CRC, bytes_read=3),
        ObjectResult("d", 4, Status.ERROR),
        ObjectResult("e", 5, Status.ERROR),
    ]
    summary = Summary.of(results, 2.0)
    assert summary == Summary(5, 6, 2.0, 1, 1, 1, 2)
    assert not summary.all_ok
    assert summary.bytes_per_s == 3.0


def test_verify_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="jobs"):
        VerifyConfig(jobs=0)
    with pytest.raises(ValueError, match="chunk_bytes"):
        VerifyConfig(chunk_bytes=0)


# -- through a mount ----------------------------------------------------------------------------


def _mirror(store: FakeStore, root: Path, prefix: str, objects: dict[str, bytes]) -> None:
    """Put ``objects`` in the store and the same bytes under ``root`` as a mount would show."""
    for rel, data in objects.items():
        store.put(prefix + rel, data)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _through(store: FakeStore, root: Path, prefix: str, **config: int) -> Verifier:
    cfg = VerifyConfig(**{"chunk_bytes": CHUNK, **config})
    return Verifier(store, cfg, mount=MountView(root, prefix), sleep=lambda s: None)


def test_verify_through_reads_files_and_compares_with_server_crc(tmp_path: Path) -> None:
    store = FakeStore()
    objects = {"a.txt": b"alpha" * 40, "d/b c.bin": bytes(range(200)), "d/empty": b""}
    _mirror(store, tmp_path, "pre/", objects)
    verifier = _through(store, tmp_path, "pre/")
    report = verifier.run(verifier.collect("pre/"))
    assert [r.status for r in report.results] == [Status.OK] * 3
    assert report.summary.bytes == 400
    assert store.count("stream") == 0
    assert store.count("head") == 3


def test_verify_through_detects_corrupt_and_truncated_files(tmp_path: Path) -> None:
    store = FakeStore()
    _mirror(store, tmp_path, "", {"bad": b"0123456789" * 5, "short": b"s" * 50, "ok": b"k"})
    (tmp_path / "bad").write_bytes(b"0123456789" * 4 + b"012345678X")
    (tmp_path / "short").write_bytes(b"s" * 49)
    results = _verify_all(_through(store, tmp_path, ""))
    assert results["bad"].status is Status.MISMATCH
    assert results["bad"].expected_crc64 == crc64(b"0123456789" * 5)
    assert results["bad"].computed_crc64 == crc64(b"0123456789" * 4 + b"012345678X")
    assert results["short"].status is Status.MISMATCH
    assert results["short"].error == "read 49 bytes, but the object has 50"
    assert results["ok"].status is Status.OK


def test_verify_through_missing_file_is_error_with_errno(tmp_path: Path) -> None:
    store = FakeStore()
    store.put("absent", b"abc")
    (result,) = _verify_all(_through(store, tmp_path, "")).values()
    assert result.status is Status.ERROR
    assert result.error is not None
    assert result.error.startswith("reading through the mount: ENOENT: No such file")


def test_verify_through_key_that_cannot_be_a_file_name_is_error(tmp_path: Path) -> None:
    store = FakeStore()
    store.put("a//b", b"abc")
    store.put("x/../y", b"abc")
    results = _verify_all(_through(store, tmp_path, ""))
    for result in results.values():
        assert result.status is Status.ERROR
        assert result.error is not None and result.error.startswith("not visible on the mount")


def test_verify_through_restarts_when_object_changed_during_read(tmp_path: Path) -> None:
    class SwitchingStore(FakeStore):
        """The first HEAD shows the old version; the file already holds the new one."""

        def __init__(self) -> None:
            super().__init__()
            self.old: ObjectMeta | None = None

        def head(self, key: str) -> ObjectMeta:
            meta = super().head(key)
            if self.old is not None:
                old, self.old = self.old, None
                return old
            return meta

    store = SwitchingStore()
    store.old = store.put("f", b"old")
    _mirror(store, tmp_path, "", {"f": b"new!"})
    (result,) = _verify_all(_through(store, tmp_path, "")).values()
    assert result.status is Status.OK
    assert result.restarts == 1
    assert result.computed_crc64 == crc64(b"new!")


def test_mount_view_maps_keys_to_paths(tmp_path: Path) -> None:
    view = MountView(tmp_path, "root/")
    assert view.path_of("root/a/b c") == tmp_path / "a" / "b c"
    with pytest.raises(NotFoundError):
        view.path_of("other/a")
    with pytest.raises(ValueError, match="must be empty or end with '/'"):
        MountView(tmp_path, "root")


def test_target_error_becomes_error_result() -> None:
    result = Verifier(FakeStore()).verify_one(Target("k", None, "NotFoundError: k"))
    assert result == ObjectResult("k", 0, Status.ERROR, error="NotFoundError: k")
