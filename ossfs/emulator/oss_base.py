"""The OSS dialect's shared handler base: responses, error answers and object lookups.

Responsibility: `OssHandlerBase` holds what every OSS operation uses: the ``x-oss-request-id``
header, OSS ``<Error>`` answers (base64 in ``x-oss-err`` for HEAD), XML and empty responses,
the bucket check, symlink resolution when an object is opened, the GET/HEAD object headers
(archive restore state included), the conditional headers (412, or `NotModified` for 304), and
a fault plan's injected 503/500.

Deliberately not done here: routing, authentication and choosing fault plans
(`ossfs.emulator.handler`), and the operations themselves (`ossfs.emulator.oss_objects`,
`ossfs.emulator.handler`).
"""

from __future__ import annotations

import time
from typing import BinaryIO, Final

from ossfs.emulator.faults import FaultPlan
from ossfs.emulator.httpbase import BaseHandler, Request, http_date, parse_http_date
from ossfs.emulator.listing import restore_info
from ossfs.emulator.oss_errors import (
    OssError,
    error_xml,
    head_error_header,
    no_such_bucket,
    no_such_key,
)
from ossfs.emulator.storage import ObjectRecord

XML: Final = "application/xml"
CHUNK: Final = 1 << 20
"""Bytes read from or written to a socket at a time."""

Outcome = tuple[int, int]  # (status, body bytes sent)


class NotModified(Exception):
    """304: the conditional GET/HEAD matched; carries the validators to send."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        super().__init__("304")
        self.headers = headers


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {t.strip().strip('"').upper() for t in header.split(",")}
    return "*" in wanted or etag.upper() in wanted


class OssHandlerBase(BaseHandler):
    """Responses and helpers shared by the OSS operations; one thread per connection."""

    request_id = ""
    _body_pending = False

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
                raise NotModified(validators)
        else:
            since = parse_http_date(h.get("if-modified-since"))
            if since is not None and mtime_s <= since:
                raise NotModified(validators)
