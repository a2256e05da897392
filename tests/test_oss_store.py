"""Tests of `ossfs.store.oss_store`.

Unit tests drive the real oss2 code path through a scripted transport (no network): they
check what goes on the wire (headers, ranges, signatures) and how every answer
is checked, retried and translated. Integration tests against the local emulator follow.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ossfs.core.crc64 import crc64
from ossfs.core.deadline import seconds_left
from ossfs.core.errors import (
    AccessDeniedError,
    ArchivedError,
    IntegrityError,
    NotFoundError,
    RemoteIOError,
    StaleError,
    UsageError,
)
from ossfs.core.object_store import Piece
from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
from ossfs.net.environ import environ_proxies
from ossfs.net.http_api import Headers, HttpRequest, TransferError
from ossfs.store.config import OssConfig
from ossfs.store.latency import SAMPLES as LATENCY_SAMPLES
from ossfs.store.oss_store import OssStore
from ossfs.store.retry import Retrier, RetryPolicy
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET
from tests.support import BUCKET as SUPPORT_BUCKET

ENDPOINT = "http://127.0.0.1:9"
BUCKET = "test-bucket"
ETAG = "6F5902AC237024BDD0C176CB93063DC4"
LAST_MODIFIED = "Wed, 25 Nov 2026 23:26:29 GMT"
LAST_MODIFIED_NS = 1795649189 * 1_000_000_000
DATA = bytes(range(256)) * 4  # 1024 bytes


# -- a scripted transport -------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted HTTP answer. ``body_sent`` < len(body) simulates a connection cut mid-body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    body_sent: int | None = None


Handler = Callable[[HttpRequest], "Reply | Exception"]


class ScriptedResponse:
    """An answer from a `Reply`: a body cut short (``body_sent``) raises `TransferError` (18)
    where it ends, as the engine does. ``release(True)`` once the body was read to its end,
    ``release(False)`` on a close before that."""

    def __init__(self, reply: Reply, head: bool, release: Callable[[bool], None]) -> None:
        headers = {"x-oss-request-id": "REQ123", **reply.headers}
        headers.setdefault("Content-Length", str(len(reply.body)))
        self.status = reply.status
        self.headers = Headers((k.lower(), v) for k, v in headers.items())
        self.request_id = "REQ123"
        self._body = b"" if head else reply.body
        self._sent = len(self._body) if reply.body_sent is None else reply.body_sent
        self._pos = 0
        self._release: Callable[[bool], None] | None = release
        if not self._body:
            self._done(True)

    @property
    def response(self) -> ScriptedResponse:
        return self

    def readinto(self, buffer: memoryview, /) -> int:
        if self._pos >= len(self._body):
            self._done(True)
            return 0
        if self._pos >= self._sent:
            self._done(False)
            raise TransferError(18, "transfer closed with outstanding read data remaining")
        got = min(len(buffer), self._sent - self._pos)
        buffer[:got] = self._body[self._pos : self._pos + got]
        self._pos += got
        if self._pos == len(self._body):
            self._done(True)
        return got

    def read(self, amt: int | None = None, /) -> bytes:
        buffer = bytearray(len(self._body) if amt is None else amt)
        view, got = memoryview(buffer), 0
        while got < len(buffer) and (n := self.readinto(view[got:])):
            got += n
        return bytes(buffer[:got])

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(8192):
            yield chunk

    def close(self) -> None:
        self._done(False)

    def _done(self, whole: bool) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(whole)


class ScriptedTransport:
    """A transport that answers from a handler and records requests, and the seconds left of
    the caller's deadline when each was sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []
        self.seconds_left: list[float | None] = []
        self.released: list[bool] = []
        self._lock = threading.Lock()

    def send(self, request: HttpRequest) -> ScriptedResponse:
        with self._lock:
            self.requests.append(request)
            self.seconds_left.append(seconds_left())
        reply = self.handler(request)
        if isinstance(reply, Exception):
            raise reply
        return ScriptedResponse(reply, request.method == "HEAD", self.released.append)

    def close(self) -> None:
        pass


def header(request: HttpRequest, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name.lower())


def object_headers(size: int = len(DATA), **extra: str) -> dict[str, str]:
    headers = {
        "ETag": f'"{ETAG}"',
        "Last-Modified": LAST_MODIFIED,
        "x-oss-object-type": "Normal",
        "x-oss-storage-class": "Standard",
        "x-oss-hash-crc64ecma": "14969823782951187105",
        "Content-Type": "application/octet-stream",
    }
    headers.update(extra)
    return headers


def error_reply(status: int, code: str, message: str = "msg") -> Reply:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>REQ123</RequestId></Error>"
    ).encode()
    return Reply(status, {"Content-Type": "application/xml"}, body)


