"""`ossfs mount`: check the mountpoint, probe the bucket, wire the layers, serve or daemonize.

The daemon is the forked child that mounts and serves; the parent waits until the child reports
the mount is up (exit 0) or failed (its error on stderr, non-zero exit). Start-up errors that a
user can cause are reported before anything is mounted.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import logging
import logging.handlers
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from ossfs.app.memory_budget import OWN_PEAK_BYTES, memory_line, memory_settings
from ossfs.app.memory_limit import MemoryLimit, usage_reader
from ossfs.core.errors import AccessDeniedError, NotFoundError, OssfsError, UsageError
from ossfs.core.object_store import ObjectStore
from ossfs.core.url import OssLocation
from ossfs.fs.filesystem import Filesystem, FsConfig
from ossfs.fs.namespace import Namespace
from ossfs.fuse.fuse_ops import FuseOperations, run_fuse
from ossfs.net.curl_setup import DEFAULT_LOW_SPEED_LIMIT, DEFAULT_LOW_SPEED_TIME_S
from ossfs.net.environ import environ_ca_bundle, environ_proxies
from ossfs.net.metrics_server import MetricsServer
from ossfs.obs.stats import MountStats, StoreCounters, format_prometheus, rss_bytes
from ossfs.read.block_cache import BlockCache
from ossfs.read.buffers import BufferPool
from ossfs.read.prefetch import PrefetchConfig, Prefetcher
from ossfs.read.pressure import PressureConfig, PressureMonitor
from ossfs.read.sibling_prefetch import SiblingPrefetchConfig, SiblingPrefetcher, WholeFetcher
from ossfs.store.config import OssConfig
from ossfs.store.credentials import Credentials
from ossfs.store.oss_store import OssStore
from ossfs.store.retry import RetryPolicy

log = logging.getLogger(__name__)

READY_MARKER: Final = b"\x00ossfs-ready\n"
_KERNEL_TTL_FOREVER_S: Final = 365 * 86400.0
_START_TIMEOUT_S: Final = 60.0
SYSLOG_SOCKET = "/dev/log"
"""Where a daemon without ``--log-file`` logs (a module variable so tests can point it away)."""
_PREFETCH_WORKERS: Final = 16
_POOL_BLOCKS: Final = 32
# While memory is short the cache still keeps this many blocks: the ones readers are in (a
# reader served 128 KiB at a time from a 1 MiB block would otherwise fetch it 8 times).
_FLOOR_BLOCKS: Final = 16
# Directory read-ahead GETs in flight at most: with 20 ms to a first byte (remote), 16 capped
# small files at ~630 files/s whatever the readers did; up to 48 gave ~900-1,000 (8 readers).
# How many are used follows the readers' pace (`sibling_prefetch.ReadAheadPace`): on a fast
# link two dozen or so. Memory still bounds it (each counts as one block of the in-flight budget).
_SIBLING_WORKERS: Final = 48
# Reads the kernel may send: libfuse 3 allows up to 1 MiB per read (libfuse 2 caps them at
# 128 KiB whatever is asked). The kernel sends reads that big only with a readahead window as
# large, which root can ask for (`set_read_ahead`); otherwise they stay at 128-256 KiB.
_MAX_READ_BYTES: Final = 1 << 20
_READ_AHEAD_KIB: Final = 1024
# libfuse 2 options libfuse 3 refuses to mount with ("unknown option"): accepted and dropped, so
# old fstab lines keep working (``max_readahead`` sets the readahead window instead).
_LIBFUSE2_ONLY_OPTIONS: Final = frozenset(
    {"nonempty", "big_writes", "large_read", "async_read", "max_readahead"}
)
_LOG_LEVELS: Final = {
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
        if self.log_level not in _LOG_LEVELS:
            raise UsageError(f"invalid --log-level {self.log_level}: use {', '.join(_LOG_LEVELS)}")
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
        return _KERNEL_TTL_FOREVER_S if math.isinf(self.metadata_ttl_s) else self.metadata_ttl_s


class MountStore(ObjectStore, StoreCounters, Protocol):
    """What a mount needs of its store (`OssStore`): the `ObjectStore`, its counters for the
    stats, and for read-ahead the link's latency and a runner of whole-object GETs."""

    def first_byte_s(self) -> float | None:
        """The recent time to a GET's first byte; None while not known."""
        ...

    def whole_fetcher(self, *, max_idle: int) -> WholeFetcher | None:
        """A new runner of directory read-ahead's GETs (its user closes it), or None: they run
        on worker threads."""
        ...


