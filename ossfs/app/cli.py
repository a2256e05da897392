"""Command line: argv and environment -> configuration -> the objects that do the work -> exit code.

This is the only module that reads argv or the environment. Every error a user can cause ends as
one line on stderr and exit code 2; nothing a user can cause prints a traceback.

Besides ``ossfs COMMAND ...``, it accepts the form mount helpers use, ``ossfs SOURCE MOUNTPOINT
-o OPT[=VAL],...`` (what ``mount -t fuse.ossfs`` and /etc/fstab run through ``mount.fuse3``):
`legacy_mount_argv` turns it into ``ossfs mount ...``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from ossfs import __version__
from ossfs.app.access_args import access_from_args, add_access_arguments
from ossfs.core.crc64 import MissingCrcExtensionError, require_fast_crc
from ossfs.core.errors import UsageError

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]

_HELP: Final = {
    "mount": "mount oss://BUCKET[/PREFIX] read-only at MOUNTPOINT",
    "umount": "unmount an ossfs mount",
    "stats": "print the live counters of a mount",
    "verify": "check objects' CRC-64 against the server's",
    "preload": "read files of a mount now, so that later reads are served from its cache",
    "emulator": "run the local OSS-compatible server",
    "demo": "mount a sample bucket from a local server (no account)",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line + a hint, with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _not_yet(name: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        raise UsageError(f"'ossfs {name}' is not implemented yet in this version")

    return run


def _mode(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid mode {text!r}: use octal, e.g. 444") from None


def _fuse_options(values: list[str]) -> tuple[tuple[str, str | bool], ...]:
    options: list[tuple[str, str | bool]] = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            name, sep, arg = item.strip().partition("=")
            options.append((name, arg if sep else True))
    return tuple(options)


def _add_mount(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("mount", help=_HELP["mount"])
    p.add_argument("location", metavar="oss://BUCKET[/PREFIX]")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    add_access_arguments(p)
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.add_argument(
        "--metadata-ttl",
        default="60",
        metavar="SECONDS|forever",
        help="how long listings and attributes are trusted (default 60; 0 = always ask)",
    )
    p.add_argument(
        "--max-memory",
        help="budget for cached and read-ahead data, at most the memory limit of this process "
        "(its cgroup's, or RAM); default 1/16 of that limit, at least 256MiB or half of it",
    )
    p.add_argument(
        "--cache-size", help="block cache size, part of --max-memory (default 3/4 of it)"
    )
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="keep blocks read in DIR too (created mode 700), across remounts; several mounts "
        "may share one DIR",
    )
    p.add_argument(
        "--cache-dir-size",
        metavar="SIZE",
        help="size limit of --cache-dir (default 3/4 of its filesystem's free space plus what "
        "it holds)",
    )
    p.add_argument(
        "--no-prefetch", action="store_true", help="no sequential read-ahead (one GET per block)"
    )
    p.add_argument("--connect-timeout", default="10", metavar="S", help="seconds (default 10)")
    p.add_argument(
        "--low-speed-limit",
        default="1KiB",
        metavar="BYTES",
        help="a transfer slower than this per second over --low-speed-time is abandoned and "
        "retried (default 1KiB)",
    )
    p.add_argument(
        "--low-speed-time",
        type=int,
        metavar="S",
        help="the window of --low-speed-limit, less than --retry-budget (default 10)",
    )
    p.add_argument("--read-timeout", help=argparse.SUPPRESS)  # gone: see _run_mount
    p.add_argument(
        "--retry-budget",
        default="30",
        metavar="S",
        help="seconds a failing request is retried before EIO (default 30)",
    )
    p.add_argument("--retries", type=int, default=6, help="attempts per request (default 6)")
    p.add_argument("--block-size", default="1MiB", help="read block size (default 1MiB)")
    p.add_argument("--uid", type=int, default=os.getuid(), help="owner of every entry")
    p.add_argument("--gid", type=int, default=os.getgid(), help="group of every entry")
    p.add_argument("--file-mode", type=_mode, default=0o444, help="file permissions (444)")
    p.add_argument("--dir-mode", type=_mode, default=0o555, help="directory permissions (555)")
    p.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    p.add_argument("--debug", action="store_true", help="log every request (no credentials)")
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="least severe messages logged (default info; --debug means debug)",
    )
    p.add_argument("--log-file", type=Path, help="log here (default: stderr, or syslog as daemon)")
    p.add_argument(
        "--source-name",
        help=argparse.SUPPRESS,  # the helper form's SOURCE as written, for the mount table
    )
    p.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464)",
    )
    p.add_argument(
        "-o",
        dest="options",
        action="append",
        default=[],
        metavar="OPT[=VAL],...",
        help="FUSE mount options passed through",
    )
    p.set_defaults(handler=_run_mount)


def _run_mount(args: argparse.Namespace) -> int:
    from ossfs.app.memory_budget import budgets_within
    from ossfs.app.memory_limit import find_memory_limit
    from ossfs.app.mount_config import MountConfig
    from ossfs.app.mounting import run_mount
    from ossfs.core.sizes import parse_size, parse_ttl
    from ossfs.core.url import parse_oss_url
    from ossfs.net.metrics_server import parse_address

    location = parse_oss_url(args.location)
    if args.read_timeout is not None:  # accepted so that old fstab lines still mount
        print(
            "ossfs mount: warning: --read-timeout is no longer used: a silent or slow transfer "
            "is abandoned by --low-speed-limit/--low-speed-time; drop it",
            file=sys.stderr,
        )
    access = access_from_args(args, os.environ, bucket=location.bucket)
    memory_limit = find_memory_limit()
    max_memory, cache_size = budgets_within(
        memory_limit,
        max_memory=parse_size(args.max_memory, what="--max-memory") if args.max_memory else None,
        cache_size=parse_size(args.cache_size, what="--cache-size") if args.cache_size else None,
    )
    config = MountConfig(
        location=location,
        mountpoint=Path(args.mountpoint).absolute(),
        endpoint=access.endpoint,
        credentials=access.credentials,
        credentials_source=access.credentials_source,
        region=access.region,
        foreground=args.foreground,
        metadata_ttl_s=parse_ttl(args.metadata_ttl, what="--metadata-ttl"),
        max_memory_bytes=max_memory,
        cache_size_bytes=cache_size,
        memory_limit=memory_limit,
        prefetch=not args.no_prefetch,
        cache_dir=Path(args.cache_dir).absolute() if args.cache_dir else None,
        cache_dir_size_bytes=parse_size(args.cache_dir_size, what="--cache-dir-size")
        if args.cache_dir_size
        else None,
        connect_timeout_s=parse_ttl(args.connect_timeout, what="--connect-timeout"),
        low_speed_limit_bytes=parse_size(args.low_speed_limit, what="--low-speed-limit"),
        low_speed_time_s=args.low_speed_time,
        retry_budget_s=parse_ttl(args.retry_budget, what="--retry-budget"),
        retry_attempts=args.retries,
        block_size_bytes=parse_size(args.block_size, what="--block-size"),
        uid=args.uid,
        gid=args.gid,
        file_mode=args.file_mode,
        dir_mode=args.dir_mode,
        allow_other=args.allow_other,
        debug=args.debug,
        log_level=args.log_level or ("debug" if args.debug else "info"),
        log_file=args.log_file.absolute() if args.log_file else None,
        fuse_options=_fuse_options(args.options),
        source_name=args.source_name or args.location,
        metrics_address=parse_address(args.metrics_address) if args.metrics_address else None,
    )
    return run_mount(config)


def _add_stats(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("stats", help=_HELP["stats"])
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("--json", action="store_true", help="print the counters as one JSON object")
    p.set_defaults(handler=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    from ossfs.app.mount_info import read_stats
    from ossfs.obs.stats import format_human

    path = Path(args.mountpoint)
    not_ossfs = f"{path} is not an ossfs mount: give the directory an ossfs mount is mounted on"
    doc = read_stats(path, not_ossfs=not_ossfs)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_human(doc), end="")
    return 0


def _add_umount(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("umount", help=_HELP["umount"])
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.set_defaults(handler=_run_umount)


def _run_umount(args: argparse.Namespace) -> int:
    from ossfs.app.umount import run_umount

    return run_umount(Path(args.mountpoint))


def _add_verify(sub: argparse._SubParsersAction[_Parser]) -> None:
    from ossfs.app import verify_cli

    p = sub.add_parser("verify", help=_HELP["verify"])
    verify_cli.configure_parser(p)
    p.set_defaults(handler=verify_cli.run)


def _add_preload(sub: argparse._SubParsersAction[_Parser]) -> None:
    from ossfs.app import preload_cli

    p = sub.add_parser("preload", help=_HELP["preload"])
    preload_cli.configure_parser(p)
    p.set_defaults(handler=preload_cli.run)


def _add_emulator(sub: argparse._SubParsersAction[_Parser]) -> None:
    from ossfs.emulator import cli as emulator_cli

    p = sub.add_parser("emulator", help=_HELP["emulator"])
    emulator_cli.configure_parser(p)
    p.set_defaults(handler=emulator_cli.run)


def _add_demo(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("demo", help=_HELP["demo"])
    p.add_argument("mountpoint", metavar="MOUNTPOINT", help="an empty or missing directory")
    p.add_argument(
        "--large-size", default="256MiB", help="size of the sample's large file (256MiB)"
    )
    p.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from ossfs.app.demo import run_demo
    from ossfs.core.sizes import parse_size

    large = parse_size(args.large_size, what="--large-size")
    return run_demo(Path(args.mountpoint), large_bytes=large)


def build_parser(command: str | None = None) -> _Parser:
    """The command line's parser. With ``command``, only that command's arguments are set up
    (the others are listed with their help), so that it imports only its own modules: verify's
    and the emulator's cost about half a second, which every short command would pay."""
    parser = _Parser(prog="ossfs", description="Mount Alibaba Cloud OSS buckets read-only.")
    parser.add_argument("--version", action="version", version=f"ossfs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    adders = {
        "mount": _add_mount,
        "umount": _add_umount,
        "stats": _add_stats,
        "verify": _add_verify,
        "preload": _add_preload,
        "emulator": _add_emulator,
        "demo": _add_demo,
    }
    for name, add in adders.items():
        if command in (None, name):
            add(sub)
        else:
            sub.add_parser(name, help=_HELP[name])
    return parser


