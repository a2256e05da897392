"""The S3 dialect against the real peers (rclone, s3fs-fuse) and over plain HTTP.

The peer tests mount the emulator's bucket with ``rclone mount`` and ``s3fs`` (anonymous,
path-style, read-only), read through the mount and compare bytes. They need /dev/fuse plus the
Debian packages ``rclone`` and ``s3fs`` (and ``fuse3`` for ``fusermount``); a missing binary skips
with the reason. Mounts and peer processes are torn down in fixtures, even when a test fails.
"""

from __future__ import annotations

import email.utils
import errno
import http.client
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from ossfs.emulator import EmulatorConfig, EmulatorServer
from tests.support import settled_entries
from tests.support.fuse import require_mount_marker
from tests.support.waiting import poll_until

BUCKET = "bench"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
BIG = random.Random(7).randbytes(3 * 1024 * 1024 + 4321)
OBJECTS: dict[str, bytes] = {
    "small.txt": b"hello world\n",
    "empty": b"",
    "big.bin": BIG,
    "dir/a.bin": random.Random(1).randbytes(70_000),
    "dir/sub/b.txt": b"bee",
    "dir/sub/deeper/c.txt": b"sea",
    "explicit/": b"",
    "explicit/x.txt": b"x",
    "space name/\u00e9 \u00fc.txt": "unicode \u00e9".encode(),
    "weird/a+b.txt": b"plus",
    "weird/pct%41.txt": b"percent",
    "weird/amp&eq=.txt": b"ampersand",
    "weird/hash#q?.txt": b"hash",
    "plus+dir/inner.txt": b"inner",
}
# What a mount shows: the explicit directory marker "explicit/" is a directory, not a file.
FILES = {k: v for k, v in OBJECTS.items() if not k.endswith("/")}

Mounter = Callable[..., Path]


@pytest.fixture
def s3_emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        data_dir=tmp_path / "data", buckets=(BUCKET,), anonymous=True, s3_port=0
    )
    with EmulatorServer(config) as server:
        for key, data in OBJECTS.items():
            # s3fs takes a "dir/" marker for a directory only with a directory content type.
            ctype = "application/x-directory" if key.endswith("/") else "text/plain"
            server.put_object(BUCKET, key, data, content_type=ctype, user_meta={"color": "blue"})
        yield server


def _http(
    server: EmulatorServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    assert server.s3_endpoint is not None
    host, port = server.s3_endpoint.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def _code(body: bytes) -> str | None:
    return ET.fromstring(body).findtext("Code")


# -- plain HTTP ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "expect"),
    [
        ("/bench?acl", 200, f"{NS}AccessControlPolicy"),
        ("/bench/small.txt?acl", 200, f"{NS}AccessControlPolicy"),
        ("/bench?versioning", 200, f"{NS}VersioningConfiguration"),
        ("/bench?uploads", 200, f"{NS}ListMultipartUploadsResult"),
        ("/bench/small.txt?tagging", 200, f"{NS}Tagging"),
        ("/bench?policy", 404, "NoSuchBucketPolicy"),
        ("/bench?cors", 404, "NoSuchCORSConfiguration"),
        ("/bench?tagging", 404, "NoSuchTagSet"),
        ("/bench?versions", 501, "NotImplemented"),
        ("/bench/small.txt?torrent", 501, "NotImplemented"),
        ("/bench/small.txt?uploadId=abc", 404, "NoSuchUpload"),
        ("/bench/missing?acl", 404, "NoSuchKey"),
        ("/bench/small.txt?versionId=abc", 400, "InvalidArgument"),
    ],
)
def test_subresources_answer_like_s3(
    s3_emulator: EmulatorServer, path: str, status: int, expect: str
) -> None:
    got, headers, body = _http(s3_emulator, "GET", path)
    assert got == status, body
    assert headers["content-type"] == "application/xml"
    root = ET.fromstring(body)
    assert (root.tag if status == 200 else root.findtext("Code")) == expect