def check_mountpoint(path: Path, *, nonempty_ok: bool) -> None:
    """Raise `UsageError` if ``path`` cannot be mounted on."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"mountpoint {path} does not exist: create it with mkdir -p") from None
    except OSError as exc:
        if exc.errno == 107:  # ENOTCONN: a dead FUSE mount
            raise UsageError(
                f"mountpoint {path} is a dead mount: run 'ossfs umount {path}' first"
            ) from None
        raise UsageError(f"mountpoint {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise UsageError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise UsageError(f"{path} is already a mount point: unmount it first (ossfs umount {path})")
    del st
    if not nonempty_ok and any(path.iterdir()):
        raise UsageError(f"mountpoint {path} is not empty: use an empty directory (or -o nonempty)")


def block_buffers(config: MountConfig) -> BufferPool:
    """The mount's pool of free block buffers: a small part of what the cache leaves of the
    memory budget (at most 32 blocks), so buffers go round instead of being allocated anew."""
    spare_blocks = (config.max_memory_bytes - config.cache_size_bytes) // config.block_size_bytes
    return BufferPool(config.block_size_bytes, max(0, min(_POOL_BLOCKS, spare_blocks // 4)))


def build_store(config: MountConfig, buffers: BufferPool | None = None) -> OssStore:
    creds = config.credentials
    return OssStore(
        OssConfig(
            endpoint=config.endpoint,
            bucket=config.location.bucket,
            access_key_id=creds.access_key_id if creds else None,
            access_key_secret=creds.access_key_secret if creds else None,
            security_token=creds.security_token if creds else None,
            region=config.region,
            pool_size=config.workers,
            connect_timeout_s=config.connect_timeout_s,
            low_speed_limit_bytes=config.low_speed_limit_bytes,
            low_speed_time_s=config.stall_window_s,
            retry=RetryPolicy(
                max_attempts=config.retry_attempts,
                total_budget_s=config.retry_budget_s,
                base_delay_s=min(0.05, config.retry_budget_s),
                max_delay_s=min(2.0, config.retry_budget_s),
            ),
            ca_bundle=environ_ca_bundle(os.environ),
        ),
        proxies=environ_proxies,
        take_buffer=buffers.take if buffers is not None else None,
    )


def probe(store: ObjectStore, config: MountConfig) -> None:
    """One cheap request; failures become one-line `UsageError`s saying what to do."""
    where = f"oss://{config.location.bucket} at {config.endpoint}"
    try:
        store.probe()
    except NotFoundError as exc:
        raise UsageError(f"bucket {where} not found ({exc}); check the name and endpoint") from None
    except AccessDeniedError as exc:
        raise UsageError(
            f"access to {where} denied ({exc}); check the credentials from "
            f"{config.credentials_source} (or --anonymous for a public bucket)"
        ) from None
    except OssfsError as exc:
        raise UsageError(
            f"cannot reach {where} ({exc}); check --endpoint and the network"
        ) from None


def build_filesystem(
    config: MountConfig, store: MountStore, buffers: BufferPool | None = None
) -> tuple[Filesystem, MountStats, PressureMonitor | None]:
    """The filesystem over ``store``, the gatherer of its live counters, and the monitor that
    shrinks its block memory as the memory limit nears (None without a known limit; not
    started). ``buffers``: the pool the store reads into (the cache gives evicted blocks back
    to it).

    One account holds every block buffer (`BlockCache`): cached blocks (read-ahead that has
    arrived and is not read yet included) and blocks being fetched by reads and read-ahead, all
    within the budget less the free buffers the pool may keep."""
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="lookup")
    namespace = Namespace(
        store,
        root_prefix=config.location.prefix,
        metadata_ttl_s=config.metadata_ttl_s,
        lookup_executor=executor,
    )
    # Read-ahead GETs of every open file share these workers (and the store's connection pool).
    prefetch_executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(_PREFETCH_WORKERS, config.workers), thread_name_prefix="prefetch"
    )
    pooled = buffers.max_bytes if buffers is not None else 0
    cache = BlockCache(
        config.cache_size_bytes,
        buffers,
        total_bytes=max(config.cache_size_bytes, config.max_memory_bytes - pooled),
    )
    # Read-ahead (in flight, or arrived and not yet read) gets what the cache and the free
    # buffers leave of the budget; with nothing left (or with --no-prefetch) reads degrade to
    # one synchronous GET of their own blocks. Small files read ahead in directory order take
    # up to a quarter of it in flight (one block each).
    inflight_bytes = max(0, config.max_memory_bytes - config.cache_size_bytes - pooled)
    sibling_gets = min(
        _SIBLING_WORKERS, config.workers * 3 // 4, inflight_bytes // 4 // config.block_size_bytes
    )
    # Sequential read-ahead's budget counts its blocks until they are read, and those that
    # arrived are in the cache: besides what is left for GETs in flight it gets a quarter of
    # the cache (one handle's largest window). Should more of it be in flight than the cache
    # leaves room for, the cache's account evicts its least recently used blocks.
    readahead_bytes = (
        inflight_bytes - sibling_gets * config.block_size_bytes + config.cache_size_bytes // 4
    )
    prefetcher = (
        Prefetcher(
            prefetch_executor,
            PrefetchConfig(max_inflight_bytes=readahead_bytes),
            first_byte_s=store.first_byte_s,
        )
        if config.prefetch
        else None
    )
    siblings = None
    if config.prefetch and sibling_gets > 0:
        # Its GETs run on one thread (the HTTP engine's loop); a store without one (a scripted
        # transport) runs them on worker threads.
        fetcher = store.whole_fetcher(max_idle=sibling_gets)
        log.debug(
            "directory read-ahead: up to %d GETs in flight, %s",
            sibling_gets,
            "on one thread (libcurl's multi interface)" if fetcher else "on worker threads",
        )
        siblings = SiblingPrefetcher(
            store,
            cache,
            namespace.listed_children,
            concurrent.futures.ThreadPoolExecutor(
                max_workers=sibling_gets, thread_name_prefix="siblings"
            ),
            block_size_bytes=config.block_size_bytes,
            config=SiblingPrefetchConfig(max_inflight_gets=sibling_gets),
            fetcher=fetcher,
        )
    fs = Filesystem(
        namespace,
        store,
        cache,
        FsConfig(
            uid=config.uid,
            gid=config.gid,
            file_mode=config.file_mode,
            dir_mode=config.dir_mode,
            block_size_bytes=config.block_size_bytes,
        ),
        mount_time_ns=time.time_ns(),
        prefetcher=prefetcher,
        sibling_prefetcher=siblings,
    )
    pressure = build_pressure(config, cache, buffers, prefetcher, siblings)
    stats = MountStats(
        mount=str(config.location),
        store=store,
        cache=cache,
        cache_capacity_bytes=config.cache_size_bytes,
        namespace=namespace,
        prefetcher=prefetcher,
        sibling_prefetcher=siblings,
        open_handles=fs.open_handles,
        memory=memory_settings(config.memory_limit, config.max_memory_bytes),
        pressure=pressure,
    )
    return fs, stats, pressure


def build_pressure(
    config: MountConfig,
    cache: BlockCache,
    buffers: BufferPool | None,
    prefetcher: Prefetcher | None,
    siblings: SiblingPrefetcher | None,
) -> PressureMonitor | None:
    """The monitor of the memory limit's usage that scales the cache, the free buffers and
    both read-aheads together (None without a known limit)."""
    limit = config.memory_limit
    if limit is None:
        return None
    pool_buffers = buffers.max_bytes // buffers.buffer_bytes if buffers is not None else 0
    floor = _FLOOR_BLOCKS * config.block_size_bytes

    def scale_block_memory(scale: float) -> None:
        if buffers is not None:  # first: what the cache evicts next is unmapped, not kept
            buffers.limit(int(pool_buffers * scale))
        cache.resize(scale, floor_bytes=floor)
        if prefetcher is not None:
            prefetcher.set_scale(scale)
        if siblings is not None:
            siblings.set_scale(scale)

    def block_bytes() -> int:
        free = buffers.free_bytes if buffers is not None else 0
        return cache.used_bytes + cache.reserved_bytes + free

    return PressureMonitor(
        usage_reader(limit),
        block_bytes,
        PressureConfig(
            limit.limit_bytes, config.max_memory_bytes, own_reserve_bytes=OWN_PEAK_BYTES
        ),
        scale_block_memory,
        on_shrink=trim_malloc,
        own_bytes=rss_bytes,
    )


def fuse_options(config: MountConfig) -> dict[str, str | bool]:
    ttl = f"{config.kernel_ttl_s:g}"
    options: dict[str, str | bool] = {
        "entry_timeout": ttl,
        "attr_timeout": ttl,
        "negative_timeout": ttl,
        "max_read": str(_MAX_READ_BYTES),
        "default_permissions": True,
        # The kernel sees our inode numbers (stable per key, see names.inode_for_key), not
        # libfuse's per-mount counter.
        "use_ino": True,
    }
    if config.allow_other:
        options["allow_other"] = True
    options.update(dict(config.fuse_options))
    for name in _LIBFUSE2_ONLY_OPTIONS:  # nonempty: checked by ossfs itself
        options.pop(name, None)
    return options


def read_ahead_kib(config: MountConfig) -> int:
    """The kernel readahead window to ask for: ``-o max_readahead=BYTES``, else 1 MiB."""
    value = dict(config.fuse_options).get("max_readahead")
    if isinstance(value, str):
        try:
            return max(4, int(value) >> 10)
        except ValueError:
            raise UsageError(f"invalid -o max_readahead={value}: use a number of bytes") from None
    return _READ_AHEAD_KIB


def setup_logging(config: MountConfig, *, daemon: bool) -> None:
    """Where the mount logs: ``--log-file`` if given, else stderr in the foreground, else syslog
    (``/dev/log``; nothing if there is no syslog). Level from ``--log-level``/``--debug``."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if config.debug else _LOG_LEVELS[config.log_level])
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("oss2").setLevel(logging.WARNING)
    logging.getLogger("fuse").setLevel(logging.WARNING if not config.debug else logging.DEBUG)
    handler: logging.Handler
    if config.log_file is not None:
        handler = logging.FileHandler(config.log_file)
    elif daemon and os.path.exists(SYSLOG_SOCKET):
        handler = logging.handlers.SysLogHandler(address=SYSLOG_SOCKET)
        handler.setFormatter(logging.Formatter("ossfs[%(process)d]: %(levelname)s %(message)s"))
        root.addHandler(handler)
        return
    elif daemon:
        handler = logging.NullHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def fs_source(location: OssLocation, source_name: str = "") -> str:
    """The source the mount table shows: ``source_name``, else ``oss://BUCKET[/PREFIX]``.

    ``mount -a`` and systemd compare an fstab line's source with the mount table's, so this is
    the spelling the user wrote. FUSE's option parser takes ``\\,`` for a comma.
    """
    text = source_name or str(location).rstrip("/")
    return text.replace("\\", "\\\\").replace(",", "\\,")


