"""HTTP engines side by side against the local OSS server: CPU per GET, CPU per GiB, files/s.

Usage: python scripts/bench_http.py [--quick] [--engines today,curl-multi,...] [--repeat N]
                                    [--scenarios get-t1,parts-p4,...] [--json-out OUT]

Engines (``scripts/http_engines.py``): ``today`` (ossfs.net's CurlTransport), ``today-loop``
(its CurlLoop), ``urllib3``, ``curl-easy`` and ``curl-multi`` (pycurl), ``httptools`` and ``h11``
over our own sockets. urllib3, httptools and h11 are not project dependencies; to compare them,
``.venv/bin/pip install urllib3 httptools h11``. A missing one is reported, not fatal.

The server (``ossfs emulator``) runs in its own process, seeded with 400 objects of 100 KiB, 400
of 8 KiB and a large object (256 MiB; --quick 64 MiB), so this process's CPU time (getrusage:
every thread, libcurl's included) is the client's alone. Scenarios (N: ``--inflight``, 8):

- ``get-t1``, ``get-tN``: 100 KiB GETs by 1 and by N caller threads: CPU us per GET (GETs/s);
  ``get-wN``: one thread keeps N GETs in flight through a loop engine's ``submit``;
- ``parts-pK``: 8 MiB ranged parts of the large object, K at once (``--parallel``, 4 and 8):
  CPU-s per GiB (and MB/s, 1 MB = 10**6 bytes);
- ``files-t1``, ``files-t8``: whole 8 KiB objects by 1 and by 8 readers: files/s (CPU us each).

Each run uses a fresh engine, warmed by one untimed round (its connections open). The engines
run interleaved (A B C, B C A, ...) ``--repeat`` times; the table shows each figure's median.
Wall-clock figures move with the machine's load; CPU figures are steadier. Output: a markdown
table on stdout, every sample in ``--json-out`` (default bench-results/bench_http.json).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from bench_suite import git_rev
from http_engines import ENGINES, Bounds, Target, missing, new_buffer
from mount_helpers import REPO

from ossfs.core.object_store import Piece
from ossfs.core.sizes import parse_size
from ossfs.store.credentials import Credentials

AK: Final = "bench-ak"
SK: Final = "bench-secret-0123456789"
BUCKET: Final = "bench-bucket"
OBJECTS: Final = 400  # of each small size
SIZES: Final = {"get": 100 * 1024, "files": 8 * 1024, "parts": 8 << 20}
BIG_KEY: Final = "big.bin"
INSTALL: Final = "`.venv/bin/pip install urllib3 httptools h11`"
FIGURES: Final = ("cpu_us_per_get", "gets_per_s", "mb_per_s", "cpu_s_per_gib", "sys_share")
Job = tuple[str, int, int]  # key, first, last (inclusive)


@dataclass(frozen=True, slots=True)
class Counts:
    get: int  # 100 KiB GETs per run
    files: int  # 8 KiB GETs per run
    parts: int  # 8 MiB parts per run
    big_bytes: int


FULL: Final = Counts(get=2000, files=2000, parts=128, big_bytes=256 << 20)
QUICK: Final = Counts(get=500, files=500, parts=32, big_bytes=64 << 20)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    kind: str  # get, parts or files
    mode: str  # "t": N caller threads call get; "w": one thread keeps N in flight via submit
    n: int

    @property
    def column(self) -> str:
        what = {
            "get": "100 KiB GET, CPU us",
            "parts": "8 MiB parts, CPU-s/GiB",
            "files": "8 KiB files/s",
        }
        how = "in flight" if self.mode == "w" else "threads" if self.n > 1 else "thread"
        return f"{what[self.kind]}: {self.n} {how}"


def all_scenarios(inflight: int, parallel: list[int]) -> list[Scenario]:
    out = [Scenario("get-t1", "get", "t", 1), Scenario(f"get-t{inflight}", "get", "t", inflight)]
    out.append(Scenario(f"get-w{inflight}", "get", "w", inflight))
    out += [Scenario(f"parts-p{k}", "parts", "t", k) for k in parallel]
    return [*out, Scenario("files-t1", "files", "t", 1), Scenario("files-t8", "files", "t", 8)]


@dataclass(frozen=True, slots=True)
class Sample:
    wall_s: float
    cpu_s: float  # user + sys of this process, every thread
    sys_s: float
    requests: int
    nbytes: int

    def figures(self) -> dict[str, float]:
        """The figures, keyed as in `FIGURES`."""
        cpu, wall = max(self.cpu_s, 1e-9), self.wall_s  # getrusage ticks: 0 for a tiny run
        per_get, per_gib = cpu / self.requests * 1e6, cpu / (self.nbytes / (1 << 30))
        rates = (self.requests / wall, self.nbytes / wall / 1e6)
        return dict(zip(FIGURES, (per_get, *rates, per_gib, self.sys_s / cpu), strict=True))


@contextlib.contextmanager
def emulator(tmp: Path, big_bytes: int) -> Iterator[str]:
    """``ossfs emulator`` in its own process, seeded with the data set; yields its endpoint."""
    seed, block = tmp / "seed", os.urandom(1 << 20)
    for prefix, size in (("g", SIZES["get"]), ("f", SIZES["files"])):
        (seed / prefix).mkdir(parents=True)
        for i in range(OBJECTS):
            (seed / prefix / f"{i:04d}").write_bytes(block[i * 4099 % (1 << 19) :][:size])
    with open(seed / BIG_KEY, "wb") as f:
        for _ in range(big_bytes >> 20):
            f.write(block)
    argv = [sys.executable, "-m", "ossfs", "emulator", "--data", str(tmp / "data"), "--seed"]
    argv += [str(seed), "--bucket", BUCKET, "--access-key-id", AK, "--access-key-secret", SK]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        endpoint = proc.stdout.readline().strip() if proc.stdout else ""
        if not endpoint.startswith("http://"):
            raise RuntimeError(f"the emulator did not start (it printed {endpoint!r})")
        shutil.rmtree(seed)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(30)


def jobs_for(s: Scenario, counts: Counts) -> list[Job]:
    size = SIZES[s.kind]
    if s.kind == "parts":
        n = counts.big_bytes // size
        return [(BIG_KEY, i % n * size, (i % n + 1) * size - 1) for i in range(counts.parts)]
    prefix, count = ("g", counts.get) if s.kind == "get" else ("f", counts.files)
    return [(f"{prefix}/{i % OBJECTS:04d}", 0, size - 1) for i in range(count)]


def run_threads(engine: Any, jobs: list[Job], buffers: list[Piece]) -> int:
    """``jobs`` shared by a caller of ``engine.get`` per buffer; the bytes received."""
    pending = deque(jobs)  # popleft is atomic: the callers' shared queue
    totals: list[int] = []
    errors: list[Exception] = []

    def caller(buf: Piece) -> None:
        got = 0
        try:
            while pending:
                with contextlib.suppress(IndexError):
                    got += engine.get(*pending.popleft(), buf)
        except Exception as exc:
            errors.append(exc)
        totals.append(got)

    workers = [threading.Thread(target=caller, args=(buf,)) for buf in buffers]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return sum(totals)


def run_window(engine: Any, jobs: list[Job], buffers: list[Piece]) -> int:
    """``jobs`` through ``engine.submit``, one in flight per buffer; the bytes received."""
    free = deque(buffers)
    slots = threading.Semaphore(len(buffers))
    results: list[int | BaseException] = []
    finished = threading.Event()

    def done(buf: Piece, result: int | BaseException) -> None:  # on the engine's loop thread
        results.append(result)
        free.append(buf)
        if len(results) == len(jobs):
            finished.set()
        slots.release()

    for job in jobs:
        slots.acquire()
        buf = free.popleft()
        engine.submit(*job, buf, functools.partial(done, buf))
    if not finished.wait(600):
        raise TimeoutError("GETs still unfinished after 600 s")
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return sum(r for r in results if isinstance(r, int))


def applicable(name: str, s: Scenario) -> bool:
    cls = ENGINES[name][1]
    if s.mode == "w" and not hasattr(cls, "submit"):
        return False
    return not (s.kind == "parts" and getattr(cls, "whole_objects_only", False))


def measure(name: str, s: Scenario, endpoint: str, counts: Counts, curl_buffer: int) -> Sample:
    target = Target(endpoint, BUCKET, Credentials(AK, SK))
    engine = ENGINES[name][1](target, Bounds(), max(s.n, 8), curl_buffer)
    run = run_window if s.mode == "w" else run_threads
    jobs = jobs_for(s, counts)
    # Buffers are reused, as BufferPool's are, and touched first: else the page faults of
    # fresh 8 MiB mappings would be a large share of a short run's CPU.
    buffers = [new_buffer(SIZES[s.kind]) for _ in range(s.n)]
    for buf in buffers:
        memoryview(buf)[:] = bytes(len(buf))
    try:
        run(engine, jobs[: s.n], buffers)  # untimed: opens the connections
        before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        nbytes = run(engine, jobs, buffers)
        wall, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF)
    finally:
        engine.close()
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return Sample(wall, user + system, system, len(jobs), nbytes)


def cell(s: Scenario, f: dict[str, float]) -> str:
    if s.kind == "parts":
        return f"{f['cpu_s_per_gib']:.2f} ({f['mb_per_s']:.0f} MB/s)"
    if s.kind == "files":
        return f"{f['gets_per_s']:.0f}/s ({f['cpu_us_per_get']:.0f} us)"
    return f"{f['cpu_us_per_get']:.0f} ({f['gets_per_s']:.0f}/s)"


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for module in ("urllib3", "pycurl", "httptools", "h11"):
        try:
            out[module] = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            out[module] = "not installed"
    if out["pycurl"] != "not installed":
        import pycurl

        out["pycurl"] = str(pycurl.version)  # libcurl's version and what it bundles
    return out


def bench(args: argparse.Namespace, engines: list[str], chosen: list[Scenario]) -> dict[str, Any]:
    samples: dict[tuple[str, str], list[Sample]] = {}
    failed: dict[tuple[str, str], str] = {}
    absent = {name: module for name in engines if (module := missing(name))}
    present = [name for name in engines if name not in absent]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ossfs-bench-http-") as tmp:
        print("seeding the emulator ...", file=sys.stderr, flush=True)
        with emulator(Path(tmp), args.counts.big_bytes) as endpoint:
            for s, rep in ((s, rep) for s in chosen for rep in range(args.repeat)):
                for name in present[rep % len(present) :] + present[: rep % len(present)]:
                    if not applicable(name, s) or (s.name, name) in failed:
                        continue
                    try:
                        sample = measure(name, s, endpoint, args.counts, args.curl_buffer)
                    except Exception as exc:
                        failed[s.name, name] = f"failed: {type(exc).__name__}: {exc}"[:80]
                        print(f"{s.name:10} {name:11} {failed[s.name, name]}", file=sys.stderr)
                        continue
                    samples.setdefault((s.name, name), []).append(sample)
                    print(f"{s.name:10} {name:11} {cell(s, sample.figures())}", file=sys.stderr)
    found = versions()
    lines = [
        f"## HTTP engines (ossfs {git_rev()}; median of {args.repeat}; {os.cpu_count()} CPUs; "
        f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)",
        "",
        "| engine | " + " | ".join(s.column for s in chosen) + " |",
        "|---" * (len(chosen) + 1) + "|",
    ]
    results = []
    for name in engines:
        row = []
        for s in chosen:
            runs = samples.get((s.name, name), [])
            # each figure's own median: CPU and wall figures may come from different runs
            median = (
                {k: statistics.median(r.figures()[k] for r in runs) for k in FIGURES}
                if runs
                else {}
            )
            if runs:
                row.append(cell(s, median))
            elif name in absent:
                row.append(f"not installed ({absent[name]})")
            else:
                row.append(failed.get((s.name, name), "-"))
            result = {"scenario": s.name, "engine": name, "status": "ok" if runs else row[-1]}
            results.append({**result, "median": median, "samples": [asdict(r) for r in runs]})
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += [
        "",
        "Cells: the column's figure, then (GETs/s, MB/s or CPU us per GET); -: not applicable.",
    ]
    lines.append(f"Versions: {'; '.join(f'{k} {v}' for k, v in found.items())}.")
    if absent:
        lines.append(f"Not installed: {', '.join(sorted(set(absent.values())))} ({INSTALL}).")
    print("\n".join(lines))
    return {
        "ossfs_rev": git_rev(),
        "counts": asdict(args.counts),
        "repeat": args.repeat,
        "curl_buffer_bytes": args.curl_buffer,
        "versions": found,
        "load_average": load,
        "results": results,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add("--quick", action="store_true", help="small counts (a few minutes)")
    add("--engines", default=",".join(ENGINES), help="comma-separated (default: all)")
    add("--scenarios", help="comma-separated scenario names (default: all)")
    add("--repeat", type=int, default=3, help="interleaved runs of each case (median shown)")
    add("--inflight", type=int, default=8, help="N of get-tN and get-wN")
    add("--parallel", default="4,8", help="8 MiB parts at once, a scenario each (4,8)")
    for name, what in (("get", "100 KiB GETs"), ("files", "8 KiB GETs"), ("parts", "8 MiB parts")):
        add(
            f"--{name}",
            type=int,
            help=f"{what} per run ({getattr(FULL, name)}; --quick {getattr(QUICK, name)})",
        )
    add("--big-size", help="the large object (256MiB; --quick 64MiB)")
    add("--curl-buffer", default="1MiB", help="pycurl BUFFERSIZE (1MiB)")
    add("--json-out", type=Path, default=REPO / "bench-results" / "bench_http.json")
    args = parser.parse_args(argv)
    if unknown := set(args.engines.split(",")) - set(ENGINES):
        parser.error(f"unknown engines {sorted(unknown)}; choose from {list(ENGINES)}")
    base = QUICK if args.quick else FULL
    try:
        big = parse_size(args.big_size) if args.big_size else base.big_bytes
        args.curl_buffer = parse_size(args.curl_buffer)
        args.parallel = [int(k) for k in args.parallel.split(",")]
    except ValueError as exc:
        parser.error(str(exc))
    args.counts = Counts(
        args.get or base.get, args.files or base.files, args.parts or base.parts, big
    )
    if (
        big < SIZES["parts"]
        or big % (1 << 20)
        or min(args.repeat, args.inflight, *args.parallel) < 1
    ):
        parser.error("--big-size: a multiple of 1MiB, at least 8MiB; counts: at least 1")
    args.chosen = all_scenarios(args.inflight, args.parallel)
    if args.scenarios:
        if unknown := set(args.scenarios.split(",")) - {s.name for s in args.chosen}:
            parser.error(
                f"unknown scenarios {sorted(unknown)}; choose from {[s.name for s in args.chosen]}"
            )
        args.chosen = [s for s in args.chosen if s.name in args.scenarios.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engines = [name for name in ENGINES if name in args.engines.split(",")]
    doc = bench(args, engines, args.chosen)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
