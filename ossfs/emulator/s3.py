"""A read-only, anonymous S3 dialect over the same storage, for peer tools (s3fs-fuse, rclone).

GET/HEAD object (standard RFC 7233 ranges: 206, 416 InvalidRange; conditional requests: 304,
412), HEAD bucket, GetBucketLocation, ListObjectsV2/v1 and ListBuckets in S3's XML (with the S3
xmlns), and S3-shaped errors. Sub-resources get S3's answers for a public, unversioned bucket
without any configuration: ``?acl`` (public-read), ``?versioning`` (never enabled), ``?uploads``
(none in progress), object ``?tagging`` (no tags), 404 ``NoSuch...`` for bucket configurations
(policy, cors, ...) and 501 NotImplemented for the rest. Everything that writes is 403
AccessDenied. No signature checks; no faults except those on GET bodies. Every request is
logged under an ``S3:<Operation>`` name, errors included.

This module is the handler; the operation names, sub-resources, error type and XML helpers it
shares are in `ossfs.emulator.s3_protocol`.
"""

from __future__ import annotations

import time
from typing import BinaryIO, Final
from xml.etree import ElementTree as ET

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
from ossfs.emulator.s3_protocol import (
    NotModified,
    S3Error,
    classify,
    not_implemented,
    s3_xml,
    subresource,
    text_child,
)
from ossfs.emulator.storage import ARCHIVE_CLASSES, ObjectRecord

_XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
_ALL_USERS: Final = "http://acs.amazonaws.com/groups/global/AllUsers"
_OWNER_ID: Final = "emulator"
_S3_CLASS: Final = {
    "Standard": "STANDARD",
    "IA": "STANDARD_IA",
    "Archive": "GLACIER",
    "ColdArchive": "GLACIER",
    "DeepColdArchive": "DEEP_ARCHIVE",
}
# Bucket configurations that this server never has: S3 answers 404 with these codes.
_NO_BUCKET_CONFIG: Final = {
    "policy": ("NoSuchBucketPolicy", "The bucket policy does not exist"),
    "cors": ("NoSuchCORSConfiguration", "The CORS configuration does not exist"),
    "lifecycle": ("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
    "website": (
        "NoSuchWebsiteConfiguration",
        "The specified bucket does not have a website configuration",
    ),
    "tagging": ("NoSuchTagSet", "The TagSet does not exist"),
    "encryption": (
        "ServerSideEncryptionConfigurationNotFoundError",
        "The server side encryption configuration was not found",
    ),
    "replication": (
        "ReplicationConfigurationNotFoundError",
        "The replication configuration was not found",
    ),
    "object-lock": (
        "ObjectLockConfigurationNotFoundError",
        "Object Lock configuration does not exist for this bucket",
    ),
    "publicAccessBlock": (
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
    ),
    "ownershipControls": (
        "OwnershipControlsNotFoundError",
        "The bucket ownership controls were not found",
    ),
}
_PRECONDITION_MSG: Final = "At least one of the pre-conditions you specified did not hold"


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {t.strip().removeprefix("W/").strip('"').lower() for t in header.split(",")}
    return "*" in wanted or etag.lower() in wanted


class S3Handler(BaseHandler):
    """S3 requests, path style (``/bucket/key``)."""

    server_header = "AmazonS3"
    request_id = ""

    def dispatch(self) -> None:
        self.request_id = new_request_id()
        req = self.parse_request_target(lambda name: False)
        if req.method == "PUT":
            self.close_connection = True
        else:
            self.read_small_body(req)
        op = classify(req)
        self.ctx.log.count(op)
        status, sent = 500, 0
        try:
            if op != "S3:GetObject":  # a GET's latency comes with its body's plan
                self.delay(self.ctx.faults.latency_plan(req.key or req.param("prefix")))
            status, sent = self._route(req, op)
        except S3Error as err:
            status, sent = self._send_error(req, err)
        except NotModified as nm:
            status, sent = 304, 0
            self.start_response(304, [*self._base(), *nm.headers])
        except ClientGoneError:
            pass
        self.ctx.log.record(
            LogEntry(
                op, req.bucket, req.key, req.headers.get("range"), status, sent, self.request_id
            ),
            counted=True,
        )

    def _route(self, req: Request, op: str) -> tuple[int, int]:
        if req.method not in ("GET", "HEAD"):
            raise S3Error(403, "AccessDenied", "Access Denied (read-only endpoint)")
        if req.bucket is None:
            return self._list_buckets()
        if self.ctx.storage.bucket(req.bucket) is None:
            raise S3Error(
                404, "NoSuchBucket", "The specified bucket does not exist", BucketName=req.bucket
            )
        sub = subresource(req)
        if req.key is None:
            if op == "S3:HeadBucket":
                return self._empty(200, [("x-amz-bucket-region", self._region)])
            if sub is None:
                return self._list(req, v2=op == "S3:ListObjectsV2")
            return self._bucket_subresource(req, sub)
        if sub is None:
            return self._object(req, head=req.method == "HEAD")
        return self._object_subresource(req, sub)

    def _bucket_subresource(self, req: Request, sub: str) -> tuple[int, int]:
        assert req.bucket is not None
        if sub == "location":
            root = s3_xml("LocationConstraint")
            root.text = self._region
            return self._xml(root)
        if sub == "acl":
            return self._xml(self._acl())
        if sub == "versioning":
            return self._xml(s3_xml("VersioningConfiguration"))
        if sub == "uploads":
            root = s3_xml("ListMultipartUploadsResult")
            text_child(root, "Bucket", req.bucket)
            text_child(root, "KeyMarker", req.param("key-marker") or "")
            text_child(root, "UploadIdMarker", req.param("upload-id-marker") or "")
            text_child(root, "NextKeyMarker", "")
            text_child(root, "NextUploadIdMarker", "")
            if req.param("prefix"):
                text_child(root, "Prefix", req.param("prefix") or "")
            if req.param("delimiter"):
                text_child(root, "Delimiter", req.param("delimiter") or "")
            text_child(root, "MaxUploads", req.param("max-uploads") or "1000")
            text_child(root, "IsTruncated", "false")
            return self._xml(root)
        if sub in _NO_BUCKET_CONFIG:
            code, message = _NO_BUCKET_CONFIG[sub]
            raise S3Error(404, code, message, BucketName=req.bucket)
        raise not_implemented()

    def _object_subresource(self, req: Request, sub: str) -> tuple[int, int]:
        assert req.bucket is not None and req.key is not None
        if sub == "uploadId":
            raise S3Error(
                404,
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the upload "
                "may have been aborted or completed.",
                UploadId=req.param("uploadId") or "",
            )
        if sub not in ("acl", "tagging"):
            raise not_implemented()
        _, _, file = self._open(req.bucket, req.key)
        if file is not None:
            file.close()
        if sub == "acl":
            return self._xml(self._acl())
        root = s3_xml("Tagging")
        ET.SubElement(root, "TagSet")
        return self._xml(root)

    @staticmethod
    def _acl() -> ET.Element:
        """A public-read ACL: the owner has FULL_CONTROL, everyone READ."""
        root = s3_xml("AccessControlPolicy")
        owner = ET.SubElement(root, "Owner")
        text_child(owner, "ID", _OWNER_ID)
        text_child(owner, "DisplayName", _OWNER_ID)
        acl = ET.SubElement(root, "AccessControlList")
        for kind, ident, permission in (
            ("CanonicalUser", _OWNER_ID, "FULL_CONTROL"),
            ("Group", _ALL_USERS, "READ"),
        ):
            grant = ET.SubElement(acl, "Grant")
            grantee = ET.SubElement(grant, "Grantee", {"xmlns:xsi": _XSI_NS, "xsi:type": kind})
            if kind == "Group":
                text_child(grantee, "URI", ident)
            else:
                text_child(grantee, "ID", ident)
                text_child(grantee, "DisplayName", ident)
            text_child(grant, "Permission", permission)
        return root

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
        text_child(root, "Code", err.code)
        text_child(root, "Message", err.message)
        for tag, text in err.extra.items():
            text_child(root, tag, text)
        text_child(root, "RequestId", self.request_id)
        text_child(root, "HostId", self.request_id)
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
        version = req.param("versionId")
        if version is not None and version != "null":
            raise S3Error(
                400,
                "InvalidArgument",
                "Invalid version id specified",
                ArgumentName="versionId",
                ArgumentValue=version,
            )
        rec, data, file = self._open(req.bucket, req.key)
        try:
            mtime_s = max(rec.mtime_s, data.mtime_s)
            self._check_conditions(req, data, mtime_s)
            headers = [
                *self._base(),
                ("Content-Type", rec.content_type),
                ("ETag", f'"{data.etag.lower()}"'),
                ("Last-Modified", http_date(mtime_s)),
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
            self.delay(plan)
            self.start_response(status, [*headers, ("Content-Length", str(length))])
            sent, fault = self.send_file_range(file, start, length, plan)
            if fault is not None:
                self.ctx.log.record_fault(fault)
            return status, sent
        finally:
            if file is not None:
                file.close()

    @staticmethod
    def _check_conditions(req: Request, data: ObjectRecord, mtime_s: int) -> None:
        """RFC 7232 as S3 applies it: If-Match beats If-Unmodified-Since, If-None-Match beats
        If-Modified-Since; failures are 412 PreconditionFailed, matches 304."""
        h = req.headers
        if_match = h.get("if-match")
        if if_match is not None:
            if not _etag_matches(if_match, data.etag):
                raise S3Error(412, "PreconditionFailed", _PRECONDITION_MSG, Condition="If-Match")
        else:
            since = parse_http_date(h.get("if-unmodified-since"))
            if since is not None and mtime_s > since:
                raise S3Error(
                    412, "PreconditionFailed", _PRECONDITION_MSG, Condition="If-Unmodified-Since"
                )
        validators = [("ETag", f'"{data.etag.lower()}"'), ("Last-Modified", http_date(mtime_s))]
        if_none = h.get("if-none-match")
        if if_none is not None:
            if _etag_matches(if_none, data.etag):
                raise NotModified(validators)
        else:
            since = parse_http_date(h.get("if-modified-since"))
            if since is not None and mtime_s <= since:
                raise NotModified(validators)

    def _frozen(self, rec: ObjectRecord) -> bool:
        return rec.restore_ready_ns is None or time.time_ns() < rec.restore_ready_ns

    def _list_buckets(self) -> tuple[int, int]:
        root = s3_xml("ListAllMyBucketsResult")
        owner = ET.SubElement(root, "Owner")
        text_child(owner, "ID", "emulator")
        text_child(owner, "DisplayName", "emulator")
        buckets = ET.SubElement(root, "Buckets")
        for rec in self.ctx.storage.buckets():
            b = ET.SubElement(buckets, "Bucket")
            text_child(b, "Name", rec.name)
            text_child(b, "CreationDate", iso8601(rec.created_ns))
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

        root = s3_xml("ListBucketResult")
        text_child(root, "Name", bucket)
        text_child(root, "Prefix", enc(prefix))
        if v2:
            if token:
                text_child(root, "ContinuationToken", token)
            if start_after:
                text_child(root, "StartAfter", enc(start_after))
            text_child(root, "KeyCount", str(len(res.objects) + len(res.prefixes)))
        else:
            text_child(root, "Marker", enc(marker))
        text_child(root, "MaxKeys", str(max_keys))
        if delimiter:
            text_child(root, "Delimiter", enc(delimiter))
        if url:
            text_child(root, "EncodingType", "url")
        text_child(root, "IsTruncated", "true" if res.truncated else "false")
        if res.truncated and res.next_marker is not None:
            if v2:
                text_child(root, "NextContinuationToken", encode_token(res.next_marker))
            else:
                text_child(root, "NextMarker", enc(res.next_marker))
        for rec in res.objects:
            c = ET.SubElement(root, "Contents")
            text_child(c, "Key", enc(rec.key))
            text_child(c, "LastModified", iso8601(rec.mtime_ns))
            text_child(c, "ETag", f'"{rec.etag.lower()}"')
            text_child(c, "Size", str(rec.size))
            text_child(c, "StorageClass", _S3_CLASS.get(rec.storage_class, "STANDARD"))
            if not v2 or fetch_owner:
                owner = ET.SubElement(c, "Owner")
                text_child(owner, "ID", "emulator")
                text_child(owner, "DisplayName", "emulator")
        for p in res.prefixes:
            text_child(ET.SubElement(root, "CommonPrefixes"), "Prefix", enc(p))
        return root
