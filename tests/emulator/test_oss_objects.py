"""The emulator's object operations, driven through the real oss2 SDK."""

from __future__ import annotations

import base64
import calendar
import email.utils
import hashlib
import time

import oss2
import pytest

from ossfs.core.crc64 import crc64
from ossfs.emulator import EmulatorServer
from tests.support import BUCKET
from tests.support.waiting import wait_until

DATA = bytes(range(256)) * 4  # 1024 bytes
STANDARD = {"x-oss-range-behavior": "standard"}


@pytest.fixture
def obj(oss_bucket: oss2.Bucket) -> str:
    oss_bucket.put_object("dir/obj.bin", DATA)
    return "dir/obj.bin"


def test_put_get_round_trip_headers(oss_bucket: oss2.Bucket) -> None:
    result = oss_bucket.put_object("a.txt", b"hello", headers={"x-oss-meta-Color": "blue"})
    md5 = hashlib.md5(b"hello")
    assert result.etag == md5.hexdigest().upper()
    assert result.crc == crc64(b"hello")
    got = oss_bucket.get_object("a.txt")
    assert got.read() == b"hello"
    h = got.headers
    assert h["ETag"] == f'"{md5.hexdigest().upper()}"'
    assert h["x-oss-hash-crc64ecma"] == str(crc64(b"hello"))
    assert h["Content-MD5"] == base64.b64encode(md5.digest()).decode()
    assert h["Content-Type"] == "text/plain"
    assert h["Server"] == "AliyunOSS"
    assert h["x-oss-object-type"] == "Normal"
    assert h["x-oss-storage-class"] == "Standard"
    assert h["x-oss-meta-color"] == "blue"
    assert len(h["x-oss-request-id"]) == 24
    assert int(h["x-oss-request-id"], 16) >= 0
    assert got.server_crc == got.client_crc


def test_get_default_content_type_and_last_modified_format(oss_bucket: oss2.Bucket) -> None:
    oss_bucket.put_object("noext", b"x")
    head = oss_bucket.head_object("noext")
    assert head.content_type == "application/octet-stream"
    lm = head.headers["Last-Modified"]
    assert lm == email.utils.formatdate(
        calendar.timegm(time.strptime(lm, "%a, %d %b %Y %H:%M:%S GMT")), usegmt=True
    )
    assert abs(head.last_modified - time.time()) < 60


@pytest.mark.parametrize(
    "case",
    [
        ((0, 99), 206, DATA[:100], "bytes 0-99/1024"),
        ((500, None), 206, DATA[500:], "bytes 500-1023/1024"),
        ((None, 24), 206, DATA[-24:], "bytes 1000-1023/1024"),
        ((1023, 1023), 206, DATA[1023:], "bytes 1023-1023/1024"),
        ((500, 2000), 200, DATA, None),
        ((1024, 2000), 200, DATA, None),
        ((1024, None), 200, DATA, None),
        ((None, 2000), 200, DATA, None),
    ],
)
def test_get_range_legacy_behaviour(
    oss_bucket: oss2.Bucket,
    obj: str,
    case: tuple[tuple[int | None, int | None], int, bytes, str | None],
) -> None:
    byte_range, status, body, content_range = case
    got = oss_bucket.get_object(obj, byte_range=byte_range)
    assert (got.status, got.read(), got.headers.get("Content-Range")) == (
        status,
        body,
        content_range,
    )
    assert got.headers["x-oss-hash-crc64ecma"] == str(crc64(DATA))


@pytest.mark.parametrize(
    ("byte_range", "body", "content_range"),
    [
        ((0, 99), DATA[:100], "bytes 0-99/1024"),
        ((500, 2000), DATA[500:], "bytes 500-1023/1024"),
        ((None, 2000), DATA, "bytes 0-1023/1024"),
        ((10, None), DATA[10:], "bytes 10-1023/1024"),
    ],
)
def test_get_range_standard_behaviour(
    oss_bucket: oss2.Bucket,
    obj: str,
    byte_range: tuple[int | None, int | None],
    body: bytes,
    content_range: str,
) -> None:
    got = oss_bucket.get_object(obj, byte_range=byte_range, headers=STANDARD)
    assert (got.status, got.read(), got.headers["Content-Range"]) == (206, body, content_range)
    assert got.headers["x-oss-hash-crc64ecma"] == str(crc64(DATA))


