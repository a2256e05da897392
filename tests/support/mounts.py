"""Real mounts in tests: run ``ossfs`` as a subprocess, mount and unmount, watch its daemon.

Every mount is a real daemonized ``ossfs mount`` of a bucket on the local server (127.0.0.1),
torn down by `Mounts.close`, which also checks that the daemon went away with its mount. A
test using these is marked ``mount`` (`tests.support.fuse`): `run_ossfs` fails an unmarked
test that mounted (and unmounts). Deliberately not here: when FUSE is available
(`tests.support.fuse`).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ossfs.app.umount import is_mounted
from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.support.fuse import require_mount_marker
from tests.support.waiting import poll_until, wait_until

MIB = 1 << 20


def ossfs_env() -> dict[str, str]:
    return {
        **os.environ,
        "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
        "NO_PROXY": "127.0.0.1,localhost",
    }


def run_ossfs(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m ossfs ARGS`` with the test credentials; its exit status is not checked.

    A command that mounted (``ossfs mount`` that succeeded) fails a test not marked ``mount``.
    """
    result = subprocess.run(
        [sys.executable, "-m", "ossfs", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ossfs_env(),
    )
    if args and args[0] == "mount" and result.returncode == 0:
        try:
            require_mount_marker(f"ossfs mount {' '.join(args[1:3])}")
        except AssertionError:
            run_ossfs("umount", args[2])  # ossfs mount LOCATION MOUNTPOINT: leave nothing behind
            raise
    return result


def data_for(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def emulator_config(data_dir: Path, port: int = 0) -> EmulatorConfig:
    return EmulatorConfig(
        data_dir=data_dir,
        port=port,
        buckets=(BUCKET,),
        credentials=(Credential(ACCESS_KEY_ID, ACCESS_KEY_SECRET),),
        anonymous=False,
    )


def processes_mentioning(text: str) -> list[int]:
    """Pids (not this process) whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def daemon_pid(mountpoint: Path) -> int:
    """The pid of the ossfs daemon serving ``mountpoint`` (the only process naming it)."""
    pids = processes_mentioning(str(mountpoint))
    assert len(pids) == 1, f"expected one daemon for {mountpoint}, found {pids}"
    return pids[0]


QUIET_S = 0.5
"""How long a daemon's request counts must stay the same to count as settled."""


def settled_counts(emulator: EmulatorServer, timeout_s: float = 30.0) -> dict[str, int]:
    """The server's request counts once the daemon is quiet: every counted request also has
    its log entry (entries are written after the answer) and nothing new arrived for `QUIET_S`.

    A live daemon may still send read-ahead when a test's own reads are done, and nothing
    announces that it has stopped, so this waits for a quiet period: it can only make a count
    assertion fail (a request after the window), never pass wrongly. Raises AssertionError if
    the counts keep moving for ``timeout_s``.
    """
    counts = emulator.log.counts()
    stable_since = time.monotonic()
    deadline = stable_since + timeout_s
    while True:
        now = emulator.log.counts()
        if now != counts:
            counts, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= QUIET_S and len(emulator.log.entries()) >= sum(
            now.values()
        ):
            # ">=": a request answered just before the test cleared the log may write its entry
            # after the clear (its count went with the clear), so entries can only be ahead.
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"the request counts did not settle in {timeout_s:g} s: {now}")
        time.sleep(0.05)


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _no_process_mentions(mountpoint: Path) -> Callable[[], bool]:
    return lambda: not processes_mentioning(str(mountpoint))


def wait_daemon_gone(mountpoint: Path, timeout_s: float = 15.0) -> None:
    """Wait until no process (the daemon of ``mountpoint``) names the mount point; raise
    AssertionError if one still does after ``timeout_s``."""
    wait_until(_no_process_mentions(mountpoint), timeout_s, f"the daemon of {mountpoint} to exit")


class Mounts:
    """Mounts made by one test, all unmounted (and their daemons gone) by `close`."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self.mounted: list[Path] = []

    def mount(
        self,
        endpoint: str,
        *extra: str,
        location: str = f"oss://{BUCKET}",
        mountpoint: Path | None = None,
    ) -> Path:
        if mountpoint is None:
            mountpoint = self._base / f"mnt{len(self.mounted)}"
            mountpoint.mkdir()
        result = run_ossfs("mount", location, str(mountpoint), "--endpoint", endpoint, *extra)
        assert result.returncode == 0, result.stderr
        assert is_mounted(mountpoint)
        if mountpoint not in self.mounted:
            self.mounted.append(mountpoint)
        return mountpoint

    def close(self) -> None:
        problems: list[str] = []
        for mountpoint in self.mounted:
            if is_mounted(mountpoint):
                result = run_ossfs("umount", str(mountpoint))
                if result.returncode != 0:
                    problems.append(result.stderr)
                    subprocess.run(["umount", "-l", str(mountpoint)], check=False)
            if not poll_until(_no_process_mentions(mountpoint), 15):
                problems.append(f"the daemon of {mountpoint} outlived its mount")
                for pid in processes_mentioning(str(mountpoint)):
                    os.kill(pid, 9)
        assert not problems, problems


def mounts_fixture(tmp_path: Path) -> Iterator[Mounts]:
    mounts = Mounts(tmp_path)
    try:
        yield mounts
    finally:
        mounts.close()
