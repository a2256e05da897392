"""The endpoint and credential options shared by ``ossfs mount`` and ``ossfs verify``.

It adds the options to a parser and turns the parsed values (plus the environment mapping it is
handed) into an `Access`; it reads no environment of its own and holds no secrets in argv.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from ossfs.app.credentials import Access, AccessOptions, resolve_access


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