def range_reply(data: bytes, request: HttpRequest, **extra: str) -> Reply:
    """Serve a standard-behaviour ``bytes=S-E`` / ``bytes=S-`` request from ``data``."""
    rng = header(request, "range")
    if rng is None:
        return Reply(200, object_headers(len(data), **extra), data)
    first_text, last_text = rng.removeprefix("bytes=").split("-")
    first = int(first_text)
    last = min(int(last_text), len(data) - 1) if last_text else len(data) - 1
    if first >= len(data):
        return error_reply(416, "InvalidRange")
    hdrs = object_headers(len(data), **extra)
    hdrs["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
    return Reply(206, hdrs, data[first : last + 1])


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_store(
    handler: Handler,
    *,
    policy: RetryPolicy | None = None,
    fake: FakeTime | None = None,
    region: str | None = None,
    security_token: str | None = None,
    connect_timeout_s: float = 10.0,
) -> tuple[OssStore, ScriptedTransport]:
    adapter = ScriptedTransport(handler)
    fake = fake or FakeTime()
    policy = policy or RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.1)
    cfg = OssConfig(
        endpoint=ENDPOINT,
        bucket=BUCKET,
        access_key_id="AKID",
        access_key_secret="SECRET",
        region=region,
        security_token=security_token,
        connect_timeout_s=connect_timeout_s,
    )
    retrier = Retrier(policy, sleep=fake.sleep, clock=fake.clock, rand=lambda: 0.5)
    return OssStore(cfg, retrier=retrier, transport=adapter), adapter


def test_oss_config_validates_and_hides_secrets() -> None:
    with pytest.raises(UsageError):
        OssConfig(endpoint=ENDPOINT, bucket=BUCKET, access_key_id="AK")
    with pytest.raises(UsageError):
        OssConfig(endpoint=ENDPOINT, bucket=BUCKET, security_token="T")
    with pytest.raises(UsageError):
        OssConfig(endpoint=ENDPOINT, bucket=BUCKET, low_speed_time_s=0)
    with pytest.raises(UsageError):
        OssConfig(endpoint=ENDPOINT, bucket=BUCKET, low_speed_limit_bytes=0)
    with pytest.raises(UsageError):
        OssConfig(endpoint="", bucket=BUCKET)
    cfg = OssConfig(
        endpoint=ENDPOINT,
        bucket=BUCKET,
        access_key_id="AK",
        access_key_secret="TOPSECRET",
        security_token="TOKENVALUE",
    )
    assert "TOPSECRET" not in repr(cfg)
    assert "TOKENVALUE" not in repr(cfg)
    assert OssConfig(endpoint=ENDPOINT, bucket=BUCKET).anonymous


def test_oss_store_rejects_invalid_endpoint() -> None:
    with pytest.raises(UsageError):
        OssStore(OssConfig(endpoint="http://[::1]:9000", bucket=BUCKET))
    with pytest.raises(UsageError):
        OssStore(OssConfig(endpoint=ENDPOINT, bucket="Bad_Bucket"))


# -- wire behaviour through the scripted transport ------------------------------------------------


def test_oss_store_sends_every_request_within_the_retry_budget() -> None:
    """Each request is sent inside a deadline of the operation's retry budget (the engine
    ends every wait by then); outside an operation there is none."""
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.0, max_delay_s=0.0, total_budget_s=7.0)
    store, adapter = make_store(lambda r: range_reply(DATA, r), policy=policy)
    store.get_range("k", 0, 10)
    store.head("k")
    assert len(adapter.seconds_left) == 2
    assert all(left is not None and 0 < left <= 7.0 for left in adapter.seconds_left)
    assert seconds_left() is None


def test_oss_store_sends_oss2s_headers_and_nothing_of_its_own() -> None:
    store, adapter = make_store(lambda r: range_reply(DATA, r))
    store.get_range("k", 0, 10, etag="6F5902AC237024BDD0C176CB93063DC4")
    sent = adapter.requests[0]
    assert sent.method == "GET" and str(sent.url).endswith("/k")
    assert header(sent, "If-Match") == '"6F5902AC237024BDD0C176CB93063DC4"'
    assert header(sent, "Range") == "bytes=0-9"
    assert str(header(sent, "User-Agent")).startswith("aliyun-sdk-python")
    # oss2's None means "do not send"; the engine asks for no encoding either (identity).
    assert header(sent, "Accept-Encoding") is None
    assert header(sent, "Cookie") is None and sent.body == b""
    assert set(adapter.released) == {True}  # the body was read to its end: connection kept


def test_oss_store_encodes_oss2s_params_as_signed() -> None:
    """An empty param value goes out as ``name=`` and the signature covers it (V1)."""

    def handler(request: HttpRequest) -> Reply:
        return Reply(200, {**object_headers(), "x-oss-symlink-target": "t%20x"})

    store, adapter = make_store(handler)
    assert store.symlink_target("link") == "t x"
    assert str(adapter.requests[0].url).endswith("/link?symlink=")


def test_oss_store_reads_proxies_once_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: EmulatorServer
) -> None:
    """HTTP_PROXY is read when the store is built (not per request) and used: the endpoint's
    name does not resolve, only the proxy (the emulator, which takes absolute-URI requests)
    can answer. A ~/.netrc entry for the host must not replace the OSS signature."""
    emulator.put_object(SUPPORT_BUCKET, "p.txt", b"through the proxy")
    port = emulator.endpoint.rsplit(":", 1)[1]
    (tmp_path / ".netrc").write_text("machine oss-test.invalid login user password secret\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HTTP_PROXY", emulator.endpoint)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    config = OssConfig(
        endpoint=f"http://oss-test.invalid:{port}",
        bucket=SUPPORT_BUCKET,
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=ACCESS_KEY_SECRET,
    )
    with OssStore(config, proxies=environ_proxies) as store:
        monkeypatch.setenv("HTTP_PROXY", "http://changed.invalid:1")  # too late
        assert store.get_range("p.txt", 0, 7) == b"through"
        assert store.head("p.txt").size == 17
    with OssStore(config) as direct, pytest.raises(RemoteIOError):
        direct.get_range("p.txt", 0, 7)  # no proxy: the name does not resolve


