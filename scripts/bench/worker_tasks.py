"""The worker's tasks of issue 17's rows: cold first byte, two streams on one fd, ``ossfs verify``
and a Python import. Each runs inside the worker process (`bench.worker`) and answers a JSON-ready
dict with ``seconds`` (the measured part only), ``bytes`` read by the application and ``ops``.

A task reads through ``root`` (a mount or the local mirror) or talks to the server with oss2
(``bucket``): the oss2 variant is the reference the report's targets compare with. Every task
checks what it read (lengths, counts, verify's verdicts) and raises on a short or wrong answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any


def interleaved_reads(offset: int, length: int, io: int) -> list[tuple[int, int]]:
    """(offset, size) of each read of two streams taking turns: stream A reads ``[0, length)``
    and stream B ``[offset, offset + length)``, ``io`` bytes at a time, A first."""
    if io <= 0 or length < 0 or offset < 0:
        raise ValueError("io must be > 0 and length, offset >= 0")
    out = []
    for start in range(0, length, io):
        n = min(io, length - start)
        out += [(start, n), (offset + start, n)]
    return out


def two_streams(
    path: str, bucket: Any, key: str, *, offset: int, length: int, io: int
) -> dict[str, Any]:
    """Two sequential streams (`interleaved_reads`) on one file descriptor of ``path``, or, when
    ``path`` is empty, on two oss2 GETs of ``key`` (``bucket``)."""
    reads = interleaved_reads(offset, length, io)
    n = 0
    if path:
        fd = os.open(path, os.O_RDONLY)
        try:
            began = time.perf_counter()
            for off, size in reads:
                got = len(os.pread(fd, size, off))
                if got != size:
                    raise RuntimeError(f"short read at {off}: {got} of {size} bytes")
                n += got
            seconds = time.perf_counter() - began
        finally:
            os.close(fd)
    else:
        began = time.perf_counter()
        # byte_range is inclusive in oss2.
        streams = {
            0: bucket.get_object(key, byte_range=(0, length - 1)),
            offset: bucket.get_object(key, byte_range=(offset, offset + length - 1)),
        }
        for off, size in reads:
            body = streams[0] if off < offset else streams[offset]
            got = 0
            while got < size:
                chunk = body.read(size - got)
                if not chunk:
                    raise RuntimeError(f"stream ended early before {off + got}")
                got += len(chunk)
            n += got
        seconds = time.perf_counter() - began
    if n != 2 * length:
        raise RuntimeError(f"read {n} of {2 * length} bytes")
    return {"seconds": seconds, "bytes": n, "ops": len(reads)}


def cold_first_byte(
    root: str, key: str, bucket: Any, list_prefix: str, warm_key: str
) -> dict[str, Any]:
    """``open`` + 1-byte ``read`` of ``key`` (``root``), or one flat ListObjectsV2 page of
    ``list_prefix`` then a GET's first byte (``bucket``: what two round trips cost).

    The oss2 variant first lists and reads a byte of ``warm_key`` (outside the clock, but seen
    by the server): a mount has its connections and code warm when a lookup comes, so the
    reference must not pay oss2's first-call costs (lazy imports, a new connection) either.
    """
    if root:
        began = time.perf_counter()
        with open(os.path.join(root, key), "rb", buffering=0) as f:
            got = f.read(1)
        seconds = time.perf_counter() - began
    else:
        bucket.list_objects_v2(prefix=warm_key, max_keys=1)
        warm = bucket.get_object(warm_key)
        warm.read(1)
        with contextlib.suppress(Exception):
            warm.resp.response.close()
        began = time.perf_counter()
        page = bucket.list_objects_v2(prefix=list_prefix, max_keys=1000)
        body = bucket.get_object(key)
        got = body.read(1)
        seconds = time.perf_counter() - began
        with contextlib.suppress(Exception):
            body.resp.response.close()
        if key not in {o.key for o in page.object_list}:
            raise RuntimeError(f"{key} is not in the first page of {list_prefix}")
    if len(got) != 1:
        raise RuntimeError("no first byte")
    return {"seconds": seconds, "ops": 1}


def run_verify(argv: list[str], env: dict[str, str], cwd: str, expect: int) -> dict[str, Any]:
    """Run ``ossfs verify ... --json`` (``argv``); its own seconds (the verification, without
    the interpreter's start), the bytes it checked, and the process's CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    result = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600, check=False
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        summary = json.loads(result.stdout)["summary"]
    except (ValueError, KeyError) as exc:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]
        raise RuntimeError(f"verify exit {result.returncode}: {' '.join(tail)}") from exc
    if result.returncode != 0 or summary["ok"] != expect:
        raise RuntimeError(f"verify exit {result.returncode}: {summary}")
    return {
        "seconds": float(summary["seconds"]),
        "bytes": int(summary["bytes"]),
        "ops": int(summary["objects"]),
        "wall_s": wall,
        "cpu_user_s": after.ru_utime - before.ru_utime,
        "cpu_system_s": after.ru_stime - before.ru_stime,
    }


IMPORT_CODE = (
    "import json, sys, time\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "began = time.perf_counter()\n"
    "import {package} as p\n"
    "print(json.dumps({{'seconds': time.perf_counter() - began, 'modules': p.MODULES}}))\n"
)


def import_package(path: str, package: str, expect: int) -> dict[str, Any]:
    """``import package`` in a fresh isolated interpreter (``-I -B``: no environment, no user
    site, no byte-code written) with ``path`` first on sys.path; the import's own seconds."""
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c", IMPORT_CODE.format(package=package), path],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:]
        raise RuntimeError(f"import failed: {' '.join(tail)}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    if answer["modules"] != expect:
        raise RuntimeError(f"imported {answer['modules']} modules, expected {expect}")
    return {"seconds": float(answer["seconds"]), "ops": expect}
