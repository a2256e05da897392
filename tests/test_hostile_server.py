"""The hostile-server battery: real mounts reading through servers that answer badly.

A mangling proxy (`tests.hostile_proxy`) sits between a real ``ossfs mount`` and the emulator
and answers the GETs of one object per case with one kind of bad answer; a TLS front and a
``CONNECT`` proxy stand in for a server with a certificate for another host and a proxy that
drops its tunnels (`tests.hostile_tls`). Every mount has tight bounds (`TIGHT`). In every case:

- a read of the hostile object ends in time with the exact bytes or EIO, as the case allows,
  never with other bytes and never in a hang: one request (an O_DIRECT read) within the retry
  budget and one read timeout (`BOUND_S`), a whole read as ``cat`` does within twice that,
  each plus `SLACK_S` for process start-up on a loaded machine;
- other objects then read correctly through the same mount;
- the daemon's peak RSS stays under `MAX_DAEMON_RSS`.
"""

from __future__ import annotations

import enum
import errno
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from ossfs.emulator import EmulatorServer
from tests.support import BUCKET
from tests.support.hostile_proxy import MangleProxy, Mode
from tests.support.hostile_tls import TlsFiles, TunnelProxy, make_tls
from tests.support.mounts import (
    MIB,
    Mounts,
    daemon_pid,
    data_for,
    emulator_config,
    mounts_fixture,
    ossfs_env,
)
from tests.support.waiting import poll_until

pytestmark = pytest.mark.mount

READ_TIMEOUT_S: Final = 2
RETRY_BUDGET_S: Final = 6
BOUND_S: Final = RETRY_BUDGET_S + READ_TIMEOUT_S
"""How long one read may take at most: the retry budget, and the attempt running when it ran
out (one read timeout)."""
SLACK_S: Final = 5
"""Added to `BOUND_S` for the reader's own start-up and FUSE round trips on a loaded machine."""
MAX_DAEMON_RSS: Final = 300 * MIB
HOSTILE_SIZE: Final = 1_600_003  # two 1 MiB blocks, the second one short
TAIL_OFFSET: Final = MIB + 4321  # a ranged GET that does not start at 0
TAIL_SIZE: Final = 4096
HEALTHY: Final = {
    "healthy/small.txt": b"small and healthy\n",
    "healthy/medium.bin": data_for(11, 300_000),
    "healthy/large.bin": data_for(12, 2 * MIB + 12_345),
}
OSSFS_MOUNT: Final = (sys.executable, "-m", "ossfs", "mount", f"oss://{BUCKET}")
TLS_KEY: Final = "tls/object.bin"
TLS_DATA: Final = data_for(13, HOSTILE_SIZE)


TIGHT: Final = (
    "--connect-timeout",
    "2",
    "--retry-budget",
    str(RETRY_BUDGET_S),
    "--retries",
    "2",
    "--max-memory",
    "64MiB",
    # The stall rule: fewer than 1 KiB/s for READ_TIMEOUT_S seconds is a stall.
    "--low-speed-limit",
    "1024",
    "--low-speed-time",
    str(READ_TIMEOUT_S),
)


class Outcome(enum.Enum):
    """What a read of a hostile object may end with (within the bound, always)."""

    BYTES = "the exact bytes"
    EIO = "EIO"
    EITHER = "the exact bytes or EIO"


def _case(mode: Mode, outcome: Outcome, *marks: pytest.MarkDecorator) -> object:
    return pytest.param(mode, outcome, marks=marks, id=mode.value)


CASES: Final = [
    # The answer never ends; only a deadline on the whole request ends the read.
    _case(Mode.ENDLESS_CONTINUE, Outcome.EIO),
    _case(Mode.TRICKLE, Outcome.EIO),
    # The answer itself is right; the bytes after it must not become the next request's answer.
    _case(Mode.EXTRA_ANSWER, Outcome.BYTES),
    _case(Mode.CL_AND_CHUNKED, Outcome.EITHER),
    _case(Mode.DUPLICATE_CL, Outcome.EITHER),
    _case(Mode.NEGATIVE_CL, Outcome.EITHER),
    _case(Mode.HUGE_HEADER, Outcome.EITHER),
    _case(Mode.MANY_HEADERS, Outcome.EITHER),
    _case(Mode.GARBAGE_STATUS, Outcome.EIO),
    _case(Mode.WRONG_CONTENT_RANGE, Outcome.EIO),
    _case(Mode.GZIP, Outcome.EITHER),
    _case(Mode.SHORT_KEEPALIVE, Outcome.EITHER),
    _case(Mode.LF_ONLY, Outcome.EITHER),
    _case(Mode.BAD_CHUNK_SIZE, Outcome.EIO),
    _case(Mode.NEGATIVE_CHUNK_SIZE, Outcome.EIO),
    _case(Mode.WHOLE_FOR_RANGE, Outcome.EITHER),
]


