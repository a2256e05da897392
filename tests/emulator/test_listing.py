"""Listing: the pure walk over storage, and ListObjects v1/v2 through oss2."""

from __future__ import annotations

from pathlib import Path

import oss2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ossfs.emulator import EmulatorServer
from ossfs.emulator.listing import (
    decode_token,
    encode_token,
    list_keys,
    prefix_successor,
)
from ossfs.emulator.storage import ObjectRecord, Storage
from tests.support import BUCKET

KEYS = ["a", "b/1", "b/2", "b/c/3", "c d", "c+d", "c/", "d%2F", "é/x", "目录/文件"]


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    s = Storage(tmp_path)
    s.create_bucket("b")
    s.put_empty_many("b", KEYS)
    return s


def _walk(storage: Storage, *, prefix: str = "", delimiter: str = "", max_keys: int) -> list[str]:
    names: list[str] = []
    marker = ""
    while True:
        res = list_keys(
            storage, "b", prefix=prefix, delimiter=delimiter, marker=marker, max_keys=max_keys
        )
        names.extend([o.key for o in res.objects] + list(res.prefixes))
        assert len(res.objects) + len(res.prefixes) <= max_keys
        if not res.truncated:
            return names
        assert res.next_marker is not None
        marker = res.next_marker


def test_list_keys_sorted_by_utf8_bytes(storage: Storage) -> None:
    res = list_keys(storage, "b", max_keys=1000)
    assert [o.key for o in res.objects] == sorted(KEYS, key=lambda k: k.encode())
    assert not res.truncated


def test_list_keys_delimiter_rolls_up_common_prefixes(storage: Storage) -> None:
    res = list_keys(storage, "b", delimiter="/", max_keys=1000)
    assert [o.key for o in res.objects] == ["a", "c d", "c+d", "d%2F"]
    assert res.prefixes == ("b/", "c/", "é/", "目录/")
    sub = list_keys(storage, "b", prefix="b/", delimiter="/", max_keys=1000)
    assert ([o.key for o in sub.objects], sub.prefixes) == (["b/1", "b/2"], ("b/c/",))


@pytest.mark.parametrize("max_keys", [1, 2, 3, 1000])
@pytest.mark.parametrize(("prefix", "delimiter"), [("", ""), ("", "/"), ("b/", "/"), ("c", "")])
def test_list_keys_pagination_matches_single_page(
    storage: Storage, max_keys: int, prefix: str, delimiter: str
) -> None:
    whole = list_keys(storage, "b", prefix=prefix, delimiter=delimiter, max_keys=1000)
    expected = sorted([o.key for o in whole.objects] + list(whole.prefixes))
    assert sorted(_walk(storage, prefix=prefix, delimiter=delimiter, max_keys=max_keys)) == expected


def test_list_keys_max_keys_zero(storage: Storage) -> None:
    res = list_keys(storage, "b", max_keys=0)
    assert (res.objects, res.prefixes, res.truncated) == ((), (), False)


def test_prefix_successor() -> None:
    assert prefix_successor("a/") == "a0"
    assert prefix_successor("") is None
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("\ud7ff") == "\ue000"


def test_token_round_trip_has_no_percent() -> None:
    for name in ["", "a/b c", "目录/", "%2F?&"]:
        token = encode_token(name)
        assert "%" not in token
        assert decode_token(token) == name


def test_list_v1_and_v2_pagination_via_oss2(
    oss_bucket: oss2.Bucket, emulator: EmulatorServer
) -> None:
    emulator.put_empty_objects(BUCKET, KEYS)
    v1 = [o.key for o in oss2.ObjectIterator(oss_bucket, max_keys=1)]
    v2 = [o.key for o in oss2.ObjectIteratorV2(oss_bucket, max_keys=1)]
    assert v1 == v2 == sorted(KEYS, key=lambda k: k.encode())
    v1d = [o.key for o in oss2.ObjectIterator(oss_bucket, delimiter="/", max_keys=1)]
    v2d = [o.key for o in oss2.ObjectIteratorV2(oss_bucket, delimiter="/", max_keys=1)]
    assert v1d == v2d == ["a", "b/", "c d", "c+d", "c/", "d%2F", "é/", "目录/"]
    assert emulator.log.counts()["ListObjectsV2"] >= 8


