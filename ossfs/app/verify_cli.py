"""``ossfs verify``: arguments and environment -> `Verifier` -> output and exit code.

Responsibility: parse the verify sub-command's arguments, find credentials and the endpoint
(environment, credentials and passwd files: `ossfs.app.credentials`), build the store, turn every
configuration problem (bad location, missing credentials, unknown bucket, nothing to verify, a
mount point that is not mounted) into a one-line `UsageError` (exit 2), and print the results:
one line per object as it finishes, a progress line on stderr when stderr is a terminal, and a
summary; or, with ``--json``, exactly one JSON document on stdout. Exit code 0 when every
object is OK, 1 otherwise.

It deliberately contains no verification logic (that is `ossfs.verify.verifier`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Final, TextIO

from ossfs.app.access_args import access_from_args, add_access_arguments
from ossfs.app.progress import Progress, show_line
from ossfs.core.errors import OssfsError, UsageError
from ossfs.core.object_store import ObjectStore
from ossfs.core.sizes import format_size, parse_size
from ossfs.core.url import OssLocation, parse_oss_url
from ossfs.fs.filesystem import MOUNT_PREFIX_XATTR
from ossfs.net.environ import environ_ca_bundle, environ_proxies
from ossfs.store.config import OssConfig
from ossfs.store.oss_store import OssStore
from ossfs.verify.model import MountView, ObjectResult, Status, Summary, VerifyConfig
from ossfs.verify.verifier import Verifier

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "configure_parser",
    "format_result",
    "format_summary",
    "report_document",
    "run",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
MAX_JOBS: Final = 256
MAX_STREAMS: Final = 64
MIN_PART_BYTES: Final = 1 << 20
MAX_PART_BYTES: Final = 1 << 30

StoreFactory = Callable[[OssConfig], ObjectStore]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add verify's arguments to ``parser`` (the caller sets the handler to `run`)."""
    parser.add_argument("location", metavar="oss://BUCKET[/PREFIX]")
    parser.add_argument(
        "keys",
        nargs="*",
        metavar="KEY",
        help="keys relative to PREFIX to verify (default: every object under PREFIX)",
    )
    add_access_arguments(parser)
    parser.add_argument(
        "-j", "--jobs", type=int, default=4, metavar="N", help="objects verified at once (4)"
    )
    parser.add_argument(
        "--streams",
        type=int,
        default=8,
        metavar="N",
        help="ranged GETs in flight for each object larger than --part-size (8; "
        "1 reads every object as one stream)",
    )
    parser.add_argument(
        "--part-size",
        default="8MiB",
        metavar="SIZE",
        help="bytes per ranged GET of a large object (8MiB)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout, nothing else"
    )
    parser.add_argument(
        "--through",
        metavar="MOUNTPOINT",
        help="read the bytes through this running ossfs mount of the same oss:// location "
        "and compare them with the server's CRC-64",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log retries and failures on stderr"
    )
    parser.add_argument("--debug", action="store_true", help="log every request (no credentials)")


