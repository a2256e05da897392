"""Hostile object keys: through a real mount they never escape the mountpoint, never break a
listing, and are skipped with one (short) warning each; every representable key is listed and
reads its exact bytes (a hypothesis property over random key sets, on one mount).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ossfs.app.umount import is_mounted
from ossfs.core.names import LOG_KEY_CHARS, key_for_log, name_problem
from ossfs.emulator import EmulatorServer
from ossfs.fs.namespace import Namespace
from tests.support import BUCKET
from tests.support.fakes import FakeStore
from tests.support.mounts import Mounts, mounts_fixture
from tests.test_oss_store import Reply, make_store

DEEP_KEY = "/".join(["n"] * 200) + "/leaf.txt"  # 200 levels
LONG_REPRESENTABLE_KEY = "/".join(["z" * 200] * 50)  # 10,049 characters, every name valid
SKIPPED_KEYS: tuple[str, ...] = (
    ".",
    "..",
    "../escape.txt",
    "../../etc/passwd",
    "./dot.txt",
    "a//b.txt",
    "/lead.txt",
    "//x",
    "d/./x.txt",
    "d/../y.txt",
    "d/",  # a marker: the directory, not a skipped name
    "x" * 300,
    "long/" + "y" * 10_000,
    "nul/a\x00b.txt",
)
HOSTILE_LINKS: dict[str, str] = {  # symlink objects whose target key is no path
    "up": "../../../../../../../../etc/hostname",
    "dots": "d/./../../x",
    "empty": "a//b",
    "nothing": "",
}
SHOWN_KEYS: dict[str, bytes] = {
    "d/ok.txt": b"ok",
    "ctl/\x01\x1f\x7f.txt": b"control",
    "ctl/new\nline.txt": b"newline",
    "ctl/\t tab and spaces ": b"spaces",
    "bs/a\\b": b"backslash",
    "slashlike/a\u2215b\uff0fc\u29f8d": b"slash lookalikes are plain characters",
    "uni/\u00e9\u4e2d\U0001f600.txt": b"unicode",
    "max/" + "m" * 255: b"255 bytes",
    "max/" + "\u00e9" * 127: b"254 bytes of UTF-8",
    DEEP_KEY: b"deep",
    LONG_REPRESENTABLE_KEY: b"long key",
}


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    yield from mounts_fixture(tmp_path)


def _walk_files(root: Path) -> set[str]:
    """Relative paths of the files (not symlinks) under ``root``, walked with directory fds
    (paths may exceed PATH_MAX)."""
    found: set[str] = set()

    def walk(dir_fd: int, rel: str, depth: int) -> None:
        assert depth <= 300
        for entry in os.scandir(dir_fd):
            assert entry.name not in ("", ".", "..") and "/" not in entry.name
            path = f"{rel}{entry.name}"
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                fd = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
                try:
                    walk(fd, path + "/", depth + 1)
                finally:
                    os.close(fd)
            else:
                found.add(path)

    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        walk(top, "", 0)
    finally:
        os.close(top)
    return found


def _read_key(root: Path, key: str) -> bytes:
    """Read ``key``'s file one component at a time (paths may exceed PATH_MAX)."""
    *dirs, name = key.split("/")
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for part in dirs:
            fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
        fd = os.open(name, os.O_RDONLY, dir_fd=fds[-1])
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)


# -- pure: key_for_log ---------------------------------------------------------------------------


def test_key_for_log_keeps_short_keys_and_shortens_long_ones() -> None:
    assert key_for_log("a/b") == "a/b"
    assert key_for_log("k" * LOG_KEY_CHARS) == "k" * LOG_KEY_CHARS
    short = key_for_log("h" * 9000 + "t" * 1000)
    assert len(short) < LOG_KEY_CHARS + 40
    assert short.startswith("h" * 100) and short.endswith("t" * 20)
    assert "[10000 characters]" in short


@given(st.text(max_size=3000), st.integers(min_value=1, max_value=500))
def test_key_for_log_is_bounded_and_exact_when_short(key: str, limit: int) -> None:
    shown = key_for_log(key, limit)
    if len(key) <= limit:
        assert shown == key
    else:
        assert len(shown) <= limit + len(f"...[{len(key)} characters]...")


# -- keys that are not UTF-8 (OSS keys are bytes; oss2 cannot write them, a server can list them)

NOT_UTF8_LIST_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult>
  <Name>test-bucket</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys><Delimiter>%2F</Delimiter>
  <EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
  <Contents><Key>bad%FF.txt</Key><LastModified>2020-05-18T05:45:54.000Z</LastModified>
    <ETag>"AA"</ETag><Type>Normal</Type><Size>1</Size><StorageClass>Standard</StorageClass>
  </Contents>
  <Contents><Key>bad%FE.txt</Key><LastModified>2020-05-18T05:45:54.000Z</LastModified>
    <ETag>"BB"</ETag><Type>Normal</Type><Size>1</Size><StorageClass>Standard</StorageClass>
  </Contents>
  <Contents><Key>ok%E2%82%AC.txt</Key><LastModified>2020-05-18T05:45:54.000Z</LastModified>
    <ETag>"CC"</ETag><Type>Normal</Type><Size>1</Size><StorageClass>Standard</StorageClass>
  </Contents>
  <CommonPrefixes><Prefix>dir%C3%28%2F</Prefix></CommonPrefixes>