@pytest.mark.parametrize("byte_range", [(1024, 2000), (1024, None), (5000, 6000)])
def test_get_range_standard_start_past_end_is_416(
    oss_bucket: oss2.Bucket, obj: str, byte_range: tuple[int, int | None]
) -> None:
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.get_object(obj, byte_range=byte_range, headers=STANDARD)
    assert (info.value.status, info.value.code) == (416, "InvalidRange")
    assert len(info.value.request_id) == 24


@pytest.mark.parametrize("header", ["byte=0-4", "bytes=9-5", "garbage", "bytes=0-1,5-6"])
def test_get_malformed_range_returns_whole_object(
    oss_bucket: oss2.Bucket, obj: str, header: str
) -> None:
    got = oss_bucket.get_object(obj, headers={"Range": header})
    assert (got.status, got.read()) == (200, DATA)


def test_get_zero_byte_object(oss_bucket: oss2.Bucket) -> None:
    oss_bucket.put_object("empty", b"")
    got = oss_bucket.get_object("empty", byte_range=(0, 10))
    assert (got.status, got.read()) == (200, b"")
    assert got.headers["x-oss-hash-crc64ecma"] == "0"
    assert got.headers["ETag"] == '"D41D8CD98F00B204E9800998ECF8427E"'
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.get_object("empty", byte_range=(0, 10), headers=STANDARD)
    assert info.value.status == 416
    assert oss_bucket.head_object("empty").content_length == 0


def test_head_missing_key_raises_no_such_key_from_x_oss_err(oss_bucket: oss2.Bucket) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey) as info:
        oss_bucket.head_object("missing")
    assert info.value.details["Key"] == "missing"
    assert info.value.details["EC"] == "0026-00000001"
    assert len(info.value.request_id) == 24
    assert not oss_bucket.object_exists("missing")


def test_get_missing_key_error_body(oss_bucket: oss2.Bucket) -> None:
    with pytest.raises(oss2.exceptions.NoSuchKey) as info:
        oss_bucket.get_object("nope/x")
    details = info.value.details
    assert details["Code"] == "NoSuchKey"
    assert details["Key"] == "nope/x"
    assert details["RequestId"] == info.value.request_id
    assert "HostId" in details


def test_missing_bucket_is_no_such_bucket(emulator: EmulatorServer) -> None:
    from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET

    other = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), emulator.endpoint, "no-bucket")
    with pytest.raises(oss2.exceptions.NoSuchBucket) as info:
        other.get_object("k")
    assert info.value.details["BucketName"] == "no-bucket"
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        other.get_bucket_info()
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        other.object_exists("k")


def test_head_and_object_meta(oss_bucket: oss2.Bucket, obj: str) -> None:
    head = oss_bucket.head_object(obj)
    assert head.content_length == 1024
    assert head.etag == hashlib.md5(DATA).hexdigest().upper()
    assert head.server_crc == crc64(DATA)
    assert head.object_type == "Normal"
    meta = oss_bucket.get_object_meta(obj)
    assert (meta.content_length, meta.etag) == (1024, head.etag)
    assert meta.last_modified == head.last_modified
    assert oss_bucket.object_exists(obj)