# -- the mount helper's form: ossfs SOURCE MOUNTPOINT -o OPTIONS ---------------------------------

COMMANDS: Final = ("mount", "umount", "stats", "verify", "preload", "emulator", "demo")
# -o NAME[=VALUE] that are `ossfs mount` options: NAME -> (flag, takes a value).
_OSSFS_OPTIONS: Final = {
    "endpoint": ("--endpoint", True),
    "url": ("--endpoint", True),  # ossfs 1.x's name
    "region": ("--region", True),
    "internal": ("--internal", False),
    "anonymous": ("--anonymous", False),
    "credentials_file": ("--credentials-file", True),
    "profile": ("--profile", True),
    "passwd_file": ("--passwd-file", True),
    "metadata_ttl": ("--metadata-ttl", True),
    "cache_size": ("--cache-size", True),
    "max_memory": ("--max-memory", True),
    "no_prefetch": ("--no-prefetch", False),
    "cache_dir": ("--cache-dir", True),
    "cache_dir_size": ("--cache-dir-size", True),
    "connect_timeout": ("--connect-timeout", True),
    "low_speed_limit": ("--low-speed-limit", True),
    "low_speed_time": ("--low-speed-time", True),
    "read_timeout": ("--read-timeout", True),
    "retry_budget": ("--retry-budget", True),
    "retries": ("--retries", True),
    "block_size": ("--block-size", True),
    "uid": ("--uid", True),
    "gid": ("--gid", True),
    "file_mode": ("--file-mode", True),
    "dir_mode": ("--dir-mode", True),
    "allow_other": ("--allow-other", False),
    "debug": ("--debug", False),
    "log_level": ("--log-level", True),
    "log_file": ("--log-file", True),
    "metrics_address": ("--metrics-address", True),
}
# Options of mount(8) and fstab that mean nothing to ossfs or FUSE: mount.fuse3 drops some of
# them, util-linux others; whatever still arrives is dropped here. "rw" too: a mount is always
# read-only (writes answer EROFS), so an fstab line saying rw or defaults still works.
_MOUNT_ONLY_OPTIONS: Final = frozenset(
    {"ro", "rw", "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group"}
    | {"_netdev", "nofail"}
)
_MOUNT_ONLY_PREFIXES: Final = ("x-", "comment=")
# FUSE's and the kernel's own option names: passed through, never taken for an ossfs typo.
_FUSE_OPTIONS: Final = frozenset(
    [
        "allow_root",
        "auto_unmount",
        "nonempty",
        "default_permissions",
        "fsname",
        "subtype",
        "large_read",
        "max_read",
        "blkdev",
        "blksize",
        "kernel_cache",
        "auto_cache",
        "noauto_cache",
        "umask",
        "entry_timeout",
        "negative_timeout",
        "attr_timeout",
        "ac_attr_timeout",
        "intr",
        "intr_signal",
        "modules",
        "hard_remove",
        "use_ino",
        "readdir_ino",
        "direct_io",
        "max_write",
        "max_readahead",
        "max_background",
        "congestion_threshold",
        "async_read",
        "sync_read",
        "atomic_o_trunc",
        "big_writes",
        "no_remote_lock",
        "dev",
        "nodev",
        "suid",
        "nosuid",
        "exec",
        "noexec",
        "async",
        "sync",
        "dirsync",
        "atime",
        "noatime",
        "relatime",
        "nodiratime",
        "lazytime",
        "context",
        "fscontext",
        "defcontext",
        "rootcontext",
    ]
)


