"""Tests of `ossfs.store.v1_signature`: the store's GETs and the fetch loop's, signed without
oss2, are the bytes oss2 would send (compared in the same second), and a known signature vector
holds."""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import time

import pytest

from ossfs.net.curl_transport import CurlTransport
from ossfs.store.config import OssConfig
from ossfs.store.credentials import Credentials
from ossfs.store.oss_store import OssStore
from ossfs.store.ranges import read_headers
from ossfs.store.sessions import signed_request
from ossfs.store.v1_signature import V1Signer
from tests.test_oss_store import Reply, ScriptedTransport

# 2026-11-25 12:00:00 UTC, the date of the vectors in the protocol notes.
VECTOR_TIME = calendar.timegm((2026, 11, 25, 12, 0, 0))

KEYS = [
    "a",
    "dir/a b.txt",
    "deep/er/k+e=y&x?y#z%41~_-.bin",
    "ünïcode/中文/ключ",
    "quote\"and'semi;colon",
    "x" * 1000,
]


def whole_get(etag: str, size: int) -> list[tuple[str, str]]:
    """The headers the store signs for a read-ahead GET of ``size`` bytes at ``etag``."""
    return [
        ("x-oss-range-behavior", "standard"),
        ("If-Match", f'"{etag}"'),
        ("Range", f"bytes=0-{size - 1}"),
        ("User-Agent", "ua"),
    ]


def test_v1_signature_known_vector() -> None:
    """The protocol notes' vector (from oss2 2.19.1): GET of test-bucket/dir/a b.txt."""
    signer = V1Signer(
        bucket="test-bucket",
        root_target="/test-bucket/",
        credentials=Credentials("AKID", "SECRET"),
        clock=lambda: VECTOR_TIME + 0.9,
    )
    headers = dict(signer.sign_get("dir/a b.txt", whole_get("E", 100)))
    assert headers["date"] == "Wed, 25 Nov 2026 12:00:00 GMT"
    assert headers["authorization"] == "OSS AKID:mM/K2VbN7pvxxoGcNFrG8r35L8A="
    assert headers["Range"] == "bytes=0-99"
    assert headers["If-Match"] == '"E"'
    assert signer.target("dir/a b.txt") == "/test-bucket/dir%2Fa%20b.txt"


def v1(secret: str, string_to_sign: str) -> str:
    """The V1 signature as the protocol notes define it."""
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_v1_signature_sts_token_is_sent_and_signed() -> None:
    date = "Wed, 25 Nov 2026 12:00:00 GMT"
    # The notes' STS vector checks the helper ...
    sts_vector = f"GET\n\n\n{date}\nx-oss-security-token:TOKEN\n/test-bucket/k"
    assert v1("SECRET", sts_vector) == "TwfFkfzzXjlOJynumuUv8tPNxxo="
    signer = V1Signer(
        bucket="test-bucket",
        root_target="/",
        credentials=Credentials("AKID", "SECRET", "TOKEN"),
        clock=lambda: VECTOR_TIME,
    )
    headers = signer.sign_get("k", whole_get("E", 1))
    assert ("x-oss-security-token", "TOKEN") in headers
    # ... which signs both x-oss- headers, sorted by name.
    expected = v1(
        "SECRET",
        f"GET\n\n\n{date}\nx-oss-range-behavior:standard\nx-oss-security-token:TOKEN\n"
        "/test-bucket/k",
    )
    assert dict(headers)["authorization"] == f"OSS AKID:{expected}"


def test_v1_signature_date_changes_with_the_second_only() -> None:
    now = [VECTOR_TIME + 0.1]
    signer = V1Signer(
        bucket="b",
        root_target="/",
        credentials=Credentials("AK", "SK"),
        clock=lambda: now[0],
    )
    first = dict(signer.sign_get("k", whole_get("E", 1)))
    now[0] = VECTOR_TIME + 0.99
    assert dict(signer.sign_get("k", whole_get("E", 1))) == first
    now[0] = VECTOR_TIME + 1.0
    later = dict(signer.sign_get("k", whole_get("E", 1)))
    assert later["date"] == "Wed, 25 Nov 2026 12:00:01 GMT"
    assert later["authorization"] != first["authorization"]


