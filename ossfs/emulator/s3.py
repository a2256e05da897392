"""A read-only, anonymous S3 dialect over the same storage, for peer tools (s3fs-fuse, rclone).

GET/HEAD object (standard RFC 7233 ranges: 206, 416 InvalidRange), HEAD bucket,
GetBucketLocation, ListObjectsV2/v1 and ListBuckets in S3's XML (with the S3 xmlns), and
S3-shaped errors. Everything that writes is 403 AccessDenied. No signature checks; no faults
except those on GET bodies.
"""

from __future__ import annotations

import time
from typing import BinaryIO, Final
from xml.etree import ElementTree as ET

from ossfs.emulator.httpbase import BaseHandler, ClientGoneError, Request, http_date, new_request_id
from ossfs.emulator.listing import (
    MAX_KEYS,
    BadTokenError,
    ListResult,
    decode_token,
    encode_token,
    iso8601,
    list_keys,
    url_encode,
    xml_document,
)
from ossfs.emulator.ranges import RangeNotSatisfiableError, resolve_standard
from ossfs.emulator.requestlog import LogEntry
from ossfs.emulator.storage import ARCHIVE_CLASSES, ObjectRecord

S3_NS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
_S3_CLASS: Final = {
    "Standard": "STANDARD",
    "IA": "STANDARD_IA",
    "Archive": "GLACIER",
    "ColdArchive": "GLACIER",
    "DeepColdArchive": "DEEP_ARCHIVE",
}


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def _s3_xml(tag: str) -> ET.Element:
    return ET.Element(tag, xmlns=S3_NS)


