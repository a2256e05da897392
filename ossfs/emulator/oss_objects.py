"""The OSS dialect's object operations: GetObject, HeadObject, GetObjectMeta, PutObject (plain,
chunked, with Content-MD5), Put/GetSymlink, RestoreObject and DeleteObject, as OSS answers them.

Responsibility: serve an object's bytes with either of OSS's range behaviours and the archive
rules, and take in an upload.

Deliberately not done here: routing, authentication and fault selection (`ossfs.emulator.handler`
decides which operation runs), bucket and listing operations, and response plumbing
(`ossfs.emulator.oss_base`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from urllib.parse import quote, unquote

from ossfs.emulator.httpbase import ClientGoneError, Request, http_date
from ossfs.emulator.oss_base import CHUNK, OssHandlerBase, Outcome
from ossfs.emulator.oss_errors import OssError, no_such_bucket, no_such_key
from ossfs.emulator.ranges import RangeNotSatisfiableError, resolve_legacy, resolve_standard
from ossfs.emulator.storage import (
    STORAGE_CLASSES,
    AlreadyExistsError,
    BlobWriter,
    DigestMismatchError,
    NoSuchBucketError,
)

log = logging.getLogger(__name__)


def _user_meta(req: Request) -> dict[str, str]:
    return {
        k[len("x-oss-meta-") :]: v for k, v in req.headers.items() if k.startswith("x-oss-meta-")
    }


class OssObjectHandler(OssHandlerBase):
    """The object operations; `ossfs.emulator.handler.OssHandler` routes requests to them."""

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
                    chunk = self.rfile.read(min(CHUNK, remaining))
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
                chunk = self.rfile.read(min(CHUNK, remaining))
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