_HELPER_HINT: Final = " (in an fstab line or mount -o, --cache-size 1GiB is cache_size=1GiB)"


def legacy_mount_argv(argv: Sequence[str]) -> list[str]:
    """``SOURCE MOUNTPOINT [-o OPTS | -oOPTS | -f | -d | --long-option ...]`` -> ``mount ...``.

    SOURCE is ``oss://BUCKET[/PREFIX]`` or ossfs 1.x's ``BUCKET[:/PREFIX]``. Options named in
    `_OSSFS_OPTIONS` become their ``--flag``; mount(8)'s generic ones are dropped; every other
    ``-o`` option passes through to FUSE. Raises `UsageError` for what cannot be understood.
    """
    if len(argv) < 2 or argv[1].startswith("-"):
        raise UsageError(
            "expected SOURCE MOUNTPOINT [-o OPTIONS] or a command "
            f"({', '.join(COMMANDS)}); see ossfs --help"
        )
    source, mountpoint, rest = argv[0], argv[1], list(argv[2:])
    if mountpoint.startswith("oss://"):
        raise UsageError(
            f"unknown command {source!r}: use one of {', '.join(COMMANDS)} (see ossfs --help)"
        )
    out = ["mount", _legacy_source(source), mountpoint]
    if not source.startswith("oss://"):
        out += ["--source-name", source]
    fuse: list[str] = []
    while rest:
        token = rest.pop(0)
        if token == "-o":
            if not rest:
                raise UsageError("-o needs a value: -o OPT[=VAL],...")
            _legacy_options(rest.pop(0), out, fuse)
        elif token.startswith("-o"):
            _legacy_options(token[2:], out, fuse)
        elif token == "-f":
            out.append("--foreground")
        elif token == "-d":
            out += ["--foreground", "--debug"]
        elif token.startswith("--"):
            out.append(token)
            if "=" not in token and rest and not rest[0].startswith("-"):
                out.append(rest.pop(0))
        else:
            raise UsageError(f"unexpected argument {token!r}: use -o OPT[=VAL],... for options")
    if fuse:
        out += ["-o", ",".join(fuse)]
    return out