def test_list_v2_fields_via_oss2(oss_bucket: oss2.Bucket, emulator: EmulatorServer) -> None:
    emulator.put_empty_objects(BUCKET, KEYS)
    page = oss_bucket.list_objects_v2(prefix="b/", delimiter="/", max_keys=2)
    assert page.is_truncated
    assert [o.key for o in page.object_list] == ["b/1", "b/2"]
    assert page.prefix_list == []
    nxt = oss_bucket.list_objects_v2(
        prefix="b/", delimiter="/", max_keys=2, continuation_token=page.next_continuation_token
    )
    assert nxt.prefix_list == ["b/c/"] and not nxt.is_truncated
    obj = page.object_list[0]
    assert (obj.size, obj.type, obj.storage_class, obj.owner) == (0, "Normal", "Standard", None)
    owned = oss_bucket.list_objects_v2(prefix="b/", fetch_owner=True)
    assert owned.object_list[0].owner is not None
    after = oss_bucket.list_objects_v2(start_after="c/")
    assert [o.key for o in after.object_list] == ["d%2F", "é/x", "目录/文件"]
    v1 = oss_bucket.list_objects(prefix="b/", max_keys=1)
    assert v1.is_truncated and v1.next_marker == "b/1"
    assert v1.object_list[0].owner is not None


def test_list_bad_arguments(oss_bucket: oss2.Bucket) -> None:
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.list_objects_v2(continuation_token="!!!not-base64")
    assert info.value.status == 400
    with pytest.raises(oss2.exceptions.ServerError) as info:
        oss_bucket.list_objects(max_keys=1001)
    assert info.value.code == "InvalidArgument"


def test_list_20k_keys_with_delimiter(oss_bucket: oss2.Bucket, emulator: EmulatorServer) -> None:
    keys = [f"dir{d:02d}/file{i:05d}" for d in range(20) for i in range(1000)]
    keys += [f"top{i}" for i in range(5)]
    emulator.put_empty_objects(BUCKET, keys)
    top = [o.key for o in oss2.ObjectIteratorV2(oss_bucket, delimiter="/")]
    assert top == [f"dir{d:02d}/" for d in range(20)] + [f"top{i}" for i in range(5)]
    assert emulator.log.counts()["ListObjectsV2"] == 1
    sub = [o.key for o in oss2.ObjectIteratorV2(oss_bucket, prefix="dir07/", delimiter="/")]
    assert sub == [f"dir07/file{i:05d}" for i in range(1000)]
    paged = [o.key for o in oss2.ObjectIterator(oss_bucket, delimiter="/", max_keys=7)]
    assert paged == top


class _CountingStorage(Storage):
    """Counts the index rows `scan` reads."""

    rows_read = 0

    def scan(self, bucket: str, start: str, *, inclusive: bool, limit: int) -> list[ObjectRecord]:
        rows = super().scan(bucket, start, inclusive=inclusive, limit=limit)
        self.rows_read += len(rows)
        return rows


def test_list_keys_delimited_reads_about_one_row_per_entry(tmp_path: Path) -> None:
    storage = _CountingStorage(tmp_path)
    storage.create_bucket("b")
    storage.put_empty_many("b", [f"w/d{d:03d}/f{f:02d}" for d in range(100) for f in range(20)])
    res = list_keys(storage, "b", prefix="w/", delimiter="/", max_keys=1000)
    assert res.prefixes == tuple(f"w/d{d:03d}/" for d in range(100))
    # One row after each seek (the next directory's first key), not a batch of rows under it.
    assert storage.rows_read <= 2 * len(res.prefixes)


def _model(
    keys: list[str], prefix: str, delimiter: str, marker: str, max_keys: int
) -> tuple[list[str], list[str], bool]:
    """What OSS answers, computed the slow way: every key, in order."""
    objects: list[str] = []
    prefixes: list[str] = []
    for key in sorted(keys):
        if not key.startswith(prefix):
            continue
        at = key.find(delimiter, len(prefix)) if delimiter else -1
        entry = key[: at + len(delimiter)] if at >= 0 else key
        if entry <= marker or (prefixes and prefixes[-1] == entry):
            continue
        if len(objects) + len(prefixes) == max_keys:
            return objects, prefixes, True
        (prefixes if at >= 0 else objects).append(entry)
    return objects, prefixes, False


_NAMES = st.text(alphabet="ab/", min_size=1, max_size=6)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.lists(_NAMES, min_size=0, max_size=40, unique=True),
    prefix=st.text(alphabet="ab/", max_size=2),
    delimiter=st.sampled_from(["", "/", "b"]),
    marker=st.text(alphabet="ab/", max_size=4),
    max_keys=st.integers(min_value=1, max_value=8),
)
def test_list_keys_matches_the_model(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    keys: list[str],
    prefix: str,
    delimiter: str,
    marker: str,
    max_keys: int,
) -> None:
    storage = Storage(tmp_path_factory.mktemp("s"))
    storage.create_bucket("b")
    storage.put_empty_many("b", keys)
    res = list_keys(
        storage, "b", prefix=prefix, delimiter=delimiter, marker=marker, max_keys=max_keys
    )
    got = ([o.key for o in res.objects], list(res.prefixes), res.truncated)
    assert got == _model(keys, prefix, delimiter, marker, max_keys)