def test_v1_signature_anonymous_is_unsigned() -> None:
    signer = V1Signer(bucket="b", root_target="/b/", credentials=None)
    names = [name for name, _ in signer.sign_get("k", whole_get("E", 5))]
    assert names == ["x-oss-range-behavior", "If-Match", "Range", "User-Agent"]


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:9", "https://oss-cn-hangzhou.aliyuncs.com", "http://localhost:9"],
)
@pytest.mark.parametrize("auth", ["v1", "sts", "anonymous"])
def test_v1_signature_whole_get_is_what_oss2_sends(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, auth: str
) -> None:
    """The store's read-ahead GET equals, byte for byte, the one oss2 builds and signs for the
    same key at the same time (both read the one patched clock)."""
    monkeypatch.setattr(time, "time", lambda: VECTOR_TIME + 0.5)
    config = OssConfig(
        endpoint=endpoint,
        bucket="my-bucket",
        access_key_id=None if auth == "anonymous" else "LTAI-key",
        access_key_secret=None if auth == "anonymous" else "s3cr3t/+=",
        security_token="tok/en+=" if auth == "sts" else None,
    )
    with OssStore(config) as store:
        transport, gets = store._transport, store._whole_gets
        assert isinstance(transport, CurlTransport) and gets is not None
        for key in KEYS:
            ours = gets.prepare(key, "0123ABCD", 12345)
            oss2s = gets.oss2_request(key, dict(whole_get("0123ABCD", 12345)[:3]))
            assert (ours.method, ours.url, ours.body) == (oss2s.method, oss2s.url, oss2s.body)
            assert list(ours.headers.items()) == list(oss2s.headers.items()), key
    if auth != "anonymous":
        assert ours.headers["authorization"].startswith("OSS LTAI-key:")


def test_v1_signature_not_used_for_v4() -> None:
    config = OssConfig(
        endpoint="http://127.0.0.1:9",
        bucket="bkt",
        access_key_id="AK",
        access_key_secret="SK",
        region="cn-hangzhou",
    )
    with OssStore(config) as store:
        assert store._whole_gets is not None
        headers = store._whole_gets.prepare("k", "E", 10).headers
    assert headers["authorization"].startswith("OSS4-HMAC-SHA256")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", "https://oss-cn-hangzhou.aliyuncs.com"])
@pytest.mark.parametrize("auth", ["v1", "sts", "anonymous"])
def test_v1_signature_store_get_is_what_oss2_sends(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, auth: str
) -> None:
    """The store's own GETs (`V1Signer` for V1, STS and anonymous access) are, header for
    header and in order, the ones oss2's public get_object builds at the same time."""
    monkeypatch.setattr(time, "time", lambda: VECTOR_TIME + 0.5)
    config = OssConfig(
        endpoint=endpoint,
        bucket="my-bucket",
        access_key_id=None if auth == "anonymous" else "LTAI-key",
        access_key_secret=None if auth == "anonymous" else "s3cr3t/+=",
        security_token="tok/en+=" if auth == "sts" else None,
    )
    transport = ScriptedTransport(lambda request: Reply(200))
    variants = [read_headers("0123ABCD", 5, 100), read_headers(None, 0), read_headers(None, 7)]
    with OssStore(config, transport=transport) as store:
        for key in KEYS:
            for headers in variants:
                store._get_object(key, dict(headers))
                sent = transport.requests[-1]
                oss2s = signed_request(store._signing_bucket, key, dict(headers))
                assert sent == oss2s, key
                assert list(sent.headers.items()) == list(oss2s.headers.items()), key
    if auth != "anonymous":
        assert sent.headers["authorization"].startswith("OSS LTAI-key:")