def _legacy_source(source: str) -> str:
    if source.startswith("oss://"):
        return source
    bucket, _, prefix = source.partition(":")
    return f"oss://{bucket}/{prefix.strip('/')}" if prefix else f"oss://{bucket}"


def _legacy_options(text: str, out: list[str], fuse: list[str]) -> None:
    for item in text.split(","):
        option = item.strip()
        name, sep, value = option.partition("=")
        if not option or option in _MOUNT_ONLY_OPTIONS or option.startswith(_MOUNT_ONLY_PREFIXES):
            continue
        if name == "public_bucket":  # ossfs 1.x: public_bucket=1 is --anonymous
            if value not in ("0", ""):
                out.append("--anonymous")
            continue
        known = _OSSFS_OPTIONS.get(name)
        if known is None:
            # Anything else is FUSE's, but a near miss of an ossfs name is a typo: say so here,
            # not as FUSE's "unknown option" from the daemon.
            near = [] if name in _FUSE_OPTIONS else _near(name)
            if near:
                raise UsageError(f"unknown option {name}: did you mean {near[0]}?")
            fuse.append(option)
            continue
        flag, takes_value = known
        if takes_value and not sep:
            raise UsageError(f"option {name} needs a value: -o {name}=VALUE")
        if not takes_value and sep:
            raise UsageError(f"option {name} takes no value: -o {name}")
        out += [flag, value] if takes_value else [flag]


def _near(name: str) -> list[str]:
    return difflib.get_close_matches(name, _OSSFS_OPTIONS, n=1, cutoff=0.8)


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    helper_form = bool(given) and not given[0].startswith("-") and given[0] not in COMMANDS
    if helper_form:
        try:
            given = legacy_mount_argv(given)
        except UsageError as exc:
            print(f"ossfs: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    parser = build_parser(given[0] if given and given[0] in COMMANDS else None)
    args, extra = parser.parse_known_args(given)
    if args.command == "verify" and not any(arg.startswith("-") for arg in extra):
        args.keys.extend(extra)  # KEYs given after options: argparse stops collecting at one
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # Until a command sets up its own logging, only errors reach stderr: a failure a user can
    # cause is reported once, as the command's one-line message, not also as a log record.
    logging.basicConfig(level=logging.ERROR, format="ossfs: %(levelname)s %(message)s")
    try:
        require_fast_crc()
        handler: Handler = args.handler
        return handler(args)
    except (UsageError, MissingCrcExtensionError) as exc:
        hint = _HELPER_HINT if helper_form and " --" in str(exc) else ""
        print(f"ossfs {args.command}: error: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
