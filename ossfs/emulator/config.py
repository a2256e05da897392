"""Configuration of the emulator and the shared state its request handlers work on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ossfs.core.url import is_valid_bucket_name
from ossfs.emulator.auth import Credential
from ossfs.emulator.faults import Faults
from ossfs.emulator.requestlog import RequestLog
from ossfs.emulator.storage import Storage

valid_bucket_name = is_valid_bucket_name


@dataclass(frozen=True)
class EmulatorConfig:
    """Where and how to serve. ``port``/``s3_port`` 0 pick a free port; ``s3_port`` None: no S3."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    buckets: tuple[str, ...] = ()
    credentials: tuple[Credential, ...] = ()
    anonymous: bool = False
    s3_port: int | None = None
    region: str = "cn-hangzhou"
    restore_delay_s: float = 2.0
    restore_expiry_s: int = 86_400

    def __post_init__(self) -> None:
        for name in self.buckets:
            if not valid_bucket_name(name):
                raise ValueError(f"invalid bucket name {name!r}")
        if self.restore_delay_s < 0:
            raise ValueError("restore_delay_s must be >= 0")


@dataclass
class Context:
    """What every handler thread shares; each member is thread-safe on its own."""

    config: EmulatorConfig
    storage: Storage
    faults: Faults
    log: RequestLog
    credentials: dict[str, Credential] = field(default_factory=dict)