SMALL_SIZE: Final = 100_003
WALK_HEALTHY: Final = {"0.txt": b"zero\n", "1.txt": b"one\n", "3.txt": b"three\n"}
"""Around the small hostile object ``2.bin`` in each walk directory: listing the directory and
opening 0.txt then 1.txt is an in-order walk, so directory read-ahead GETs 2.bin and 3.txt
on its fetch loop."""


def walk_dir(mode: Mode) -> str:
    return f"walk/{mode.value}"


def small_data(mode: Mode) -> bytes:
    return data_for(1000 + sum(mode.value.encode()), SMALL_SIZE)


def hostile_key(mode: Mode) -> str:
    return f"hostile/{mode.value}/object.bin"


def hostile_data(mode: Mode) -> bytes:
    return data_for(sum(mode.value.encode()), HOSTILE_SIZE)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator_config(tmp_path_factory.mktemp("hostile-data"))) as server:
        for key, data in HEALTHY.items():
            server.put_object(BUCKET, key, data)
        for mode in Mode:
            server.put_object(BUCKET, hostile_key(mode), hostile_data(mode))
            server.put_object(BUCKET, f"{walk_dir(mode)}/2.bin", small_data(mode))
            for name, data in WALK_HEALTHY.items():
                server.put_object(BUCKET, f"{walk_dir(mode)}/{name}", data)
        server.put_object(BUCKET, TLS_KEY, TLS_DATA)
        yield server


def _address(server: EmulatorServer) -> tuple[str, int]:
    host, port = server.endpoint.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@pytest.fixture(scope="module")
def proxy(emulator: EmulatorServer) -> Iterator[MangleProxy]:
    server = MangleProxy(_address(emulator))
    server.trickle_s = READ_TIMEOUT_S / 2  # never silent for a whole read timeout
    yield server
    server.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_front(emulator: EmulatorServer, tls: TlsFiles) -> Iterator[MangleProxy]:
    """The emulator behind TLS with a certificate for 127.0.0.1 (a test may swap it, and
    swaps it back)."""
    server = MangleProxy(_address(emulator), tls=tls.right)
    server.crc_hidden.add(TLS_KEY)  # its bytes are checked by the HTTP handling alone
    yield server
    server.close()


@dataclass(frozen=True)
class Tunnelled:
    """A ``CONNECT`` proxy, the TLS front it tunnels to, and the CA that front's certificate
    is from."""

    tunnel: TunnelProxy
    front: MangleProxy
    tls: TlsFiles


@pytest.fixture(scope="module")
def tunnelled(tls_front: MangleProxy, tls: TlsFiles) -> Iterator[Tunnelled]:
    server = TunnelProxy()
    yield Tunnelled(server, tls_front, tls)
    server.close()


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    yield from mounts_fixture(tmp_path)


# -- helpers ----------------------------------------------------------------------------------

_READER: Final = """
import os, sys
path, offset, size, flags = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
try:
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        if size >= 0:
            data = os.pread(fd, size, offset)
        else:
            parts = []
            while part := os.read(fd, 1 << 20):
                parts.append(part)
            data = b"".join(parts)
    finally:
        os.close(fd)
except OSError as exc:
    sys.stderr.write(str(exc.errno))
    sys.exit(3)
sys.stdout.buffer.write(data)
"""


@dataclass(frozen=True)
class Read:
    """How a read ended: ``data``, or ``errno``, or neither (it did not end by ``deadline_s``)."""

    deadline_s: float
    data: bytes | None = None
    errno: int | None = None

    def describe(self) -> str:
        if self.data is not None:
            return f"{len(self.data)} bytes"
        if self.errno is not None:
            return errno.errorcode.get(self.errno, str(self.errno))
        return f"no end within {self.deadline_s} s"


def read_direct(
    path: Path,
    offset: int,
    size: int,
    unstick: Callable[[], None],
    *,
    bound_s: float = BOUND_S,
) -> Read:
    """``size`` bytes at ``offset`` of ``path`` read with O_DIRECT: one FUSE read, so one
    request to the store, which must end within ``bound_s`` (+ `SLACK_S`). ``unstick``: make
    the server answer (see `_read`)."""
    return _read(path, offset, size, os.O_DIRECT, deadline_s=bound_s + SLACK_S, unstick=unstick)


def read_all(path: Path, unstick: Callable[[], None] = lambda: None) -> Read:
    """All of ``path``, read as ``cat`` reads it (through the page cache). Where the kernel's
    read-ahead of a page failed, the kernel asks for that page once more before it gives up,
    and that is a second request: such a read ends within twice `BOUND_S` (+ `SLACK_S`)."""
    return _read(path, 0, -1, 0, deadline_s=2 * BOUND_S + SLACK_S, unstick=unstick)


