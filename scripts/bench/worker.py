"""The worker: one client-side measurement, run in its own process (so that no client shares
the server's GIL), and the function that starts it.

A worker reads through a mount or a local directory, or talks to the server with oss2; it
answers one JSON document.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.config import BLOCK_BYTES, MIB, REPO, SCRIPTS, SMALL_BYTES
from bench.systems import peer_env_base
from bench.worker_tasks import cold_first_byte, import_package, run_verify, two_streams


def run_worker(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``spec`` in a worker subprocess; its JSON answer, or ``{"error": ...}``."""
    argv = [sys.executable, str(SCRIPTS / "bench_suite.py"), "--worker"]
    try:
        result = subprocess.run(
            argv,
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env=peer_env_base(),
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout_s:.0f} s"}
    if result.returncode != 0:
        lines = (result.stderr.strip() or f"exit {result.returncode}").splitlines()
        return {"error": lines[-1][:200]}
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def _bucket(oss: dict[str, str]) -> Any:
    import oss2

    return oss2.Bucket(
        oss2.Auth(oss["ak"], oss["sk"]), oss["endpoint"], oss["bucket"], enable_crc=False
    )


def _parallel(fn: Callable[[Any], int], items: Sequence[Any], threads: int) -> int:
    """Call ``fn`` on every item with ``threads`` threads; the sum of the results."""
    total = [0] * threads
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for item in items[index::threads]:
                total[index] += fn(item)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return sum(total)


def _read_path(path: str) -> int:
    buf = bytearray(MIB)
    n = 0
    with open(path, "rb", buffering=0) as f:
        while k := f.readinto(buf):
            n += k
    return n


