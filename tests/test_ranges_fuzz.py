"""Hypothesis fuzzing of `ossfs.store.ranges`: the checks of a ranged GET's answer head.

Whatever the HTTP engine, these checks are ossfs's own: what a server says in ``Content-Range``,
``Content-Length``, ``ETag`` and the announced CRC is either accepted because it names exactly
the bytes asked for, or refused with `IntegrityError` (`StaleError` for another version), and
nothing else escapes.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.core.errors import IntegrityError, StaleError
from ossfs.store.ranges import RangedAnswers, check_content_range, parse_content_range

SIZES = st.integers(0, 10**15)
SPACES = st.sampled_from(["", " ", "  ", "\t"])
# Header text as an engine may hand it over: latin-1 from the wire, or any decoded text.
HEADER_TEXT = st.text(string.printable, max_size=30) | st.text(max_size=30)


@st.composite
def asked_ranges(draw: st.DrawFn) -> tuple[int, int | None]:
    """A GET's half-open ``[start, end)``; ``end`` None: to the end of the object."""
    start = draw(st.integers(0, 10**12))
    end = draw(st.none() | st.integers(start + 1, start + 10**9))
    return start, end


def _near(value: int) -> st.SearchStrategy[int]:
    return st.sampled_from([max(value - 1, 0), value, value + 1])


@st.composite
def content_ranges(draw: st.DrawFn, start: int, end: int | None) -> str:
    """Content-Range values near the right answer for ``[start, end)``, and some anything."""
    last = end - 1 if end is not None else start + draw(st.integers(0, 10**6))
    total = draw(st.sampled_from(["*", last + 1, last + 2, last, last + 10**6]))
    first, last = draw(_near(start)), draw(_near(last))
    unit = draw(st.sampled_from(["bytes", "Bytes", "items"]))
    head, tail = draw(SPACES), draw(SPACES)
    near = f"{head}{unit} {first}-{last}/{total}{tail}"
    return draw(st.just(near) | HEADER_TEXT)


@given(SIZES, SIZES, st.none() | SIZES, SPACES, SPACES)
def test_parse_content_range_reads_any_well_formed_value(
    first: int, last: int, total: int | None, head: str, tail: str
) -> None:
    value = f"{head}bytes {first}-{last}/{'*' if total is None else total}{tail}"
    assert parse_content_range(value) == (first, last, total)


@given(HEADER_TEXT)
def test_parse_content_range_reads_only_ascii_bytes_ranges(value: str) -> None:
    try:
        first, last, total = parse_content_range(value)
    except IntegrityError:
        return
    # Accepted: ASCII (no other script's digits or spaces), saying what its canonical form says.
    assert value.isascii()
    assert value.split(maxsplit=1)[0] == "bytes"
    canonical = f"bytes {first}-{last}/{'*' if total is None else total}"
    assert parse_content_range(canonical) == (first, last, total)


_OTHER_DIGITS = ["\u0660", "\uff10", "\u0966"]  # the zeros of Arabic-Indic, fullwidth, Devanagari
_OTHER_SPACES = ["\xa0", "\u2003", "\x85", "\x1c"]


@given(SIZES, SIZES, SIZES, st.data())
def test_parse_content_range_refuses_other_scripts_digits_and_spaces(
    first: int, last: int, total: int, data: st.DataObject
) -> None:
    value = f"bytes {first}-{last}/{total}"
    if data.draw(st.booleans()):
        zero = data.draw(st.sampled_from(_OTHER_DIGITS))
        digit = data.draw(st.sampled_from([c for c in value if c.isdigit()]))
        value = value.replace(digit, chr(ord(zero) + int(digit)), 1)
    else:
        value = value.replace(" ", data.draw(st.sampled_from(_OTHER_SPACES)), 1)
    with pytest.raises(IntegrityError):
        parse_content_range(value)


