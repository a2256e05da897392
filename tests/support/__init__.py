"""What the test suite shares (no tests here): the emulator's test credentials and bucket, and
waiting for its request log. The rest is in modules of this package:

- `tests.support.fakes`: `FakeStore`, an in-memory `ObjectStore` that records every call.
- `tests.support.faulty_store`: `FaultyStore`, which wraps any `ObjectStore` and injects
  failures (the k-th call fails, a piece is cut short or corrupted, a call stalls).
- `tests.support.executors`: executors a test drives by hand (`ManualExecutor`) or inline.
- `tests.support.waiting`: `wait_until`, polling with a deadline instead of fixed sleeps.
- `tests.support.fuse`: when real FUSE mounts can run, and the ``mount`` marker's checks.
- `tests.support.mounts`: running ``ossfs`` as a subprocess, `Mounts` of a test, its daemon.
- `tests.support.http_server`: a scripted HTTP/1.1 server and a TLS certificate for it.
- `tests.support.fs_shell`: `FsShell`, SEMANTICS.md's shell commands over the in-process
  `Filesystem` (no mount).
"""

from __future__ import annotations

from typing import Final

from ossfs.emulator import EmulatorServer
from ossfs.emulator.requestlog import LogEntry
from tests.support.waiting import wait_until

ACCESS_KEY_ID: Final = "LTAI5tTestAccessKey"
ACCESS_KEY_SECRET: Final = "TestSecretKey0123456789"
BUCKET: Final = "test-bucket"


def settled_entries(server: EmulatorServer, count: int, op: str | None = None) -> list[LogEntry]:
    """The server's log entries (of ``op``, or all) once there are ``count`` of them.

    A handler records a request after it has answered, so a client that just read a response
    can see the log before that request is in it. Raises AssertionError if fewer than
    ``count`` arrive within 10 s.
    """
    wait_until(
        lambda: len(server.log.entries(op)) >= count,
        10,
        f"{count} {op or 'request'} log entries",
    )
    return server.log.entries(op)