def test_oss_store_no_proxy_exempts_the_endpoint(
    monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer
) -> None:
    """NO_PROXY names the endpoint's host: requests go straight there, past a proxy that
    does not exist."""
    emulator.put_object(SUPPORT_BUCKET, "np.txt", b"straight there")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("no_proxy", raising=False)
    config = OssConfig(
        endpoint=emulator.endpoint,
        bucket=SUPPORT_BUCKET,
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=ACCESS_KEY_SECRET,
    )
    with OssStore(config, proxies=environ_proxies) as store:
        assert store.get_range("np.txt", 0, 8) == b"straight"
    monkeypatch.setenv("NO_PROXY", "example.invalid")
    with OssStore(config, proxies=environ_proxies) as store, pytest.raises(RemoteIOError):
        store.get_range("np.txt", 0, 8)  # not exempt: the missing proxy is tried


def test_oss_store_rejects_unusable_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "ftp://user:pw@proxy.invalid:21")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(UsageError) as info:
        OssStore(
            OssConfig(endpoint="https://oss-cn-hangzhou.aliyuncs.com", bucket=BUCKET),
            proxies=environ_proxies,
        )
    assert "socks5h://" in str(info.value) and "pw" not in str(info.value)


@pytest.mark.parametrize(
    ("region", "token", "auth_prefix"),
    [
        (None, None, "OSS AKID:"),
        ("cn-hangzhou", None, "OSS4-HMAC-SHA256 Credential=AKID/"),
        (None, "STS-TOKEN", "OSS AKID:"),
        ("cn-hangzhou", "STS-TOKEN", "OSS4-HMAC-SHA256 Credential=AKID/"),
    ],
)
def test_oss_store_signs_with_configured_auth(
    region: str | None, token: str | None, auth_prefix: str
) -> None:
    store, adapter = make_store(lambda r: range_reply(DATA, r), region=region, security_token=token)
    store.get_range("k", 0, 10)
    sent = adapter.requests[0]
    assert str(header(sent, "authorization")).startswith(auth_prefix)
    assert header(sent, "x-oss-security-token") == token


def test_oss_store_anonymous_sends_no_authorization() -> None:
    adapter = ScriptedTransport(lambda r: range_reply(DATA, r))
    store = OssStore(OssConfig(endpoint=ENDPOINT, bucket=BUCKET), transport=adapter)
    assert store.get_range("k", 0, 10) == DATA[:10]
    assert header(adapter.requests[0], "authorization") is None


def test_get_range_sends_inclusive_range_standard_behaviour_and_if_match() -> None:
    store, adapter = make_store(lambda r: range_reply(DATA, r))
    assert store.get_range("dir/a b+c.txt", 100, 200, etag=ETAG) == DATA[100:200]
    sent = adapter.requests[0]
    assert sent.method == "GET"
    assert sent.url == f"{ENDPOINT}/{BUCKET}/dir%2Fa%20b%2Bc.txt"
    assert header(sent, "range") == "bytes=100-199"
    assert header(sent, "x-oss-range-behavior") == "standard"
    assert header(sent, "If-Match") == f'"{ETAG}"'
    stats = store.stats()
    assert stats["requests.get"] == 1
    assert stats["bytes_fetched"] == 100


def test_get_range_empty_range_sends_nothing() -> None:
    store, adapter = make_store(lambda r: range_reply(DATA, r))
    assert store.get_range("k", 5, 5) == b""
    assert adapter.requests == []
    with pytest.raises(ValueError):
        store.get_range("k", 5, 4)


def test_get_range_whole_object_answer_is_integrity_error() -> None:
    store, _ = make_store(lambda r: Reply(200, object_headers(), DATA))
    with pytest.raises(IntegrityError, match="206"):
        store.get_range("k", 0, 10)


def test_get_range_past_end_is_integrity_error() -> None:
    store, _ = make_store(lambda r: range_reply(DATA, r))
    with pytest.raises(IntegrityError):
        store.get_range("k", 1000, 1100)


