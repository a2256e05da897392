"""Command line: argv and environment -> configuration -> the objects that do the work -> exit code.

This is the only module that reads argv or the environment. Every error a user can cause ends as
one line on stderr and exit code 2; nothing a user can cause prints a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ossfs import __version__
from ossfs.crc64 import MissingCrcExtensionError, require_fast_crc
from ossfs.errors import UsageError

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


def _add_mount(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("mount", help="mount oss://BUCKET[/PREFIX] read-only at MOUNTPOINT")
    p.add_argument("location", metavar="oss://BUCKET[/PREFIX]")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("--endpoint", help="OSS endpoint URL (default: $OSS_ENDPOINT)")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    p.set_defaults(handler=_not_yet("mount"))


def _add_umount(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("umount", help="unmount an ossfs mount")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.set_defaults(handler=_not_yet("umount"))


def _add_verify(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("verify", help="check objects' CRC-64 against the server's")
    p.add_argument("location", metavar="oss://BUCKET[/PREFIX]")
    p.add_argument("--endpoint", help="OSS endpoint URL (default: $OSS_ENDPOINT)")
    p.set_defaults(handler=_not_yet("verify"))


def _add_emulator(sub: argparse._SubParsersAction[_Parser]) -> None:
    from ossfs.emulator import cli as emulator_cli

    p = sub.add_parser("emulator", help="run the local OSS-compatible server")
    emulator_cli.configure_parser(p)
    p.set_defaults(handler=emulator_cli.run)


def _add_demo(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("demo", help="mount a sample bucket from a local server (no account)")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.set_defaults(handler=_not_yet("demo"))


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
    try:
        require_fast_crc()
        handler: Handler = args.handler
        return handler(args)
    except (UsageError, MissingCrcExtensionError) as exc:
        print(f"ossfs {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