def test_subresource_answers_carry_content(s3_emulator: EmulatorServer) -> None:
    _, _, body = _http(s3_emulator, "GET", "/bench?acl")
    acl = ET.fromstring(body)
    grants = {
        (g.findtext(f"{NS}Grantee/{NS}URI"), g.findtext(f"{NS}Permission"))
        for g in acl.iter(f"{NS}Grant")
    }
    assert ("http://acs.amazonaws.com/groups/global/AllUsers", "READ") in grants
    _, _, body = _http(s3_emulator, "GET", "/bench?uploads&prefix=dir%2F")
    uploads = ET.fromstring(body)
    assert uploads.findtext(f"{NS}Bucket") == BUCKET
    assert uploads.findtext(f"{NS}Prefix") == "dir/"
    assert uploads.findtext(f"{NS}IsTruncated") == "false"
    assert uploads.find(f"{NS}Upload") is None
    _, _, body = _http(s3_emulator, "GET", "/bench/small.txt?tagging")
    tag_set = ET.fromstring(body).find(f"{NS}TagSet")
    assert tag_set is not None and len(tag_set) == 0


def test_version_id_null_reads_the_object(s3_emulator: EmulatorServer) -> None:
    status, _, body = _http(s3_emulator, "GET", "/bench/small.txt?versionId=null")
    assert (status, body) == (200, OBJECTS["small.txt"])


def test_conditional_get_and_head(s3_emulator: EmulatorServer) -> None:
    _, head, _ = _http(s3_emulator, "HEAD", "/bench/small.txt")
    etag, modified = head["etag"], head["last-modified"]
    assert etag.startswith('"') and etag.endswith('"')
    earlier = email.utils.formatdate(
        email.utils.parsedate_to_datetime(modified).timestamp() - 60, usegmt=True
    )
    cases: list[tuple[str, dict[str, str], int]] = [
        ("GET", {"If-None-Match": etag}, 304),
        ("HEAD", {"If-None-Match": etag}, 304),
        ("GET", {"If-None-Match": '"other"'}, 200),
        ("GET", {"If-Match": etag}, 200),
        ("GET", {"If-Match": etag.upper()}, 200),
        ("GET", {"If-Match": '"other"'}, 412),
        ("HEAD", {"If-Match": '"other"'}, 412),
        ("GET", {"If-Modified-Since": modified}, 304),
        ("GET", {"If-Modified-Since": earlier}, 200),
        ("GET", {"If-Unmodified-Since": earlier}, 412),
        ("GET", {"If-Match": etag, "If-Unmodified-Since": earlier}, 200),
        ("GET", {"If-None-Match": '"other"', "If-Modified-Since": modified}, 200),
    ]
    for method, headers, want in cases:
        status, got_headers, body = _http(s3_emulator, method, "/bench/small.txt", headers)
        assert status == want, (method, headers)
        if want == 304:
            assert body == b""
            assert got_headers["etag"] == etag
        elif want == 412 and method == "GET":
            assert _code(body) == "PreconditionFailed"
        elif want == 200 and method == "GET":
            assert body == OBJECTS["small.txt"]


def test_head_object_headers_and_missing_keys(s3_emulator: EmulatorServer) -> None:
    status, headers, body = _http(s3_emulator, "HEAD", "/bench/small.txt")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(OBJECTS["small.txt"]))
    assert headers["content-type"] == "text/plain"
    assert headers["x-amz-meta-color"] == "blue"
    assert email.utils.parsedate_to_datetime(headers["last-modified"]).year >= 2020
    for probe in ("/bench/dir", "/bench/dir/", "/bench/dir_%24folder%24"):
        status, headers, body = _http(s3_emulator, "HEAD", probe)
        assert (status, body, headers["content-length"]) == (404, b"", "0"), probe
    status, _, _ = _http(s3_emulator, "HEAD", "/bench/explicit/")
    assert status == 200