@given(st.data(), asked_ranges(), st.sampled_from([206, 206, 200, 416, 500]))
def test_check_content_range_accepts_exactly_the_asked_bytes(
    data: st.DataObject, asked: tuple[int, int | None], status: int
) -> None:
    start, end = asked
    value = data.draw(st.none() | content_ranges(start, end))
    try:
        total = check_content_range("k", status, value, start, end)
    except IntegrityError:
        return
    assert status == 206 and value is not None
    first, last, said_total = parse_content_range(value)
    assert total == said_total and first == start and last >= first
    if end is not None:
        assert last == end - 1
    elif total is not None:
        assert last == total - 1
    assert total is None or total > last


@given(asked_ranges(), st.data())
def test_check_content_range_accepts_every_right_answer(
    asked: tuple[int, int | None], data: st.DataObject
) -> None:
    start, end = asked
    total: int | None
    if end is None:
        size = data.draw(st.integers(start + 1, start + 10**9))
        last = size - 1
        total = data.draw(st.sampled_from([size, None]))
    else:
        last = end - 1
        total = data.draw(st.none() | st.integers(end, end + 10**9))
    value = f"bytes {start}-{last}/{'*' if total is None else total}"
    assert check_content_range("k", 206, value, start, end) == total


@st.composite
def answer_headers(draw: st.DrawFn, start: int, end: int) -> dict[str, str]:
    """Headers of an answer for ``[start, end)``: each one right, wrong, odd or missing."""
    headers: dict[str, str] = {}
    right = str(end - start)
    length = draw(
        st.sampled_from([right, "0" + right, str(end - start + 1), "-1", ""]) | HEADER_TEXT
    )
    crc = draw(st.sampled_from(["12345", "0", "-5", "\u00b2"]) | HEADER_TEXT)
    etag = draw(st.sampled_from(['"E"', "E", '"F"', '""']) | HEADER_TEXT)
    right_range = f"bytes {start}-{end - 1}/{end}"
    content_range = draw(st.just(right_range) | content_ranges(start, end))
    for name, value in [
        ("content-length", length),
        ("x-oss-hash-crc64ecma", crc),
        ("etag", etag),
        ("content-range", content_range),
    ]:
        if draw(st.booleans()):
            headers[name] = value
    return headers


@given(
    st.integers(0, 10**12),
    st.integers(1, 10**9),
    st.data(),
    st.sampled_from([206, 206, 200]),
    st.sampled_from([None, "E"]),
)
def test_ranged_answers_check_accepts_only_the_asked_bytes_of_the_pinned_version(
    start: int, length: int, data: st.DataObject, status: int, pin: str | None
) -> None:
    end = start + length
    headers = data.draw(answer_headers(start, end))
    answers = RangedAnswers()
    pinned: list[str | None] = [pin]
    try:
        answers.check("k", status=status, headers=headers, start=start, end=end, pinned=pinned)
    except (IntegrityError, StaleError):
        return
    check_content_range("k", status, headers.get("content-range"), start, end)  # does not raise
    said_length = headers.get("content-length")
    if said_length is not None:  # a number, in ASCII digits, of exactly the bytes asked for
        assert said_length.isascii() and said_length.isdigit()
        assert int(said_length) == end - start
    etag = headers.get("etag", "").strip().strip('"')
    if pin is not None and etag:
        assert etag == pin
    if pin is None:
        assert pinned == [etag or None]


@pytest.mark.parametrize("crc", ["\u00b2", "-5", "", "12 34"])
def test_ranged_answers_remember_only_a_crc_that_is_a_number(crc: str) -> None:
    answers = RangedAnswers()
    headers = {
        "content-range": "bytes 0-9/10",
        "content-length": "10",
        "etag": '"E"',
        "x-oss-hash-crc64ecma": crc,
    }
    answers.check("k", status=206, headers=headers, start=0, end=10, pinned=[None])
    assert answers.announced_crc64("k", "E") is None
