from __future__ import annotations

import itertools
import math
import os
import random
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.core.crc64 import (
    PartsCrc,
    crc64,
    crc64_combine,
    has_fast_crc,
    shift_operator,
    shift_with,
)
from ossfs.core.errors import UsageError
from ossfs.core.sizes import parse_size, parse_ttl
from ossfs.core.url import OssLocation, parse_oss_url


def test_crc64_check_value() -> None:
    assert crc64(b"123456789") == 0x995DC9BBDF1939FA
    assert crc64(b"") == 0


def test_crc64_c_extension_present() -> None:
    assert has_fast_crc()


@given(st.binary(max_size=2000), st.binary(max_size=2000))
def test_crc64_combine_equals_crc_of_concatenation(a: bytes, b: bytes) -> None:
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    assert crc64(b, crc64(a)) == crc64(a + b)


@given(
    data=st.binary(max_size=5000),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
)
def test_crc64_combine_of_random_splits_equals_crc_of_whole(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    crc = 0
    for start, end in itertools.pairwise(bounds):
        crc = crc64_combine(crc, crc64(data[start:end]), end - start)
    assert crc == crc64(data)


@given(
    data=st.binary(max_size=4000),
    part=st.integers(min_value=1, max_value=900),
    rng=st.randoms(use_true_random=False),
)
def test_parts_crc_of_parts_in_any_order_equals_crc(
    data: bytes, part: int, rng: random.Random
) -> None:
    acc = PartsCrc(len(data), part)
    indices = list(range(acc.parts))
    rng.shuffle(indices)
    for index in indices:
        assert acc.value is None
        acc.add(index, crc64(data[index * part : (index + 1) * part]))
        acc.add(index, 12345)  # a repeat is ignored
    assert acc.complete and acc.value == crc64(data)


def test_crc64_combine_past_the_zero_run_shortcut_agrees_with_the_crc() -> None:
    """Lengths over 64 MiB take the GF(2) matrix ladder (parts of a large --part-size)."""
    length = (64 << 20) + 12345
    mib = bytes(1 << 20)

    def after_zeros(crc: int) -> int:  # the CRC continued over `length` zero bytes
        for _ in range(length >> 20):
            crc = crc64(mib, crc)
        return crc64(mib[: length & 0xFFFFF], crc)

    crc2 = after_zeros(0)
    for crc1 in (1, 0xDEADBEEFCAFEF00D):
        assert crc64_combine(crc1, crc2, length) == after_zeros(crc1)
        assert shift_with(shift_operator(length), crc1) ^ crc2 == after_zeros(crc1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oss://bucket", OssLocation("bucket", "")),
        ("oss://bucket/", OssLocation("bucket", "")),
        ("oss://my-bucket/a/b", OssLocation("my-bucket", "a/b/")),
        ("oss://my-bucket//a//b/", OssLocation("my-bucket", "a/b/")),
    ],
)
def test_parse_oss_url_valid(text: str, expected: OssLocation) -> None:
    assert parse_oss_url(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "s3://bucket",
        "oss://",
        "oss://B",
        "oss://ab",
        "oss://bucket-/x",
        "oss://b_c",
        "oss://bkt/../x",
        "oss://bucket\n/x",  # "$" alone would let a trailing newline through
    ],
)
def test_parse_oss_url_invalid(text: str) -> None:
    with pytest.raises(UsageError):
        parse_oss_url(text)


def test_parse_size_units() -> None:
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("1G") == 1 << 30
    assert parse_size("4096") == 4096
    assert parse_size("1.5k") == 1536
    for bad in ("", "abc", "-1M", "5 parsecs"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_parse_ttl() -> None:
    assert parse_ttl("0") == 0
    assert parse_ttl("1.5") == 1.5
    assert parse_ttl("forever") == math.inf
    for bad in ("-1", "nan", "soon", "inf1"):
        with pytest.raises(UsageError):
            parse_ttl(bad)


def _ossfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ossfs", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OSS_ACCESS_KEY_ID": "", "OSS_ACCESS_KEY_SECRET": ""},
    )


def test_cli_version_and_help() -> None:
    out = _ossfs("--version")
    assert out.returncode == 0 and out.stdout.startswith("ossfs ")
    for command in ("mount", "umount", "verify", "emulator", "demo"):
        result = _ossfs(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: ossfs " + command in result.stdout


def test_cli_unknown_command_is_usage_error() -> None:
    result = _ossfs("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


@given(st.binary(max_size=5000), st.integers(min_value=0, max_value=2**64 - 1))
def test_crc64_matches_crcmod_reference(data: bytes, start: int) -> None:
    import crcmod

    reference = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=(1 << 64) - 1)
    assert crc64(data, start) == reference(data, start)
    assert crc64(memoryview(data)) == reference(data)