def _random_offsets(size: int, io: int, ops: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(0, size - io + 1) // 4096 * 4096 for _ in range(ops)]


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement: ``task`` on ``root`` (a directory) or on the ``oss`` bucket. An oss2
    task's answer also has this process's CPU time (``cpu_user_s``, ``cpu_system_s``): the
    direct client's cost, beside a mount daemon's."""
    if not spec.get("oss"):
        return _task(spec)
    import oss2  # noqa: F401  (imported before the clock starts: not part of the client's cost)

    before = resource.getrusage(resource.RUSAGE_SELF)
    answer = _task(spec)
    after = resource.getrusage(resource.RUSAGE_SELF)
    answer.setdefault("cpu_user_s", after.ru_utime - before.ru_utime)
    answer.setdefault("cpu_system_s", after.ru_stime - before.ru_stime)
    return answer


def _task(spec: dict[str, Any]) -> dict[str, Any]:
    task: str = spec["task"]
    root: str = spec.get("root") or ""
    oss: dict[str, str] = spec.get("oss") or {}
    paths = [os.path.join(root, k) for k in spec.get("keys", [])] if root else []
    keys: list[str] = spec.get("keys", [])
    if task == "stat":
        for p in paths:
            os.stat(p)
        for d in spec.get("dirs", []):
            os.listdir(os.path.join(root, d))
        return {}
    if task == "seq":
        began = time.perf_counter()
        if root:
            n = _parallel(_read_path, paths, int(spec.get("threads") or len(paths)))
        else:
            bucket = _bucket(oss)

            def stream(key: str) -> int:
                body = bucket.get_object(key)
                with open(os.devnull, "wb") as sink:
                    shutil.copyfileobj(body, sink, MIB)
                return int(body.content_length)

            n = _parallel(stream, keys, len(keys))
        return {"seconds": time.perf_counter() - began, "bytes": n, "ops": len(keys)}
    if task == "ttfb":
        times = []
        for i, key in enumerate(keys):
            if root:
                began = time.perf_counter()
                with open(paths[i], "rb", buffering=0) as f:
                    got = f.read(1)
                times.append(time.perf_counter() - began)
            else:
                bucket = _bucket(oss)
                began = time.perf_counter()
                body = bucket.get_object(key)
                got = body.read(1)
                times.append(time.perf_counter() - began)
                with contextlib.suppress(Exception):
                    body.resp.response.close()
            if len(got) != 1:
                raise RuntimeError("no first byte")
        return {"seconds": statistics.median(times), "samples": times, "ops": len(keys)}
    if task == "random":
        size, io, ops = spec["size"], spec["io"], spec["ops"]
        offsets = _random_offsets(size, io, ops, spec["seed"])
        blocks = {
            b
            for off in offsets
            for b in range(off // BLOCK_BYTES, (off + io - 1) // BLOCK_BYTES + 1)
        }
        lru: collections.OrderedDict[int, None] = collections.OrderedDict()
        lru_fetches = 0  # what an LRU of cache_blocks blocks must fetch for these reads
        for off in offsets:
            for b in range(off // BLOCK_BYTES, (off + io - 1) // BLOCK_BYTES + 1):
                if b in lru:
                    lru.move_to_end(b)
                    continue
                lru_fetches += 1
                lru[b] = None
                if len(lru) > spec["cache_blocks"]:
                    lru.popitem(last=False)
        n = 0
        if root:
            fd = os.open(paths[0], os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                began = time.perf_counter()
                for off in offsets:
                    n += len(os.pread(fd, io, off))
                seconds = time.perf_counter() - began
            finally:
                os.close(fd)
        else:
            bucket = _bucket(oss)
            began = time.perf_counter()
            for off in offsets:
                n += len(bucket.get_object(keys[0], byte_range=(off, off + io - 1)).read())
            seconds = time.perf_counter() - began  # byte_range is inclusive in oss2
        if n != io * ops:
            raise RuntimeError(f"short reads: {n} of {io * ops} bytes")
        return {
            "seconds": seconds,
            "bytes": n,
            "ops": ops,
            "distinct_blocks": len(blocks),
            "lru_fetches": lru_fetches,
        }
    if task == "small":
        threads = spec["threads"]
        began = time.perf_counter()
        if root:

            def whole(path: str) -> int:
                with open(path, "rb", buffering=0) as f:
                    return len(f.read())

            n = _parallel(whole, paths, threads)
        else:
            bucket = _bucket(oss)
            n = _parallel(lambda key: len(bucket.get_object(key).read()), keys, threads)
        seconds = time.perf_counter() - began
        if n != SMALL_BYTES * len(keys):
            raise RuntimeError(f"short reads: {n} bytes")
        return {"seconds": seconds, "bytes": n, "ops": len(keys)}
    if task in ("ls", "find", "du"):
        began = time.perf_counter()
        if root:
            target = os.path.join(root, spec["dir"])
            argv = {
                "ls": ["ls", "-l", target],
                "find": ["find", target, "-type", "f"],
                "du": ["du", "-s", target],
            }[task]
            out = subprocess.run(argv, capture_output=True, check=True, timeout=3600).stdout
            count = out.count(b"\n") - (1 if task == "ls" else 0)  # ls -l: a "total" line
            if task == "du":  # one line; du has stat'ed every entry (an error fails the run)
                count = spec["expect"]
        else:
            import oss2

            bucket = _bucket(oss)
            prefix = spec["dir"] + "/"
            delimiter = "/" if task == "ls" else ""
            listing = oss2.ObjectIteratorV2(bucket, prefix, delimiter=delimiter, max_keys=1000)
            count = sum(1 for _ in listing)
        seconds = time.perf_counter() - began
        if count != spec["expect"]:
            raise RuntimeError(f"saw {count} entries, expected {spec['expect']}")
        return {"seconds": seconds, "ops": count}
    bucket = _bucket(oss) if oss else None
    if task == "cold":
        return cold_first_byte(root, keys[0], bucket, spec["list_prefix"], spec["warm_key"])
    if task == "twostream":
        path = paths[0] if root else ""
        offset, length = spec["offset"], spec["length"]
        return two_streams(path, bucket, keys[0], offset=offset, length=length, io=MIB)
    if task == "verify":
        env = {**os.environ, "OSS_ACCESS_KEY_ID": oss["ak"], "OSS_ACCESS_KEY_SECRET": oss["sk"]}
        argv = [sys.executable, "-m", "ossfs", "verify", f"oss://{oss['bucket']}/{spec['prefix']}"]
        argv += [*keys, "--endpoint", oss["endpoint"], "--json"]
        return run_verify(argv, env, spec["cwd"], spec["expect"])
    if task == "import":
        return import_package(os.path.join(root, spec["dir"]), spec["package"], spec["expect"])
    raise ValueError(f"unknown task {task!r}")
