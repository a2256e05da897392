"""Real FUSE mounts whose credentials come from files instead of the environment: an ossfs 1.x
passwd file, an ossutil 1.x ``[Credentials]`` file and an ossutil 2.0 profile (V4 signing with
the profile's region, endpoint from the file). The secret must never reach argv or the log.

These need FUSE (see tests/support/fuse.py), like tests/test_mount.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ossfs.app.umount import is_mounted
from ossfs.emulator import EmulatorServer
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET

pytestmark = pytest.mark.mount


def _ossfs(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``python -m ossfs ARGS`` with no OSS_* variables (so no credentials) and HOME at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSS_")}
    return subprocess.run(
        [sys.executable, "-m", "ossfs", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "HOME": str(home), "NO_PROXY": "127.0.0.1,localhost"},
    )


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _cmdlines_with(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.parametrize("source", ["home-passwd", "passwd-file", "ossutil1", "ossutil2"])
def test_mount_reads_a_file_with_credentials_from_a_file(
    emulator: EmulatorServer, tmp_path: Path, source: str
) -> None:
    emulator.put_object(BUCKET, "c/hello.txt", b"hello from a credentials file\n")
    home = tmp_path / "home"
    home.mkdir()
    # A default line with wrong keys: the bucket's own line must win.
    passwd = f"wrong-id:wrong-secret\n{BUCKET}:{ACCESS_KEY_ID}:{ACCESS_KEY_SECRET}\n"
    endpoint = ["--endpoint", emulator.endpoint]
    if source == "home-passwd":
        _private(home / ".passwd-ossfs", passwd)
        args = endpoint
    elif source == "passwd-file":
        args = ["--passwd-file", str(_private(tmp_path / "pw", passwd)), *endpoint]
    elif source == "ossutil1":
        config = _private(
            tmp_path / "ossutilconfig",
            f"[Credentials]\nlanguage=EN\nendpoint={emulator.endpoint}\n"
            f"accessKeyID={ACCESS_KEY_ID}\naccessKeySecret={ACCESS_KEY_SECRET}\n",
        )
        args = ["--credentials-file", str(config)]
    else:
        config = _private(
            tmp_path / "ossutilconfig",
            f"[default]\naccessKeyId={ACCESS_KEY_ID}\naccessKeySecret={ACCESS_KEY_SECRET}\n"
            f"region=cn-hangzhou\nendpoint={emulator.endpoint}\n",
        )
        args = ["--credentials-file", str(config)]
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = tmp_path / "ossfs.log"
    result = _ossfs(
        "mount",
        f"oss://{BUCKET}/c",
        str(mountpoint),
        *args,
        "--debug",
        "--log-file",
        str(log),
        home=home,
    )
    assert result.returncode == 0, result.stderr
    try:
        assert is_mounted(mountpoint)
        assert (mountpoint / "hello.txt").read_bytes() == b"hello from a credentials file\n"
        assert _cmdlines_with(ACCESS_KEY_SECRET) == []
    finally:
        if is_mounted(mountpoint):
            unmounted = _ossfs("umount", str(mountpoint), home=home)
            assert unmounted.returncode == 0, unmounted.stderr
    assert not is_mounted(mountpoint)
    text = log.read_text()
    assert "'c/hello.txt'" in text  # the debug log has the requests...
    assert ACCESS_KEY_SECRET not in text + result.stderr + result.stdout  # ...but no secret


def test_mount_with_a_world_readable_passwd_file_is_refused_before_mounting(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    passwd = tmp_path / "pw"
    passwd.write_text(f"{BUCKET}:{ACCESS_KEY_ID}:{ACCESS_KEY_SECRET}\n")
    passwd.chmod(0o644)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    result = _ossfs(
        "mount",
        f"oss://{BUCKET}",
        str(mountpoint),
        "--passwd-file",
        str(passwd),
        "--endpoint",
        emulator.endpoint,
        home=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"ossfs mount: error: {passwd} is accessible by other users (mode 644) and holds "
        f"secrets; chmod 600 {passwd}"
    )
    assert not is_mounted(mountpoint)
