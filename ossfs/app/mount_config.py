"""A mount's configuration: every option of ``ossfs mount`` as one frozen, validated value.

It validates; it builds nothing and reads no environment (`cli` parses, `wiring` builds).
"""

from __future__ import annotations

import logging
import logging.handlers
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ossfs.app.memory_limit import MemoryLimit
from ossfs.core.errors import UsageError
from ossfs.core.url import OssLocation
from ossfs.net.curl_setup import DEFAULT_LOW_SPEED_LIMIT, DEFAULT_LOW_SPEED_TIME_S
from ossfs.store.credentials import Credentials

log = logging.getLogger(__name__)


KERNEL_TTL_FOREVER_S: Final = 365 * 86400.0
LOG_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@dataclass(frozen=True, slots=True)
class MountConfig:
    """Everything `ossfs mount` needs, validated once."""

    location: OssLocation
    mountpoint: Path
    endpoint: str
    credentials: Credentials | None
    region: str | None = None
    credentials_source: str = "$OSS_ACCESS_KEY_ID/$OSS_ACCESS_KEY_SECRET"
    foreground: bool = False
    metadata_ttl_s: float = 60.0
    cache_size_bytes: int = 768 << 20
    max_memory_bytes: int = 1 << 30
    """One budget for the data ossfs holds: the block cache plus read-ahead in flight."""
    memory_limit: MemoryLimit | None = None
    """The memory this process may use and where that came from (logged, and in the stats)."""
    prefetch: bool = True
    connect_timeout_s: float = 10.0
    low_speed_limit_bytes: int = DEFAULT_LOW_SPEED_LIMIT
    low_speed_time_s: int | None = None
    """The stall rule: a transfer averaging fewer than ``low_speed_limit_bytes`` per second
    over this many seconds is abandoned and retried on a fresh connection. None: 10, or a
    third of a shorter ``retry_budget_s`` (`stall_window_s`)."""
    retry_budget_s: float = 30.0
    """How long one read may take, retries included, before it fails EIO (never hangs)."""
    retry_attempts: int = 6
    block_size_bytes: int = 1 << 20
    uid: int = 0
    gid: int = 0
    file_mode: int = 0o444
    dir_mode: int = 0o555
    allow_other: bool = False
    debug: bool = False
    log_level: str = "info"
    log_file: Path | None = None
    fuse_options: tuple[tuple[str, str | bool], ...] = ()
    workers: int = 64
    metrics_address: tuple[str, int] | None = None
    cache_dir: Path | None = None
    """``--cache-dir``: where the disk cache keeps blocks (None: no disk cache)."""
    cache_dir_size_bytes: int | None = None
    """``--cache-dir-size``: the disk cache's size limit; None: decided by the disk cache
    (3/4 of the free space plus what it holds)."""
    source_name: str = ""
    """What the mount table shows as the source: the location as the user wrote it (so
    ``mount -a`` recognises an fstab line as mounted); empty: ``oss://BUCKET[/PREFIX]``."""

    def __post_init__(self) -> None:
        if not 4096 <= self.block_size_bytes <= 64 << 20:
            raise UsageError("invalid --block-size: use 4KiB to 64MiB (default 1MiB)")
        if self.cache_size_bytes < 2 * self.block_size_bytes:
            raise UsageError("invalid --cache-size: it must hold at least two blocks")
        for flag, value in (
            ("--connect-timeout", self.connect_timeout_s),
            ("--retry-budget", self.retry_budget_s),
        ):
            if not 0 < value < math.inf:
                raise UsageError(f"invalid {flag} {value:g}: use a positive number of seconds")
        if self.low_speed_limit_bytes < 1:
            raise UsageError(
                f"invalid --low-speed-limit {self.low_speed_limit_bytes}: use 1 byte/s or more"
            )
        window = self.low_speed_time_s
        if window is not None and not 1 <= window < self.retry_budget_s:
            raise UsageError(
                f"invalid --low-speed-time {window}: use whole seconds, at least "
                f"1 and less than --retry-budget ({self.retry_budget_s:g})"
            )
        if self.retry_attempts < 1:
            raise UsageError("invalid --retries: use 1 or more (1 = no retry)")
        if self.cache_size_bytes > self.max_memory_bytes:
            raise UsageError(
                "invalid --cache-size: it must fit in --max-memory (the cache is part of it)"
            )
        if self.cache_dir_size_bytes is not None:
            if self.cache_dir is None:
                raise UsageError("--cache-dir-size needs --cache-dir DIR")
            if self.cache_dir_size_bytes < 2 * self.block_size_bytes:
                raise UsageError(
                    "invalid --cache-dir-size: it must hold at least two blocks "
                    f"({2 * self.block_size_bytes} bytes with this --block-size), e.g. 10GiB"
                )
        if self.log_level not in LOG_LEVELS:
            raise UsageError(f"invalid --log-level {self.log_level}: use {', '.join(LOG_LEVELS)}")
        for name, mode in (("--file-mode", self.file_mode), ("--dir-mode", self.dir_mode)):
            if not 0 <= mode <= 0o777:
                raise UsageError(f"invalid {name} {mode:o}: use an octal mode such as 444")

    @property
    def stall_window_s(self) -> int:
        """The stall rule's window in seconds: ``low_speed_time_s``, or its default, shorter
        than the retry budget so that a stalled transfer is retried within it."""
        if self.low_speed_time_s is not None:
            return self.low_speed_time_s
        return min(DEFAULT_LOW_SPEED_TIME_S, max(1, int(self.retry_budget_s // 3)))

    @property
    def kernel_ttl_s(self) -> float:
        return KERNEL_TTL_FOREVER_S if math.isinf(self.metadata_ttl_s) else self.metadata_ttl_s
