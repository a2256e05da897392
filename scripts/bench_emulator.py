"""Throughput of one large ranged GET from the local emulator: oss2 vs raw sockets vs curl.

Usage: python scripts/bench_emulator.py [--size 1GiB] [--json OUT]
Prints a table (MB/s, 1 MB = 10**6 bytes) and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import oss2

from ossfs.core.sizes import parse_size
from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer

AK, SK, BUCKET = "bench-ak", "bench-secret", "bench-bucket"
KEY = "big.bin"


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def bench_oss2(endpoint: str, size: int) -> float:
    bucket = oss2.Bucket(oss2.Auth(AK, SK), endpoint, BUCKET, enable_crc=False)
    began = time.perf_counter()
    got = bucket.get_object(KEY, byte_range=(0, size - 1))
    total = 0
    while chunk := got.read(4 << 20):
        total += len(chunk)
    elapsed = time.perf_counter() - began
    assert total == size, total
    return elapsed


def bench_socket(endpoint: str, size: int) -> float:
    host, port = endpoint.removeprefix("http://").split(":")
    began = time.perf_counter()
    with socket.create_connection((host, int(port))) as sock:
        request = (
            f"GET /{BUCKET}/{KEY} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Range: bytes=0-{size - 1}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        total = 0
        while n := sock.recv_into(view):
            total += n
    elapsed = time.perf_counter() - began
    assert total >= size, total
    return elapsed


def bench_curl(endpoint: str, size: int) -> float | None:
    if shutil.which("curl") is None:
        return None
    began = time.perf_counter()
    subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-r", f"0-{size - 1}", f"{endpoint}/{BUCKET}/{KEY}"],
        check=True,
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.bin"
        make_file(src, size)
        config = EmulatorConfig(
            data_dir=Path(tmp) / "data",
            buckets=(BUCKET,),
            credentials=(Credential(AK, SK),),
            anonymous=True,
        )
        with EmulatorServer(config) as server:
            server.put_object_from_file(BUCKET, KEY, src)
            src.unlink()
            results: dict[str, float | None] = {}
            for name, fn in (("oss2", bench_oss2), ("socket", bench_socket), ("curl", bench_curl)):
                fn(server.endpoint, min(size, 64 << 20))  # warm the page cache and the path
                results[name] = fn(server.endpoint, size)
    print(f"{'client':<8} {'seconds':>8} {'MB/s':>8}   (one {size / 1e6:.0f} MB ranged GET)")
    report = {}
    for name, elapsed in results.items():
        if elapsed is None:
            print(f"{name:<8} {'n/a':>8}")
            continue
        mbps = size / elapsed / 1e6
        report[name] = {"seconds": elapsed, "mb_per_s": mbps, "bytes": size}
        print(f"{name:<8} {elapsed:>8.2f} {mbps:>8.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
