"""Unit tests of the pure range rules and of the storage layer."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.core.crc64 import crc64
from ossfs.emulator.ranges import (
    ByteRange,
    RangeNotSatisfiableError,
    parse_range,
    resolve_legacy,
    resolve_standard,
)
from ossfs.emulator.storage import (
    AlreadyExistsError,
    DigestMismatchError,
    NoSuchBucketError,
    Storage,
)


def test_parse_range_forms() -> None:
    assert parse_range("bytes=0-9") is not None
    assert parse_range("bytes=5-") is not None
    assert parse_range("bytes=-5") is not None
    for bad in (None, "", "bytes=", "bytes=-", "bytes=9-5", "items=0-1", "bytes=0-1,3-4"):
        assert parse_range(bad) is None


def test_resolve_legacy_ignores_out_of_range() -> None:
    assert resolve_legacy("bytes=0-9", 10) == ByteRange(0, 10)
    assert resolve_legacy("bytes=0-10", 10) is None
    assert resolve_legacy("bytes=10-", 10) is None
    assert resolve_legacy("bytes=-11", 10) is None
    assert resolve_legacy("bytes=0-0", 0) is None


def test_resolve_standard_clamps_or_raises() -> None:
    assert resolve_standard("bytes=5-100", 10) == ByteRange(5, 10)
    assert resolve_standard("bytes=-100", 10) == ByteRange(0, 10)
    for header in ("bytes=10-", "bytes=10-20", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiableError):
            resolve_standard(header, 10)
    with pytest.raises(RangeNotSatisfiableError):
        resolve_standard("bytes=0-", 0)
    assert resolve_standard("garbage", 10) is None


@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 3000))
def test_resolve_standard_stays_within_object(first: int, last: int, size: int) -> None:
    try:
        r = resolve_standard(f"bytes={first}-{last}", size)
    except RangeNotSatisfiableError:
        assert first >= size
        return
    if r is not None:
        assert 0 <= r.start < r.end <= size
        assert r.start == first


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    s = Storage(tmp_path)
    s.create_bucket("b")
    return s


def test_storage_put_get_open(storage: Storage) -> None:
    rec = storage.put_bytes("b", "k", b"abc")
    assert (rec.size, rec.crc64) == (3, crc64(b"abc"))
    opened = storage.open_object("b", "k")
    assert opened is not None
    got, f = opened
    assert got == rec and f is not None
    with f:
        assert f.read() == b"abc"
    assert storage.get("b", "missing") is None
    assert storage.open_object("b", "missing") is None


def test_storage_errors(storage: Storage) -> None:
    with pytest.raises(NoSuchBucketError):
        storage.put_bytes("nobucket", "k", b"x")
    storage.put_bytes("b", "k", b"x")
    with pytest.raises(AlreadyExistsError):
        storage.put_bytes("b", "k", b"y", forbid_overwrite=True)
    with pytest.raises(DigestMismatchError):
        storage.put_bytes("b", "k2", b"y", expected_md5=b"0" * 16)
    assert storage.get("b", "k2") is None
    assert not list((storage.data_dir / "tmp").iterdir())


def test_storage_concurrent_writers_and_readers(storage: Storage) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(30):
                data = f"{n}-{i}".encode() * 100
                storage.put_bytes("b", "shared", data)
                opened = storage.open_object("b", "shared")
                assert opened is not None
                rec, f = opened
                assert f is not None
                with f:
                    assert crc64(f.read()) == rec.crc64
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert storage.object_count("b") == 1