@pytest.mark.parametrize(
    "key", ["with space.txt", "a+b", "100%", "x&y", "<tag>", "目录/文件.txt", "d/e/f", " lead"]
)
def test_special_keys_round_trip(oss_bucket: oss2.Bucket, key: str) -> None:
    oss_bucket.put_object(key, key.encode())
    assert oss_bucket.get_object(key).read() == key.encode()
    keys = [o.key for o in oss2.ObjectIteratorV2(oss_bucket)]
    assert keys == [key]
    keys_v1 = [o.key for o in oss2.ObjectIterator(oss_bucket, prefix=key[:2])]
    assert keys_v1 == [key]


def test_conditional_headers(oss_bucket: oss2.Bucket, obj: str) -> None:
    head = oss_bucket.head_object(obj)
    etag, lm = head.etag, head.headers["Last-Modified"]
    assert oss_bucket.get_object(obj, headers={"If-Match": f'"{etag}"'}).read() == DATA
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        oss_bucket.get_object(obj, headers={"If-Match": '"0000"'})
    with pytest.raises(oss2.exceptions.NotModified):
        oss_bucket.get_object(obj, headers={"If-None-Match": f'"{etag}"'})
    assert oss_bucket.get_object(obj, headers={"If-None-Match": '"0000"'}).read() == DATA
    with pytest.raises(oss2.exceptions.NotModified):
        oss_bucket.get_object(obj, headers={"If-Modified-Since": lm})
    past = email.utils.formatdate(head.last_modified - 3600, usegmt=True)
    assert oss_bucket.get_object(obj, headers={"If-Modified-Since": past}).read() == DATA
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        oss_bucket.get_object(obj, headers={"If-Unmodified-Since": past})
    assert oss_bucket.get_object(obj, headers={"If-Unmodified-Since": lm}).read() == DATA


def test_put_content_md5_mismatch_is_invalid_digest(oss_bucket: oss2.Bucket) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.put_object("k", b"data", headers={"Content-MD5": wrong})
    assert (info.value.status, info.value.code) == (400, "InvalidDigest")
    assert not oss_bucket.object_exists("k")
    right = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    oss_bucket.put_object("k", b"data", headers={"Content-MD5": right})
    assert oss_bucket.get_object("k").read() == b"data"


def test_put_forbid_overwrite(oss_bucket: oss2.Bucket) -> None:
    oss_bucket.put_object("k", b"one")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.put_object("k", b"two", headers={"x-oss-forbid-overwrite": "true"})
    assert (info.value.status, info.value.code) == (409, "FileAlreadyExists")
    oss_bucket.put_object("k", b"three")
    assert oss_bucket.get_object("k").read() == b"three"


def test_put_storage_class_and_delete(oss_bucket: oss2.Bucket) -> None:
    oss_bucket.put_object("ia", b"x", headers={"x-oss-storage-class": "IA"})
    assert oss_bucket.head_object("ia").headers["x-oss-storage-class"] == "IA"
    assert oss_bucket.delete_object("ia").status == 204
    assert oss_bucket.delete_object("ia").status == 204
    assert not oss_bucket.object_exists("ia")


def test_put_bucket_and_bucket_info(oss_bucket: oss2.Bucket, emulator: EmulatorServer) -> None:
    from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET

    info = oss_bucket.get_bucket_info()
    assert info.name == BUCKET
    assert info.location == "oss-cn-hangzhou"
    assert info.storage_class == "Standard"
    assert info.acl.grant == "private"
    new = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), emulator.endpoint, "new-bucket")
    new.create_bucket()
    new.put_object("k", b"v")
    assert new.get_object("k").read() == b"v"
    assert new.get_bucket_info().name == "new-bucket"


def test_symlinks(oss_bucket: oss2.Bucket) -> None:
    oss_bucket.put_object("dir/target.txt", b"target bytes")
    oss_bucket.put_symlink("dir/target.txt", "link")
    assert oss_bucket.get_symlink("link").target_key == "dir/target.txt"
    got = oss_bucket.get_object("link")
    assert got.read() == b"target bytes"
    assert got.headers["x-oss-object-type"] == "Symlink"
    assert got.headers["x-oss-hash-crc64ecma"] == str(crc64(b"target bytes"))
    head = oss_bucket.head_object("link")
    assert head.content_length == len(b"target bytes")
    assert head.etag == hashlib.md5(b"target bytes").hexdigest().upper()
    listed = {o.key: o for o in oss2.ObjectIteratorV2(oss_bucket)}
    assert listed["link"].type == "Symlink"
    with pytest.raises(oss2.exceptions.NoSuchKey):
        oss_bucket.get_symlink("no-link")
    oss_bucket.put_symlink("gone", "dangling")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        oss_bucket.get_object("dangling")


