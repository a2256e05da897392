"""Tests of `ossfs.store.ranges`: the Range header of a half-open range, and the checks of a
ranged answer's head."""

from __future__ import annotations

import pytest

from ossfs.core.errors import IntegrityError, StaleError
from ossfs.store.ranges import (
    RangedAnswers,
    check_content_range,
    parse_content_range,
    read_headers,
)


def test_read_headers_ask_for_the_half_open_range_inclusively() -> None:
    behaviour = {"x-oss-range-behavior": "standard"}
    assert read_headers("E", 100, 200) == {**behaviour, "If-Match": '"E"', "Range": "bytes=100-199"}
    assert read_headers(None, 0, 1) == {**behaviour, "Range": "bytes=0-0"}
    assert read_headers(None, 5) == {**behaviour, "Range": "bytes=5-"}
    assert read_headers("E") == {**behaviour, "If-Match": '"E"'}  # whole object: no Range


def test_parse_content_range_accepts_standard_forms() -> None:
    assert parse_content_range("bytes 0-99/1024") == (0, 99, 1024)
    assert parse_content_range("bytes 5-5/*") == (5, 5, None)
    with pytest.raises(IntegrityError):
        parse_content_range("bytes */1024")
    with pytest.raises(IntegrityError):
        parse_content_range("items 0-1/2")


def test_check_content_range_accepts_exact_match() -> None:
    assert check_content_range("k", 206, "bytes 100-199/1024", 100, 200) == 1024
    assert check_content_range("k", 206, "bytes 100-1023/1024", 100, None) == 1024


@pytest.mark.parametrize(
    ("status", "content_range", "start", "end"),
    [
        (200, None, 0, 100),  # Range ignored: whole object
        (206, None, 0, 100),  # no Content-Range
        (206, "bytes 1-100/1024", 0, 100),  # wrong start
        (206, "bytes 0-98/1024", 0, 100),  # short range (object smaller than asked)
        (206, "bytes 0-99/99", 0, 100),  # total cannot hold the range
        (206, "bytes 100-500/1024", 100, None),  # open-ended but not to the end
    ],
)
def test_check_content_range_rejects_mismatch(
    status: int, content_range: str | None, start: int, end: int | None
) -> None:
    with pytest.raises(IntegrityError):
        check_content_range("k", status, content_range, start, end)


def _answer(first: int, last: int, total: int, etag: str, **extra: str) -> dict[str, str]:
    return {
        "content-range": f"bytes {first}-{last}/{total}",
        "content-length": str(last - first + 1),
        "etag": f'"{etag}"',
        **extra,
    }


def test_ranged_answers_pin_the_first_version_and_remember_its_crc() -> None:
    answers = RangedAnswers()
    pinned: list[str | None] = [None]
    headers = _answer(0, 9, 100, "E1", **{"x-oss-hash-crc64ecma": "12345"})
    answers.check("k", status=206, headers=headers, start=0, end=10, pinned=pinned)
    assert pinned == ["E1"]
    assert answers.announced_crc64("k", "E1") == 12345
    assert answers.announced_crc64("k", "E2") is None
    with pytest.raises(StaleError):
        answers.check(
            "k", status=206, headers=_answer(10, 19, 100, "E2"), start=10, end=20, pinned=pinned
        )


def test_ranged_answers_reject_a_wrong_length() -> None:
    headers = {**_answer(0, 9, 100, "E"), "content-length": "9"}
    with pytest.raises(IntegrityError):
        RangedAnswers().check("k", status=206, headers=headers, start=0, end=10, pinned=["E"])