def bind_metrics(config: MountConfig) -> MetricsServer | None:
    """The bound metrics endpoint, if asked for (`UsageError` if its address is taken)."""
    if config.metrics_address is None:
        return None
    return MetricsServer(*config.metrics_address)


_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8
_MALLOC_SETTINGS: Final = (
    # Per-thread arenas held half of the daemon's RSS in a soak (~250 MiB vs ~120 MiB with 2
    # arenas, same throughput).
    (_M_ARENA_MAX, 2),
    # libfuse mallocs a reply buffer of up to 1 MiB for every read and frees it after the
    # reply; above the default threshold (128 KiB) each came from a new mmap, 256 page faults
    # a MiB. From the heap, and not trimmed back at once, it is reused: daemon CPU for a
    # sequential read fell by a sixth.
    (_M_MMAP_THRESHOLD, 4 << 20),
    (_M_TRIM_THRESHOLD, 32 << 20),
)


def tune_malloc() -> bool:
    """Set glibc's malloc up for the daemon (`_MALLOC_SETTINGS`). False where there is no
    glibc or it refused a setting."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    applied = [bool(mallopt(param, value)) for param, value in _MALLOC_SETTINGS]  # every one
    return all(applied)


def trim_malloc() -> bool:
    """Give the heap's free memory back to the system (glibc ``malloc_trim``); False where
    there is no glibc."""
    try:
        libc = ctypes.CDLL(None)
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim(0)
    return True


def serve(
    config: MountConfig,
    *,
    on_ready: Callable[[], None] | None = None,
    metrics: MetricsServer | None = None,
) -> None:
    """Build everything, mount, and serve until unmounted (SIGINT/SIGTERM unmount cleanly).

    ``metrics``: a bound endpoint to serve the mount's counters from while mounted (closed on
    return).
    """
    tune_malloc()
    buffers = block_buffers(config)
    store = build_store(config, buffers)
    fs, stats, pressure = build_filesystem(config, store, buffers)
    ops = FuseOperations(fs, on_init=on_ready, stats=stats)
    fsname = fs_source(config.location, config.source_name)
    log.info("mounting %s read-only on %s", config.location, config.mountpoint)
    log.info("endpoint %s; %s", _endpoint_words(config), _credentials_words(config))
    log.info(
        "%s", memory_line(config.memory_limit, config.max_memory_bytes, config.cache_size_bytes)
    )
    try:
        if metrics is not None:
            metrics.start(lambda: format_prometheus(stats.snapshot().to_json()))
        if pressure is not None:
            pressure.start()
        run_fuse(
            ops,
            str(config.mountpoint),
            fsname=fsname,
            options=fuse_options(config),
            read_ahead_kib=read_ahead_kib(config),
        )
    finally:
        if pressure is not None:
            pressure.close()
        fs.close()
        if metrics is not None:
            metrics.close()
    log.info("unmounted %s", config.mountpoint)


def _endpoint_words(config: MountConfig) -> str:
    """The endpoint for the mount's log, with its signing region if it has one."""
    if config.region is None:
        return config.endpoint
    return f"{config.endpoint} (region {config.region})"