def test_errors_are_logged_under_their_operation(s3_emulator: EmulatorServer) -> None:
    s3_emulator.log.clear()
    _http(s3_emulator, "HEAD", "/bench/missing")
    _http(s3_emulator, "GET", "/bench/missing")
    _http(s3_emulator, "GET", "/bench?list-type=2&max-keys=x")
    _http(s3_emulator, "DELETE", "/bench/small.txt")
    _http(s3_emulator, "GET", "/bench?versions")
    # Each request is logged after its answer, on its own connection's thread: compare as sets.
    assert sorted((e.op, e.status) for e in settled_entries(s3_emulator, 5)) == sorted(
        [
            ("S3:HeadObject", 404),
            ("S3:GetObject", 404),
            ("S3:ListObjectsV2", 400),
            ("S3:Delete", 403),
            ("S3:ListObjectVersions", 501),
        ]
    )


# -- peers ---------------------------------------------------------------------------------------


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (Debian package {binary!r})")
    return path


def _peer_env(tmp_path: Path) -> dict[str, str]:
    """The environment without AWS/rclone settings or proxies that would change the peers.

    (An ``AWS_CA_BUNDLE`` alone makes rclone fail with ``LoadCustomCABundleError`` on http.)
    """
    drop = ("AWS_", "RCLONE_")
    proxies = {"http_proxy", "https_proxy", "all_proxy"}
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(drop) and k.lower() not in proxies
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    config = tmp_path / "rclone.conf"
    config.touch()
    env["RCLONE_CONFIG"] = str(config)
    return env


def rclone_remote_env(endpoint: str, name: str = "EMU") -> dict[str, str]:
    """An rclone remote ``name:`` for the emulator: anonymous, path style."""
    prefix = f"RCLONE_CONFIG_{name.upper()}_"
    return {
        prefix + "TYPE": "s3",
        prefix + "PROVIDER": "Other",
        prefix + "ENDPOINT": endpoint,
        prefix + "ENV_AUTH": "false",
        prefix + "FORCE_PATH_STYLE": "true",
    }


def _unmount(mountpoint: Path) -> None:
    if not os.path.ismount(mountpoint):
        return
    for argv in (["fusermount3", "-u"], ["fusermount", "-u"], ["umount", "-l"]):
        if shutil.which(argv[0]) is None:
            continue
        subprocess.run([*argv, str(mountpoint)], capture_output=True, timeout=30, check=False)
        if not os.path.ismount(mountpoint):
            return