def _read(
    path: Path,
    offset: int,
    size: int,
    flags: int,
    *,
    deadline_s: float,
    unstick: Callable[[], None],
) -> Read:
    """Read in a child process, killed if it has not finished by ``deadline_s``. A process
    waiting for an O_DIRECT read cannot be killed until its answer comes, so then
    ``unstick()`` makes the server behave before the child is waited for."""
    child = subprocess.Popen(
        [sys.executable, "-c", _READER, str(path), str(offset), str(size), str(flags)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = child.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        child.kill()
        unstick()
        child.communicate(timeout=60)
        return Read(deadline_s)
    if child.returncode == 3:
        return Read(deadline_s, errno=int(err))
    assert child.returncode == 0, err
    return Read(deadline_s, data=out)


def check(read: Read, expected: bytes, outcome: Outcome, log: Path) -> None:
    """``read`` ended as ``outcome`` allows, with ``expected`` if it gave bytes."""
    ok_bytes = read.data == expected and outcome is not Outcome.EIO
    ok_errno = read.errno == errno.EIO and outcome is not Outcome.BYTES
    wrong = read.data is not None and read.data != expected
    what = "other bytes than the object's" if wrong else read.describe()
    assert ok_bytes or ok_errno, f"expected {outcome.value}, got {what}\n{log_tail(log)}"


def check_hostile_reads(
    path: Path, data: bytes, outcome: Outcome, log: Path, unstick: Callable[[], None]
) -> None:
    """A random read (a ranged GET from the middle) and a whole read of ``path``, whose content
    is ``data``, end as ``outcome`` allows. ``unstick``: make the server behave (when a read
    did not end in time)."""
    tail = read_direct(path, TAIL_OFFSET, TAIL_SIZE, unstick)
    check(tail, data[TAIL_OFFSET : TAIL_OFFSET + TAIL_SIZE], outcome, log)
    check(read_all(path, unstick), data, outcome, log)


def log_tail(log: Path, lines: int = 15) -> str:
    if not log.exists():
        return "(no daemon log)"
    return "daemon log, last lines:\n" + "\n".join(log.read_text().splitlines()[-lines:])


def check_healthy(mountpoint: Path, keys: list[str], log: Path) -> None:
    for key in keys:
        read = read_all(mountpoint / key)
        assert read.data == HEALTHY[key], f"{key}: {read.describe()}\n{log_tail(log)}"


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def check_rss(mountpoint: Path) -> None:
    rss = peak_rss(daemon_pid(mountpoint))
    assert rss < MAX_DAEMON_RSS, f"daemon peak RSS {rss / MIB:.0f} MiB"


def mount_with_env(mounts: Mounts, endpoint: str, log: Path, env: dict[str, str]) -> Path:
    """Mount the bucket at ``endpoint`` with `TIGHT` bounds, the daemon's environment being
    ``env`` (ossfs's usual one otherwise); `Mounts.close` unmounts it."""
    mountpoint = log.parent / f"mnt{len(mounts.mounted)}"
    mountpoint.mkdir()
    mounts.mounted.append(mountpoint)
    result = subprocess.run(
        [*OSSFS_MOUNT, str(mountpoint), "--endpoint", endpoint, *TIGHT, "--log-file", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return mountpoint


def tls_env(tls: TlsFiles, proxy: str | None = None) -> dict[str, str]:
    """ossfs's environment trusting the test CA; through ``proxy`` (no exemption for
    127.0.0.1) if given."""
    env = {**ossfs_env(), "REQUESTS_CA_BUNDLE": str(tls.ca_file)}
    if proxy is not None:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "https_proxy"):
            env.pop(name, None)
        env["HTTPS_PROXY"] = proxy
    return env


# -- the battery ------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "outcome"), CASES)
def test_hostile_answer_ends_in_time_and_harms_no_other_read(
    mode: Mode, outcome: Outcome, proxy: MangleProxy, mounts: Mounts, tmp_path: Path
) -> None:
    """Ranged GETs of a large object (the reader's), then the whole-object GET of a small one
    (directory read-ahead's, on its fetch loop), answered with ``mode``."""
    key, data = hostile_key(mode), hostile_data(mode)
    walk = walk_dir(mode)
    small_key, small = f"{walk}/2.bin", small_data(mode)
    log = tmp_path / "ossfs.log"
    mountpoint = mounts.mount(proxy.endpoint, *TIGHT, "--log-file", str(log))
    proxy.mangle(key, mode, data)
    proxy.mangle(small_key, mode, small)
    try:
        check_hostile_reads(mountpoint / key, data, outcome, log, lambda: proxy.release(key))
        assert proxy.mangled[key] >= 1  # the bad answers did go out
        assert sorted(os.listdir(mountpoint / walk)) == ["0.txt", "1.txt", "2.bin", "3.txt"]
        for name in ("0.txt", "1.txt"):
            assert read_all(mountpoint / walk / name).data == WALK_HEALTHY[name]
        read_ahead = poll_until(lambda: proxy.mangled[small_key] >= 1, BOUND_S)
        assert read_ahead, "directory read-ahead did not GET the next file"
        # One FUSE read: it joins the read-ahead GET (never retried: one read timeout at most),
        # and fetches the file itself if that failed.
        small_read = read_direct(
            mountpoint / small_key,
            0,
            SMALL_SIZE,
            lambda: proxy.release(small_key),
            bound_s=READ_TIMEOUT_S + BOUND_S,
        )
        check(small_read, small, outcome, log)
        assert read_all(mountpoint / walk / "3.txt").data == WALK_HEALTHY["3.txt"]
        check_healthy(mountpoint, list(HEALTHY), log)
    finally:
        proxy.release(key)
        proxy.release(small_key)
    check_rss(mountpoint)


def test_hostile_tls_certificate_for_another_host_fails_the_mount(
    emulator: EmulatorServer, tls: TlsFiles, tmp_path: Path
) -> None:
    front = MangleProxy(_address(emulator), tls=tls.wrong)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        result = subprocess.run(
            [*OSSFS_MOUNT, str(mountpoint), "--endpoint", front.endpoint, *TIGHT],
            capture_output=True,
            text=True,
            timeout=BOUND_S + SLACK_S + 10,  # + 10: the mount command's own start-up
            env=tls_env(tls),
            check=False,
        )
    finally:
        front.close()
    assert result.returncode == 2, result.stderr
    assert "cannot reach" in result.stderr
    assert "certificate" in result.stderr.lower()
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert front.connections >= 1  # it was the certificate, not the address
    assert not os.path.ismount(mountpoint)


def test_hostile_tls_certificate_for_another_host_fails_reads_not_the_mount(
    tls_front: MangleProxy, tls: TlsFiles, mounts: Mounts, tmp_path: Path
) -> None:
    """A server that starts presenting a certificate for another host mid-mount: reads fail
    EIO, never bytes, and read again once the right certificate is back."""
    log = tmp_path / "ossfs.log"
    mountpoint = mount_with_env(mounts, tls_front.endpoint, log, tls_env(tls))
    check_healthy(mountpoint, ["healthy/small.txt"], log)
    (mountpoint / TLS_KEY).stat()  # looked up while the certificate is still right
    tls_front.tls = tls.wrong

    def restore() -> None:
        tls_front.tls = tls.right

    try:
        tls_front.cut_all()  # kept connections go: the next ones meet the wrong certificate
        before = tls_front.connections
        check_hostile_reads(mountpoint / TLS_KEY, TLS_DATA, Outcome.EIO, log, restore)
        assert tls_front.connections > before
    finally:
        restore()
    check_healthy(mountpoint, ["healthy/medium.bin", "healthy/large.bin"], log)
    check_rss(mountpoint)


@pytest.mark.parametrize(
    ("drop", "outcome"),
    [
        pytest.param("after-connect", Outcome.EIO, id="dropped-after-connect"),
        # Each tunnel carries part of an answer: resumed reads may still complete.
        pytest.param("mid-answer", Outcome.EITHER, id="dropped-mid-answer"),
    ],
)
def test_hostile_proxy_dropping_tunnels(
    drop: str, outcome: Outcome, tunnelled: Tunnelled, mounts: Mounts, tmp_path: Path
) -> None:
    """An ``https`` endpoint reached through a ``CONNECT`` proxy that starts dropping its
    tunnels: reads end in time with bytes or EIO, and read again once it relays."""
    tunnel = tunnelled.tunnel
    log = tmp_path / "ossfs.log"
    env = tls_env(tunnelled.tls, proxy=tunnel.url)
    tunnels_before = tunnel.tunnels
    mountpoint = mount_with_env(mounts, tunnelled.front.endpoint, log, env)
    check_healthy(mountpoint, ["healthy/small.txt"], log)
    assert tunnel.tunnels > tunnels_before  # the mount does go through the proxy
    (mountpoint / TLS_KEY).stat()
    if drop == "after-connect":
        tunnel.drop = True
    else:
        tunnel.cut_after_bytes = 24 << 10

    def relay() -> None:
        tunnel.drop, tunnel.cut_after_bytes = False, None

    try:
        tunnel.cut_all()
        tunnels = tunnel.tunnels
        check_hostile_reads(mountpoint / TLS_KEY, TLS_DATA, outcome, log, relay)
        assert tunnel.tunnels > tunnels
    finally:
        relay()
    check_healthy(mountpoint, ["healthy/medium.bin", "healthy/large.bin"], log)
    check_rss(mountpoint)