def test_archive_needs_restore(oss_bucket: oss2.Bucket) -> None:
    oss_bucket.put_object("cold", b"frozen", headers={"x-oss-storage-class": "Archive"})
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.get_object("cold")
    assert (info.value.status, info.value.code) == (403, "InvalidObjectState")
    assert "x-oss-restore" not in oss_bucket.head_object("cold").headers
    assert oss_bucket.restore_object("cold").status == 202
    with pytest.raises(oss2.exceptions.RestoreAlreadyInProgress):
        oss_bucket.restore_object("cold")
    assert oss_bucket.head_object("cold").headers["x-oss-restore"] == 'ongoing-request="true"'
    listed = next(iter(oss2.ObjectIteratorV2(oss_bucket)))
    assert listed.restore_info == 'ongoing-request="true"'
    wait_until(
        lambda: (
            'ongoing-request="false"' in oss_bucket.head_object("cold").headers["x-oss-restore"]
        ),
        10,
        "the restore to finish",
        step_s=0.05,
    )
    assert oss_bucket.get_object("cold").read() == b"frozen"
    assert oss_bucket.restore_object("cold").status == 200
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.restore_object("missing")
    assert info.value.status == 404
    oss_bucket.put_object("warm", b"x")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.restore_object("warm")
    assert info.value.code == "OperationNotSupported"


def test_request_log_records_operations(oss_bucket: oss2.Bucket, emulator: EmulatorServer) -> None:
    oss_bucket.put_object("k", DATA)
    oss_bucket.get_object("k", byte_range=(0, 9)).read()
    oss_bucket.head_object("k")
    counts = emulator.log.counts()
    assert counts["PutObject"] == 1 and counts["GetObject"] == 1 and counts["HeadObject"] == 1
    get = emulator.log.entries("GetObject")[0]
    assert (get.key, get.range, get.status, get.bytes) == ("k", "bytes=0-9", 206, 10)
    assert emulator.log.bytes_served >= 10
    emulator.log.clear()
    assert emulator.log.counts() == {}


def test_unsigned_request_is_access_denied(emulator: EmulatorServer) -> None:
    anon = oss2.Bucket(oss2.AnonymousAuth(), emulator.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anon.get_object("k")


def test_wrong_secret_is_signature_mismatch(emulator: EmulatorServer) -> None:
    from tests.support import ACCESS_KEY_ID

    bad = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, "wrong"), emulator.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        bad.get_object("k")


def test_method_not_allowed(oss_bucket: oss2.Bucket, emulator: EmulatorServer) -> None:
    import requests

    resp = requests.post(f"{emulator.endpoint}/{BUCKET}/k", timeout=5)
    assert resp.status_code in (403, 405)
    assert resp.headers["x-oss-request-id"]


def test_virtual_hosted_style_through_proxy(emulator: EmulatorServer) -> None:
    from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET

    emulator.put_object(BUCKET, "dir/v.txt", b"vhost")
    port = emulator.endpoint.rsplit(":", 1)[1]
    session = oss2.Session()
    bucket = oss2.Bucket(
        oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET),
        f"http://oss-test.example:{port}",
        BUCKET,
        session=session,
        proxies={"http": emulator.endpoint},
    )
    assert bucket.get_object("dir/v.txt").read() == b"vhost"
    assert [o.key for o in oss2.ObjectIteratorV2(bucket)] == ["dir/v.txt"]
