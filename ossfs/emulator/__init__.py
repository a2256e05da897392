"""A local OSS-compatible server for tests, benchmarks and `ossfs demo`.

Public API: `EmulatorServer`, `EmulatorConfig`, `Faults`, `FaultSettings`, `RequestLog`,
`LogEntry`, `Credential`.
"""

from __future__ import annotations

from ossfs.emulator.auth import Credential
from ossfs.emulator.config import EmulatorConfig
from ossfs.emulator.faults import FaultPlan, Faults, FaultSettings
from ossfs.emulator.requestlog import LogEntry, RequestLog
from ossfs.emulator.server import EmulatorServer

__all__ = [
    "Credential",
    "EmulatorConfig",
    "EmulatorServer",
    "FaultPlan",
    "FaultSettings",
    "Faults",
    "LogEntry",
    "RequestLog",
]