def run(
    args: argparse.Namespace,
    *,
    env: Mapping[str, str] | None = None,
    store_factory: StoreFactory | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``ossfs verify`` for parsed ``args``; return the exit code (0 all OK, 1 otherwise).

    Raises `UsageError` for anything the user must fix first (the CLI prints it, exit 2).
    ``env``, ``store_factory``, ``stdout`` and ``stderr`` default to the process's own; tests
    pass their own.
    """
    env = os.environ if env is None else env
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    location = parse_oss_url(args.location)
    keys = _check_keys(args.keys)
    jobs = args.jobs
    if not 1 <= jobs <= MAX_JOBS:
        raise UsageError(f"invalid --jobs {jobs}: use 1 to {MAX_JOBS}")
    streams = args.streams
    if not 1 <= streams <= MAX_STREAMS:
        raise UsageError(f"invalid --streams {streams}: use 1 to {MAX_STREAMS}")
    part_bytes = parse_size(args.part_size, what="--part-size")
    if not MIN_PART_BYTES <= part_bytes <= MAX_PART_BYTES:
        raise UsageError(f"invalid --part-size {args.part_size}: use 1MiB to 1GiB")
    verify_config = VerifyConfig(jobs=jobs, streams=streams, part_bytes=part_bytes)
    mount = _mount_view(args.through, location) if args.through is not None else None
    access = access_from_args(args, env, bucket=location.bucket)
    credentials = access.credentials
    config = OssConfig(
        endpoint=access.endpoint,
        bucket=location.bucket,
        access_key_id=credentials.access_key_id if credentials else None,
        access_key_secret=credentials.access_key_secret if credentials else None,
        security_token=credentials.security_token if credentials else None,
        region=access.region,
        # A connection kept for every GET that can be in flight (jobs x streams).
        pool_size=jobs * streams + 2,
        ca_bundle=environ_ca_bundle(env),
    )
    level = logging.DEBUG if args.debug else logging.WARNING if args.verbose else logging.ERROR
    with _logging_to(err, level):
        store = (store_factory or _environ_store)(config)
        try:
            return _verify(
                store,
                location,
                keys=keys,
                config=verify_config,
                mount=mount,
                as_json=args.json,
                out=out,
                err=err,
            )
        finally:
            close = getattr(store, "close", None)
            if callable(close):
                close()


def _environ_store(config: OssConfig) -> OssStore:
    """The store, reaching OSS through the proxies the process environment names."""
    return OssStore(config, proxies=environ_proxies)


def _check_keys(keys: list[str]) -> list[str]:
    for key in keys:
        if not key:
            raise UsageError("an empty KEY names no object")
        if key.endswith("/"):
            raise UsageError(
                f"KEY {key!r} ends with '/': name objects, or put a prefix in the location "
                "(oss://BUCKET/PREFIX/) to verify everything under it"
            )
    return keys


def _mount_view(text: str, location: OssLocation) -> MountView:
    mountpoint = Path(text).absolute()
    if not mountpoint.is_dir():
        raise UsageError(f"--through {text!r}: not a directory")
    if not os.path.ismount(mountpoint):
        raise UsageError(
            f"--through {text!r}: not a mount point; mount {location} there first "
            f"(ossfs mount {location} {text})"
        )
    try:
        # An ossfs mount names the prefix it shows; other mounts are taken to show the location.
        mount_prefix = os.getxattr(mountpoint, MOUNT_PREFIX_XATTR).decode()
    except OSError:
        mount_prefix = location.prefix
    if not location.prefix.startswith(mount_prefix):
        raise UsageError(
            f"--through {text!r}: the mount shows only keys under {mount_prefix!r}, "
            f"which does not contain {location}"
        )
    return MountView(mountpoint, mount_prefix)


def _verify(
    store: ObjectStore,
    location: OssLocation,
    *,
    keys: list[str],
    config: VerifyConfig,
    mount: MountView | None,
    as_json: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    verifier = Verifier(store, config, mount=mount)
    try:
        targets = verifier.collect(location.prefix, keys)
    except OssfsError as exc:
        raise UsageError(f"cannot list {location}: {exc}") from exc
    if not targets:
        raise UsageError(f"no objects under {location} (the prefix is empty or does not exist)")

    progress: Progress | None = None
    if err.isatty():
        progress = Progress(
            err,
            total_bytes=sum(t.size_hint for t in targets),
            total_objects=len(targets),
        )

    def on_result(result: ObjectResult) -> None:
        if progress is not None:
            progress.object_done()
        if not as_json:
            show_line(format_result(result), out, progress)

    try:
        report = verifier.run(
            targets,
            on_result=on_result,
            on_bytes=progress.add_bytes if progress is not None else None,
        )
    finally:
        if progress is not None:
            progress.close()
    if as_json:
        json.dump(report_document(str(location), report.results, report.summary), out, indent=2)
        out.write("\n")
    else:
        out.write(format_summary(report.summary) + "\n")
    out.flush()
    return EXIT_OK if report.summary.all_ok else EXIT_FAILED


def _show_key(key: str) -> str:
    """The key as typed, or JSON-quoted when it has spaces or unprintable characters."""
    if key and key.isprintable() and not any(c.isspace() for c in key):
        return key
    return json.dumps(key, ensure_ascii=False)


def _crc_text(value: int | None) -> str:
    return "-" if value is None else str(value)


def format_result(result: ObjectResult) -> str:
    """One line: status, size in bytes, key, and the CRCs or the reason when not OK."""
    line = f"{result.status.value:<8} {result.size:>13} {_show_key(result.key)}"
    if result.status is Status.MISMATCH:
        line += (
            f"  expected crc64 {_crc_text(result.expected_crc64)}"
            f"  computed {_crc_text(result.computed_crc64)}"
        )
        if result.error and result.error != "CRC-64 differs":
            line += f"  ({result.error})"
    elif result.status is Status.NO_CRC:
        line += f"  computed crc64 {_crc_text(result.computed_crc64)}  ({result.error})"
    elif result.status is Status.ERROR:
        line += f"  {result.error}"
    return line


def format_summary(summary: Summary) -> str:
    return (
        f"{summary.objects} objects, {format_size(summary.bytes)} in {summary.seconds:.1f}s "
        f"({format_size(summary.bytes_per_s)}/s): {summary.ok} OK, {summary.mismatch} MISMATCH, "
        f"{summary.no_crc} NO-CRC, {summary.error} ERROR"
    )


def report_document(
    location: str, results: tuple[ObjectResult, ...], summary: Summary
) -> dict[str, object]:
    """The ``--json`` document. CRCs are decimal strings (as in ``x-oss-hash-crc64ecma``):
    uint64 values do not survive JSON parsers that read numbers as doubles."""
    return {
        "location": location,
        "objects": [
            {
                "key": r.key,
                "size": r.size,
                "status": r.status.value,
                "expected_crc64": None if r.expected_crc64 is None else str(r.expected_crc64),
                "computed_crc64": None if r.computed_crc64 is None else str(r.computed_crc64),
                "error": r.error,
            }
            for r in results
        ],
        "summary": {
            "objects": summary.objects,
            "bytes": summary.bytes,
            "seconds": round(summary.seconds, 3),
            "ok": summary.ok,
            "mismatch": summary.mismatch,
            "no_crc": summary.no_crc,
            "error": summary.error,
        },
    }


@contextlib.contextmanager
def _logging_to(stream: TextIO, level: int) -> Iterator[None]:
    """Send ossfs's log records of ``level`` and above to ``stream`` for the duration."""
    logger = logging.getLogger("ossfs")
    handler = logging.StreamHandler(stream)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("ossfs verify: %(levelname)s %(name)s: %(message)s"))
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(min(level, old_level) if old_level else level)
    # The records go to ``stream`` only: the root logger's handler (the CLI's) would print each
    # one a second time.
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