def test_get_range_resumes_broken_body_with_pinned_etag() -> None:
    piece = 1 << 20
    big = bytes(range(251)) * (3 * piece // 251 + 1)  # three MiB and a bit
    calls: list[int] = []

    def handler(request: HttpRequest) -> Reply:
        reply = range_reply(big, request)
        calls.append(1)
        if len(calls) == 1:
            reply.body_sent = 2 * piece + 300  # cut in the third MiB
        return reply

    store, adapter = make_store(handler)
    end = len(big) - 10
    assert store.get_range("k", 10, end) == big[10:end]
    ranges = [header(r, "range") for r in adapter.requests]
    assert len(ranges) == 2 and ranges[0] == f"bytes=10-{end - 1}"
    # Resumed exactly where the body broke; never from the start.
    assert ranges[1] == f"bytes={10 + 2 * piece + 300}-{end - 1}"
    # No etag from the caller: the first response's version is pinned for the resumed request.
    assert header(adapter.requests[0], "If-Match") is None
    assert header(adapter.requests[1], "If-Match") == f'"{ETAG}"'
    assert store.stats()["retries.get"] == 1
    assert store.stats()["bytes_fetched"] == end - 10


def test_get_range_retries_server_errors_then_succeeds() -> None:
    replies = iter([error_reply(503, "SlowDown"), error_reply(500, "InternalError")])

    def handler(request: HttpRequest) -> Reply:
        return next(replies, None) or range_reply(DATA, request)

    fake = FakeTime()
    store, adapter = make_store(handler, fake=fake)
    assert store.get_range("k", 0, 64) == DATA[:64]
    assert len(adapter.requests) == 3
    assert store.stats()["retries"] == 2
    assert len(fake.sleeps) == 2


def test_get_range_connection_refused_gives_remote_io_error_within_budget() -> None:
    fake = FakeTime()
    policy = RetryPolicy(max_attempts=100, base_delay_s=0.5, max_delay_s=1.0, total_budget_s=3.0)
    store, _ = make_store(
        lambda r: TransferError(7, "Failed to connect: refused"), policy=policy, fake=fake
    )
    with pytest.raises(RemoteIOError) as info:
        store.get_range("k", 0, 10)
    assert type(info.value) is RemoteIOError
    assert ENDPOINT in str(info.value)
    assert fake.now <= 3.0
    assert store.stats()["gave_up.get"] == 1
    assert store.stats()["errors.RemoteIOError"] == 1


@pytest.mark.parametrize(
    ("reply", "expected", "code"),
    [
        (error_reply(404, "NoSuchKey"), NotFoundError, "NoSuchKey"),
        (error_reply(404, "NoSuchBucket"), NotFoundError, "NoSuchBucket"),
        (error_reply(403, "AccessDenied"), AccessDeniedError, "AccessDenied"),
        (error_reply(403, "SignatureDoesNotMatch"), AccessDeniedError, "SignatureDoesNotMatch"),
        (error_reply(403, "InvalidObjectState"), ArchivedError, "InvalidObjectState"),
        (error_reply(412, "PreconditionFailed"), StaleError, "PreconditionFailed"),
    ],
)
def test_get_range_maps_errors_without_retrying(
    reply: Reply, expected: type[Exception], code: str
) -> None:
    store, adapter = make_store(lambda r: reply)
    with pytest.raises(expected) as info:
        store.get_range("dir/k", 0, 10, etag=ETAG)
    assert type(info.value) is expected
    assert code in str(info.value)
    assert "REQ123" in str(info.value)
    assert len(adapter.requests) == 1


def test_get_range_416_at_end_of_object_is_eof() -> None:
    def handler(request: HttpRequest) -> Reply:
        if request.method == "HEAD":
            return Reply(200, {**object_headers(), "Content-Length": str(len(DATA))}, b"")
        return range_reply(DATA, request)

    store, adapter = make_store(handler)
    assert store.get_range("k", len(DATA), len(DATA) + 10, etag=ETAG) == b""
    assert [r.method for r in adapter.requests] == ["GET", "HEAD"]


def test_get_range_416_inside_object_is_integrity_error() -> None:
    def handler(request: HttpRequest) -> Reply:
        if request.method == "HEAD":
            return Reply(200, {**object_headers(), "Content-Length": "5000"}, b"")
        return error_reply(416, "InvalidRange")

    store, _ = make_store(handler)
    with pytest.raises(IntegrityError):
        store.get_range("k", 2000, 2010)


def test_head_builds_object_meta_from_headers() -> None:
    def handler(request: HttpRequest) -> Reply:
        assert request.method == "HEAD"
        hdrs = object_headers()
        hdrs.update({"Content-Length": "1024", "x-oss-meta-Owner": "me"})
        return Reply(200, hdrs, b"")

    store, _ = make_store(handler)
    meta = store.head("a.bin")
    assert (meta.size, meta.etag, meta.mtime_ns) == (1024, ETAG, LAST_MODIFIED_NS)
    assert meta.crc64 == 14969823782951187105
    assert meta.user_meta == (("owner", "me"),)


def test_head_missing_key_is_not_found() -> None:
    store, _ = make_store(lambda r: Reply(404, {}, b""))
    with pytest.raises(NotFoundError, match="'nope'"):
        store.head("nope")
    assert store.stats()["errors.NotFoundError"] == 1


LIST_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult>
  <Name>test-bucket</Name><Prefix>dir%2F</Prefix><MaxKeys>2</MaxKeys><Delimiter>%2F</Delimiter>
  <EncodingType>url</EncodingType><IsTruncated>{truncated}</IsTruncated>{next}
  <Contents>
    <Key>dir%2Fb%20c.txt</Key><LastModified>2020-05-18T05:45:54.000Z</LastModified>
    <ETag>"35A27C2B9EAEEB6F48FD7FB5861D0000"</ETag><Type>Normal</Type><Size>25</Size>
    <StorageClass>Archive</StorageClass><RestoreInfo>ongoing-request="true"</RestoreInfo>
  </Contents>
  <CommonPrefixes><Prefix>dir%2Fsub%2F</Prefix></CommonPrefixes>
  <KeyCount>2</KeyCount>
</ListBucketResult>"""


def test_list_page_parses_objects_prefixes_and_token() -> None:
    body = LIST_XML.format(
        truncated="true", next="<NextContinuationToken>CgJiYw--</NextContinuationToken>"
    )
    store, adapter = make_store(
        lambda r: Reply(200, {"Content-Type": "application/xml"}, body.encode())
    )
    page = store.list_page("dir/", token="tok", max_keys=2)
    assert page.next_token == "CgJiYw--"
    assert page.prefixes == ("dir/sub/",)
    (obj,) = page.objects
    assert obj.key == "dir/b c.txt"
    assert obj.size == 25
    assert obj.etag == "35A27C2B9EAEEB6F48FD7FB5861D0000"
    assert obj.mtime_ns == 1589780754 * 1_000_000_000
    assert obj.storage_class == "Archive"
    assert obj.restore == 'ongoing-request="true"'
    assert obj.is_frozen
    url = str(adapter.requests[0].url)
    assert "continuation-token=tok" in url
    assert "max-keys=2" in url
    assert "list-type=2" in url


def test_list_page_last_page_has_no_token() -> None:
    body = LIST_XML.format(truncated="false", next="")
    store, _ = make_store(lambda r: Reply(200, {}, body.encode()))
    assert store.list_page("dir/").next_token is None


def test_list_page_malformed_xml_is_remote_io_error() -> None:
    store, _ = make_store(lambda r: Reply(200, {}, b"<ListBucketResult><oops"))
    with pytest.raises(RemoteIOError):
        store.list_page("")


def test_probe_no_such_bucket_is_not_found_naming_bucket() -> None:
    store, adapter = make_store(lambda r: error_reply(404, "NoSuchBucket"))
    with pytest.raises(NotFoundError, match=f"bucket '{BUCKET}' does not exist"):
        store.probe()
    assert "max-keys=1" in str(adapter.requests[0].url)


def test_probe_unreachable_endpoint_is_remote_io_error() -> None:
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.01)
    store, _ = make_store(lambda r: TransferError(7, "refused"), policy=policy)
    with pytest.raises(RemoteIOError, match=r"127\.0\.0\.1:9"):
        store.probe()


def test_symlink_target_reads_header() -> None:
    def handler(request: HttpRequest) -> Reply:
        assert "symlink" in str(request.url)
        return Reply(200, {"x-oss-symlink-target": "dir%2Ftarget%20x", "ETag": '"E"'}, b"")

    store, _ = make_store(handler)
    assert store.symlink_target("link") == "dir/target x"


def test_stream_from_start_yields_all_chunks_and_meta() -> None:
    store, adapter = make_store(lambda r: range_reply(DATA, r))
    meta, chunks = store.stream("k", chunk_bytes=300)
    assert meta.size == len(DATA)
    assert meta.etag == ETAG
    parts = list(chunks)
    assert b"".join(parts) == DATA
    assert [len(p) for p in parts] == [300, 300, 300, 124]
    assert header(adapter.requests[0], "range") is None


def test_stream_from_offset_uses_open_range_and_total_size() -> None:
    store, adapter = make_store(lambda r: range_reply(DATA, r))
    meta, chunks = store.stream("k", start=1000, etag=ETAG)
    assert meta.size == len(DATA)
    assert b"".join(chunks) == DATA[1000:]
    sent = adapter.requests[0]
    assert header(sent, "range") == "bytes=1000-"
    assert header(sent, "x-oss-range-behavior") == "standard"
    assert header(sent, "If-Match") == f'"{ETAG}"'


def test_stream_at_end_of_object_is_empty() -> None:
    def handler(request: HttpRequest) -> Reply:
        if request.method == "HEAD":
            return Reply(200, {**object_headers(), "Content-Length": str(len(DATA))}, b"")
        return range_reply(DATA, request)

    store, _ = make_store(handler)
    meta, chunks = store.stream("k", start=len(DATA))
    assert meta.size == len(DATA)
    assert list(chunks) == []


def test_stream_broken_body_raises_remote_io_error_mid_stream() -> None:
    def handler(request: HttpRequest) -> Reply:
        reply = range_reply(DATA, request)
        reply.body_sent = 500
        return reply

    store, _ = make_store(handler)
    _, chunks = store.stream("k", chunk_bytes=256)
    got = bytearray(next(chunks))
    assert got == DATA[:256]
    with pytest.raises(RemoteIOError) as info:
        for chunk in chunks:
            got += chunk
    # Whatever arrived before the break is the object's prefix, and the error says where.
    assert DATA.startswith(bytes(got)) and 256 <= len(got) <= 500
    assert f"offset {len(got)}" in str(info.value)


# -- integration with the local emulator ----------------------------------------------------------

EMU_AK = ACCESS_KEY_ID
EMU_SECRET = ACCESS_KEY_SECRET
STS_AK = "STS.test-key"
STS_SECRET = "sts-secret"
STS_TOKEN = "sts-token/with+odd=chars"
EMU_BUCKET = SUPPORT_BUCKET
BLOB = bytes(range(251)) * 1200  # 301,200 bytes: several body pieces


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One emulator for this module (the shared ``emulator`` fixture has no STS credential)."""
    config = EmulatorConfig(
        data_dir=tmp_path_factory.mktemp("oss-store-emulator"),
        buckets=(EMU_BUCKET,),
        credentials=(
            Credential(EMU_AK, EMU_SECRET),
            Credential(STS_AK, STS_SECRET, STS_TOKEN),
        ),
    )
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
def server(emu: EmulatorServer) -> Iterator[EmulatorServer]:
    """The shared emulator with faults cleared before and after the test."""
    emu.faults.clear()
    yield emu
    emu.faults.clear()


def emu_store(
    server: EmulatorServer,
    *,
    bucket: str = EMU_BUCKET,
    secret: str = EMU_SECRET,
    policy: RetryPolicy | None = None,
    region: str | None = None,
    sts: bool = False,
    endpoint: str | None = None,
    low_speed_time_s: int = 5,
) -> OssStore:
    config = OssConfig(
        endpoint=endpoint or server.endpoint,
        bucket=bucket,
        access_key_id=STS_AK if sts else EMU_AK,
        access_key_secret=STS_SECRET if sts else secret,
        security_token=STS_TOKEN if sts else None,
        region=region,
        connect_timeout_s=2.0,
        low_speed_time_s=low_speed_time_s,
        pool_size=4,
        retry=policy or RetryPolicy(max_attempts=8, base_delay_s=0.001, max_delay_s=0.01),
    )
    return OssStore(config)


def test_emulator_round_trip_every_method(server: EmulatorServer) -> None:
    etag = server.put_object(EMU_BUCKET, "rt/a b+c.bin", BLOB, user_meta={"owner": "me"})
    server.put_object(EMU_BUCKET, "rt/sub/x", b"x")
    server.put_symlink(EMU_BUCKET, "rt/link", "rt/a b+c.bin")
    with emu_store(server) as store:
        store.probe()
        meta = store.head("rt/a b+c.bin")
        assert (meta.size, meta.etag) == (len(BLOB), etag)
        assert meta.crc64 == crc64(BLOB)
        assert meta.user_meta == (("owner", "me"),)
        assert store.get_range("rt/a b+c.bin", 0, len(BLOB), etag=etag) == BLOB
        page = store.list_page("rt/")
        assert page.prefixes == ("rt/sub/",)
        listed = {o.key: o for o in page.objects}
        assert listed["rt/a b+c.bin"].size == len(BLOB)
        assert listed["rt/a b+c.bin"].etag == etag
        assert listed["rt/link"].object_type == "Symlink"
        assert store.symlink_target("rt/link") == "rt/a b+c.bin"
        smeta, chunks = store.stream("rt/a b+c.bin", start=1000, chunk_bytes=65536)
        assert smeta.size == len(BLOB)
        assert smeta.crc64 == crc64(BLOB)
        assert b"".join(chunks) == BLOB[1000:]


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 1), (0, len(BLOB)), (len(BLOB) - 1, len(BLOB)), (12345, 12346), (100, 200_000)],
)
def test_emulator_get_range_edges(server: EmulatorServer, start: int, end: int) -> None:
    etag = server.put_object(EMU_BUCKET, "edges.bin", BLOB)
    with emu_store(server) as store:
        assert store.get_range("edges.bin", start, end, etag=etag) == BLOB[start:end]


