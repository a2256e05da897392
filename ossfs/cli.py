"""Command line: argv and environment -> configuration -> the objects that do the work -> exit code.

This is the only module that reads argv or the environment. Every error a user can cause ends as
one line on stderr and exit code 2; nothing a user can cause prints a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ossfs import __version__
from ossfs.crc64 import MissingCrcExtensionError, require_fast_crc
from ossfs.errors import UsageError

if TYPE_CHECKING:
    from ossfs.credentials import Access

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


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


def add_access_arguments(parser: argparse.ArgumentParser) -> None:
    """The endpoint and credential options shared by ``mount`` and ``verify`` (no secrets:
    keys come from the environment or from files, never from argv)."""
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        help="OSS endpoint URL (default: $OSS_ENDPOINT, else derived from --region, "
        "else from --credentials-file)",
    )
    parser.add_argument(
        "--region",
        help="region ID, e.g. cn-hangzhou: sign requests with V4 for it and, without "
        "--endpoint/$OSS_ENDPOINT, use https://oss-REGION.aliyuncs.com (default: V1)",
    )
    parser.add_argument(
        "--internal",
        action="store_true",
        help="with an endpoint derived from a region: use the VPC-internal one "
        "(https://oss-REGION-internal.aliyuncs.com)",
    )
    parser.add_argument(
        "--anonymous", action="store_true", help="send unsigned requests (public buckets)"
    )
    parser.add_argument(
        "--credentials-file",
        type=Path,
        metavar="PATH",
        help="ossutil config file ([default] profile of ossutil 2.0, or [Credentials] of 1.x): "
        "keys, and endpoint/region when not given otherwise; mode 600",
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="use [profile NAME] of --credentials-file (default: [default])",
    )
    parser.add_argument(
        "--passwd-file",
        type=Path,
        metavar="PATH",
        help="ossfs 1.x passwd file (BUCKET:ID:SECRET or ID:SECRET lines, mode 600) instead of "
        "~/.passwd-ossfs and /etc/passwd-ossfs",
    )


def access_from_args(args: argparse.Namespace, env: Mapping[str, str], *, bucket: str) -> Access:
    """Endpoint, region and credentials for ``bucket`` from parsed `add_access_arguments`
    options and the environment mapping ``env``; `UsageError` for anything to fix."""
    from ossfs.credentials import AccessOptions, resolve_access

    options = AccessOptions(
        anonymous=args.anonymous,
        endpoint=args.endpoint,
        region=args.region,
        internal=args.internal,
        credentials_file=_absolute(args.credentials_file),
        profile=args.profile,
        passwd_file=_absolute(args.passwd_file),
    )
    return resolve_access(options, env, bucket=bucket)


def _absolute(path: Path | None) -> Path | None:
    return path.absolute() if path is not None else None


def _add_mount(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("mount", help="mount oss://BUCKET[/PREFIX] read-only at MOUNTPOINT")
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
    p.add_argument("--cache-size", default="512MiB", help="block cache size (default 512MiB)")
    p.add_argument("--block-size", default="1MiB", help="read block size (default 1MiB)")
    p.add_argument("--uid", type=int, default=os.getuid(), help="owner of every entry")
    p.add_argument("--gid", type=int, default=os.getgid(), help="group of every entry")
    p.add_argument("--file-mode", type=_mode, default=0o444, help="file permissions (444)")
    p.add_argument("--dir-mode", type=_mode, default=0o555, help="directory permissions (555)")
    p.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    p.add_argument("--debug", action="store_true", help="log every request (no credentials)")
    p.add_argument("--log-file", type=Path, help="log here (default: stderr, or syslog as daemon)")
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
    from ossfs.mounting import MountConfig, run_mount
    from ossfs.sizes import parse_size, parse_ttl
    from ossfs.url import parse_oss_url

    location = parse_oss_url(args.location)
    access = access_from_args(args, os.environ, bucket=location.bucket)
    config = MountConfig(
        location=location,
        mountpoint=Path(args.mountpoint).absolute(),
        endpoint=access.endpoint,
        credentials=access.credentials,
        credentials_source=access.credentials_source,
        region=access.region,
        foreground=args.foreground,
        metadata_ttl_s=parse_ttl(args.metadata_ttl, what="--metadata-ttl"),
        cache_size_bytes=parse_size(args.cache_size, what="--cache-size"),
        block_size_bytes=parse_size(args.block_size, what="--block-size"),
        uid=args.uid,
        gid=args.gid,
        file_mode=args.file_mode,
        dir_mode=args.dir_mode,
        allow_other=args.allow_other,
        debug=args.debug,
        log_file=args.log_file.absolute() if args.log_file else None,
        fuse_options=_fuse_options(args.options),
    )
    return run_mount(config)


def _add_umount(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("umount", help="unmount an ossfs mount")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.set_defaults(handler=_run_umount)


def _run_umount(args: argparse.Namespace) -> int:
    from ossfs.umount import run_umount

    return run_umount(Path(args.mountpoint))


def _add_verify(sub: argparse._SubParsersAction[_Parser]) -> None:
    from ossfs import verify_cli

    p = sub.add_parser("verify", help="check objects' CRC-64 against the server's")
    verify_cli.configure_parser(p)
    p.set_defaults(handler=verify_cli.run)


def _add_emulator(sub: argparse._SubParsersAction[_Parser]) -> None:
    from ossfs.emulator import cli as emulator_cli

    p = sub.add_parser("emulator", help="run the local OSS-compatible server")
    emulator_cli.configure_parser(p)
    p.set_defaults(handler=emulator_cli.run)


def _add_demo(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("demo", help="mount a sample bucket from a local server (no account)")
    p.add_argument("mountpoint", metavar="MOUNTPOINT", help="an empty or missing directory")
    p.add_argument(
        "--large-size", default="256MiB", help="size of the sample's large file (256MiB)"
    )
    p.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from ossfs.demo import run_demo
    from ossfs.sizes import parse_size

    large = parse_size(args.large_size, what="--large-size")
    return run_demo(Path(args.mountpoint), large_bytes=large)


def build_parser() -> _Parser:
    parser = _Parser(prog="ossfs", description="Mount Alibaba Cloud OSS buckets read-only.")
    parser.add_argument("--version", action="version", version=f"ossfs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in (_add_mount, _add_umount, _add_verify, _add_emulator, _add_demo):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Until a command sets up its own logging, only errors reach stderr: a failure a user can
    # cause is reported once, as the command's one-line message, not also as a log record.
    logging.basicConfig(level=logging.ERROR, format="ossfs: %(levelname)s %(message)s")
    try:
        require_fast_crc()
        handler: Handler = args.handler
        return handler(args)
    except (UsageError, MissingCrcExtensionError) as exc:
        print(f"ossfs {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
