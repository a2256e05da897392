"""The OSS dialect: routes each request to an operation and answers the way OSS does.

Covers what a read-only client and its test fixtures use: Get/Head object (both range
behaviours, conditional headers, symlink following, archive state), GetObjectMeta, ListObjects
v1/v2, GetBucketInfo/Location, Put/Delete object and bucket, symlinks and RestoreObject.
Every response carries ``x-oss-request-id``; errors are OSS ``<Error>`` XML (base64 in
``x-oss-err`` for HEAD). Faults from `Faults` are applied here; `/_emulator/` goes to `admin`.

This module routes, authenticates, injects faults and answers the bucket and listing operations;
the object operations are in `ossfs.emulator.oss_objects` and the shared responses and helpers
in `ossfs.emulator.oss_base`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final
from xml.etree import ElementTree as ET

from ossfs.emulator import admin
from ossfs.emulator.auth import AuthError, SignedRequest
from ossfs.emulator.config import valid_bucket_name
from ossfs.emulator.faults import NO_FAULTS
from ossfs.emulator.httpbase import ClientGoneError, Request, new_request_id
from ossfs.emulator.listing import (
    MAX_KEYS,
    BadTokenError,
    ListRequest,
    decode_token,
    iso8601,
    list_keys,
    oss_list_xml,
    xml_document,
)
from ossfs.emulator.oss_base import CHUNK, NotModified, Outcome
from ossfs.emulator.oss_errors import OssError, no_such_bucket
from ossfs.emulator.oss_objects import OssObjectHandler
from ossfs.emulator.requestlog import LogEntry
from ossfs.emulator.signatures import authenticate
from ossfs.emulator.storage import BucketNotEmptyError, NoSuchBucketError

log = logging.getLogger(__name__)

_ACCESS_DENIED_MSG: Final = "You have no right to access this object because of bucket acl."
_MAX_DRAIN: Final = 64 << 20
# Requests that may be answered with an injected 503/500 (GETs get theirs with the body's plan).
_METADATA_OPS: Final = frozenset({"HeadObject", "GetObjectMeta", "ListObjects", "ListObjectsV2"})

Operation = Callable[[Request, bytes], Outcome]


class OssHandler(OssObjectHandler):
    """One thread per connection; `dispatch` answers one request."""

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
        except NotModified as nm:
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
            chunk = self.rfile.read(min(CHUNK, remaining))
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
