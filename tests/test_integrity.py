from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ossfs.core.crc64 as crc_module
from ossfs.core.crc64 import crc64, crc64_combine, shift_operator, shift_with
from ossfs.read.integrity import WholeObjectCrc


@settings(max_examples=40)
@given(st.integers(min_value=0, max_value=2**64 - 1), st.binary(max_size=300))
def test_shift_operator_matches_combine(crc1: int, tail: bytes) -> None:
    op = shift_operator(len(tail))
    assert shift_with(op, crc1) ^ crc64(tail) == crc64_combine(crc1, crc64(tail), len(tail))


@settings(max_examples=60)
@given(
    data=st.binary(max_size=3000),
    block_size=st.integers(min_value=1, max_value=700),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_whole_object_crc_in_any_order_equals_crc(data: bytes, block_size: int, seed: int) -> None:
    acc = WholeObjectCrc(len(data), block_size)
    blocks = [data[i : i + block_size] for i in range(0, len(data), block_size)]
    order = list(range(len(blocks)))
    random.Random(seed).shuffle(order)
    for n, index in enumerate(order):
        assert acc.value is None or n == len(blocks)
        acc.add(index, blocks[index])
        acc.add(index, blocks[index])  # repeats are ignored
    assert acc.complete
    assert acc.value == crc64(data)


def test_whole_object_crc_incomplete_and_bad_index() -> None:
    acc = WholeObjectCrc(10, 4)
    acc.add(0, b"0123")
    acc.add(2, b"89")
    assert not acc.complete and acc.value is None
    assert acc.wants(1) and not acc.wants(0) and not acc.wants(2)
    with pytest.raises(ValueError):
        acc.add(3, b"")
    acc.add(1, b"4567")
    assert acc.value == crc64(b"0123456789")


def test_whole_object_crc_detects_a_flipped_byte() -> None:
    data = bytes(range(256)) * 10
    acc = WholeObjectCrc(len(data), 100)
    for i in range(0, len(data), 100):
        block = bytearray(data[i : i + 100])
        if i == 500:
            block[7] ^= 1
        acc.add(i // 100, bytes(block))
    assert acc.value is not None and acc.value != crc64(data)


def test_whole_object_crc_of_empty_object_is_zero() -> None:
    acc = WholeObjectCrc(0, 4096)
    assert acc.complete and acc.value == 0 == crc64(b"")


def test_whole_object_crc_of_one_block_needs_no_block_operator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    computed: list[int] = []

    def recording_shift(block_size: int) -> tuple[int, ...]:
        computed.append(block_size)
        return shift_operator(block_size)

    monkeypatch.setattr(crc_module, "_cached_shift", recording_shift)
    for data in (b"x" * 100, b"y" * 128):  # a short and a full block of 128
        acc = WholeObjectCrc(len(data), 128)
        acc.add(0, data)
        assert acc.value == crc64(data)
    assert computed == []  # small files: no operator (its first computation takes ms)
    acc = WholeObjectCrc(300, 128)
    data = bytes(range(256)) + b"z" * 44
    for index in (2, 1, 0):
        acc.add(index, data[index * 128 : (index + 1) * 128])
    assert acc.value == crc64(data)
    assert computed == [128]