def test_emulator_get_range_at_or_past_end_is_eof(server: EmulatorServer) -> None:
    etag = server.put_object(EMU_BUCKET, "eof.bin", b"0123456789")
    with emu_store(server) as store:
        assert store.get_range("eof.bin", 10, 20, etag=etag) == b""
        assert store.get_range("eof.bin", 50, 60) == b""
        with pytest.raises(IntegrityError):
            store.get_range("eof.bin", 5, 20, etag=etag)


def test_emulator_empty_object(server: EmulatorServer) -> None:
    server.put_object(EMU_BUCKET, "empty", b"")
    with emu_store(server) as store:
        assert store.head("empty").size == 0
        meta, chunks = store.stream("empty")
        assert meta.size == 0
        assert list(chunks) == []


def test_emulator_if_match_after_replacement_is_stale(server: EmulatorServer) -> None:
    old = server.put_object(EMU_BUCKET, "replaced", b"old contents")
    server.put_object(EMU_BUCKET, "replaced", b"new contents!")
    with emu_store(server) as store:
        with pytest.raises(StaleError, match="PreconditionFailed"):
            store.get_range("replaced", 0, 5, etag=old)
        with pytest.raises(StaleError):
            store.stream("replaced", start=2, etag=old)


def test_emulator_missing_key_and_bucket(server: EmulatorServer) -> None:
    with emu_store(server) as store:
        with pytest.raises(NotFoundError, match="NoSuchKey"):
            store.get_range("no/such/key", 0, 10)
        with pytest.raises(NotFoundError, match="'no/such/key'"):
            store.head("no/such/key")
    with (
        emu_store(server, bucket="no-such-bucket") as store,
        pytest.raises(NotFoundError, match="bucket 'no-such-bucket' does not exist"),
    ):
        store.probe()