def _credentials_words(config: MountConfig) -> str:
    """Where the credentials came from, for the mount's log: never a key or a secret."""
    creds = config.credentials
    if creds is None:
        return f"no credentials, unsigned requests ({config.credentials_source})"
    kind = "temporary credentials (STS token)" if creds.security_token else "credentials"
    return f"{kind} from {config.credentials_source}"


def run_mount(config: MountConfig) -> int:
    """The `ossfs mount` command: returns the process exit code."""
    nonempty = any(k == "nonempty" for k, _ in config.fuse_options)
    check_mountpoint(config.mountpoint, nonempty_ok=nonempty)
    probe(build_store(config), config)
    metrics = bind_metrics(config)
    if config.foreground:
        setup_logging(config, daemon=False)
        try:
            serve(config, metrics=metrics)
        except RuntimeError as exc:
            raise UsageError(
                f"mounting {config.mountpoint} failed ({exc}); see messages above"
            ) from None
        return 0
    return _daemonize(config, metrics)


def _daemonize(config: MountConfig, metrics: MetricsServer | None) -> int:
    """Fork; the child mounts and serves, the parent waits for its word and exits.

    The metrics socket, bound here, is the child's: the parent only closes its copy.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_fd)
        os.setsid()
        _child(config, write_fd, metrics)
    os.close(write_fd)
    if metrics is not None:
        metrics.close()
    return _wait_for_child(pid, read_fd, config)


def _child(config: MountConfig, status_fd: int, metrics: MetricsServer | None) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    # Until the mount is up, stderr goes to the parent, so libfuse's own messages reach the user.
    os.dup2(status_fd, 2)
    setup_logging(config, daemon=True)

    def ready() -> None:
        os.write(status_fd, READY_MARKER)
        os.dup2(devnull, 2)
        os.close(status_fd)

    code = 0
    try:
        serve(config, on_ready=ready, metrics=metrics)
    except RuntimeError:
        code = 1  # libfuse has already said why on stderr
    except BaseException as exc:
        log.exception("ossfs daemon failed")
        with contextlib.suppress(OSError):
            os.write(2, f"{type(exc).__name__}: {exc}\n".encode())
        code = 1
    finally:
        os._exit(code)


def _wait_for_child(pid: int, read_fd: int, config: MountConfig) -> int:
    output = b""
    deadline = time.monotonic() + _START_TIMEOUT_S
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([pipe], [], [], left)[0]:
                continue
            chunk = pipe.read(4096)
            if not chunk:
                break
            output += chunk
            if READY_MARKER in output:
                return 0
    if not output and time.monotonic() >= deadline:
        os.kill(pid, signal.SIGTERM)
        raise UsageError(f"mounting {config.mountpoint} timed out after {_START_TIMEOUT_S:g}s")
    _, status = os.waitpid(pid, 0)
    lines = [ln.strip() for ln in output.decode(errors="replace").splitlines() if ln.strip()]
    detail = "; ".join(lines) or f"the daemon exited with {os.waitstatus_to_exitcode(status)}"
    raise UsageError(f"mounting {config.mountpoint} failed: {detail}")
