"""`ossfs mount`: check the mountpoint, probe the bucket, wire the layers, serve or daemonize.

The daemon is the forked child that mounts and serves; the parent waits until the child reports
the mount is up (exit 0) or failed (its error on stderr, non-zero exit). Start-up errors that a
user can cause are reported before anything is mounted.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ossfs.app.malloc import tune_malloc
from ossfs.app.memory_budget import memory_line
from ossfs.app.mount_config import LOG_LEVELS, MountConfig
from ossfs.app.wiring import (
    block_buffers,
    build_disk_cache,
    build_filesystem,
    build_store,
    prepare_cache_dir,
    probe,
)
from ossfs.core.errors import UsageError
from ossfs.core.sizes import format_size
from ossfs.core.url import OssLocation
from ossfs.fuse.fuse_ops import FuseOperations, run_fuse
from ossfs.net.metrics_server import MetricsServer
from ossfs.obs.stats import format_prometheus

log = logging.getLogger(__name__)

READY_MARKER: Final = b"\x00ossfs-ready\n"
_START_TIMEOUT_S: Final = 60.0
SYSLOG_SOCKET = "/dev/log"
"""Where a daemon without ``--log-file`` logs (a module variable so tests can point it away)."""
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
    root.setLevel(logging.DEBUG if config.debug else LOG_LEVELS[config.log_level])
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
    disk = build_disk_cache(config, buffers)
    fs, stats, pressure = build_filesystem(config, store, buffers, disk=disk)
    ops = FuseOperations(fs, on_init=on_ready, stats=stats)
    fsname = fs_source(config.location, config.source_name)
    log.info("mounting %s read-only on %s", config.location, config.mountpoint)
    log.info("endpoint %s; %s", _endpoint_words(config), _credentials_words(config))
    log.info(
        "%s", memory_line(config.memory_limit, config.max_memory_bytes, config.cache_size_bytes)
    )
    if disk is not None:
        log.info("%s", disk_line(config))
        disk.start()
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
        if disk is not None:
            disk.close()
        if metrics is not None:
            metrics.close()
    log.info("unmounted %s", config.mountpoint)


def disk_line(config: MountConfig) -> str:
    """The mount log's line about ``--cache-dir``: where, and how large it may grow."""
    size = config.cache_dir_size_bytes
    limit = (
        f"up to {format_size(size)} (--cache-dir-size)"
        if size is not None
        else "up to 3/4 of its filesystem's free space plus what it holds (the figure follows "
        "once it is scanned; --cache-dir-size sets one)"
    )
    return (
        f"disk cache in {config.cache_dir} (mode 700: it holds bucket data): {limit}, never "
        "leaving less than 5% of its filesystem free"
    )


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
    prepare_cache_dir(config)
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