def test_emulator_wrong_secret_is_access_denied(server: EmulatorServer) -> None:
    server.put_object(EMU_BUCKET, "secret.txt", b"x")
    with emu_store(server, secret="wrong") as store:
        with pytest.raises(AccessDeniedError, match="SignatureDoesNotMatch"):
            store.probe()
        with pytest.raises(AccessDeniedError):
            store.head("secret.txt")


@pytest.mark.parametrize(
    ("region", "sts"), [("cn-hangzhou", False), (None, True), ("cn-hangzhou", True)]
)
def test_emulator_v4_and_sts_auth(server: EmulatorServer, region: str | None, sts: bool) -> None:
    etag = server.put_object(EMU_BUCKET, "auth.bin", BLOB[:1000])
    with emu_store(server, region=region, sts=sts) as store:
        store.probe()
        assert store.head("auth.bin").etag == etag
        assert store.get_range("auth.bin", 10, 20, etag=etag) == BLOB[10:20]
        assert store.list_page("auth").objects[0].key == "auth.bin"


def test_emulator_archive_object_is_archived_error(server: EmulatorServer) -> None:
    server.put_object(EMU_BUCKET, "cold.bin", b"frozen", storage_class="Archive")
    with emu_store(server) as store:
        meta = store.head("cold.bin")
        assert meta.storage_class == "Archive"
        assert meta.is_frozen
        with pytest.raises(ArchivedError, match="InvalidObjectState"):
            store.get_range("cold.bin", 0, 3)


