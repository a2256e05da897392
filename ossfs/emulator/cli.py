"""`ossfs emulator` (placeholder until the server lands)."""

from __future__ import annotations

import argparse

from ossfs.errors import UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", required=True)


def run(args: argparse.Namespace) -> int:
    raise UsageError("'ossfs emulator' is not implemented yet in this version")
