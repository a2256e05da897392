"""Tests of `ossfs.store.answers`: response headers to `ObjectMeta`."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from ossfs.core.errors import IntegrityError
from ossfs.store.answers import meta_from_headers
from tests.test_oss_store import ETAG, LAST_MODIFIED, LAST_MODIFIED_NS


def test_meta_from_headers_parses_everything() -> None:
    headers = {
        "content-length": "1024",
        "etag": f'"{ETAG}"',
        "last-modified": LAST_MODIFIED,
        "x-oss-hash-crc64ecma": "14969823782951187105",
        "x-oss-storage-class": "Archive",
        "x-oss-object-type": "Multipart",
        "content-type": "text/plain",
        "x-oss-restore": 'ongoing-request="true"',
        "x-oss-meta-zeta": "z",
        "x-oss-meta-alpha": "a",
    }
    meta = meta_from_headers("dir/a.txt", headers)
    assert meta.key == "dir/a.txt"
    assert meta.size == 1024
    assert meta.etag == ETAG
    assert meta.mtime_ns == LAST_MODIFIED_NS
    assert meta.crc64 == 14969823782951187105
    assert meta.storage_class == "Archive"
    assert meta.object_type == "Multipart"
    assert meta.content_type == "text/plain"
    assert meta.restore == 'ongoing-request="true"'
    assert meta.user_meta == (("alpha", "a"), ("zeta", "z"))
    assert meta.is_frozen


def test_meta_from_headers_defaults_and_size_override() -> None:
    meta = meta_from_headers("k", {"content-length": "7", "etag": '"E"'}, size=99)
    assert meta.size == 99
    assert meta.crc64 is None
    assert meta.storage_class == "Standard"
    assert meta.object_type == "Normal"
    assert meta.user_meta == ()


@pytest.mark.parametrize(
    "headers",
    [
        {"etag": '"E"'},
        {"content-length": "x"},
        {"content-length": "1", "last-modified": "yesterday"},
        {"content-length": "1", "x-oss-hash-crc64ecma": "-5"},
    ],
)
def test_meta_from_headers_rejects_bad_headers(headers: Mapping[str, str]) -> None:
    with pytest.raises(IntegrityError):
        meta_from_headers("k", headers)