def test_emulator_injected_5xx_are_retried(server: EmulatorServer) -> None:
    etag = server.put_object(EMU_BUCKET, "flaky/5xx.bin", BLOB)
    server.faults.update(error_rate=0.5, key_prefix="flaky/", seed=7)
    policy = RetryPolicy(max_attempts=30, base_delay_s=0.001, max_delay_s=0.005)
    with emu_store(server, policy=policy) as store:
        for start in range(0, len(BLOB), 50_000):
            end = min(start + 50_000, len(BLOB))
            assert store.get_range("flaky/5xx.bin", start, end, etag=etag) == BLOB[start:end]
        assert store.head("flaky/5xx.bin").etag == etag
        assert store.stats()["retries"] > 0


@pytest.mark.parametrize("fault", ["truncate_rate", "reset_rate"])
def test_emulator_broken_bodies_are_resumed_exactly(server: EmulatorServer, fault: str) -> None:
    etag = server.put_object(EMU_BUCKET, "flaky/body.bin", BLOB)
    server.faults.update(**{fault: 0.6, "key_prefix": "flaky/", "seed": 3})
    policy = RetryPolicy(max_attempts=30, base_delay_s=0.001, max_delay_s=0.005)
    with emu_store(server, policy=policy) as store:
        for _ in range(4):
            assert store.get_range("flaky/body.bin", 0, len(BLOB), etag=etag) == BLOB
        assert store.stats()["retries.get"] > 0


def test_emulator_stopped_server_is_remote_io_error_within_budget(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = EmulatorConfig(
        data_dir=tmp_path_factory.mktemp("stopped"),
        buckets=(EMU_BUCKET,),
        credentials=(Credential(EMU_AK, EMU_SECRET),),
    )
    with EmulatorServer(config) as stopped:
        endpoint = stopped.endpoint
    policy = RetryPolicy(max_attempts=50, base_delay_s=0.01, max_delay_s=0.05, total_budget_s=0.5)
    with emu_store(stopped, policy=policy, endpoint=endpoint) as store:
        with pytest.raises(RemoteIOError, match=endpoint.replace(".", r"\.")):
            store.probe()
        with pytest.raises(RemoteIOError):
            store.get_range("k", 0, 10)
        stats = store.stats()
        assert stats["gave_up"] == 2
        assert stats["retries"] >= 2


def test_emulator_anonymous_access_to_private_bucket_is_denied(server: EmulatorServer) -> None:
    with (
        OssStore(OssConfig(endpoint=server.endpoint, bucket=EMU_BUCKET)) as store,
        pytest.raises(AccessDeniedError, match="AccessDenied"),
    ):
        store.probe()


def test_emulator_silent_server_hits_the_stall_rule_then_remote_io_error(
    server: EmulatorServer,
) -> None:
    server.put_object(EMU_BUCKET, "slow/x.bin", b"x" * 100)
    server.faults.update(latency_s=3.0, key_prefix="slow/")
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.01, total_budget_s=30.0)
    with emu_store(server, policy=policy, low_speed_time_s=1) as store:
        with pytest.raises(RemoteIOError, match="3 attempt"):
            store.get_range("slow/x.bin", 0, 10)
        assert store.stats()["retries.get"] == 2


