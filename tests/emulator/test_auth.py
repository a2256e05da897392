"""Tests of the emulator's signature checks (`ossfs.emulator.signatures`, `signatures_v4`,
`auth`): requests signed by oss2 itself are accepted, others refused.

Most tests let oss2 send a real request to a tiny capturing HTTP server on 127.0.0.1, parse the
captured request line and headers the way the emulator does (path ``unquote``, query
``unquote_plus``) and pass the result to `authenticate`. The documented vectors of the protocol
notes are checked byte for byte.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

import oss2
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from ossfs.emulator.auth import MAX_CLOCK_SKEW_S, AuthError, Credential, SignedRequest
from ossfs.emulator.signatures import authenticate

AK = "AKID"
SECRET = "SECRET"
STS_AK = "STS.tmpkey"
STS_SECRET = "sts-secret"
TOKEN = "TOKEN/with+odd=chars"
REGION = "cn-hangzhou"
BUCKET = "test-bucket"

CREDENTIALS: Mapping[str, Credential] = {
    AK: Credential(AK, SECRET),
    STS_AK: Credential(STS_AK, STS_SECRET, TOKEN),
}

VECTOR_DATE = "Wed, 25 Nov 2026 12:00:00 GMT"
VECTOR_NOW = float(calendar.timegm((2026, 11, 25, 12, 0, 0, 0, 0, 0)))


# -- capturing server ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Captured:
    method: str
    target: str
    headers: dict[str, str]


class _Recorder(BaseHTTPRequestHandler):
    captured: list[Captured]

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            lower = name.lower()
            headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
        self.captured.append(Captured(self.command, self.path, headers))
        self.send_response(404)
        self.send_header("x-oss-request-id", "0" * 24)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _record

    def log_message(self, format: str, *args: object) -> None:
        pass


class CaptureServer:
    """Answers every request 404 and keeps what arrived, so any oss2 call can be inspected."""

    def __init__(self) -> None:
        self.captured: list[Captured] = []
        handler = type("Handler", (_Recorder,), {"captured": self.captured})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def capture(self, call: Callable[[], object]) -> Captured:
        self.captured.clear()
        with contextlib.suppress(oss2.exceptions.OssError):
            call()
        assert len(self.captured) == 1
        return self.captured[0]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[CaptureServer]:
    srv = CaptureServer()
    yield srv
    srv.close()


def to_signed(captured: Captured) -> SignedRequest:
    """Parse a path-style request as the emulator does."""
    path, _, query = captured.target.partition("?")
    if path == "/":
        bucket: str | None = None
        key: str | None = None
    else:
        bucket, _, rest = path[1:].partition("/")
        key = unquote(rest) or None
    return SignedRequest(
        method=captured.method,
        bucket=bucket,
        key=key,
        query=tuple(parse_qsl(query, keep_blank_values=True)),
        headers=captured.headers,
        raw_path=path,
    )


def with_headers(request: SignedRequest, **changes: str | None) -> SignedRequest:
    headers = dict(request.headers)
    for attr, value in changes.items():
        name = attr.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return replace(request, headers=headers)


def make_auth(kind: str, ak: str = AK, secret: str = SECRET) -> oss2.auth.AuthBase | oss2.StsAuth:
    if kind == "v1":
        return oss2.Auth(ak, secret)
    if kind == "v2":
        return oss2.AuthV2(ak, secret)
    if kind == "v4":
        return oss2.AuthV4(ak, secret)
    if kind == "sts-v1":
        return oss2.StsAuth(STS_AK, STS_SECRET, TOKEN)
    if kind == "sts-v2":
        return oss2.StsAuth(STS_AK, STS_SECRET, TOKEN, auth_version=oss2.AUTH_VERSION_2)
    if kind == "sts-v4":
        return oss2.StsAuth(STS_AK, STS_SECRET, TOKEN, auth_version=oss2.AUTH_VERSION_4)
    raise AssertionError(kind)


def make_bucket(server: CaptureServer, auth: oss2.auth.AuthBase | oss2.StsAuth) -> oss2.Bucket:
    return oss2.Bucket(auth, server.endpoint, BUCKET, region=REGION, enable_crc=False)


def expect_error(request: SignedRequest, code: str, *, now: float | None = None) -> AuthError:
    with pytest.raises(AuthError) as info:
        authenticate(request, CREDENTIALS, now=time.time() if now is None else now)
    assert info.value.code == code, info.value.message
    return info.value


AUTH_KINDS = ["v1", "v2", "v4", "sts-v1", "sts-v2", "sts-v4"]
KEYS = [
    "dir/a b.txt",
    "plus+sign",
    "100%/done",
    "a&b=c",
    "<tag>",
    "目录/文件 名.txt",
    "/leading/slash",
    "trailing/",
    "tilde~_.-*'()!",
    'quote"and\\back',
]


def _operations() -> dict[str, Callable[[oss2.Bucket], object]]:
    md5 = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    return {
        "get-range": lambda b: b.get_object(
            "dir/a b.txt", byte_range=(0, 99), headers={"x-oss-range-behavior": "standard"}
        ),
        "head-objectMeta": lambda b: b.get_object_meta("dir/a b.txt"),
        "head": lambda b: b.head_object("dir/a b.txt"),
        "list-v1-first": lambda b: b.list_objects(prefix="dir/", delimiter="/", max_keys=100),
        "list-v1-later": lambda b: b.list_objects(prefix="dir/", delimiter="/", marker="dir/b c"),
        "list-v2-first": lambda b: b.list_objects_v2(prefix="dir/", delimiter="/"),
        "list-v2-later": lambda b: b.list_objects_v2(
            prefix="dir/", delimiter="/", continuation_token="CgJiYw--", start_after="dir/a"
        ),
        "bucket-info": lambda b: b.get_bucket_info(),
        "get-symlink": lambda b: b.get_symlink("links/l 1"),
        "put-symlink": lambda b: b.put_symlink("target key+1", "links/l 1"),
        "put-object": lambda b: b.put_object(
            "up/load me.txt",
            b"data",
            headers={
                "Content-MD5": md5,
                "Content-Type": "text/plain",
                "x-oss-meta-owner": "me",
                "x-oss-storage-class": "Standard",
            },
        ),
        "get-process": lambda b: b.get_object("img.png", process="image/resize,w_100"),
        "delete": lambda b: b.delete_object("gone"),
        "restore": lambda b: b.restore_object("frozen"),
    }


OPERATIONS = _operations()


# -- documented vectors -------------------------------------------------------------------------


def _vector(
    method: str, key: str | None, query: tuple[tuple[str, str], ...], **headers: str
) -> SignedRequest:
    all_headers = {"date": VECTOR_DATE, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return SignedRequest(method, BUCKET, key, query, all_headers, "/")


@pytest.mark.parametrize(
    ("request_", "ak", "signature"),
    [
        (
            _vector("GET", "dir/a b.txt", (), x_oss_range_behavior="standard", range="bytes=0-99"),
            AK,
            "mM/K2VbN7pvxxoGcNFrG8r35L8A=",
        ),
        (
            _vector("HEAD", "dir/a b.txt", (("objectMeta", ""),)),
            AK,
            "Z+CrRPmuuY80qpu2YJ50LOlhS7E=",
        ),
        (
            _vector(
                "GET",
                None,
                (
                    ("list-type", "2"),
                    ("prefix", ""),
                    ("continuation-token", ""),
                    ("max-keys", "100"),
                    ("encoding-type", "url"),
                ),
            ),
            AK,
            "5H3WmzwWLyHjTJZQbMSxB7ecbAw=",
        ),
        (
            _vector("GET", "k", (), x_oss_security_token="TOKEN"),
            "STSDOC",
            "TwfFkfzzXjlOJynumuUv8tPNxxo=",
        ),
    ],
    ids=["get-range", "head-objectMeta", "list-v2-first", "sts"],
)
def test_authenticate_v1_documented_vectors(
    request_: SignedRequest, ak: str, signature: str
) -> None:
    credentials = {AK: Credential(AK, SECRET), "STSDOC": Credential("STSDOC", SECRET, "TOKEN")}
    request = with_headers(request_, authorization=f"OSS {ak}:{signature}")
    assert authenticate(request, credentials, now=VECTOR_NOW) == ak
    tampered = with_headers(request_, authorization=f"OSS {ak}:{signature[::-1]}")
    with pytest.raises(AuthError):
        authenticate(tampered, credentials, now=VECTOR_NOW)


V4_VECTOR_CANONICAL = (
    "GET\n/test-bucket/dir/a%20b.txt\n\nx-oss-content-sha256:UNSIGNED-PAYLOAD\n"
    "x-oss-date:20261125T120000Z\n\n\nUNSIGNED-PAYLOAD"
)
V4_VECTOR_SIGNATURE = "1f3fca35eddea35bfdc551ee3f396db0e0a13bd02bd9eb9e30146323135d0254"


def _v4_vector_request(authorization: str, **headers: str) -> SignedRequest:
    return SignedRequest(
        "GET",
        BUCKET,
        "dir/a b.txt",
        (),
        {
            "x-oss-date": "20261125T120000Z",
            "x-oss-content-sha256": "UNSIGNED-PAYLOAD",
            "range": "bytes=0-99",
            "authorization": authorization,
            **headers,
        },
        "/test-bucket/dir%2Fa%20b.txt",
    )


@pytest.mark.parametrize(
    "authorization",
    [
        f"OSS4-HMAC-SHA256 Credential={AK}/20261125/{REGION}/oss/aliyun_v4_request, "
        f"Signature={V4_VECTOR_SIGNATURE}",
        f"OSS4-HMAC-SHA256 Credential={AK}/20261125/{REGION}/oss/aliyun_v4_request,"
        f"Signature={V4_VECTOR_SIGNATURE}",
    ],
    ids=["oss2-spacing", "v2-sdk-no-space"],
)
def test_authenticate_v4_documented_vector(authorization: str) -> None:
    request = _v4_vector_request(authorization, date=VECTOR_DATE)
    assert authenticate(request, CREDENTIALS, now=VECTOR_NOW) == AK


def test_authenticate_v4_mismatch_reports_canonical_request() -> None:
    request = _v4_vector_request(
        f"OSS4-HMAC-SHA256 Credential={AK}/20261125/{REGION}/oss/aliyun_v4_request, "
        f"Signature={'0' * 64}"
    )
    error = expect_error(request, "SignatureDoesNotMatch", now=VECTOR_NOW)
    assert error.extra["CanonicalRequest"] == V4_VECTOR_CANONICAL
    assert error.extra["StringToSign"].startswith(
        f"OSS4-HMAC-SHA256\n20261125T120000Z\n20261125/{REGION}/oss/aliyun_v4_request\n"
    )
    assert error.extra["SignatureProvided"] == "0" * 64


# -- requests oss2 really sends -----------------------------------------------------------------


@pytest.mark.parametrize("kind", AUTH_KINDS)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_authenticate_accepts_oss2_operations(
    server: CaptureServer, kind: str, operation: str
) -> None:
    bucket = make_bucket(server, make_auth(kind))
    request = to_signed(server.capture(lambda: OPERATIONS[operation](bucket)))
    expected_ak = STS_AK if kind.startswith("sts") else AK
    assert authenticate(request, CREDENTIALS, now=time.time()) == expected_ak


@pytest.mark.parametrize("kind", AUTH_KINDS)
@pytest.mark.parametrize("key", KEYS)
def test_authenticate_accepts_awkward_keys(server: CaptureServer, kind: str, key: str) -> None:
    bucket = make_bucket(server, make_auth(kind))
    request = to_signed(server.capture(lambda: bucket.get_object(key, byte_range=(5, None))))
    assert request.key == key
    assert authenticate(request, CREDENTIALS, now=time.time()) in (AK, STS_AK)


@pytest.mark.parametrize("kind", AUTH_KINDS)
def test_authenticate_accepts_service_level_request(server: CaptureServer, kind: str) -> None:
    service = oss2.Service(make_auth(kind), server.endpoint, region=REGION)
    request = to_signed(server.capture(lambda: service.list_buckets(prefix="te")))
    assert request.bucket is None
    assert authenticate(request, CREDENTIALS, now=time.time()) in (AK, STS_AK)


@pytest.mark.parametrize("kind", ["v2", "v4"])
def test_authenticate_accepts_additional_headers(server: CaptureServer, kind: str) -> None:
    auth = make_auth(kind)
    req = oss2.http.Request(
        "GET",
        f"{server.endpoint}/{BUCKET}/k",
        headers={"Range": "bytes=0-9", "If-Modified-Since": VECTOR_DATE},
        region=REGION,
        product="oss",
    )
    auth._sign_request(req, BUCKET, "k", in_additional_headers=["range", "if-modified-since"])
    assert "AdditionalHeaders" in req.headers["authorization"]
    server.captured.clear()
    requests.request(req.method, req.url, params=req.params, headers=req.headers, timeout=10)
    request = to_signed(server.captured[0])
    assert authenticate(request, CREDENTIALS, now=time.time()) == AK
    tampered = with_headers(request, range="bytes=0-10")
    expect_error(tampered, "SignatureDoesNotMatch")


# -- presigned URLs -----------------------------------------------------------------------------


def _fetch(server: CaptureServer, url: str, method: str = "GET", **headers: str) -> SignedRequest:
    server.captured.clear()
    requests.request(method, url, headers=headers, timeout=10)
    assert len(server.captured) == 1
    return to_signed(server.captured[0])


@pytest.mark.parametrize("kind", AUTH_KINDS)
@pytest.mark.parametrize("key", ["dir/a b.txt", "目录/x+y&z=%.bin"])
def test_authenticate_accepts_presigned_url(server: CaptureServer, kind: str, key: str) -> None:
    bucket = make_bucket(server, make_auth(kind))
    url = bucket.sign_url("GET", key, 60, params={"response-content-type": "text/plain"})
    request = _fetch(server, url)
    assert request.key == key
    assert authenticate(request, CREDENTIALS, now=time.time()) in (AK, STS_AK)


@pytest.mark.parametrize("kind", AUTH_KINDS)
def test_authenticate_rejects_expired_presigned_url(server: CaptureServer, kind: str) -> None:
    bucket = make_bucket(server, make_auth(kind))
    request = _fetch(server, bucket.sign_url("GET", "k", 60))
    error = expect_error(request, "AccessDenied", now=time.time() + 3600)
    assert error.status == 403
    assert error.message == "Request has expired."
    assert set(error.extra) == {"Expires", "ServerTime"}


@pytest.mark.parametrize("kind", ["v1", "v2", "v4"])
def test_authenticate_presigned_url_signs_headers(server: CaptureServer, kind: str) -> None:
    bucket = make_bucket(server, make_auth(kind))
    url = bucket.sign_url(
        "PUT", "up", 60, headers={"Content-Type": "text/plain", "x-oss-meta-a": "1"}
    )
    good = _fetch(server, url, "PUT", **{"Content-Type": "text/plain", "x-oss-meta-a": "1"})
    assert authenticate(good, CREDENTIALS, now=time.time()) == AK
    bad = _fetch(server, url, "PUT", **{"Content-Type": "text/html", "x-oss-meta-a": "1"})
    expect_error(bad, "SignatureDoesNotMatch")


def test_authenticate_v4_presigned_url_with_additional_host(server: CaptureServer) -> None:
    bucket = make_bucket(server, make_auth("v4"))
    host = server.endpoint.removeprefix("http://")
    url = bucket.sign_url("GET", "k", 60, headers={"host": host}, additional_headers=["host"])
    assert "x-oss-additional-headers=host" in url
    request = _fetch(server, url)
    assert authenticate(request, CREDENTIALS, now=time.time()) == AK
    expect_error(with_headers(request, host="elsewhere:1"), "SignatureDoesNotMatch")


def test_authenticate_v4_presigned_url_from_the_future_is_refused(server: CaptureServer) -> None:
    request = _fetch(server, make_bucket(server, make_auth("v4")).sign_url("GET", "k", 3600))
    error = expect_error(request, "AccessDenied", now=time.time() - MAX_CLOCK_SKEW_S - 60)
    assert error.message != "Request has expired."


# -- refusals -----------------------------------------------------------------------------------


def _signed_with(
    server: CaptureServer, kind: str, ak: str = AK, secret: str = SECRET
) -> SignedRequest:
    bucket = make_bucket(server, make_auth(kind, ak, secret))
    return to_signed(
        server.capture(
            lambda: bucket.get_object("dir/x y", headers={"x-oss-range-behavior": "standard"})
        )
    )


@pytest.mark.parametrize("kind", ["v1", "v2", "v4"])
def test_authenticate_wrong_secret_is_signature_does_not_match(
    server: CaptureServer, kind: str
) -> None:
    request = _signed_with(server, kind, secret="not-the-secret")
    error = expect_error(request, "SignatureDoesNotMatch")
    assert error.status == 403
    assert error.message == (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    )
    assert error.extra["OSSAccessKeyId"] == AK
    string_to_sign = error.extra["StringToSign"]
    assert error.extra["StringToSignBytes"].split() == [f"{b:02X}" for b in string_to_sign.encode()]
    # Our StringToSign is exactly what the client signed: its signature verifies over it.
    provided = error.extra["SignatureProvided"]
    if kind == "v4":
        scope = string_to_sign.split("\n")[2].split("/")
        key = b"aliyun_v4not-the-secret"
        for part in scope:
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        assert hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest() == provided
    else:
        digest = hashlib.sha1 if kind == "v1" else hashlib.sha256
        mac = hmac.new(b"not-the-secret", string_to_sign.encode(), digest).digest()
        assert base64.b64encode(mac).decode() == provided


@pytest.mark.parametrize("kind", ["v1", "v2", "v4"])
def test_authenticate_unknown_access_key_is_invalid_access_key_id(
    server: CaptureServer, kind: str
) -> None:
    error = expect_error(_signed_with(server, kind, ak="NOBODY"), "InvalidAccessKeyId")
    assert error.status == 403
    assert error.message == "The OSS Access Key Id you provided does not exist in our records."
    assert error.extra == {"OSSAccessKeyId": "NOBODY"}


@pytest.mark.parametrize("kind", ["v1", "v2", "v4"])
def test_authenticate_skewed_clock_is_request_time_too_skewed(
    server: CaptureServer, kind: str
) -> None:
    request = _signed_with(server, kind)
    now = time.time()
    for offset in (-MAX_CLOCK_SKEW_S + 60, MAX_CLOCK_SKEW_S - 60):
        assert authenticate(request, CREDENTIALS, now=now + offset) == AK
    for offset in (-MAX_CLOCK_SKEW_S - 60, MAX_CLOCK_SKEW_S + 60):
        error = expect_error(request, "RequestTimeTooSkewed", now=now + offset)
        assert error.status == 403
        assert error.message == (
            "The difference between the request time and the current time is too large."
        )
        assert error.extra["MaxAllowedSkewMilliseconds"] == "900000"


@pytest.mark.parametrize("kind", ["v1", "v2", "v4"])
def test_authenticate_missing_date_is_access_denied(server: CaptureServer, kind: str) -> None:
    request = with_headers(_signed_with(server, kind), date=None, x_oss_date=None)
    error = expect_error(request, "AccessDenied")
    assert error.status == 403


def test_authenticate_unsigned_request_is_anonymous(server: CaptureServer) -> None:
    bucket = oss2.Bucket(oss2.AnonymousAuth(), server.endpoint, BUCKET)
    request = to_signed(server.capture(lambda: bucket.get_object("dir/a b.txt")))
    assert "authorization" not in request.headers
    assert authenticate(request, CREDENTIALS, now=time.time()) is None
    listing = to_signed(server.capture(lambda: bucket.list_objects_v2(prefix="a")))
    assert authenticate(listing, CREDENTIALS, now=time.time()) is None


@pytest.mark.parametrize(
    "authorization",
    [
        "OSS AKID",
        "OSS :sig",
        "OSS AKID:",
        "Bearer abc",
        "",
        "OSS4-HMAC-SHA256 Signature=abc",
        "OSS4-HMAC-SHA256 Credential=AKID/2026/cn-hangzhou/oss/aliyun_v4_request, Signature=ab",
        "OSS4-HMAC-SHA256 Credential=AKID/20261125/cn/oss/aliyun_v4_request; Signature=ab",
        "OSS2 AccessKeyId:AKID",
        "OSS2 AccessKeyId:AKID,Signature:x,UnknownKey:ABC",
    ],
)
def test_authenticate_malformed_authorization_is_invalid_argument(authorization: str) -> None:
    request = SignedRequest(
        "GET", BUCKET, "k", (), {"date": VECTOR_DATE, "authorization": authorization}, "/"
    )
    error = expect_error(request, "InvalidArgument", now=VECTOR_NOW)
    assert error.status == 400
    assert error.extra["ArgumentName"] == "Authorization"


# -- STS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["v1", "v2", "v4"])
def test_authenticate_sts_key_without_token_is_invalid_access_key_id(
    server: CaptureServer, kind: str
) -> None:
    request = _signed_with(server, kind, ak=STS_AK, secret=STS_SECRET)
    assert "x-oss-security-token" not in request.headers
    error = expect_error(request, "InvalidAccessKeyId")
    assert error.message.endswith(
        "The Security Token may be lost to specify that it is a STS Access Id."
    )
    assert error.extra == {"OSSAccessKeyId": STS_AK}


@pytest.mark.parametrize("kind", ["sts-v1", "sts-v2", "sts-v4"])
def test_authenticate_sts_wrong_token_is_invalid_security_token(
    server: CaptureServer, kind: str
) -> None:
    request = to_signed(
        server.capture(lambda: make_bucket(server, make_auth(kind)).get_object("k"))
    )
    credentials = {STS_AK: Credential(STS_AK, STS_SECRET, "another token")}
    with pytest.raises(AuthError) as info:
        authenticate(request, credentials, now=time.time())
    assert info.value.code == "InvalidSecurityToken"
    assert info.value.status == 403


@pytest.mark.parametrize("kind", ["sts-v1", "sts-v2", "sts-v4"])
def test_authenticate_token_for_long_term_key_is_invalid_access_key_id(
    server: CaptureServer, kind: str
) -> None:
    request = to_signed(
        server.capture(lambda: make_bucket(server, make_auth(kind)).get_object("k"))
    )
    credentials = {STS_AK: Credential(STS_AK, STS_SECRET)}
    with pytest.raises(AuthError) as info:
        authenticate(request, credentials, now=time.time())
    assert info.value.code == "InvalidAccessKeyId"


@pytest.mark.parametrize("kind", ["sts-v1", "sts-v4"])
def test_authenticate_sts_presigned_url_without_token_is_refused(
    server: CaptureServer, kind: str
) -> None:
    url = make_bucket(server, make_auth(kind)).sign_url("GET", "k", 60)
    request = _fetch(server, url)
    stripped = replace(
        request,
        query=tuple(
            (k, v) for k, v in request.query if k not in ("security-token", "x-oss-security-token")
        ),
    )
    expect_error(stripped, "InvalidAccessKeyId")


# -- properties ---------------------------------------------------------------------------------

# "." and ".." cannot travel as keys: HTTP clients remove such dot segments from the path.
_keys = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30).filter(
    lambda key: key not in (".", "..")
)


@settings(deadline=None, max_examples=60)
@given(key=_keys, kind=st.sampled_from(["v1", "v2", "v4"]), flip=st.integers(0, len(SECRET) - 1))
def test_authenticate_property_oss2_signed_keys_verify_only_with_the_right_secret(
    server: CaptureServer, key: str, kind: str, flip: int
) -> None:
    bucket = make_bucket(server, make_auth(kind))
    request = to_signed(server.capture(lambda: bucket.get_object(key, byte_range=(0, 9))))
    assert request.key == key
    now = time.time()
    assert authenticate(request, CREDENTIALS, now=now) == AK
    flipped = bytearray(SECRET.encode())
    flipped[flip] ^= 0x01
    wrong = {AK: Credential(AK, flipped.decode())}
    with pytest.raises(AuthError) as info:
        authenticate(request, wrong, now=now)
    assert info.value.code == "SignatureDoesNotMatch"
