"""Shared by the test suite: the emulator's test credentials and bucket, and log helpers."""

from __future__ import annotations

import time
from typing import Final

from ossfs.emulator import EmulatorServer
from ossfs.emulator.requestlog import LogEntry

ACCESS_KEY_ID: Final = "LTAI5tTestAccessKey"
ACCESS_KEY_SECRET: Final = "TestSecretKey0123456789"
BUCKET: Final = "test-bucket"


def settled_entries(server: EmulatorServer, count: int, op: str | None = None) -> list[LogEntry]:
    """The server's log entries (of ``op``, or all) once there are ``count`` of them.

    A handler records a request after it has answered, so a client that just read a response
    can see the log before that request is in it.
    """
    deadline = time.monotonic() + 10
    while len(server.log.entries(op)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.log.entries(op)