def _sub(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


class S3Handler(BaseHandler):
    """S3 requests, path style (``/bucket/key``)."""

    server_header = "AmazonS3"
    request_id = ""

    def dispatch(self) -> None:
        self.request_id = new_request_id()
        req = self.parse_request_target(lambda name: False)
        self.read_small_body(req) if req.method != "PUT" else None
        if req.method == "PUT":
            self.close_connection = True
        op = "S3:Unknown"
        status, sent = 500, 0
        try:
            op, status, sent = self._route(req)
        except S3Error as err:
            status, sent = self._send_error(req, err)
        except ClientGoneError:
            pass
        self.ctx.log.record(
            LogEntry(
                op, req.bucket, req.key, req.headers.get("range"), status, sent, self.request_id
            )
        )

    def _route(self, req: Request) -> tuple[str, int, int]:
        m = req.method
        if m not in ("GET", "HEAD"):
            raise S3Error(403, "AccessDenied", "Access Denied (read-only endpoint)")
        if req.bucket is None:
            return ("S3:ListBuckets", *self._list_buckets())
        if self.ctx.storage.bucket(req.bucket) is None:
            raise S3Error(
                404, "NoSuchBucket", "The specified bucket does not exist", BucketName=req.bucket
            )
        if req.key is None:
            if m == "HEAD":
                return ("S3:HeadBucket", *self._empty(200, [("x-amz-bucket-region", self._region)]))
            if req.has("location"):
                root = _s3_xml("LocationConstraint")
                root.text = self._region
                return ("S3:GetBucketLocation", *self._xml(root))
            if req.param("list-type") == "2":
                return ("S3:ListObjectsV2", *self._list(req, v2=True))
            return ("S3:ListObjects", *self._list(req, v2=False))
        if m == "HEAD":
            return ("S3:HeadObject", *self._object(req, head=True))
        return ("S3:GetObject", *self._object(req, head=False))

    @property
    def _region(self) -> str:
        return self.ctx.config.region

    def _base(self) -> list[tuple[str, str]]:
        return [("x-amz-request-id", self.request_id), ("x-amz-id-2", self.request_id)]

    def _empty(self, status: int, headers: list[tuple[str, str]]) -> tuple[int, int]:
        self.start_response(status, [*self._base(), *headers, ("Content-Length", "0")])
        return status, 0

    def _xml(self, root: ET.Element) -> tuple[int, int]:
        body = xml_document(root)
        return 200, self.respond(200, [*self._base(), ("Content-Type", "application/xml")], body)

    def _send_error(self, req: Request, err: S3Error) -> tuple[int, int]:
        root = ET.Element("Error")
        _sub(root, "Code", err.code)
        _sub(root, "Message", err.message)
        for tag, text in err.extra.items():
            _sub(root, tag, text)
        _sub(root, "RequestId", self.request_id)
        _sub(root, "HostId", self.request_id)
        body = xml_document(root)
        headers = [*self._base(), ("Content-Type", "application/xml")]
        if req.method == "HEAD":
            self.start_response(err.status, [*headers, ("Content-Length", "0")])
            return err.status, 0
        return err.status, self.respond(err.status, headers, body)

    def _open(self, bucket: str, key: str) -> tuple[ObjectRecord, ObjectRecord, BinaryIO | None]:
        storage = self.ctx.storage
        missing = S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        opened = storage.open_object(bucket, key)
        if opened is None:
            raise missing
        rec, file = opened
        if not rec.is_symlink:
            return rec, rec, file
        if file is not None:
            file.close()
        target = storage.open_object(bucket, rec.symlink_target or "")
        if target is None or target[0].is_symlink:
            if target is not None and target[1] is not None:
                target[1].close()
            raise missing
        return rec, target[0], target[1]

    def _object(self, req: Request, *, head: bool) -> tuple[int, int]:
        assert req.bucket is not None and req.key is not None
        rec, data, file = self._open(req.bucket, req.key)
        try:
            headers = [
                *self._base(),
                ("Content-Type", rec.content_type),
                ("ETag", f'"{data.etag.lower()}"'),
                ("Last-Modified", http_date(max(rec.mtime_s, data.mtime_s))),
                ("Accept-Ranges", "bytes"),
                *((f"x-amz-meta-{k}", v) for k, v in rec.user_meta),
            ]
            if data.storage_class != "Standard":
                headers.append(("x-amz-storage-class", _S3_CLASS[data.storage_class]))
            if head:
                self.start_response(200, [*headers, ("Content-Length", str(data.size))])
                return 200, 0
            if data.storage_class in ARCHIVE_CLASSES and self._frozen(data):
                raise S3Error(
                    403,
                    "InvalidObjectState",
                    "The operation is not valid for the object's storage class",
                )
            range_header = req.headers.get("range")
            try:
                byte_range = resolve_standard(range_header, data.size)
            except RangeNotSatisfiableError as exc:
                raise S3Error(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                    RangeRequested=range_header or "",
                    ActualObjectSize=str(data.size),
                ) from exc
            if byte_range is None:
                status, start, length = 200, 0, data.size
            else:
                status, start, length = 206, byte_range.start, byte_range.length
                headers.append(("Content-Range", f"bytes {start}-{byte_range.end - 1}/{data.size}"))
            plan = self.ctx.faults.plan(req.key, body=True)
            if plan.latency_s:
                time.sleep(plan.latency_s)
            self.start_response(status, [*headers, ("Content-Length", str(length))])
            sent, fault = self.send_file_range(file, start, length, plan)
            if fault is not None:
                self.ctx.log.record_fault(fault)
            return status, sent
        finally:
            if file is not None:
                file.close()

    def _frozen(self, rec: ObjectRecord) -> bool:
        return rec.restore_ready_ns is None or time.time_ns() < rec.restore_ready_ns

    def _list_buckets(self) -> tuple[int, int]:
        root = _s3_xml("ListAllMyBucketsResult")
        owner = ET.SubElement(root, "Owner")
        _sub(owner, "ID", "emulator")
        _sub(owner, "DisplayName", "emulator")
        buckets = ET.SubElement(root, "Buckets")
        for rec in self.ctx.storage.buckets():
            b = ET.SubElement(buckets, "Bucket")
            _sub(b, "Name", rec.name)
            _sub(b, "CreationDate", iso8601(rec.created_ns))
        return self._xml(root)

    def _list(self, req: Request, *, v2: bool) -> tuple[int, int]:
        assert req.bucket is not None
        max_text = req.param("max-keys") or str(MAX_KEYS)
        if not max_text.isdigit():
            raise S3Error(
                400, "InvalidArgument", "Provided max-keys not an integer or within integer range"
            )
        max_keys = min(int(max_text), MAX_KEYS)
        encoding = req.param("encoding-type") or ""
        if encoding not in ("", "url"):
            raise S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request")
        prefix = req.param("prefix") or ""
        delimiter = req.param("delimiter") or ""
        token = req.param("continuation-token") or ""
        start_after = req.param("start-after") or ""
        marker = req.param("marker") or ""
        if v2:
            try:
                marker = decode_token(token) if token else start_after
            except BadTokenError as exc:
                raise S3Error(
                    400, "InvalidArgument", "The continuation token provided is incorrect"
                ) from exc
        res = list_keys(
            self.ctx.storage,
            req.bucket,
            prefix=prefix,
            delimiter=delimiter,
            marker=max(marker, start_after) if v2 else marker,
            max_keys=max_keys,
        )
        return self._xml(
            self._list_xml(
                req.bucket,
                res,
                v2=v2,
                url=encoding == "url",
                max_keys=max_keys,
                prefix=prefix,
                delimiter=delimiter,
                marker=marker,
                token=token,
                start_after=start_after,
                fetch_owner=req.param("fetch-owner") == "true",
            )
        )

    @staticmethod
    def _list_xml(
        bucket: str,
        res: ListResult,
        *,
        v2: bool,
        url: bool,
        max_keys: int,
        prefix: str,
        delimiter: str,
        marker: str,
        token: str,
        start_after: str,
        fetch_owner: bool,
    ) -> ET.Element:
        def enc(s: str) -> str:
            return url_encode(s) if url else s

        root = _s3_xml("ListBucketResult")
        _sub(root, "Name", bucket)
        _sub(root, "Prefix", enc(prefix))
        if v2:
            if token:
                _sub(root, "ContinuationToken", token)
            if start_after:
                _sub(root, "StartAfter", enc(start_after))
            _sub(root, "KeyCount", str(len(res.objects) + len(res.prefixes)))
        else:
            _sub(root, "Marker", enc(marker))
        _sub(root, "MaxKeys", str(max_keys))
        if delimiter:
            _sub(root, "Delimiter", enc(delimiter))
        if url:
            _sub(root, "EncodingType", "url")
        _sub(root, "IsTruncated", "true" if res.truncated else "false")
        if res.truncated and res.next_marker is not None:
            if v2:
                _sub(root, "NextContinuationToken", encode_token(res.next_marker))
            else:
                _sub(root, "NextMarker", enc(res.next_marker))
        for rec in res.objects:
            c = ET.SubElement(root, "Contents")
            _sub(c, "Key", enc(rec.key))
            _sub(c, "LastModified", iso8601(rec.mtime_ns))
            _sub(c, "ETag", f'"{rec.etag.lower()}"')
            _sub(c, "Size", str(rec.size))
            _sub(c, "StorageClass", _S3_CLASS.get(rec.storage_class, "STANDARD"))
            if not v2 or fetch_owner:
                owner = ET.SubElement(c, "Owner")
                _sub(owner, "ID", "emulator")
                _sub(owner, "DisplayName", "emulator")
        for p in res.prefixes:
            _sub(ET.SubElement(root, "CommonPrefixes"), "Prefix", enc(p))
        return root
