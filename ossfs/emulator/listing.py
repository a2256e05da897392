"""Listing logic shared by the OSS and S3 dialects, and the OSS list XML.

`list_keys` walks the index in key order from a marker, rolls keys up into common prefixes at
the delimiter and seeks straight past each common prefix (one index seek per prefix, reading
one row after it, never a scan of the keys under it), so a delimited listing of a huge bucket
reads O(page size) rows.
Objects and common prefixes together count against ``max_keys``, as on OSS.

Continuation tokens are base64url of the last returned name: no ``%`` (oss2 URL-decodes them).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote
from xml.etree import ElementTree as ET

from ossfs.emulator.storage import ObjectRecord, Storage

MAX_KEYS: Final = 1000
_BATCH: Final = 256
OWNER_ID: Final = "1686240967192623"


class BadTokenError(ValueError):
    """A continuation token that this server did not issue."""


@dataclass(frozen=True, slots=True)
class ListResult:
    """One page: objects and common prefixes (each in key order) and where the page ended."""

    objects: tuple[ObjectRecord, ...]
    prefixes: tuple[str, ...]
    truncated: bool
    next_marker: str | None  # the last name returned, when truncated


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix`` (None: none)."""
    chars = list(prefix)
    while chars:
        last = ord(chars[-1])
        nxt = last + 1
        if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be stored as UTF-8
            nxt = 0xE000
        if nxt <= 0x10FFFF:
            chars[-1] = chr(nxt)
            return "".join(chars)
        chars.pop()
    return None


def list_keys(
    storage: Storage,
    bucket: str,
    *,
    prefix: str = "",
    delimiter: str = "",
    marker: str = "",
    max_keys: int = MAX_KEYS,
) -> ListResult:
    """Names after ``marker`` (exclusive) that start with ``prefix``, rolled up at ``delimiter``.

    A common prefix that sorts at or before ``marker`` is not repeated (a marker that is a
    common prefix resumes after everything under it).
    """
    objects: list[ObjectRecord] = []
    prefixes: list[str] = []
    items = 0
    last = ""
    if marker >= prefix:
        cursor, inclusive = marker, False
    else:
        cursor, inclusive = prefix, True
    if max_keys <= 0:
        return ListResult((), (), False, None)
    # After a seek past a common prefix, the next row is often another common prefix (a
    # directory of directories): fetch one row first and double the batch while rows are used,
    # so that a delimited listing reads about as many rows as it returns.
    batch = 1 if delimiter else _BATCH
    while True:
        rows = storage.scan(bucket, cursor, inclusive=inclusive, limit=batch)
        if not rows:
            return ListResult(tuple(objects), tuple(prefixes), False, None)
        seek: str | None = None
        for rec in rows:
            if not rec.key.startswith(prefix):
                return ListResult(tuple(objects), tuple(prefixes), False, None)
            common = None
            if delimiter:
                at = rec.key.find(delimiter, len(prefix))
                if at >= 0:
                    common = rec.key[: at + len(delimiter)]
            if common is not None and common <= marker:
                seek = prefix_successor(common)
                if seek is None:
                    return ListResult(tuple(objects), tuple(prefixes), False, None)
                break
            if items == max_keys:
                return ListResult(tuple(objects), tuple(prefixes), True, last)
            items += 1
            if common is not None:
                prefixes.append(common)
                last = common
                seek = prefix_successor(common)
                if seek is None:
                    return ListResult(tuple(objects), tuple(prefixes), False, None)
                break
            objects.append(rec)
            last = rec.key
        if seek is not None:
            cursor, inclusive, batch = seek, True, 1
        elif len(rows) < batch:
            return ListResult(tuple(objects), tuple(prefixes), False, None)
        else:
            cursor, inclusive, batch = rows[-1].key, False, min(batch * 2, _BATCH)


def encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def decode_token(token: str) -> str:
    """Raise `BadTokenError` unless ``token`` came from `encode_token`."""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadTokenError(token) from exc


def iso8601(mtime_ns: int) -> str:
    """``2020-05-18T05:45:54.000Z``: oss2 requires exactly ``.000Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(mtime_ns // 1_000_000_000))


def url_encode(name: str) -> str:
    return quote(name, safe="")


def restore_info(rec: ObjectRecord, now_ns: int, *, expiry_s: int) -> str | None:
    """The ``x-oss-restore`` / ``<RestoreInfo>`` value of an archive object, or None."""
    if rec.restore_ready_ns is None or not rec.is_archive:
        return None
    if now_ns < rec.restore_ready_ns:
        return 'ongoing-request="true"'
    expiry = email.utils.formatdate(rec.restore_ready_ns / 1e9 + expiry_s, usegmt=True)
    return f'ongoing-request="false", expiry-date="{expiry}"'


@dataclass(frozen=True, slots=True)
class ListRequest:
    """Decoded OSS list parameters (v1 uses ``marker``; v2 ``token``/``start_after``)."""

    bucket: str
    v2: bool
    prefix: str = ""
    delimiter: str = ""
    marker: str = ""
    token: str | None = None
    start_after: str = ""
    max_keys: int = 100
    url_encoding: bool = False
    fetch_owner: bool = False


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = text
    return el


def oss_list_xml(req: ListRequest, res: ListResult, *, now_ns: int, restore_expiry_s: int) -> bytes:
    """The ``<ListBucketResult>`` OSS sends: no xmlns, lowercase booleans, ``.000Z`` times."""

    def enc(s: str) -> str:
        return url_encode(s) if req.url_encoding else s

    root = ET.Element("ListBucketResult")
    _sub(root, "Name", req.bucket)
    _sub(root, "Prefix", enc(req.prefix))
    if req.v2:
        if req.start_after:
            _sub(root, "StartAfter", enc(req.start_after))
        if req.token:
            _sub(root, "ContinuationToken", req.token)
    else:
        _sub(root, "Marker", enc(req.marker))
    _sub(root, "MaxKeys", str(req.max_keys))
    _sub(root, "Delimiter", enc(req.delimiter))
    if req.url_encoding:
        _sub(root, "EncodingType", "url")
    _sub(root, "IsTruncated", "true" if res.truncated else "false")
    if res.truncated and res.next_marker is not None:
        if req.v2:
            _sub(root, "NextContinuationToken", encode_token(res.next_marker))
        else:
            _sub(root, "NextMarker", enc(res.next_marker))
    for rec in res.objects:
        c = ET.SubElement(root, "Contents")
        _sub(c, "Key", enc(rec.key))
        _sub(c, "LastModified", iso8601(rec.mtime_ns))
        _sub(c, "ETag", f'"{rec.etag}"')
        _sub(c, "Type", rec.object_type)
        _sub(c, "Size", str(rec.size))
        _sub(c, "StorageClass", rec.storage_class)
        if not req.v2 or req.fetch_owner:
            owner = ET.SubElement(c, "Owner")
            _sub(owner, "ID", OWNER_ID)
            _sub(owner, "DisplayName", OWNER_ID)
        info = restore_info(rec, now_ns, expiry_s=restore_expiry_s)
        if info is not None:
            _sub(c, "RestoreInfo", info)
    for p in res.prefixes:
        cp = ET.SubElement(root, "CommonPrefixes")
        _sub(cp, "Prefix", enc(p))
    if req.v2:
        _sub(root, "KeyCount", str(len(res.objects) + len(res.prefixes)))
    return xml_document(root)


def xml_document(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()
