"""Benchmark: is CRC-64 the bottleneck of ``ossfs verify``?

Measures, in one run and side by side:
  1. crc64 throughput over SIZE bytes of in-memory chunks (no I/O at all);
  2. the raw stream rate of one SIZE-byte object from the local emulator (bytes only, no CRC);
  3. ``Verifier`` on the same object (stream + running CRC + comparison).
The ratio verify/raw tells how much the CRC costs end to end. When the ``fastcrc`` package is
importable, rows 1 and 3 are repeated with its CRC-64/XZ in place of crcmod's (a what-if for
`ossfs.core.crc64`). Prints a table, writes JSON.

    .venv/bin/python scripts/bench_verify.py [--size 1GiB] [--chunk 1MiB] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ossfs.verify.verifier
from ossfs.core.crc64 import crc64, require_fast_crc
from ossfs.core.sizes import format_size, parse_size
from ossfs.store.config import OssConfig
from ossfs.store.oss_store import OssStore
from ossfs.verify.model import Status, VerifyConfig
from ossfs.verify.verifier import Verifier

BUCKET = "bench-bucket"
KEY_ID = "BenchAccessKeyId"
SECRET = "BenchAccessKeySecret"
MIB = 1 << 20

CrcFun = Callable[[bytes | memoryview, int], int]


def _fastcrc() -> CrcFun | None:
    try:
        import fastcrc
    except ImportError:
        return None
    fun: CrcFun = fastcrc.crc64.xz
    if fun(b"123456789", 0) != crc64(b"123456789"):
        raise SystemExit("fastcrc's CRC-64/XZ disagrees with ossfs.core.crc64")
    return fun


def bench_crc(size: int, chunk: int, crc_fun: CrcFun = crc64) -> dict[str, float]:
    buf = os.urandom(min(size, 64 * MIB))
    view = memoryview(buf)
    pieces = [view[i : i + chunk] for i in range(0, len(buf), chunk)]
    crc = 0
    done = 0
    t0 = time.perf_counter()
    while done < size:
        for piece in pieces:
            crc = crc_fun(piece, crc)
            done += len(piece)
            if done >= size:
                break
    seconds = time.perf_counter() - t0
    return {"bytes": done, "seconds": seconds, "mib_per_s": done / MIB / seconds}


def _emulator_available() -> bool:
    try:
        import ossfs.emulator  # noqa: F401
    except ImportError:
        return False
    return True


def bench_emulator(
    size: int, chunk: int, workdir: Path, fast: CrcFun | None
) -> dict[str, dict[str, float]]:
    from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer

    config = EmulatorConfig(
        data_dir=workdir / "data",
        buckets=(BUCKET,),
        credentials=(Credential(KEY_ID, SECRET),),
    )
    source = workdir / "object.bin"
    block = os.urandom(16 * MIB)
    with open(source, "wb") as f:
        written = 0
        while written < size:
            piece = block[: size - written]
            f.write(piece)
            written += len(piece)
    results: dict[str, dict[str, float]] = {}
    with EmulatorServer(config) as server:
        server.put_object_from_file(BUCKET, "big.bin", source)
        source.unlink()
        store = OssStore(
            OssConfig(
                endpoint=server.endpoint,
                bucket=BUCKET,
                access_key_id=KEY_ID,
                access_key_secret=SECRET,
            )
        )
        with store:
            # Warm the page cache (the emulator serves from a file) so both runs see the same.
            _, chunks = store.stream("big.bin", chunk_bytes=chunk)
            for _ in chunks:
                pass

            t0 = time.perf_counter()
            _, chunks = store.stream("big.bin", chunk_bytes=chunk)
            got = sum(len(c) for c in chunks)
            raw_s = time.perf_counter() - t0
            results["raw stream"] = {"bytes": got, "seconds": raw_s}

            results["verify"] = _bench_verify(store, chunk)
            if fast is not None:
                namespace = vars(ossfs.verify.verifier)
                original = namespace["crc64"]
                namespace["crc64"] = fast
                try:
                    results["verify (fastcrc)"] = _bench_verify(store, chunk)
                finally:
                    namespace["crc64"] = original
    for row in results.values():
        row["mib_per_s"] = row["bytes"] / MIB / row["seconds"]
    return results


def _bench_verify(store: OssStore, chunk: int) -> dict[str, float]:
    verifier = Verifier(store, VerifyConfig(jobs=1, chunk_bytes=chunk))
    t0 = time.perf_counter()
    report = verifier.run(verifier.collect("big"))
    seconds = time.perf_counter() - t0
    (result,) = report.results
    if result.status is not Status.OK:
        raise SystemExit(f"verify did not say OK: {result}")
    return {"bytes": result.bytes_read, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", help="bytes to CRC and object size (1GiB)")
    parser.add_argument("--chunk", default="1MiB", help="chunk size (1MiB)")
    parser.add_argument("--json-out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    require_fast_crc()
    size = parse_size(args.size)
    chunk = parse_size(args.chunk)

    fast = _fastcrc()
    rows: dict[str, dict[str, float]] = {"crc64 in memory": bench_crc(size, chunk)}
    if fast is not None:
        rows["fastcrc in memory"] = bench_crc(size, chunk, fast)
    if _emulator_available():
        with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
            rows.update(bench_emulator(size, chunk, Path(tmp), fast))
    else:
        print("emulator not available: skipping the stream and verify rows", file=sys.stderr)

    print(f"size {format_size(size)}, chunk {format_size(chunk)}")
    print(f"{'measurement':<20} {'seconds':>9} {'MiB/s':>9}")
    for name, row in rows.items():
        print(f"{name:<20} {row['seconds']:>9.2f} {row['mib_per_s']:>9.1f}")
    ratios: dict[str, float] = {}
    if "verify" in rows:
        ratios["verify / raw stream"] = (
            rows["verify"]["mib_per_s"] / rows["raw stream"]["mib_per_s"]
        )
        ratios["verify / crc64"] = (
            rows["verify"]["mib_per_s"] / rows["crc64 in memory"]["mib_per_s"]
        )
        if "verify (fastcrc)" in rows:
            ratios["verify (fastcrc) / raw stream"] = (
                rows["verify (fastcrc)"]["mib_per_s"] / rows["raw stream"]["mib_per_s"]
            )
        for name, value in ratios.items():
            print(f"{name:<30} {value:>6.2f}")
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_rss_mib:.0f} MiB")
    if args.json_out is not None:
        doc = {
            "size": size,
            "chunk": chunk,
            "rows": rows,
            "ratios": ratios,
            "peak_rss_mib": peak_rss_mib,
        }
        args.json_out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
