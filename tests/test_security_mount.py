"""Security of a real mount: no credential in logs (even ``--debug``), argv or error messages;
``allow_other`` off by default; nothing ever written to the bucket.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import oss2
import pytest

from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.support.mounts import (
    Mounts,
    daemon_pid,
    data_for,
    mounts_fixture,
    ossfs_env,
    settled_counts,
)

pytestmark = pytest.mark.mount

STS_KEY_ID = "STS.TestTemporaryKeyId"
STS_SECRET = "StsSecretValue0123456789abcdef"
STS_TOKEN = "StsSessionToken-CAIS+opaque/abcdef0123456789=="
OSSFS_MOUNT = (sys.executable, "-m", "ossfs", "mount", f"oss://{BUCKET}")
READ_OPS = frozenset(
    {
        "ListObjectsV2",
        "ListObjects",
        "GetObject",
        "HeadObject",
        "GetObjectMeta",
        "GetSymlink",
        "GetBucketInfo",
        "GetBucketLocation",
        "HeadBucket",
    }
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        data_dir=tmp_path / "data",
        buckets=(BUCKET,),
        credentials=(
            Credential(ACCESS_KEY_ID, ACCESS_KEY_SECRET),
            Credential(STS_KEY_ID, STS_SECRET, STS_TOKEN),
        ),
    )
    with EmulatorServer(config) as srv:
        yield srv


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    yield from mounts_fixture(tmp_path)


def _sts_env() -> dict[str, str]:
    return {
        **ossfs_env(),
        "OSS_ACCESS_KEY_ID": STS_KEY_ID,
        "OSS_ACCESS_KEY_SECRET": STS_SECRET,
        "OSS_SESSION_TOKEN": STS_TOKEN,
    }


def _mount_sts(endpoint: str, mountpoint: Path, *extra: str) -> None:
    result = subprocess.run(
        [*OSSFS_MOUNT, str(mountpoint), "--endpoint", endpoint, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env=_sts_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _put_sample(server: EmulatorServer) -> dict[str, bytes]:
    tree = {
        "a.txt": b"hello\n",
        "d/b.bin": data_for(1, 3 << 20),
        "d/e/c.txt": b"c" * 1000,
    }
    for key, data in tree.items():
        server.put_object(BUCKET, key, data, user_meta={"owner": "me"})
    server.put_symlink(BUCKET, "link", "a.txt")
    return tree


def _secrets_in(text: str) -> list[str]:
    """Credential material found in ``text`` (secrets, token, Authorization headers/values)."""
    found = [s for s in (ACCESS_KEY_SECRET, STS_SECRET, STS_TOKEN) if s in text]
    if re.search(r"authorization", text, re.IGNORECASE):
        found.append("Authorization")
    if re.search(r"security-token", text, re.IGNORECASE):
        found.append("security-token")
    # A V1 signature value: "OSS <key id>:<base64 signature>".
    found += re.findall(r"OSS [A-Za-z0-9.]+:[A-Za-z0-9+/=]{20,}", text)
    return found


def _bucket_state(endpoint: str) -> dict[str, str]:
    bucket = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), endpoint, BUCKET)
    return {obj.key: obj.etag for obj in oss2.ObjectIteratorV2(bucket)}


def _attempt_writes(mp: Path) -> None:
    attempts: list[Callable[[], object]] = [
        lambda: (mp / "new.txt").write_bytes(b"x"),
        lambda: (mp / "a.txt").write_bytes(b"overwrite"),
        lambda: open(mp / "a.txt", "ab").close(),
        lambda: os.truncate(mp / "a.txt", 0),
        lambda: os.mkdir(mp / "newdir"),
        lambda: os.rmdir(mp / "d" / "e"),
        lambda: os.unlink(mp / "a.txt"),
        lambda: os.rename(mp / "a.txt", mp / "b.txt"),
        lambda: os.symlink("a.txt", mp / "l2"),
        lambda: os.link(mp / "a.txt", mp / "h.txt"),
        lambda: os.chmod(mp / "a.txt", 0o666),
        lambda: os.utime(mp / "a.txt", (0, 0)),
        lambda: os.setxattr(mp / "a.txt", "user.x", b"1"),
        lambda: os.removexattr(mp / "a.txt", "user.oss.etag"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError):
            attempt()


def test_security_debug_log_has_no_credentials_sts(server: EmulatorServer, tmp_path: Path) -> None:
    tree = _put_sample(server)
    mp = tmp_path / "mnt"
    mp.mkdir()
    log_file = tmp_path / "debug.log"
    _mount_sts(server.endpoint, mp, "--debug", "--log-file", str(log_file))
    try:
        for key, data in tree.items():
            assert (mp / key).read_bytes() == data
        assert os.readlink(mp / "link") == "a.txt"
        assert os.getxattr(mp / "a.txt", "user.oss.meta.owner") == b"me"
        assert not (mp / "missing").exists()
        with contextlib.suppress(OSError):
            (mp / "new.txt").write_bytes(b"x")
        pid = daemon_pid(mp)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert not _secrets_in(cmdline.replace("\0", " "))
    finally:
        result = subprocess.run(
            [sys.executable, "-m", "ossfs", "umount", str(mp)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    text = log_file.read_text()
    assert "DEBUG ossfs.store.oss_store: get 'd/b.bin'" in text  # the log really is a debug log
    assert not _secrets_in(text), _secrets_in(text)


def test_security_credentials_never_in_any_argv(server: EmulatorServer, mounts: Mounts) -> None:
    _put_sample(server)
    mp = mounts.mount(server.endpoint)
    assert (mp / "d" / "b.bin").stat().st_size == 3 << 20
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        assert ACCESS_KEY_SECRET.encode() not in cmdline, entry.name


def test_security_wrong_secret_not_echoed_in_error(server: EmulatorServer, tmp_path: Path) -> None:
    mp = tmp_path / "m"
    mp.mkdir()
    wrong = "WrongSecretValue-987654321"
    result = subprocess.run(
        [*OSSFS_MOUNT, str(mp), "--endpoint", server.endpoint, "--debug"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**ossfs_env(), "OSS_ACCESS_KEY_SECRET": wrong},
        check=False,
    )
    assert result.returncode == 2
    assert "denied" in result.stderr
    assert wrong not in result.stderr and not _secrets_in(result.stderr)


def test_security_allow_other_off_by_default(server: EmulatorServer, mounts: Mounts) -> None:
    _put_sample(server)
    mp = mounts.mount(server.endpoint)
    fields = [
        line.split()
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1] == str(mp)
    ]
    assert len(fields) == 1, fields
    options = fields[0][3].split(",")
    assert "allow_other" not in options, options
    assert "ro" in options, options
    other = mounts.mount(server.endpoint, "--allow-other")
    line = next(ln for ln in Path("/proc/mounts").read_text().splitlines() if str(other) in ln)
    assert "allow_other" in line.split()[3].split(",")


def test_security_nothing_is_ever_written_to_the_bucket(
    server: EmulatorServer, mounts: Mounts
) -> None:
    tree = _put_sample(server)
    before = _bucket_state(server.endpoint)
    server.log.clear()
    mp = mounts.mount(server.endpoint)
    for key, data in tree.items():
        assert (mp / key).read_bytes() == data
    _attempt_writes(mp)
    subprocess.run(["cp", "-r", str(mp / "d"), str(mp / "d2")], check=False, timeout=60)
    subprocess.run(["touch", str(mp / "t")], check=False, timeout=60)
    subprocess.run(["rm", "-rf", str(mp / "d")], check=False, timeout=60)
    counts = settled_counts(server)
    assert counts.get("GetObject", 0) > 0
    assert set(counts) <= READ_OPS, counts
    assert _bucket_state(server.endpoint) == before
    for key, data in tree.items():
        assert (mp / key).read_bytes() == data
