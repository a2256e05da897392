"""The OSS dialect: routes each request to an operation and answers the way OSS does.

Covers what a read-only client and its test fixtures use: Get/Head object (both range
behaviours, conditional headers, symlink following, archive state), GetObjectMeta, ListObjects
v1/v2, GetBucketInfo/Location, Put/Delete object and bucket, symlinks and RestoreObject.
Every response carries ``x-oss-request-id``; errors are OSS ``<Error>`` XML (base64 in
``x-oss-err`` for HEAD). Faults from `Faults` are applied here; `/_emulator/` goes to `admin`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable
from typing import BinaryIO, Final
from urllib.parse import quote, unquote
from xml.etree import ElementTree as ET

from ossfs.emulator import admin
from ossfs.emulator.auth import AuthError, SignedRequest
from ossfs.emulator.config import valid_bucket_name
from ossfs.emulator.faults import NO_FAULTS, FaultPlan
from ossfs.emulator.httpbase import (
    BaseHandler,
    ClientGoneError,
    Request,
    http_date,
    new_request_id,
    parse_http_date,
)
from ossfs.emulator.listing import (
    MAX_KEYS,
    BadTokenError,
    ListRequest,
    decode_token,
    iso8601,
    list_keys,
    oss_list_xml,
    restore_info,
    xml_document,
)
from ossfs.emulator.oss_errors import (
    OssError,
    error_xml,
    head_error_header,
    no_such_bucket,
    no_such_key,
)
from ossfs.emulator.ranges import RangeNotSatisfiableError, resolve_legacy, resolve_standard
from ossfs.emulator.requestlog import LogEntry
from ossfs.emulator.signatures import authenticate
from ossfs.emulator.storage import (
    STORAGE_CLASSES,
    AlreadyExistsError,
    BlobWriter,
    BucketNotEmptyError,
    DigestMismatchError,
    NoSuchBucketError,
    ObjectRecord,
)

log = logging.getLogger(__name__)

XML: Final = "application/xml"
_ACCESS_DENIED_MSG: Final = "You have no right to access this object because of bucket acl."
_CHUNK: Final = 1 << 20
_MAX_DRAIN: Final = 64 << 20
# Requests that may be answered with an injected 503/500 (GETs get theirs with the body's plan).
_METADATA_OPS: Final = frozenset({"HeadObject", "GetObjectMeta", "ListObjects", "ListObjectsV2"})

Outcome = tuple[int, int]  # (status, body bytes sent)
Operation = Callable[[Request, bytes], Outcome]


class _NotModified(Exception):
    def __init__(self, headers: list[tuple[str, str]]) -> None:
        super().__init__("304")
        self.headers = headers


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {t.strip().strip('"').upper() for t in header.split(",")}
    return "*" in wanted or etag.upper() in wanted


def _user_meta(req: Request) -> dict[str, str]:
    return {
        k[len("x-oss-meta-") :]: v for k, v in req.headers.items() if k.startswith("x-oss-meta-")
    }


class OssHandler(BaseHandler):
    """One thread per connection; `dispatch` answers one request."""

    request_id = ""
    _body_pending = False

    # -- dispatch --------------------------------------------------------------------------------

    def dispatch(self) -> None:
        self.request_id = new_request_id()
        storage = self.ctx.storage
        req = self.parse_request_target(lambda name: storage.bucket(name) is not None)
        if req.raw_path.startswith(admin.PREFIX):
            admin.handle(self, req, self.read_small_body(req))
            return
        op = "Unknown"
        counted = False
        status, sent = 500, 0
        try:
            op, fn = self._route(req)
            self.ctx.log.count(op)
            counted = True
            self._body_pending = op == "PutObject"
            body = b"" if self._body_pending else self.read_small_body(req)
            self._authenticate(req)
            subject = req.key or req.param("prefix")
            if op in _METADATA_OPS:
                plan = self.ctx.faults.plan(subject, body=False)
            elif op != "GetObject":  # a GET's latency comes with its body's plan
                plan = self.ctx.faults.latency_plan(subject)
            else:
                plan = NO_FAULTS
            self.delay(plan)
            self._inject_error(plan)
            status, sent = fn(req, body)
        except OssError as err:
            if self._body_pending:
                self._drain_body(req)
            status, sent = self._send_error(req, err)
        except _NotModified as nm:
            status, sent = 304, 0
            self.start_response(304, [*self._base_headers(), *nm.headers])
        except ClientGoneError:
            log.debug("client went away during %s %s", op, req.key)
        finally:
            if self._body_pending:
                self.close_connection = True
        self.ctx.log.record(
            LogEntry(
                op, req.bucket, req.key, req.headers.get("range"), status, sent, self.request_id
            ),
            counted=counted,
        )

    def _drain_body(self, req: Request) -> None:
        # Closing with unread request bytes makes the kernel send RST, which can destroy the
        # error response before the client reads it; so read (and drop) moderate bodies.
        length_text = req.headers.get("content-length", "")
        if req.headers.get("transfer-encoding") or not length_text.isdigit():
            return
        remaining = int(length_text)
        if remaining > _MAX_DRAIN:
            return
        while remaining:
            chunk = self.rfile.read(min(_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
        self._body_pending = False

    def _route(self, req: Request) -> tuple[str, Operation]:
        m = req.method
        if req.bucket is None:
            if m == "GET":
                return "ListBuckets", self._list_buckets
        elif req.key is None:
            if m == "GET":
                if req.has("bucketInfo"):
                    return "GetBucketInfo", self._get_bucket_info
                if req.has("location"):
                    return "GetBucketLocation", self._get_bucket_location
                if req.param("list-type") == "2":
                    return "ListObjectsV2", self._list_v2
                return "ListObjects", self._list_v1
            if m == "PUT":
                return "PutBucket", self._put_bucket
            if m == "DELETE":
                return "DeleteBucket", self._delete_bucket
            if m == "HEAD":
                return "HeadBucket", self._head_bucket
        elif m == "GET":
            if req.has("symlink"):
                return "GetSymlink", self._get_symlink
            return "GetObject", self._get_object
        elif m == "HEAD":
            if req.has("objectMeta"):
                return "GetObjectMeta", self._get_object_meta
            return "HeadObject", self._head_object
        elif m == "PUT":
            if req.has("symlink"):
                return "PutSymlink", self._put_symlink
            if "x-oss-copy-source" not in req.headers:
                return "PutObject", self._put_object
        elif m == "POST" and req.has("restore"):
            return "RestoreObject", self._restore_object
        elif m == "DELETE":
            return "DeleteObject", self._delete_object
        raise OssError(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            {"Method": m, "ResourceType": "Bucket" if req.key is None else "Object"},
        )

    def _authenticate(self, req: Request) -> None:
        signed = SignedRequest(
            method=req.method,
            bucket=req.bucket,
            key=req.key,
            query=req.query,
            headers=req.headers,
            raw_path=req.raw_path,
        )
        try:
            who = authenticate(signed, self.ctx.credentials, now=time.time())
        except AuthError as exc:
            raise OssError(exc.status, exc.code, exc.message, exc.extra) from exc
        if who is None and not self.ctx.config.anonymous:
            raise OssError(403, "AccessDenied", _ACCESS_DENIED_MSG)

    def _inject_error(self, plan: FaultPlan) -> None:
        if plan.error_status is None:
            return
        self.ctx.log.record_fault("error")
        if plan.error_status == 503:
            raise OssError(503, "SlowDown", "Please reduce your request rate.")
        raise OssError(500, "InternalError", "We encountered an internal error. Please try again.")

    # -- responses -------------------------------------------------------------------------------

    def _base_headers(self) -> list[tuple[str, str]]:
        return [("x-oss-request-id", self.request_id)]

    def _send_error(self, req: Request, err: OssError) -> Outcome:
        body = error_xml(err, request_id=self.request_id, host_id=req.host)
        headers = [*self._base_headers(), ("x-oss-ec", err.ec)]
        if req.method == "HEAD":
            headers.append(("x-oss-err", head_error_header(body)))
            self.start_response(err.status, [*headers, ("Content-Length", "0")])
            return err.status, 0
        return err.status, self.respond(err.status, [*headers, ("Content-Type", XML)], body)

    def _xml(self, body: bytes) -> Outcome:
        return 200, self.respond(200, [*self._base_headers(), ("Content-Type", XML)], body)

    def _empty(self, status: int, headers: list[tuple[str, str]] | None = None) -> Outcome:
        self.start_response(
            status, [*self._base_headers(), *(headers or []), ("Content-Length", "0")]
        )
        return status, 0

    # -- helpers ---------------------------------------------------------------------------------

    def _bucket(self, req: Request) -> str:
        assert req.bucket is not None
        if self.ctx.storage.bucket(req.bucket) is None:
            raise no_such_bucket(req.bucket)
        return req.bucket

    def _restore(self, rec: ObjectRecord) -> str | None:
        cfg = self.ctx.config
        return restore_info(rec, time.time_ns(), expiry_s=cfg.restore_expiry_s)

    def _frozen(self, rec: ObjectRecord) -> bool:
        if not rec.is_archive:
            return False
        info = self._restore(rec)
        return info is None or 'ongoing-request="true"' in info

    def _open(
        self, bucket: str, key: str
    ) -> tuple[ObjectRecord, ObjectRecord, BinaryIO | None, BinaryIO | None]:
        """(link or object, object whose bytes are served, its file, the link's own file)."""
        opened = self.ctx.storage.open_object(bucket, key)
        if opened is None:
            raise no_such_key(key)
        rec, own = opened
        if not rec.is_symlink:
            return rec, rec, own, None
        assert rec.symlink_target is not None
        target = self.ctx.storage.open_object(bucket, rec.symlink_target)
        if target is None or target[0].is_symlink:
            if target is not None and target[1] is not None:
                target[1].close()
            raise OssError(
                404, "NoSuchKey", "The symlink target object does not exist", {"Key": key}
            )
        return rec, target[0], target[1], own

    def _object_headers(self, rec: ObjectRecord, data: ObjectRecord) -> list[tuple[str, str]]:
        """GET/HEAD headers; for a symlink, size/ETag/class/MD5/CRC come from the target."""
        headers = [
            *self._base_headers(),
            ("Content-Type", rec.content_type),
            ("ETag", f'"{data.etag}"'),
            ("Last-Modified", http_date(max(rec.mtime_s, data.mtime_s))),
            ("Accept-Ranges", "bytes"),
            ("x-oss-object-type", rec.object_type),
            ("x-oss-storage-class", data.storage_class),
            ("x-oss-hash-crc64ecma", str(data.crc64)),
        ]
        if data.content_md5:
            headers.append(("Content-MD5", data.content_md5))
        headers.extend((f"x-oss-meta-{k}", v) for k, v in rec.user_meta)
        info = self._restore(data)
        if info is not None:
            headers.append(("x-oss-restore", info))
        return headers

    def _check_conditions(self, req: Request, data: ObjectRecord, mtime_s: int) -> None:
        h = req.headers
        validators = [("ETag", f'"{data.etag}"'), ("Last-Modified", http_date(mtime_s))]
        if_match = h.get("if-match")
        if if_match is not None:
            if not _etag_matches(if_match, data.etag):
                raise OssError(
                    412,
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold.",
                    {"Condition": "If-Match"},
                )
        else:
            since = parse_http_date(h.get("if-unmodified-since"))
            if since is not None and mtime_s > since:
                raise OssError(
                    412,
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold.",
                    {"Condition": "If-Unmodified-Since"},
                )
        if_none = h.get("if-none-match")
        if if_none is not None:
            if _etag_matches(if_none, data.etag):
                raise _NotModified(validators)
        else:
            since = parse_http_date(h.get("if-modified-since"))
            if since is not None and mtime_s <= since:
                raise _NotModified(validators)

    # -- objects ---------------------------------------------------------------------------------

    def _get_object(self, req: Request, body: bytes) -> Outcome:
        return self._serve_object(req, head=False)

    def _head_object(self, req: Request, body: bytes) -> Outcome:
        return self._serve_object(req, head=True)

    def _serve_object(self, req: Request, *, head: bool) -> Outcome:
        bucket = self._bucket(req)
        assert req.key is not None
        rec, data, file, own = self._open(bucket, req.key)
        try:
            mtime_s = max(rec.mtime_s, data.mtime_s)
            self._check_conditions(req, data, mtime_s)
            headers = self._object_headers(rec, data)
            if head:
                return self._head_ok(headers, data.size)
            if self._frozen(data):
                raise OssError(
                    403,
                    "InvalidObjectState",
                    "The operation is not valid for the object's state",
                    {"Key": req.key},
                )
            range_header = req.headers.get("range")
            size = data.size
            if req.headers.get("x-oss-range-behavior", "").lower() == "standard":
                try:
                    byte_range = resolve_standard(range_header, size)
                except RangeNotSatisfiableError as exc:
                    raise OssError(
                        416,
                        "InvalidRange",
                        "The requested range cannot be satisfied",
                        {"RangeRequested": range_header or "", "ActualObjectSize": str(size)},
                    ) from exc
            else:
                # Legacy OSS: an invalid or out-of-range Range is ignored (200, whole object).
                byte_range = resolve_legacy(range_header, size)
            plan = self.ctx.faults.plan(req.key, body=True)
            self.delay(plan)
            self._inject_error(plan)
            if byte_range is None:
                status, start, length = 200, 0, size
            else:
                status, start, length = 206, byte_range.start, byte_range.length
                headers.append(("Content-Range", f"bytes {start}-{byte_range.end - 1}/{size}"))
            headers.append(("Content-Length", str(length)))
            self.start_response(status, headers)
            if plan.bandwidth_bytes_per_s:
                self.ctx.log.record_fault("bandwidth")
            sent, fault = self.send_file_range(file, start, length, plan)
            if fault is not None:
                self.ctx.log.record_fault(fault)
            return status, sent
        finally:
            for f in (file, own):
                if f is not None:
                    f.close()

    def _head_ok(self, headers: list[tuple[str, str]], size: int) -> Outcome:
        self.start_response(200, [*headers, ("Content-Length", str(size))])
        return 200, 0

    def _get_object_meta(self, req: Request, body: bytes) -> Outcome:
        bucket = self._bucket(req)
        assert req.key is not None
        rec, data, file, own = self._open(bucket, req.key)
        for f in (file, own):
            if f is not None:
                f.close()
        headers = [
            *self._base_headers(),
            ("ETag", f'"{data.etag}"'),
            ("Last-Modified", http_date(max(rec.mtime_s, data.mtime_s))),
            ("x-oss-last-access-time", http_date(max(rec.mtime_s, data.mtime_s))),
            ("x-oss-hash-crc64ecma", str(data.crc64)),
        ]
        return self._head_ok(headers, data.size)

    def _read_put_body(self, req: Request) -> BlobWriter:
        blob = self.ctx.storage.new_blob()
        try:
            if req.headers.get("transfer-encoding", "").lower() == "chunked":
                self._read_chunked(blob)
            else:
                length_text = req.headers.get("content-length")
                if length_text is None or not length_text.isdigit():
                    raise OssError(
                        411,
                        "MissingContentLength",
                        "You must provide the Content-Length HTTP header.",
                    )
                remaining = int(length_text)
                while remaining:
                    chunk = self.rfile.read(min(_CHUNK, remaining))
                    if not chunk:
                        raise ClientGoneError("body ended early")
                    blob.write(chunk)
                    remaining -= len(chunk)
            self._body_pending = False
        except BaseException:
            blob.discard()
            raise
        return blob

    def _read_chunked(self, blob: BlobWriter) -> None:
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ClientGoneError("chunked body ended early")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return
            remaining = size
            while remaining:
                chunk = self.rfile.read(min(_CHUNK, remaining))
                if not chunk:
                    raise ClientGoneError("chunked body ended early")
                blob.write(chunk)
                remaining -= len(chunk)
            self.rfile.readline(1024)

    def _storage_class(self, req: Request) -> str:
        sclass = req.headers.get("x-oss-storage-class", "Standard")
        if sclass not in STORAGE_CLASSES:
            raise OssError(400, "InvalidArgument", f"Invalid storage class {sclass!r}.")
        return sclass

    def _put_object(self, req: Request, body: bytes) -> Outcome:
        bucket = self._bucket(req)
        assert req.key is not None
        sclass = self._storage_class(req)
        expected: bytes | None = None
        md5_text = req.headers.get("content-md5")
        if md5_text is not None:
            try:
                expected = base64.b64decode(md5_text, validate=True)
            except binascii.Error:
                expected = b""
            if len(expected) != 16:
                raise OssError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
        forbid = req.headers.get("x-oss-forbid-overwrite", "").lower() == "true"
        if forbid and self.ctx.storage.get(bucket, req.key) is not None:
            raise self._exists(req.key)
        blob = self._read_put_body(req)
        try:
            rec = self.ctx.storage.commit(
                bucket,
                req.key,
                blob,
                content_type=req.headers.get("content-type"),
                storage_class=sclass,
                user_meta=_user_meta(req),
                expected_md5=expected,
                forbid_overwrite=forbid,
            )
        except DigestMismatchError as exc:
            raise OssError(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified did not match what we received.",
            ) from exc
        except AlreadyExistsError as exc:
            raise self._exists(req.key) from exc
        except NoSuchBucketError as exc:
            raise no_such_bucket(bucket) from exc
        headers = [("ETag", f'"{rec.etag}"'), ("x-oss-hash-crc64ecma", str(rec.crc64))]
        if rec.content_md5:
            headers.append(("Content-MD5", rec.content_md5))
        return self._empty(200, headers)

    @staticmethod
    def _exists(key: str) -> OssError:
        return OssError(
            409, "FileAlreadyExists", "The object you specified already exists.", {"Key": key}
        )

    def _put_symlink(self, req: Request, body: bytes) -> Outcome:
        bucket = self._bucket(req)
        assert req.key is not None
        raw_target = req.headers.get("x-oss-symlink-target")
        if not raw_target:
            raise OssError(400, "InvalidArgument", "x-oss-symlink-target is required.")
        forbid = req.headers.get("x-oss-forbid-overwrite", "").lower() == "true"
        try:
            rec = self.ctx.storage.put_symlink(
                bucket,
                req.key,
                unquote(raw_target),
                content_type=req.headers.get("content-type"),
                storage_class=self._storage_class(req),
                user_meta=_user_meta(req),
                forbid_overwrite=forbid,
            )
        except AlreadyExistsError as exc:
            raise self._exists(req.key) from exc
        return self._empty(200, [("ETag", f'"{rec.etag}"')])

    def _get_symlink(self, req: Request, body: bytes) -> Outcome:
        bucket = self._bucket(req)
        assert req.key is not None
        rec = self.ctx.storage.get(bucket, req.key)
        if rec is None:
            raise no_such_key(req.key)
        if not rec.is_symlink or rec.symlink_target is None:
            raise OssError(
                400, "NotSymlink", "The specified object is not a symlink.", {"Key": req.key}
            )
        headers = [
            ("x-oss-symlink-target", quote(rec.symlink_target, safe="")),
            ("ETag", f'"{rec.etag}"'),
            ("Last-Modified", http_date(rec.mtime_s)),
            *((f"x-oss-meta-{k}", v) for k, v in rec.user_meta),
        ]
        return self._empty(200, headers)

    def _restore_object(self, req: Request, body: bytes) -> Outcome:
        bucket = self._bucket(req)
        assert req.key is not None
        rec = self.ctx.storage.get(bucket, req.key)
        if rec is None:
            raise no_such_key(req.key)
        if not rec.is_archive:
            raise OssError(
                400,
                "OperationNotSupported",
                "The operation is not supported for this resource",
                {"Key": req.key},
            )
        now = time.time_ns()
        if rec.restore_ready_ns is None:
            delay_ns = int(self.ctx.config.restore_delay_s * 1e9)
            self.ctx.storage.set_restore(bucket, req.key, now + delay_ns)
            return self._empty(202)
        if now < rec.restore_ready_ns:
            raise OssError(
                409,
                "RestoreAlreadyInProgress",
                "The restore operation is in progress.",
                {"Key": req.key},
            )
        # Restored already: a new request extends the expiry.
        self.ctx.storage.set_restore(bucket, req.key, now)
        return self._empty(200)

    def _delete_object(self, req: Request, body: bytes) -> Outcome:
        assert req.bucket is not None and req.key is not None
        try:
            self.ctx.storage.delete(req.bucket, req.key)
        except NoSuchBucketError as exc:
            raise no_such_bucket(req.bucket) from exc
        return self._empty(204)

    # -- buckets ---------------------------------------------------------------------------------

    def _put_bucket(self, req: Request, body: bytes) -> Outcome:
        assert req.bucket is not None
        if not valid_bucket_name(req.bucket):
            raise OssError(
                400,
                "InvalidBucketName",
                "The specified bucket is not valid.",
                {"BucketName": req.bucket},
            )
        sclass = "Standard"
        if body.strip():
            try:
                found = ET.fromstring(body).findtext("StorageClass")
            except ET.ParseError as exc:
                raise OssError(
                    400, "MalformedXML", "The XML you provided was not well-formed."
                ) from exc
            if found:
                sclass = found
        self.ctx.storage.create_bucket(req.bucket, sclass)
        return self._empty(200, [("Location", f"/{req.bucket}")])

    def _delete_bucket(self, req: Request, body: bytes) -> Outcome:
        assert req.bucket is not None
        try:
            self.ctx.storage.delete_bucket(req.bucket)
        except NoSuchBucketError as exc:
            raise no_such_bucket(req.bucket) from exc
        except BucketNotEmptyError as exc:
            raise OssError(
                409,
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty.",
                {"BucketName": req.bucket},
            ) from exc
        return self._empty(204)

    def _head_bucket(self, req: Request, body: bytes) -> Outcome:
        self._bucket(req)
        return self._empty(200)

    def _endpoints(self) -> tuple[str, str, str]:
        region = self.ctx.config.region
        return (
            f"oss-{region}",
            f"oss-{region}.aliyuncs.com",
            f"oss-{region}-internal.aliyuncs.com",
        )

    def _get_bucket_info(self, req: Request, body: bytes) -> Outcome:
        bucket = self._bucket(req)
        record = self.ctx.storage.bucket(bucket)
        assert record is not None
        location, extranet, intranet = self._endpoints()
        root = ET.Element("BucketInfo")
        b = ET.SubElement(root, "Bucket")
        fields = [
            ("AccessMonitor", "Disabled"),
            ("CreationDate", iso8601(record.created_ns)),
            ("ExtranetEndpoint", extranet),
            ("IntranetEndpoint", intranet),
            ("Location", location),
            ("StorageClass", record.storage_class),
            ("TransferAcceleration", "Disabled"),
            ("CrossRegionReplication", "Disabled"),
            ("DataRedundancyType", "LRS"),
            ("Name", bucket),
            ("ResourceGroupId", "rg-emulator"),
            ("Comment", ""),
        ]
        for tag, text in fields:
            ET.SubElement(b, tag).text = text
        owner = ET.SubElement(b, "Owner")
        ET.SubElement(owner, "DisplayName").text = "1686240967192623"
        ET.SubElement(owner, "ID").text = "1686240967192623"
        ET.SubElement(ET.SubElement(b, "AccessControlList"), "Grant").text = "private"
        sse = ET.SubElement(b, "ServerSideEncryptionRule")
        ET.SubElement(sse, "SSEAlgorithm").text = "None"
        policy = ET.SubElement(b, "BucketPolicy")
        ET.SubElement(policy, "LogBucket")
        ET.SubElement(policy, "LogPrefix")
        return self._xml(xml_document(root))

    def _get_bucket_location(self, req: Request, body: bytes) -> Outcome:
        self._bucket(req)
        root = ET.Element("LocationConstraint")
        root.text = self._endpoints()[0]
        return self._xml(xml_document(root))

    def _list_buckets(self, req: Request, body: bytes) -> Outcome:
        location, extranet, intranet = self._endpoints()
        root = ET.Element("ListAllMyBucketsResult")
        owner = ET.SubElement(root, "Owner")
        ET.SubElement(owner, "ID").text = "1686240967192623"
        ET.SubElement(owner, "DisplayName").text = "1686240967192623"
        buckets = ET.SubElement(root, "Buckets")
        for rec in self.ctx.storage.buckets():
            b = ET.SubElement(buckets, "Bucket")
            for tag, text in (
                ("CreationDate", iso8601(rec.created_ns)),
                ("ExtranetEndpoint", extranet),
                ("IntranetEndpoint", intranet),
                ("Location", location),
                ("Name", rec.name),
                ("Region", self.ctx.config.region),
                ("StorageClass", rec.storage_class),
            ):
                ET.SubElement(b, tag).text = text
        return self._xml(xml_document(root))

    # -- listing ---------------------------------------------------------------------------------

    def _list_request(self, req: Request, *, v2: bool) -> ListRequest:
        bucket = self._bucket(req)
        max_text = req.param("max-keys") or "100"
        if not max_text.isdigit() or not 0 <= int(max_text) <= MAX_KEYS:
            raise OssError(400, "InvalidArgument", "Argument max-keys must be in [0, 1000].")
        encoding = req.param("encoding-type") or ""
        if encoding not in ("", "url"):
            raise OssError(400, "InvalidArgument", "Invalid Encoding Method specified in Request.")
        token = req.param("continuation-token") or None
        if token is not None:
            try:
                decode_token(token)
            except BadTokenError as exc:
                raise OssError(
                    400, "InvalidArgument", "The continuation token is invalid."
                ) from exc
        return ListRequest(
            bucket=bucket,
            v2=v2,
            prefix=req.param("prefix") or "",
            delimiter=req.param("delimiter") or "",
            marker="" if v2 else req.param("marker") or "",
            token=token,
            start_after=req.param("start-after") or "" if v2 else "",
            max_keys=int(max_text),
            url_encoding=encoding == "url",
            fetch_owner=(req.param("fetch-owner") or "").lower() == "true",
        )

    def _list(self, req: Request, *, v2: bool) -> Outcome:
        lr = self._list_request(req, v2=v2)
        marker = lr.marker
        if v2:
            marker = decode_token(lr.token) if lr.token else lr.start_after
        result = list_keys(
            self.ctx.storage,
            lr.bucket,
            prefix=lr.prefix,
            delimiter=lr.delimiter,
            marker=marker,
            max_keys=lr.max_keys,
        )
        cfg = self.ctx.config
        return self._xml(
            oss_list_xml(lr, result, now_ns=time.time_ns(), restore_expiry_s=cfg.restore_expiry_s)
        )

    def _list_v1(self, req: Request, body: bytes) -> Outcome:
        return self._list(req, v2=False)

    def _list_v2(self, req: Request, body: bytes) -> Outcome:
        return self._list(req, v2=True)
