"""OSS's answers as ossfs's values: response headers and oss2's listing results to
`ObjectMeta` and `ListPage`.

Importing it makes oss2's listing parser keep keys that are not UTF-8 distinct
(`_unquote_listed_key`). It deliberately sends nothing and checks no range (`ossfs.store.ranges`).
"""

from __future__ import annotations

import email.utils
import urllib.parse
from collections.abc import Mapping
from typing import Final

import oss2.xml_utils

from ossfs.core.errors import IntegrityError
from ossfs.core.object_store import ListPage, ObjectMeta
from ossfs.store.failures import MalformedResponseError

__all__ = ["USER_META_PREFIX", "list_page_from_result", "meta_from_headers"]

USER_META_PREFIX: Final = "x-oss-meta-"


def _unquote_listed_key(text: str) -> str:
    """Decode one URL-encoded name of a listing, keeping bytes that are not UTF-8.

    ListObjectsV2 sends keys URL-encoded (``encoding-type=url``) because XML cannot carry every
    key. oss2 decodes them with urllib's default ``errors="replace"``, which turns bytes that
    are not UTF-8 into U+FFFD: such a key would be shown under a name that is not its key (its
    reads would fail ENOENT) and two of them could show as one name. ``surrogateescape`` keeps
    each one distinct and recognisable (lone surrogates), so the namespace skips it with a
    warning. Valid UTF-8 decodes exactly as before.
    """
    return urllib.parse.unquote(text, errors="surrogateescape")


# oss2's listing parsers call ``xml_utils.urlunquote`` on every key, prefix and marker.
oss2.xml_utils.urlunquote = _unquote_listed_key


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


def list_page_from_result(prefix: str, result: object) -> ListPage:
    """`ListPage` from oss2's ListObjectsV2 result (its ``object_list``, ``prefix_list``,
    ``is_truncated``, ``next_continuation_token``); mtimes are whole seconds, as listed.

    Raises `MalformedResponseError` for a truncated page without a next token.
    """
    objects = tuple(
        ObjectMeta(
            key=str(info.key),
            size=int(info.size),
            etag=str(info.etag).strip('"'),
            mtime_ns=int(info.last_modified) * 1_000_000_000,
            crc64=None,
            storage_class=str(info.storage_class or "Standard"),
            object_type=str(info.type or "Normal"),
            restore=None if info.restore_info is None else str(info.restore_info),
        )
        for info in result.object_list  # type: ignore[attr-defined]
    )
    prefixes = tuple(str(p) for p in result.prefix_list)  # type: ignore[attr-defined]
    next_token: str | None = None
    if result.is_truncated:  # type: ignore[attr-defined]
        next_token = str(result.next_continuation_token or "")  # type: ignore[attr-defined]
        if not next_token:
            raise MalformedResponseError(f"list {prefix!r}: truncated page without a next token")
    return ListPage(objects=objects, prefixes=prefixes, next_token=next_token)