def fetch_whole(
    store: OssStore, items: list[tuple[str, str, int]]
) -> dict[str, Piece | BaseException]:
    """GETs through ``store.whole_fetcher``: body or error by key."""
    loop = store.whole_fetcher(max_idle=4)
    assert loop is not None
    results: queue.Queue[tuple[str, Piece | BaseException]] = queue.Queue()
    try:
        for key, etag, size in items:
            loop.submit(
                key,
                etag,
                size,
                lambda r, s, key=key: results.put((key, r)),  # type: ignore[misc]
            )
        return dict(results.get(timeout=10) for _ in items)
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("region", "sts"), [(None, False), (None, True), ("cn-hangzhou", False), ("cn-hangzhou", True)]
)
def test_emulator_whole_fetcher_gets_signed_pinned_counted_and_checked(
    server: EmulatorServer, region: str | None, sts: bool
) -> None:
    """The fetch loop's GETs are signed (V1 by `ossfs.store.v1_signature`, V4 by oss2, with and
    without STS: the emulator checks signatures and tokens), pinned with If-Match, counted,
    and remember the announced CRC like `read_range`'s."""
    names = [f"w/{i}" for i in range(4)] + ["w/a b+c=d&e%41~", "w/ünï/中文"]
    etags = {n: server.put_object(EMU_BUCKET, n, BLOB[: 1000 + i]) for i, n in enumerate(names)}
    old = server.put_object(EMU_BUCKET, "w/replaced", b"old")
    server.put_object(EMU_BUCKET, "w/replaced", b"new!")
    with emu_store(server, region=region, sts=sts) as store:
        before = store.stats()
        items = [(key, etag, 1000 + i) for i, (key, etag) in enumerate(etags.items())]
        got = fetch_whole(store, [*items, ("w/replaced", old, 3), ("w/absent", "E", 5)])
        for key, _, size in items:
            assert bytes(got[key]) == BLOB[:size]  # type: ignore[arg-type]
            assert store.announced_crc64(key, etags[key]) == crc64(BLOB[:size])
        assert isinstance(got["w/replaced"], RemoteIOError)  # 412: never the new bytes
        assert "412" in str(got["w/replaced"])
        assert isinstance(got["w/absent"], RemoteIOError)
        after = store.stats()
        assert after["requests.get"] - before.get("requests.get", 0) == 8
        assert after["bytes_fetched"] - before.get("bytes_fetched", 0) == sum(
            size for _, _, size in items
        )


@pytest.mark.parametrize("region", [None, "cn-hangzhou"])
def test_emulator_whole_fetcher_wrong_secret_is_refused(
    server: EmulatorServer, region: str | None
) -> None:
    etag = server.put_object(EMU_BUCKET, "w/secret", b"12345")
    with emu_store(server, secret="not-the-secret", region=region) as store:
        got = fetch_whole(store, [("w/secret", etag, 5)])
        assert isinstance(got["w/secret"], RemoteIOError)
        assert "403" in str(got["w/secret"])


def test_emulator_whole_fetcher_rejects_a_wrong_length(server: EmulatorServer) -> None:
    etag = server.put_object(EMU_BUCKET, "w/short", b"12345")
    with emu_store(server) as store:
        got = fetch_whole(store, [("w/short", etag, 9)])  # the listing said 9 bytes
        assert isinstance(got["w/short"], IntegrityError)


def test_oss_store_whole_fetcher_goes_through_the_proxy(emulator: EmulatorServer) -> None:
    """Directory read-ahead's GETs take the store's proxy too: the endpoint's name does not
    resolve, only the proxy (the emulator, which takes absolute-URI requests) can answer."""
    etag = emulator.put_object(SUPPORT_BUCKET, "wp.txt", b"proxied")
    port = emulator.endpoint.rsplit(":", 1)[1]
    config = OssConfig(
        endpoint=f"http://oss-test.invalid:{port}",
        bucket=SUPPORT_BUCKET,
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=ACCESS_KEY_SECRET,
    )
    with OssStore(config, proxies=lambda url: {"http": emulator.endpoint}) as proxied:
        assert bytes(fetch_whole(proxied, [("wp.txt", etag, 7)])["wp.txt"]) == b"proxied"  # type: ignore[arg-type]
    with OssStore(config) as direct:
        assert isinstance(fetch_whole(direct, [("wp.txt", etag, 7)])["wp.txt"], TransferError)
    scripted, _ = make_store(lambda request: Reply(200, {}))
    assert scripted.whole_fetcher(max_idle=1) is None


def test_emulator_first_byte_time_is_the_best_of_the_last_requests(server: EmulatorServer) -> None:
    """Requests held 30 ms before their answer's head: the store's first-byte time says so once
    the last few requests (GETs, HEADs and LISTs alike) were all that slow."""
    etag = server.put_object(EMU_BUCKET, "slow/a.bin", BLOB)
    with emu_store(server) as store:
        assert store.first_byte_s() is None  # no request yet
        assert "first_byte_us" not in store.stats()
        store.head("slow/a.bin")
        fast = store.first_byte_s()
        assert fast is not None and fast < 1.0  # one answer is a figure already
        server.faults.update(latency_s=0.03, key_prefix="slow/")
        store.list_page("slow/")
        store.head("slow/a.bin")
        for _ in range(LATENCY_SAMPLES - 3):
            store.get_range("slow/a.bin", 0, 10, etag=etag)
        assert store.first_byte_s() == fast  # the fast HEAD is still among the last ones
        store.get_range("slow/a.bin", 0, 10, etag=etag)
        slow = store.first_byte_s()
        assert slow is not None and slow >= 0.03
        assert store.stats()["first_byte_us"] == round(slow * 1e6)  # what `ossfs stats` shows
        with pytest.raises(NotFoundError):  # a quick 404: an answer, but no body, not a sample
            store.get_range("slow/missing.bin", 0, 10)
        assert store.first_byte_s() == slow