@pytest.fixture
def peer_mount(tmp_path: Path) -> Iterator[Mounter]:
    """Start a peer in the foreground on a fresh mount point; unmount and reap it afterwards."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def mount(argv: list[str], mountpoint: Path, env: dict[str, str]) -> Path:
        require_mount_marker(argv[0])
        mountpoint.mkdir()
        log_path = tmp_path / f"{mountpoint.name}.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        started.append((proc, mountpoint))
        poll_until(lambda: os.path.ismount(mountpoint) or proc.poll() is not None, 30)
        if not os.path.ismount(mountpoint):
            pytest.fail(f"{argv[0]} did not mount:\n{log_path.read_text(errors='replace')}")
        return mountpoint

    yield mount
    for proc, mountpoint in reversed(started):
        _unmount(mountpoint)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        _unmount(mountpoint)


def _check_tree(root: Path) -> None:
    """Every file reads back byte-identical; nested and implicit directories list correctly."""
    for key, data in FILES.items():
        path = root / key
        assert path.stat().st_size == len(data), key
        assert path.read_bytes() == data, key
    assert sorted(os.listdir(root)) == sorted(
        ["big.bin", "dir", "empty", "explicit", "plus+dir", "small.txt", "space name", "weird"]
    )
    assert sorted(os.listdir(root / "dir")) == ["a.bin", "sub"]
    assert sorted(os.listdir(root / "dir" / "sub")) == ["b.txt", "deeper"]
    assert (root / "dir" / "sub").is_dir() and (root / "explicit").is_dir()
    listing = subprocess.run(
        ["ls", "-lR", str(root / "dir")], capture_output=True, text=True, check=True
    ).stdout
    assert " 70000 " in listing and "c.txt" in listing
    # Ranged reads, including one that crosses the end of the object.
    with open(root / "big.bin", "rb") as f:
        for offset, size in ((0, 10), (1_000_003, 65_536), (len(BIG) - 100, 4096)):
            f.seek(offset)
            assert f.read(size) == BIG[offset : offset + size], offset
    dd = subprocess.run(
        ["dd", f"if={root / 'big.bin'}", "bs=4096", "skip=300", "count=5", "status=none"],
        capture_output=True,
        check=True,
    ).stdout
    assert dd == BIG[300 * 4096 : 305 * 4096]
    with pytest.raises(OSError) as info:
        (root / "new.txt").write_bytes(b"nope")
    assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


@pytest.mark.parametrize("list_version", ["1", "2"])
def test_rclone_lists_and_cats(
    s3_emulator: EmulatorServer, tmp_path: Path, list_version: str
) -> None:
    rclone = _need("rclone")
    assert s3_emulator.s3_endpoint is not None
    env = {**_peer_env(tmp_path), **rclone_remote_env(s3_emulator.s3_endpoint)}
    # A list chunk of 3 makes rclone page through every listing (markers / tokens).
    base = [rclone, "--retries", "1", "--low-level-retries", "1", "--s3-list-chunk", "3"]
    base += ["--s3-list-version", list_version]

    def run(*args: str) -> bytes:
        result = subprocess.run(
            [*base, *args], capture_output=True, env=env, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout

    listed = run("lsf", "-R", "--files-only", f"emu:{BUCKET}").decode().splitlines()
    assert sorted(listed) == sorted(FILES)
    assert run("cat", f"emu:{BUCKET}/weird/amp&eq=.txt") == OBJECTS["weird/amp&eq=.txt"]
    assert (
        run("cat", "--offset", "1000", "--count", "50", f"emu:{BUCKET}/big.bin") == BIG[1000:1050]
    )
    op = "S3:ListObjectsV2" if list_version == "2" else "S3:ListObjects"
    assert len(s3_emulator.log.entries(op)) > 3


@pytest.mark.mount
def test_rclone_mount_reads_bytes(
    s3_emulator: EmulatorServer, tmp_path: Path, peer_mount: Mounter
) -> None:
    rclone = _need("rclone")
    assert s3_emulator.s3_endpoint is not None
    env = {**_peer_env(tmp_path), **rclone_remote_env(s3_emulator.s3_endpoint)}
    argv = [rclone, "mount", f"emu:{BUCKET}", str(tmp_path / "rclone"), "--read-only"]
    root = peer_mount(
        [*argv, "--retries", "1", "--low-level-retries", "1"], tmp_path / "rclone", env
    )
    _check_tree(root)
    assert any(e.range for e in s3_emulator.log.entries("S3:GetObject"))


@pytest.mark.mount
@pytest.mark.parametrize("listing", ["v1", "listobjectsv2"])
def test_s3fs_mount_reads_bytes(
    s3_emulator: EmulatorServer, tmp_path: Path, peer_mount: Mounter, listing: str
) -> None:
    s3fs = _need("s3fs")
    assert s3_emulator.s3_endpoint is not None
    mountpoint = tmp_path / "s3fs"
    argv = [s3fs, BUCKET, str(mountpoint), "-f", "-o", f"url={s3_emulator.s3_endpoint}"]
    argv += ["-o", "use_path_request_style", "-o", "public_bucket=1", "-o", "ro"]
    if listing != "v1":
        argv += ["-o", listing]
    root = peer_mount(argv, mountpoint, _peer_env(tmp_path))
    _check_tree(root)
    op = "S3:ListObjectsV2" if listing != "v1" else "S3:ListObjects"
    assert s3_emulator.log.entries(op)