</ListBucketResult>"""


def test_hostile_keys_not_utf8_in_a_listing_are_kept_distinct_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, _ = make_store(lambda r: Reply(200, {}, NOT_UTF8_LIST_XML.encode()))
    page = store.list_page("")
    assert [obj.key for obj in page.objects] == ["bad\udcff.txt", "bad\udcfe.txt", "ok\u20ac.txt"]
    assert page.prefixes == ("dir\udcc3(/",)
    namespace = Namespace(store)
    try:
        with caplog.at_level(logging.WARNING, logger="ossfs.fs.namespace"):
            assert [node.name for node in namespace.readdir("/")] == ["ok\u20ac.txt"]
    finally:
        namespace.close()
    skipped = [r.getMessage() for r in caplog.records if "not valid UTF-8" in r.getMessage()]
    assert len(skipped) == 3, skipped
    assert namespace.stats().skipped_names == 3


def test_hostile_keys_symlink_target_that_is_no_path_is_a_link_to_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeStore()
    store.put("d/t", b"t")
    store.put_symlink("d/ok", "d/t")
    for name, target in HOSTILE_LINKS.items():
        store.put_symlink(f"d/{name}", target)
    namespace = Namespace(store)
    try:
        with caplog.at_level(logging.WARNING, logger="ossfs.fs.namespace"):
            assert namespace.readlink("/d/ok") == "t"
            for name in HOSTILE_LINKS:
                assert namespace.readlink(f"/d/{name}") == name
                assert namespace.readlink(f"/d/{name}") == name
    finally:
        namespace.close()
    warnings = [r.getMessage() for r in caplog.records if "link to itself" in r.getMessage()]
    assert len(warnings) == len(HOSTILE_LINKS), warnings


# -- through a mount -----------------------------------------------------------------------------


@pytest.mark.mount
def test_hostile_keys_skipped_with_warning_never_escape_never_crash(
    emulator: EmulatorServer, mounts: Mounts, tmp_path: Path
) -> None:
    for key in SKIPPED_KEYS:
        emulator.put_object(BUCKET, key, b"hostile " + key.encode()[:50])
    for key, data in SHOWN_KEYS.items():
        emulator.put_object(BUCKET, key, data)
    for name, target in HOSTILE_LINKS.items():
        emulator.put_symlink(BUCKET, f"links/{name}", target)
    emulator.put_symlink(BUCKET, "links/ok", "d/ok.txt")
    log_file = tmp_path / "mount.log"
    mp = mounts.mount(emulator.endpoint, "--log-file", str(log_file))

    files = _walk_files(mp)
    assert files == set(SHOWN_KEYS)
    for key, data in SHOWN_KEYS.items():
        assert _read_key(mp, key) == data
    assert (mp / DEEP_KEY).read_bytes() == b"deep"  # 200 levels, still under PATH_MAX
    assert sorted(os.listdir(mp / "d")) == ["ok.txt"]
    for name in ("..", "."):
        # The kernel resolves these itself: the mount's parent and the mount, never a key.
        assert os.path.realpath(mp / "d" / name) in (str(mp), str(mp / "d"))
    assert not (mp / "escape.txt").exists()
    assert os.readlink(mp / "links" / "ok") == "../d/ok.txt"
    assert (mp / "links" / "ok").read_bytes() == b"ok"
    assert sorted(os.listdir(mp / "links")) == sorted([*HOSTILE_LINKS, "ok"])
    for name in HOSTILE_LINKS:
        assert os.readlink(mp / "links" / name) == name  # a link to itself: resolves nowhere
        with pytest.raises(OSError) as info:
            (mp / "links" / name).read_bytes()
        assert info.value.errno == errno.ELOOP
    assert is_mounted(mp)

    warnings = [ln for ln in log_file.read_text().splitlines() if " WARNING " in ln]
    assert len([w for w in warnings if "cannot be shown" in w]) >= 8, warnings
    assert any("name contains NUL" in w for w in warnings)
    assert any("[10005 characters]" in w for w in warnings)  # "long/" + 10,000 y
    assert all(len(w) < 2 * LOG_KEY_CHARS + 200 for w in warnings)
    assert all("\x00" not in w and "\n" not in w for w in warnings)


_NAME = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\x00"),
    min_size=1,
    max_size=12,
).filter(lambda name: name_problem(name) is None)
_KEY_PARTS = st.lists(_NAME, min_size=1, max_size=4).map(tuple)


def _representable(key_sets: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Drop keys that are also a directory of another key (the directory wins)."""
    dirs = {parts[:i] for parts in key_sets for i in range(1, len(parts))}
    return sorted({parts for parts in key_sets if parts not in dirs})


@pytest.mark.mount
def test_hostile_keys_every_representable_key_is_listed_and_reads_exact_bytes(
    emulator: EmulatorServer, mounts: Mounts
) -> None:
    emulator.put_object(BUCKET, "seed.txt", b"seed")
    mp = mounts.mount(emulator.endpoint, "--metadata-ttl", "0")
    round_no = itertools.count()

    @settings(
        max_examples=10,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        st.lists(_KEY_PARTS, min_size=1, max_size=12),
        st.lists(st.integers(min_value=0, max_value=20_000), min_size=12, max_size=12),
    )
    def check(key_parts: list[tuple[str, ...]], sizes: list[int]) -> None:
        prefix = f"r{next(round_no)}"
        expected: dict[str, bytes] = {}
        for i, parts in enumerate(_representable(key_parts)):
            rel = "/".join(parts)
            expected[rel] = os.urandom(sizes[i % len(sizes)])
            emulator.put_object(BUCKET, f"{prefix}/{rel}", expected[rel])
        assert _walk_files(mp / prefix) == set(expected)
        for rel, data in expected.items():
            assert (mp / prefix / rel).read_bytes() == data

    check()
