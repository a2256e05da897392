"""OSS's answers as ossfs's values: response headers to `ObjectMeta`, and ListObjectsV2's XML
to `ListPage` (read here, not by oss2's parser, which decodes the names of keys that are not
UTF-8 into U+FFFD: `_unquote_listed_key`).

It deliberately sends nothing and checks no range (`ossfs.store.ranges`).
"""

from __future__ import annotations

import email.utils
import urllib.parse
from collections.abc import Mapping
from typing import Final
from xml.etree import ElementTree

import oss2.utils

from ossfs.core.errors import IntegrityError
from ossfs.core.object_store import ListPage, ObjectMeta
from ossfs.store.failures import MalformedResponseError

__all__ = ["USER_META_PREFIX", "list_page_from_xml", "meta_from_headers"]

USER_META_PREFIX: Final = "x-oss-meta-"


def _unquote_listed_key(text: str) -> str:
    """Decode one URL-encoded name of a listing, keeping bytes that are not UTF-8.

    ListObjectsV2 sends keys URL-encoded (``encoding-type=url``) because XML cannot carry every
    key. oss2's parser decodes them with urllib's default ``errors="replace"``, which turns
    bytes that are not UTF-8 into U+FFFD: such a key would be shown under a name that is not its
    key (its reads would fail ENOENT) and two of them could show as one name.
    ``surrogateescape`` keeps each one distinct and recognisable (lone surrogates), so the
    namespace skips it with a warning. Valid UTF-8 decodes exactly as oss2 decodes it.
    """
    return urllib.parse.unquote(text, errors="surrogateescape")


def _parse_http_date_ns(value: str) -> int:
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        raise IntegrityError(f"unparsable Last-Modified {value!r}")
    return email.utils.mktime_tz(parsed) * 1_000_000_000


def meta_from_headers(
    key: str, headers: Mapping[str, str], *, size: int | None = None
) -> ObjectMeta:
    """Build `ObjectMeta` from HEAD/GET response headers (names lower-cased).

    ``size`` overrides Content-Length (needed for a 206, whose Content-Length is the body's).
    Raises `IntegrityError` when a size, date or CRC header is missing or malformed.
    """
    if size is None:
        length = headers.get("content-length")
        if length is None or not length.strip().isdigit():
            raise IntegrityError(f"{key!r}: missing or bad Content-Length {length!r}")
        size = int(length)
    last_modified = headers.get("last-modified")
    mtime_ns = 0 if last_modified is None else _parse_http_date_ns(last_modified)
    crc_text = headers.get("x-oss-hash-crc64ecma")
    crc: int | None = None
    if crc_text is not None:
        if not crc_text.strip().isdigit() or int(crc_text) >= 1 << 64:
            raise IntegrityError(f"{key!r}: bad x-oss-hash-crc64ecma {crc_text!r}")
        crc = int(crc_text)
    user_meta = tuple(
        sorted(
            (name[len(USER_META_PREFIX) :], value)
            for name, value in headers.items()
            if name.startswith(USER_META_PREFIX)
        )
    )
    return ObjectMeta(
        key=key,
        size=size,
        etag=headers.get("etag", "").strip().strip('"'),
        mtime_ns=mtime_ns,
        crc64=crc,
        storage_class=headers.get("x-oss-storage-class", "Standard"),
        object_type=headers.get("x-oss-object-type", "Normal"),
        content_type=headers.get("content-type"),
        restore=headers.get("x-oss-restore"),
        user_meta=user_meta,
    )


def list_page_from_xml(prefix: str, body: bytes) -> ListPage:
    """`ListPage` from a ListObjectsV2 answer's XML, read as oss2's parser reads it (the same
    elements required, dates and sizes parsed alike) but for names (`_unquote_listed_key`);
    mtimes are whole seconds, as listed.

    Raises `MalformedResponseError` for a body that is not such a listing, or a truncated page
    without a next token.
    """
    try:
        return _list_page(prefix, ElementTree.fromstring(body))
    except (ElementTree.ParseError, _MissingElementError, ValueError) as exc:
        raise MalformedResponseError(f"list {prefix!r}: {type(exc).__name__}: {exc}") from exc


class _MissingElementError(Exception):
    """A listing lacks an element every listing has."""


def _text(parent: ElementTree.Element, path: str) -> str:
    """The text of ``path`` under ``parent`` ("" when empty); raises if it is missing."""
    child = parent.find(path)
    if child is None:
        raise _MissingElementError(f"no {path} under {parent.tag}")
    return child.text or ""


def _list_page(prefix: str, root: ElementTree.Element) -> ListPage:
    encoding = root.find("EncodingType")
    encoded = encoding is not None and encoding.text == "url"

    def name(parent: ElementTree.Element, path: str) -> str:
        text = _text(parent, path)
        return _unquote_listed_key(text) if encoded else text

    truncated = _text(root, "IsTruncated")
    if truncated not in ("true", "false"):
        raise ValueError(f"IsTruncated is {truncated!r}")
    objects = []
    for node in root.findall("Contents"):
        restore = node.find("RestoreInfo")
        objects.append(
            ObjectMeta(
                key=name(node, "Key"),
                size=int(_text(node, "Size")),
                etag=_text(node, "ETag").strip('"'),
                mtime_ns=oss2.utils.iso8601_to_unixtime(_text(node, "LastModified"))
                * 1_000_000_000,
                crc64=None,
                storage_class=_text(node, "StorageClass") or "Standard",
                object_type=_text(node, "Type") or "Normal",
                restore=None if restore is None else restore.text or "",
            )
        )
    prefixes = tuple(name(node, "Prefix") for node in root.findall("CommonPrefixes"))
    next_token: str | None = None
    if truncated == "true":
        next_token = name(root, "NextContinuationToken")
        if not next_token:
            raise MalformedResponseError(f"list {prefix!r}: truncated page without a next token")
    return ListPage(objects=tuple(objects), prefixes=prefixes, next_token=next_token)
