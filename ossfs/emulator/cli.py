"""`ossfs emulator`: run the local OSS-compatible server until SIGINT/SIGTERM.

Prints the endpoint URL as the first stdout line (flushed) so scripts can read it. Bad input
raises `UsageError` (the main CLI prints it and exits 2).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ossfs.core.errors import UsageError
from ossfs.core.sizes import parse_size
from ossfs.emulator.auth import Credential
from ossfs.emulator.config import EmulatorConfig, valid_bucket_name
from ossfs.emulator.faults import PACINGS, Faults, FaultSettings
from ossfs.emulator.seed import seed_directory
from ossfs.emulator.server import EmulatorServer

DEFAULT_BUCKET = "test-bucket"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", required=True, help="data directory")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", default="0", help="listen port; 0 picks a free one")
    parser.add_argument(
        "--bucket", action="append", default=[], metavar="NAME", help="bucket to create (repeat)"
    )
    parser.add_argument("--access-key-id", help="access key id (default $OSS_ACCESS_KEY_ID)")
    parser.add_argument("--access-key-secret", help="secret (default $OSS_ACCESS_KEY_SECRET)")
    parser.add_argument("--anonymous", action="store_true", help="allow unsigned requests")
    parser.add_argument("--seed", metavar="DIR", help="import a directory into the first bucket")
    parser.add_argument("--s3-port", help="also serve a read-only S3 dialect on this port")
    parser.add_argument("--region", default="cn-hangzhou")
    parser.add_argument("--restore-delay", default="2", metavar="SECONDS")
    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--latency", default="0", metavar="SECONDS", help="wait before every answer (all requests)"
    )
    faults.add_argument(
        "--bandwidth", default="0", metavar="BYTES_PER_S", help="per connection, e.g. 100MB"
    )
    faults.add_argument(
        "--pacing",
        choices=PACINGS,
        default="smooth",
        help="how --bandwidth sends a body: smooth (small pieces on time) or chunked "
        "(1 MiB pieces, then a sleep)",
    )
    faults.add_argument("--error-rate", default="0", metavar="F", help="503/500 answers")
    faults.add_argument("--reset-rate", default="0", metavar="F", help="resets mid-body")
    faults.add_argument("--truncate-rate", default="0", metavar="F", help="bodies cut short")
    faults.add_argument("--corrupt-rate", default="0", metavar="F", help="corrupted bodies")
    faults.add_argument("--corrupt-key", action="append", default=[], metavar="KEY")
    faults.add_argument("--fault-prefix", metavar="PREFIX", help="faults only for these keys")
    faults.add_argument("--fault-seed", metavar="N", help="random seed for faults")


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}: expected a number") from None
    if not value >= 0:
        raise UsageError(f"invalid {what} {text!r}: must be >= 0")
    return value


def _port(text: str, what: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise UsageError(f"invalid {what} {text!r}: expected 0..65535")
    return int(text)


def build_config(args: argparse.Namespace, environ: dict[str, str]) -> EmulatorConfig:
    buckets = tuple(args.bucket) or (DEFAULT_BUCKET,)
    for name in buckets:
        if not valid_bucket_name(name):
            raise UsageError(f"invalid bucket name {name!r}: 3-63 characters of a-z, 0-9 and -")
    key_id = args.access_key_id or environ.get("OSS_ACCESS_KEY_ID")
    secret = args.access_key_secret or environ.get("OSS_ACCESS_KEY_SECRET")
    if bool(key_id) != bool(secret):
        raise UsageError("give both --access-key-id and --access-key-secret (or neither)")
    credentials = (Credential(key_id, secret),) if key_id and secret else ()
    if not credentials and not args.anonymous:
        raise UsageError("no credentials: pass --access-key-id/--access-key-secret or --anonymous")
    return EmulatorConfig(
        data_dir=Path(args.data),
        host=args.host,
        port=_port(args.port, "--port"),
        buckets=buckets,
        credentials=credentials,
        anonymous=args.anonymous,
        s3_port=None if args.s3_port is None else _port(args.s3_port, "--s3-port"),
        region=args.region,
        restore_delay_s=_number(args.restore_delay, "--restore-delay"),
    )


def build_faults(args: argparse.Namespace) -> FaultSettings:
    seed = args.fault_seed
    if seed is not None and not seed.lstrip("-").isdigit():
        raise UsageError(f"invalid --fault-seed {seed!r}: expected an integer")
    try:
        return FaultSettings(
            latency_s=_number(args.latency, "--latency"),
            bandwidth_bytes_per_s=parse_size(args.bandwidth, what="--bandwidth"),
            pacing=args.pacing,
            error_rate=_number(args.error_rate, "--error-rate"),
            reset_rate=_number(args.reset_rate, "--reset-rate"),
            truncate_rate=_number(args.truncate_rate, "--truncate-rate"),
            corrupt_rate=_number(args.corrupt_rate, "--corrupt-rate"),
            corrupt_keys=tuple(args.corrupt_key),
            key_prefix=args.fault_prefix,
            seed=None if seed is None else int(seed),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    config = build_config(args, dict(os.environ))
    faults = Faults(build_faults(args))
    seed_dir = Path(args.seed) if args.seed else None
    if seed_dir is not None and not seed_dir.is_dir():
        raise UsageError(f"--seed {args.seed!r} is not a directory")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    server = EmulatorServer(config, faults)
    try:
        try:
            server.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {config.host}:{config.port}: {exc}") from None
        if seed_dir is not None:
            seed_directory(server, config.buckets[0], seed_dir)
        print(server.endpoint, flush=True)
        if server.s3_endpoint:
            print(f"S3: {server.s3_endpoint}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stdout.flush()
    return 0
