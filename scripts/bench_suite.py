"""The benchmark suite of issue 5: ossfs side by side with its peers, on one local OSS server.

Usage: python scripts/bench_suite.py [--quick] [--profiles loopback,remote] [--systems ...]
                                     [--workloads ...] [--repeat N] [--out-dir bench-results]

One run starts the emulator in this process (OSS dialect for ossfs and oss2, S3 dialect for the
peers, the same storage behind both), writes one data set, and measures every workload on every
system, side by side:

- ``ossfs``: a fresh ``python -m ossfs mount -f`` of this work tree for each case;
- ``oss2``: the SDK directly (``get_object`` + ``shutil.copyfileobj``, ``enable_crc=False``);
- ``s3fs`` (s3fs-fuse) and ``rclone`` (``rclone mount``, default VFS settings) on the S3 dialect;
- ``nullfs``: ``scripts/bench_nullfs.py``, fusepy serving the same tree from memory (the ceiling
  for any fusepy filesystem with the FUSE options ossfs uses);
- ``local``: the same tree in a local directory, page cache warm (the limit of the box).

Profiles: ``loopback`` (no faults); ``remote`` (every answer, GET, HEAD, LIST and the probe, waits
20 ms; bodies flow at 100 MB/s per connection in small pieces, each on time); ``remote-chunked``
(the same, but bodies are written 1 MiB at a time with a sleep to keep the rate, as some servers
and proxies do). Workloads (the ``--quick`` sizes in brackets):

- ``seq1``: sequential read of one large object, 1 GiB [256 MiB], then ``warm``: the same file
  again in the same mount; ``seq4``: 4 readers on 4 such objects at once (ossfs gets
  ``--max-memory`` when it has that option);
- ``ttfb``: open + read of 1 byte of each of the 4 large objects (median);
- ``rand4k`` / ``rand256k``: seeded random ``pread``s (``POSIX_FADV_RANDOM``, like fio) of one
  large object, a fixed count;
- ``small1`` / ``small8``: N files of 100 KiB, 1,000 [250], read whole by 1 and by 8 readers,
  after the directory has been listed;
- ``ls1k`` / ``ls10k``: ``ls -l`` of 1,000 and 10,000 entries; ``find``: ``find -type f`` over
  100,000 [10,000] objects in 1,000 [100] directories.

Each case runs in a worker subprocess (so no client shares the emulator's GIL), on a fresh mount
(cold caches), with a timeout. It reports the headline figure (MB/s = 10**6 bytes a second,
ops/s, files/s, ms or s), the requests the server saw (GET/HEAD/LIST/other) and the bytes it
served, and the mount daemon's peak RSS (VmHWM), for ossfs also against its memory budget (a
table of its own: budget, peak RSS, their ratio and difference). With ``--repeat N`` each case
runs N times, systems interleaved in a rotating order, and the median is shown. A system that is
missing or fails to mount is reported as such; the rest still runs. Output: a markdown report on
stdout and in ``OUT/report.md``, every sample in ``OUT/results.json``, a bar chart in
``OUT/chart.svg``. Every mount is unmounted and every process reaped, even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from mount_helpers import LOCAL_HOSTS, baseline_tree, peak_rss

AK: Final = "bench-ak"
SK: Final = "bench-secret-0123456789"
BUCKET: Final = "bench-bucket"
SCRIPTS: Final = Path(__file__).resolve().parent
REPO: Final = SCRIPTS.parent
MIB: Final = 1 << 20
BLOCK_BYTES: Final = MIB  # ossfs's default --block-size: the unit of the random-read target
SMALL_BYTES: Final = 100 * 1024
SEQ_READERS: Final = 4
SYSTEMS: Final = ("ossfs", "oss2", "s3fs", "rclone", "nullfs", "local")
MOUNTED: Final = frozenset({"ossfs", "s3fs", "rclone", "nullfs"})
PEERS: Final = ("s3fs", "rclone")
PROFILES: Final = ("loopback", "remote", "remote-chunked")
REMOTE_LATENCY_S: Final = 0.02
REMOTE_BANDWIDTH: Final = 100_000_000


# -- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    seq_bytes: int
    small_files: int
    rand4k_ops: int
    rand256k_ops: int
    ls_counts: tuple[int, int]
    find_dirs: int
    find_per_dir: int
    timeout_s: float

    @property
    def find_objects(self) -> int:
        return self.find_dirs * self.find_per_dir


FULL = Sizes(1 << 30, 1000, 2000, 400, (1000, 10_000), 1000, 100, 1800.0)
QUICK = Sizes(256 * MIB, 250, 300, 60, (1000, 10_000), 100, 100, 300.0)


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    title: str
    unit: str
    higher_is_better: bool
    group: str  # workloads of one group share a mount (and run in this order)
    metadata: bool = False  # HEAD/LIST only


def workloads(sizes: Sizes) -> list[Workload]:
    big = f"{sizes.seq_bytes / MIB:.0f} MiB"
    n_small, (ls_a, ls_b) = sizes.small_files, sizes.ls_counts
    return [
        Workload("seq1", f"sequential read of {big}, 1 reader", "MB/s", True, "seq1"),
        Workload("warm", "warm re-read of that file, same mount", "MB/s", True, "seq1"),
        Workload("seq4", f"sequential read, 4 readers on 4 x {big}", "MB/s", True, "seq4"),
        Workload("ttfb", "time to first byte (open + 1 byte read)", "ms", False, "ttfb"),
        Workload("rand4k", f"random 4 KiB reads x {sizes.rand4k_ops}", "ops/s", True, "rand4k"),
        Workload(
            "rand256k", f"random 256 KiB reads x {sizes.rand256k_ops}", "MB/s", True, "rand256k"
        ),
        Workload("small1", f"{n_small} files of 100 KiB, 1 reader", "files/s", True, "small1"),
        Workload("small8", f"{n_small} files of 100 KiB, 8 readers", "files/s", True, "small8"),
        Workload("ls1k", f"ls -l of {ls_a:,} entries", "s", False, "ls1k", metadata=True),
        Workload("ls10k", f"ls -l of {ls_b:,} entries", "s", False, "ls10k", metadata=True),
        Workload(
            "find",
            f"find over {sizes.find_objects:,} objects in {sizes.find_dirs:,} dirs",
            "s",
            False,
            "find",
            metadata=True,
        ),
    ]


# -- the data set --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """Object keys of the data set (the same relative paths in every mount and locally)."""

    sizes: Sizes

    @property
    def big(self) -> list[str]:
        return [f"seq/big-{i}.bin" for i in range(SEQ_READERS)]

    @property
    def small(self) -> list[str]:
        return [f"small/f{i:05d}.bin" for i in range(self.sizes.small_files)]

    def ls_dir(self, count: int) -> str:
        return f"ls{count}"

    def ls_keys(self, count: int) -> list[str]:
        return [f"{self.ls_dir(count)}/e{i:06d}" for i in range(count)]

    @property
    def tree(self) -> list[str]:
        s = self.sizes
        return [
            f"tree/d{d:04d}/f{f:04d}" for d in range(s.find_dirs) for f in range(s.find_per_dir)
        ]

    def files(self) -> dict[str, int]:
        out = dict.fromkeys(self.big, self.sizes.seq_bytes)
        out.update(dict.fromkeys(self.small, SMALL_BYTES))
        for count in self.sizes.ls_counts:
            out.update(dict.fromkeys(self.ls_keys(count), 0))
        out.update(dict.fromkeys(self.tree, 0))
        return out


def write_random_file(path: Path, size: int) -> None:
    chunk = os.urandom(MIB)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n


def large_files(root: Path, min_bytes: int = 1 << 20) -> list[Path]:
    """The files under ``root`` of at least ``min_bytes`` (the emulator's large objects)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_size >= min_bytes)


def read_through(paths: list[Path]) -> None:
    """Read ``paths`` once so that the page cache holds them."""
    for path in paths:
        with path.open("rb", buffering=0) as f:
            while f.read(8 << 20):
                pass


def build_data(server: Any, layout: Layout, local: Path, manifest: Path) -> None:
    """Write the data set to the emulator, to the local mirror and to the null FUSE manifest."""
    local.mkdir(parents=True)
    (local / "seq").mkdir()
    first = local / layout.big[0]
    write_random_file(first, layout.sizes.seq_bytes)
    for key in layout.big:
        server.put_object_from_file(BUCKET, key, first)
        if key != layout.big[0]:
            # Hard links: the local rows measure the page cache, not distinct disk files.
            os.link(first, local / key)
    rng = random.Random(5)
    (local / "small").mkdir()
    for key in layout.small:
        data = rng.randbytes(SMALL_BYTES)
        server.put_object(BUCKET, key, data)
        (local / key).write_bytes(data)
    empty = [*layout.tree]
    for count in layout.sizes.ls_counts:
        empty += layout.ls_keys(count)
    for start in range(0, len(empty), 20_000):
        server.put_empty_objects(BUCKET, empty[start : start + 20_000])
    for key in empty:
        path = local / key
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True)
        path.touch()
    manifest.write_text(json.dumps({"files": layout.files()}))


# -- results -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    """One measured case. ``value`` is in the workload's unit; ``status`` is "ok" or why not."""

    status: str
    value: float | None = None
    seconds: float | None = None
    payload_bytes: int = 0
    ops: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    bytes_served: int = 0
    peak_rss_bytes: int | None = None
    budget_bytes: int | None = None  # ossfs's memory budget (--max-memory or its default)
    extra: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)  # ossfs's own, during the case

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.value is not None


Key = tuple[str, str, str]  # profile, workload, system


def classify(op: str) -> str:
    op = op.removeprefix("S3:")
    if op == "GetObject":
        return "GET"
    if op in ("HeadObject", "GetObjectMeta"):
        return "HEAD"
    if op in ("ListObjects", "ListObjectsV2"):
        return "LIST"
    return "other"


def request_counts(counts: dict[str, int]) -> dict[str, int]:
    out = {"GET": 0, "HEAD": 0, "LIST": 0, "other": 0}
    for op, n in counts.items():
        out[classify(op)] += n
    return out


def aborted_gets(server: Any) -> int:
    """GETs whose client hung up before the end of the body: the emulator logs them with status
    500 and 0 bytes (so ``bytes_served`` does not count what they did send)."""
    return sum(1 for e in server.log.entries() if classify(e.op) == "GET" and e.status == 500)


def settle(server: Any, limit_s: float = 30.0) -> tuple[dict[str, int], int]:
    """Request counts and bytes served once the log stops moving (a handler logs after it has
    answered, and read-ahead may still be finishing)."""
    last: tuple[dict[str, int], int] | None = None
    deadline = time.monotonic() + limit_s
    while True:
        now = (server.log.counts(), server.log.bytes_served)
        if now == last or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(0.25)


# -- processes and mounts ------------------------------------------------------------------------


class MountError(RuntimeError):
    pass


def peer_env(tmp: Path) -> dict[str, str]:
    """No AWS/rclone settings or proxies from the caller (an ``AWS_CA_BUNDLE`` alone makes rclone
    fail on http); an empty rclone config file."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "RCLONE_"))
        and k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    env["NO_PROXY"] = env["no_proxy"] = LOCAL_HOSTS
    config = tmp / "rclone.conf"
    config.touch()
    env["RCLONE_CONFIG"] = str(config)
    return env


def ossfs_env() -> dict[str, str]:
    env = peer_env_base()
    env["OSS_ACCESS_KEY_ID"], env["OSS_ACCESS_KEY_SECRET"] = AK, SK
    return env


_SNAPSHOT: list[Path] = []  # the copy of the ossfs package every mount of this run uses
_BASELINE: dict[str, Path] = {}  # "ossfs@REV" -> the folder holding that revision's package


def kind(system: str) -> str:
    """``ossfs`` for ``ossfs@REV`` (another revision of ossfs), else the system itself."""
    return system.partition("@")[0]


def snapshot_ossfs(tmp: Path) -> Path:
    """Copy this work tree's ``ossfs`` package (uncommitted changes included) under ``tmp``: every
    mount of the run then measures the same code, even if the work tree changes meanwhile."""
    root = tmp / "ossfs-snapshot"
    shutil.copytree(REPO / "ossfs", root / "ossfs", ignore=shutil.ignore_patterns("__pycache__"))
    _SNAPSHOT[:] = [root]
    return root


def python_cwd() -> Path:
    """Where our Python subprocesses run (``python -m`` puts the cwd first on sys.path)."""
    return _SNAPSHOT[0] if _SNAPSHOT else REPO


def peer_env_base() -> dict[str, str]:
    env = dict(os.environ)
    env["NO_PROXY"] = env["no_proxy"] = LOCAL_HOSTS
    if _SNAPSHOT:
        env["PYTHONPATH"] = os.pathsep.join([str(_SNAPSHOT[0]), env.get("PYTHONPATH", "")])
    return env


@functools.cache
def ossfs_default_cache_bytes() -> int:
    """The block cache an ossfs mount gets here without --cache-size or --max-memory (worked
    out once per run, with the work tree's `ossfs.app.memory_budget`)."""
    from ossfs.app.memory_budget import default_budgets, usable_memory_bytes

    return default_budgets(usable_memory_bytes(), max_memory=None, cache_size=None)[1]


def is_mounted(path: Path) -> bool:
    from ossfs.app.umount import is_mounted as mounted

    return mounted(path)


def unmount(mountpoint: Path) -> None:
    """Unmount any of the suite's FUSE mounts (ossfs, s3fs, rclone, the null FUSE) by the
    generic means only: `mount_helpers.unmount` is for ossfs daemons (it asks ``ossfs umount``
    first and waits for an ossfs daemon to exit), and `Mount.stop` waits for its own process."""
    for argv in (["fusermount3", "-u"], ["fusermount", "-u"], ["umount", "-l"]):
        if not is_mounted(mountpoint):
            return
        if shutil.which(argv[0]):
            subprocess.run([*argv, str(mountpoint)], capture_output=True, timeout=60, check=False)


class Mount:
    """One mount daemon in the foreground: started, waited for, and always torn down."""

    live: ClassVar[list[Mount]] = []

    def __init__(
        self, argv: list[str], env: dict[str, str], mountpoint: Path, log: Path, cwd: Path
    ) -> None:
        self.argv, self.env, self.mountpoint, self.log, self.cwd = argv, env, mountpoint, log, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        Mount.live.append(self)
        deadline = time.monotonic() + timeout_s
        while not is_mounted(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                self.stop()
                raise MountError(" / ".join(tail) or f"exit {self.proc.returncode}")
            time.sleep(0.05)
        # rclone and s3fs answer the first stat only when fully up: wait for one.
        with contextlib.suppress(OSError):
            os.listdir(self.mountpoint)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        try:
            unmount(self.mountpoint)
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=20)
            unmount(self.mountpoint)
        finally:
            if self in Mount.live:
                Mount.live.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for mount in reversed(list(cls.live)):
            with contextlib.suppress(Exception):
                mount.stop()


@dataclass(slots=True)
class Bench:
    """Everything a case needs: the server, the data, where things live, the options."""

    server: Any
    layout: Layout
    tmp: Path
    local: Path
    manifest: Path
    ossfs_memory_args: list[str]
    mount_root: Path
    counter: int = 0

    def oss(self) -> dict[str, str]:
        return {"endpoint": self.server.endpoint, "ak": AK, "sk": SK, "bucket": BUCKET}

    def mount_for(self, system: str, extra: Sequence[str] = ()) -> Mount:
        self.counter += 1
        mp = self.mount_root / f"{system}-{self.counter}"
        log = self.tmp / "logs" / f"{system}-{self.counter}.log"
        log.parent.mkdir(exist_ok=True)
        if kind(system) == "ossfs":
            argv = [sys.executable, "-m", "ossfs", "mount", f"oss://{BUCKET}", str(mp)]
            argv += ["--endpoint", self.server.endpoint, "-f", *extra]
            # ``python -m`` puts its working directory first on sys.path: the package measured.
            return Mount(argv, ossfs_env(), mp, log, _BASELINE.get(system, python_cwd()))
        if system == "nullfs":
            argv = [sys.executable, str(SCRIPTS / "bench_nullfs.py"), str(self.manifest), str(mp)]
            return Mount(argv, peer_env_base(), mp, log, python_cwd())
        s3 = self.server.s3_endpoint
        if system == "s3fs":
            argv = ["s3fs", BUCKET, str(mp), "-f", "-o", f"url={s3}", "-o"]
            argv += ["use_path_request_style", "-o", "public_bucket=1", "-o", "ro"]
            return Mount(argv, peer_env(self.tmp), mp, log, python_cwd())
        if system == "rclone":
            env = peer_env(self.tmp)
            for name, value in (
                ("TYPE", "s3"),
                ("PROVIDER", "Other"),
                ("ENDPOINT", s3),
                ("ENV_AUTH", "false"),
                ("FORCE_PATH_STYLE", "true"),
            ):
                env[f"RCLONE_CONFIG_EMU_{name}"] = value
            argv = ["rclone", "mount", f"emu:{BUCKET}", str(mp), "--read-only"]
            return Mount(argv, env, mp, log, python_cwd())
        raise ValueError(system)


def missing_tool(system: str) -> str | None:
    binary = {"s3fs": "s3fs", "rclone": "rclone"}.get(system)
    if binary is not None and shutil.which(binary) is None:
        return f"not installed (apt-get install {binary})"
    if kind(system) in MOUNTED and not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    return None


# -- the worker: one client-side measurement in its own process -----------------------------------


def run_worker(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``spec`` in a worker subprocess; its JSON answer, or ``{"error": ...}``."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker"]
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
    """One measurement: ``task`` on ``root`` (a directory) or on the ``oss`` bucket."""
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
            n = _parallel(_read_path, paths, len(paths))
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
    if task in ("ls", "find"):
        began = time.perf_counter()
        if root:
            target = os.path.join(root, spec["dir"])
            argv = ["ls", "-l", target] if task == "ls" else ["find", target, "-type", "f"]
            out = subprocess.run(argv, capture_output=True, check=True, timeout=3600).stdout
            count = out.count(b"\n") - (1 if task == "ls" else 0)  # ls -l: a "total" line
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
    raise ValueError(f"unknown task {task!r}")


# -- cases ---------------------------------------------------------------------------------------


def ossfs_counters(root: Path) -> dict[str, float]:
    """The numbers of an ossfs mount's ``user.ossfs.obs.stats`` xattr, flattened to dotted names
    (empty when this ossfs has no such xattr)."""
    try:
        doc = json.loads(os.getxattr(root, "user.ossfs.obs.stats"))
    except (OSError, ValueError):
        return {}
    flat: dict[str, float] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[prefix.rstrip(".")] = float(value)

    walk("", doc)
    return flat


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the counters did during a case (gauges and ratios are recomputed by the report)."""
    gauges = ("uptime_s", "hit_rate", "waste_ratio", "open_handles", "inflight_bytes", "memory.")
    return {
        k: v - before.get(k, 0.0)
        for k, v in after.items()
        if not any(g in k for g in gauges) and k != "ossfs_stats"
    }


def measure(
    bench: Bench,
    spec: dict[str, Any],
    prepare: dict[str, Any] | None,
    timeout_s: float,
    counters: Callable[[], dict[str, float]] | None = None,
) -> tuple[dict[str, Any], dict[str, int], int, dict[str, float]]:
    """Run ``prepare`` (not measured), then ``spec`` with a cleared request log."""
    if prepare is not None:
        answer = run_worker(prepare, timeout_s)
        if "error" in answer:
            return answer, {}, 0, {}
    settle(bench.server)
    bench.server.log.clear()
    before = counters() if counters else {}
    answer = run_worker(spec, timeout_s)
    counts, served = settle(bench.server)
    requests = request_counts(counts)
    requests["aborted"] = aborted_gets(bench.server)
    delta = counter_delta(before, counters()) if counters and before else {}
    return answer, requests, served, delta


def to_sample(
    workload: Workload, answer: dict[str, Any], requests: dict[str, int], served: int
) -> Sample:
    if "error" in answer:
        return Sample(status=answer["error"], requests=requests, bytes_served=served)
    seconds = float(answer["seconds"])
    payload, ops = int(answer.get("bytes", 0)), int(answer.get("ops", 0))
    if workload.unit == "MB/s":
        value = payload / seconds / 1e6
    elif workload.unit in ("ops/s", "files/s"):
        value = ops / seconds
    elif workload.unit == "ms":
        value = seconds * 1e3
    else:
        value = seconds
    extra = {k: float(v) for k, v in answer.items() if k in ("distinct_blocks", "lru_fetches")}
    if "samples" in answer:
        extra.update({f"sample_{i}_s": float(s) for i, s in enumerate(answer["samples"])})
    return Sample("ok", value, seconds, payload, ops, requests, served, extra=extra)


def case_specs(
    group: str, layout: Layout, root: str | None, oss: dict[str, str] | None
) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(workload, spec, prepare) for each measurement of ``group``, in order."""
    base: dict[str, Any] = {"root": root, "oss": oss}
    sizes = layout.sizes

    def prep(**kw: Any) -> dict[str, Any] | None:
        return {**base, "task": "stat", **kw} if root else None

    big = layout.big
    if group == "seq1":
        spec = {**base, "task": "seq", "keys": big[:1]}
        return [("seq1", spec, prep(keys=big[:1])), ("warm", spec, None)]
    if group == "seq4":
        return [("seq4", {**base, "task": "seq", "keys": big}, prep(keys=big))]
    if group == "ttfb":
        return [("ttfb", {**base, "task": "ttfb", "keys": big}, prep(keys=big))]
    if group in ("rand4k", "rand256k"):
        io, ops = (
            (4096, sizes.rand4k_ops) if group == "rand4k" else (256 * 1024, sizes.rand256k_ops)
        )
        spec = {**base, "task": "random", "keys": big[:1], "size": sizes.seq_bytes}
        cache_blocks = ossfs_default_cache_bytes() // BLOCK_BYTES
        spec.update(io=io, ops=ops, seed=42, cache_blocks=cache_blocks)
        return [(group, spec, prep(keys=big[:1]))]
    if group in ("small1", "small8"):
        spec = {**base, "task": "small", "keys": layout.small, "threads": int(group[-1])}
        return [(group, spec, prep(dirs=["small"]))]
    if group in ("ls1k", "ls10k"):
        count = sizes.ls_counts[0 if group == "ls1k" else 1]
        spec = {**base, "task": "ls", "dir": layout.ls_dir(count), "expect": count}
        return [(group, spec, None)]
    if group == "find":
        return [
            ("find", {**base, "task": "find", "dir": "tree", "expect": sizes.find_objects}, None)
        ]
    raise ValueError(group)


def run_case(bench: Bench, system: str, group: str, timeout_s: float) -> dict[str, Sample]:
    """Every workload of ``group`` on ``system`` (a fresh mount for mounted systems)."""
    names = [name for name, _, _ in case_specs(group, bench.layout, "", None)]
    reason = missing_tool(system)
    if system == "oss2" and group == "seq1":
        names = ["seq1"]  # no cache: a re-read is another cold read
    if reason is not None:
        return {n: Sample(status=reason) for n in names}
    by_name = {w.name: w for w in workloads(bench.layout.sizes)}
    out: dict[str, Sample] = {}
    mount: Mount | None = None
    try:
        if kind(system) in MOUNTED:
            extra = bench.ossfs_memory_args if (kind(system), group) == ("ossfs", "seq4") else []
            mount = bench.mount_for(system, extra)
            try:
                mount.start()
            except MountError as exc:
                return {n: Sample(status=f"mount failed: {exc}"[:200]) for n in names}
            root: str | None = str(mount.mountpoint)
        elif system == "local":
            root = str(bench.local)
        else:
            root = None
        oss = bench.oss() if system == "oss2" else None
        for name, spec, prepare in case_specs(group, bench.layout, root, oss):
            if name not in names:
                continue
            counters = None
            if mount is not None and kind(system) == "ossfs":
                counters = functools.partial(ossfs_counters, mount.mountpoint)
            answer, requests, served, delta = measure(bench, spec, prepare, timeout_s, counters)
            sample = to_sample(by_name[name], answer, requests, served)
            sample.counters = delta
            if not by_name[name].metadata and requests.get("LIST", 0):
                # A read-only case lists nothing after its preparation: another process on the
                # machine walked the mount while it ran.
                sample.extra["foreign_lists"] = float(requests["LIST"])
            if mount is not None and mount.pid is not None:
                sample.peak_rss_bytes = peak_rss([mount.pid])
            if mount is not None and kind(system) == "ossfs":
                budget = ossfs_counters(mount.mountpoint).get("memory.budget_bytes")
                sample.budget_bytes = None if budget is None else int(budget)
            out[name] = sample
            if not sample.ok:
                for rest in names:
                    out.setdefault(rest, Sample(status=f"skipped: {sample.status}"[:200]))
                break
    finally:
        if mount is not None:
            mount.stop()
    return out


def median_sample(samples: list[Sample], higher_is_better: bool) -> Sample:
    good = [s for s in samples if s.ok]
    if not good:
        return samples[-1]
    ordered = sorted(good, key=lambda s: s.value or 0.0, reverse=higher_is_better)
    return ordered[(len(ordered) - 1) // 2]


# -- reporting -----------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "s":
        return f"{value:.2f}"
    if unit == "ms":
        return f"{value:.1f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(a: Sample | None, b: Sample | None, higher_is_better: bool) -> float | None:
    """How many times better ``a`` is than ``b`` (> 1: ``a`` is faster)."""
    if a is None or b is None or not a.ok or not b.ok or not a.value or not b.value:
        return None
    return a.value / b.value if higher_is_better else b.value / a.value


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    measured: str
    met: bool | None
    note: str = ""


def evaluate_targets(
    results: dict[Key, Sample], sizes: Sizes, memory_args: list[str], profiles: Sequence[str]
) -> list[Target]:
    def get(profile: str, workload: str, system: str) -> Sample | None:
        return results.get((profile, workload, system))

    def better_peer(profile: str, workload: str, higher: bool) -> tuple[str, Sample] | None:
        peers = [(p, get(profile, workload, p)) for p in PEERS]
        ok = [(p, s) for p, s in peers if s is not None and s.ok]
        if not ok:
            return None
        pick = max if higher else min
        return pick(ok, key=lambda ps: ps[1].value or 0.0)

    targets: list[Target] = []
    size = f"{sizes.seq_bytes / MIB:.0f} MiB"

    def add_ratio(name: str, r: float | None, need: float, what: str, note: str = "") -> None:
        if r is None:
            targets.append(Target(name, "n/a", None, note or "a side failed or did not run"))
        else:
            targets.append(Target(name, f"{r:.2f}x {what}", r >= need, note))

    if "remote" in profiles:
        o = get("remote", "seq1", "ossfs")
        add_ratio(
            f"remote, {size} sequential: ossfs >= 3x oss2 stream",
            ratio(o, get("remote", "seq1", "oss2"), True),
            3.0,
            "oss2",
        )
        bp = better_peer("remote", "seq1", True)
        add_ratio(
            f"remote, {size} sequential: ossfs >= 1.5x better of s3fs/rclone",
            ratio(o, bp[1] if bp else None, True),
            1.5,
            bp[0] if bp else "peer",
        )
    if "loopback" in profiles:
        o = get("loopback", "seq1", "ossfs")
        bp = better_peer("loopback", "seq1", True)
        add_ratio(
            f"loopback, {size} sequential: ossfs >= better of s3fs/rclone",
            ratio(o, bp[1] if bp else None, True),
            1.0,
            bp[0] if bp else "peer",
        )
        add_ratio(
            f"loopback, {size} sequential: ossfs >= 50% of null FUSE",
            ratio(o, get("loopback", "seq1", "nullfs"), True),
            0.5,
            "nullfs",
        )
    for profile in profiles:
        add_ratio(
            f"{profile}: warm re-read >= 50% of local file",
            ratio(get(profile, "warm", "ossfs"), get(profile, "warm", "local"), True),
            0.5,
            "local",
        )
    for profile in profiles:
        s = get(profile, "rand4k", "ossfs")
        name = f"{profile}: random 4 KiB, bytes fetched <= 1.1x distinct blocks x 1 MiB"
        if s is None or not s.ok or not s.extra.get("distinct_blocks"):
            targets.append(Target(name, "n/a", None, s.status if s else "did not run"))
        else:
            r = s.bytes_served / (s.extra["distinct_blocks"] * BLOCK_BYTES)
            blocks = s.extra["distinct_blocks"]
            got = f"{r:.2f}x ({s.bytes_served / MIB:.0f} MiB for {blocks:.0f} blocks)"
            note = ""
            lru = s.extra.get("lru_fetches")
            if lru and lru > blocks:
                note = (
                    f"touched blocks exceed the {ossfs_default_cache_bytes() // MIB} MiB cache: "
                    f"an ideal LRU of that size fetches {lru:.0f} MiB, ossfs "
                    f"{s.bytes_served / (lru * BLOCK_BYTES):.2f}x that"
                )
            targets.append(Target(name, got, r <= 1.1, note))
    for profile in profiles:
        for wl in ("small1", "small8"):
            s = get(profile, wl, "ossfs")
            if profile == "loopback" or wl == "small1":
                name = f"{profile}, {wl}: 1 GET and 0 HEAD per file after the listing"
                if s is None or not s.ok or not s.ops:
                    targets.append(Target(name, "n/a", None, s.status if s else "did not run"))
                else:
                    gets, heads = (
                        s.requests.get("GET", 0) / s.ops,
                        s.requests.get("HEAD", 0) / s.ops,
                    )
                    targets.append(
                        Target(
                            name,
                            f"{gets:.2f} GET, {heads:.2f} HEAD per file",
                            abs(gets - 1) < 1e-9 and heads == 0,
                        )
                    )
            bp = better_peer(profile, wl, True)
            add_ratio(
                f"{profile}, {wl}: ossfs >= 2x better peer",
                ratio(s, bp[1] if bp else None, True),
                2.0,
                bp[0] if bp else "peer",
            )
    if "loopback" in profiles:
        s = get("loopback", "ls10k", "ossfs")
        n = sizes.ls_counts[1]
        want = math.ceil(n / 1000)
        name = f"ls -l of {n:,}: {want} LISTs, 0 HEADs"
        if s is None or not s.ok:
            targets.append(Target(name, "n/a", None, s.status if s else "did not run"))
        else:
            lists, heads = s.requests.get("LIST", 0), s.requests.get("HEAD", 0)
            targets.append(
                Target(name, f"{lists} LIST, {heads} HEAD", lists == want and heads == 0)
            )
        add_ratio(
            f"ls -l of {n:,}: ossfs >= 5x faster than s3fs",
            ratio(s, get("loopback", "ls10k", "s3fs"), False),
            5.0,
            "s3fs",
        )
    for profile in profiles:
        s = get(profile, "seq4", "ossfs")
        name = (
            f"{profile}, 4 readers with {' '.join(memory_args) or 'defaults'}: peak RSS <= 640 MiB"
        )
        note = "" if "--max-memory" in memory_args else "ossfs has no --max-memory yet"
        if s is None or s.peak_rss_bytes is None:
            targets.append(Target(name, "n/a", None, s.status if s else "did not run"))
        else:
            rss = s.peak_rss_bytes / MIB
            targets.append(Target(name, f"{rss:.0f} MiB", rss <= 640, note))
    return targets


def report(
    *,
    results: dict[Key, Sample],
    sizes: Sizes,
    systems: Sequence[str],
    profiles: Sequence[str],
    chosen: Sequence[Workload],
    targets: list[Target],
    header: str,
) -> str:
    lines = [header, ""]
    peers = [s for s in systems if s != "ossfs"]
    for profile in profiles:
        rows = [w for w in chosen if any((profile, w.name, s) in results for s in systems)]
        if not rows:
            continue
        lines += [
            f"### {profile}: figures (x = how many times better ossfs is; > 1: ossfs wins)",
            "",
        ]
        head = ["workload", "unit", *systems, *(f"ossfs/{p}" for p in peers if "ossfs" in systems)]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
        for w in rows:
            cells = [w.title, w.unit + ("" if w.higher_is_better else " (lower is better)")]
            for s in systems:
                sample = results.get((profile, w.name, s))
                if sample is None:
                    cells.append("")
                elif sample.ok:
                    disturbed = " (!)" if sample.extra.get("foreign_lists") else ""
                    cells.append(fmt(sample.value, w.unit) + disturbed)
                else:
                    cells.append(f"fail: {sample.status[:60]}")
            if "ossfs" in systems:
                mine = results.get((profile, w.name, "ossfs"))
                for p in peers:
                    r = ratio(mine, results.get((profile, w.name, p)), w.higher_is_better)
                    cells.append("" if r is None else f"{r:.2f}x")
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        lines.append("")
        lines += [
            f"### {profile}: requests, bytes served (amplification = served / read), peak RSS",
            "",
            "| workload | system | GET | aborted GETs | HEAD | LIST | other | MB served | "
            "amplification | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in rows:
            for s in systems:
                sample = results.get((profile, w.name, s))
                if sample is None or not sample.ok or s in ("local", "nullfs"):
                    continue
                rq = sample.requests
                amp = sample.bytes_served / sample.payload_bytes if sample.payload_bytes else None
                rss = None if sample.peak_rss_bytes is None else sample.peak_rss_bytes / MIB
                lines.append(
                    f"| {w.name} | {s} | {rq.get('GET', 0)} | {rq.get('aborted', 0)} | "
                    f"{rq.get('HEAD', 0)} | "
                    f"{rq.get('LIST', 0)} | {rq.get('other', 0)} | "
                    f"{sample.bytes_served / 1e6:.1f} | {fmt(amp)} | {fmt(rss)} |"
                )
        lines.append("")
    lines += memory_rows(results, profiles, chosen)
    counter_rows = [
        (p, w, results[(p, w.name, "ossfs")])
        for p in profiles
        for w in chosen
        if (p, w.name, "ossfs") in results and results[(p, w.name, "ossfs")].counters
    ]
    if counter_rows:
        lines += [
            "### ossfs's own counters during each case (`user.ossfs.obs.stats`)",
            "",
            "| profile | workload | FUSE reads | cache hits | misses | joined | prefetch parts | "
            "MB prefetched | prefetch waste | budget denials |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p, w, sample in counter_rows:
            c = sample.counters
            pre = c.get("prefetch.bytes_prefetched", 0.0)
            waste = c.get("prefetch.bytes_unused", 0.0) / pre if pre else None
            lines.append(
                f"| {p} | {w.name} | {c.get('served.reads', 0):.0f} | "
                f"{c.get('cache.hits', 0):.0f} | {c.get('cache.misses', 0):.0f} | "
                f"{c.get('cache.joined', 0):.0f} | {c.get('prefetch.parts_issued', 0):.0f} | "
                f"{pre / 1e6:.1f} | {'-' if waste is None else f'{waste:.1%}'} | "
                f"{c.get('prefetch.budget_denials', 0):.0f} |"
            )
        lines.append("")
    lines += ["### Targets of issue 5", "", "| target | measured | verdict |", "|---|---|---|"]
    for t in targets:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[t.met]
        note = f" ({t.note})" if t.note else ""
        lines.append(f"| {t.name} | {t.measured} | {verdict}{note} |")
    return "\n".join(lines) + "\n"


def memory_rows(
    results: dict[Key, Sample], profiles: Sequence[str], chosen: Sequence[Workload]
) -> list[str]:
    """The table of every ossfs system's peak RSS against its memory budget, per workload."""
    rows = [
        (p, w, s, results[(p, w.name, s)])
        for p in profiles
        for w in chosen
        for s in sorted({key[2] for key in results if kind(key[2]) == "ossfs"})
        if (p, w.name, s) in results and results[(p, w.name, s)].peak_rss_bytes is not None
    ]
    if not rows:
        return []
    lines = [
        "### ossfs: peak RSS against the memory budget (the daemon's VmHWM; `warm` shares "
        "`seq1`'s mount)",
        "",
        "| profile | workload | system | budget MiB | peak RSS MiB | RSS / budget | "
        "RSS - budget MiB |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for p, w, system, sample in rows:
        rss = (sample.peak_rss_bytes or 0) / MIB
        budget = None if sample.budget_bytes is None else sample.budget_bytes / MIB
        share = f"{rss / budget:.2f}" if budget else "-"
        over = "-" if budget is None else f"{rss - budget:+.0f}"
        lines.append(
            f"| {p} | {w.name} | {system} | {fmt(budget)} | {rss:.0f} | {share} | {over} |"
        )
    lines.append("")
    return lines


def chart_svg(
    results: dict[Key, Sample],
    systems: Sequence[str],
    profiles: Sequence[str],
    chosen: Sequence[Workload],
) -> str:
    """Grouped bars, one panel per profile: each system's figure relative to ossfs's (= 1x) on a
    log scale from 1/30x to 30x (lower-is-better figures inverted, so taller is always better),
    labelled with the figure itself."""
    colors = {
        "ossfs": "#d9480f",
        "oss2": "#1c7ed6",
        "s3fs": "#2f9e44",
        "rclone": "#7048e8",
        "nullfs": "#868e96",
        "local": "#343a40",
    }
    span = math.log10(30.0)
    bar_w, gap, plot_h, left = 16, 30, 200, 70
    panel_h = plot_h + 110
    n_max = max(1, *(len(chosen) for _ in profiles))
    group_w = bar_w * len(systems) + gap
    width = left + group_w * n_max + 20
    height = 60 + panel_h * len(profiles)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">ossfs benchmark suite: each system relative to '
        "ossfs (log scale, taller is better; labels: the measured figure)</text>",
    ]
    for i, s in enumerate(systems):
        x = left + i * 80
        out.append(f'<rect x="{x}" y="28" width="10" height="10" fill="{colors.get(s, "#000")}"/>')
        out.append(f'<text x="{x + 14}" y="37">{s}</text>')

    def score(sample: Sample | None, w: Workload) -> float | None:
        if sample is None or not sample.ok or not sample.value:
            return None
        return sample.value if w.higher_is_better else 1.0 / sample.value

    for p_index, profile in enumerate(profiles):
        top = 60 + p_index * panel_h + 20
        mid = top + plot_h / 2  # the 1x line
        out.append(f'<text x="4" y="{top - 6}" font-size="13">{profile}</text>')
        for tick in (1 / 30, 0.1, 1 / 3, 1.0, 3.0, 10.0, 30.0):
            y = mid - plot_h / 2 * math.log10(tick) / span
            label = f"{tick:g}x" if tick >= 1 else f"1/{1 / tick:.0f}x"
            dash = "" if tick == 1.0 else ' stroke-dasharray="2,3"'
            out.append(
                f'<line x1="{left - 4}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" '
                f'stroke="#bbb"{dash}/>'
            )
            out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        base_y = top + plot_h
        for g, w in enumerate(chosen):
            x0 = left + g * group_w
            ref = score(results.get((profile, w.name, "ossfs")), w)
            if ref is None:
                continue
            for i, s in enumerate(systems):
                sample = results.get((profile, w.name, s))
                value = score(sample, w)
                if value is None or sample is None:
                    continue
                rel = min(max(math.log10(value / ref) / span, -1.0), 1.0)
                y = mid - plot_h / 2 * rel
                x = x0 + i * bar_w
                out.append(
                    f'<rect x="{x}" y="{y:.1f}" width="{bar_w - 2}" height="{base_y - y:.1f}" '
                    f'fill="{colors.get(s, "#000")}"><title>{profile} {w.name} {s}: '
                    f"{fmt(sample.value, w.unit)} {w.unit}</title></rect>"
                )
                cx, cy = x + bar_w / 2 + 3, y - 3
                out.append(
                    f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="8" '
                    f'transform="rotate(-90 {cx:.1f} {cy:.1f})">{fmt(sample.value, w.unit)}</text>'
                )
            label_x = x0 + bar_w * len(systems) / 2
            out.append(
                f'<text x="{label_x:.1f}" y="{base_y + 14}" text-anchor="end" '
                f'transform="rotate(-30 {label_x:.1f} {base_y + 14})">{w.name} ({w.unit})</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- main ----------------------------------------------------------------------------------------


def make_mount_root(tmp: Path) -> Path:
    """A directory for the mount points, outside the temporary directory when /run is writable:
    processes that walk the temporary directory (other test suites) then stay out of the mounts."""
    if os.access("/run", os.W_OK):
        return Path(tempfile.mkdtemp(prefix="ossfs-suite-mnt-", dir="/run"))
    root = tmp / "mnt"
    root.mkdir()
    return root


def remove_mount_root(root: Path) -> None:
    """Remove the (empty) mount points and their directory; leave anything still mounted."""
    for child in root.iterdir():
        if not is_mounted(child):
            with contextlib.suppress(OSError):
                child.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


def ossfs_memory_args(limit: str) -> list[str]:
    """``--max-memory LIMIT`` when this ossfs has that option, else nothing."""
    result = subprocess.run(
        [sys.executable, "-m", "ossfs", "mount", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=python_cwd(),
        env=peer_env_base(),
        timeout=60,
    )
    return ["--max-memory", limit] if "--max-memory" in result.stdout else []


def git_rev() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "ossfs"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return result.stdout.strip() + ("+dirty" if dirty else "")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from ossfs.core.sizes import parse_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--workloads", help="comma-separated workload names (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median shown)")
    parser.add_argument("--seq-size", help="large object size (1GiB; --quick 256MiB)")
    parser.add_argument("--small-files", type=int, help="number of 100 KiB files")
    parser.add_argument("--find-dirs", type=int, help="directories of the find tree")
    parser.add_argument("--find-per-dir", type=int, help="objects per directory of the find tree")
    parser.add_argument("--random-ops", type=int, help="random 4 KiB reads (256 KiB: a fifth)")
    parser.add_argument("--timeout", type=float, help="seconds per measurement")
    parser.add_argument("--max-memory", default="512MiB", help="ossfs --max-memory for seq4")
    parser.add_argument(
        "--baseline-rev",
        metavar="REV",
        help="also measure the ossfs of this git revision (system ossfs@REV, interleaved)",
    )
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench-results")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    base = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.seq_size:
        changes["seq_bytes"] = parse_size(args.seq_size)
    if args.small_files:
        changes["small_files"] = args.small_files
    if args.find_dirs:
        changes["find_dirs"] = args.find_dirs
    if args.find_per_dir:
        changes["find_per_dir"] = args.find_per_dir
    if args.random_ops:
        changes["rand4k_ops"] = args.random_ops
        changes["rand256k_ops"] = max(1, args.random_ops // 5)
    if args.timeout:
        changes["timeout_s"] = args.timeout
    args.sizes = Sizes(**{**asdict(base), **changes})
    for name, allowed in (("profiles", PROFILES), ("systems", SYSTEMS)):
        chosen = getattr(args, name).split(",")
        unknown = set(chosen) - set(allowed)
        if unknown:
            parser.error(f"unknown {name} {sorted(unknown)}; choose from {list(allowed)}")
        setattr(args, name, [x for x in allowed if x in chosen])
    if args.baseline_rev:
        at = args.systems.index("ossfs") + 1 if "ossfs" in args.systems else 0
        args.systems.insert(at, f"ossfs@{args.baseline_rev}")
    names = [w.name for w in workloads(args.sizes)]
    if args.workloads:
        unknown = set(args.workloads.split(",")) - set(names)
        if unknown:
            parser.error(f"unknown workloads {sorted(unknown)}; choose from {names}")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def run(args: argparse.Namespace) -> int:
    from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
    from ossfs.emulator.faults import FaultSettings

    sizes: Sizes = args.sizes
    systems: list[str] = args.systems
    profiles: list[str] = args.profiles
    every = workloads(sizes)
    wanted = set(args.workloads.split(",")) if args.workloads else {w.name for w in every}
    if "warm" in wanted:
        wanted.add("seq1")  # warm is the second read of the seq1 case
    chosen = [w for w in every if w.name in wanted]
    groups = list(dict.fromkeys(w.group for w in chosen))
    memory_args: list[str] = []
    settings = {
        "loopback": FaultSettings(),
        "remote": FaultSettings(latency_s=REMOTE_LATENCY_S, bandwidth_bytes_per_s=REMOTE_BANDWIDTH),
        "remote-chunked": FaultSettings(
            latency_s=REMOTE_LATENCY_S, bandwidth_bytes_per_s=REMOTE_BANDWIDTH, pacing="chunked"
        ),
    }
    samples: dict[Key, list[Sample]] = {}
    began = time.monotonic()
    rev = git_rev()
    with tempfile.TemporaryDirectory(prefix="ossfs-suite-") as tmp_name:
        tmp = Path(tmp_name)
        snapshot_ossfs(tmp)
        if args.baseline_rev:
            _BASELINE[f"ossfs@{args.baseline_rev}"] = baseline_tree(args.baseline_rev, tmp)
        if "ossfs" in systems or _BASELINE:
            memory_args = ossfs_memory_args(args.max_memory)
        mount_root = make_mount_root(tmp)
        try:
            config = EmulatorConfig(
                data_dir=tmp / "data",
                buckets=(BUCKET,),
                credentials=(Credential(AK, SK),),
                anonymous=True,  # the S3 dialect is anonymous; the OSS one still checks signatures
                s3_port=0,
            )
            with EmulatorServer(config) as server:
                layout = Layout(sizes)
                print(
                    f"writing the data set ({len(layout.files()):,} objects) ...", file=sys.stderr
                )
                build_data(server, layout, tmp / "local", tmp / "manifest.json")
                bench = Bench(
                    server,
                    layout,
                    tmp,
                    tmp / "local",
                    tmp / "manifest.json",
                    memory_args,
                    mount_root,
                )
                # warm the local file into the page cache (the local rows are the page-cache limit)
                run_worker({"task": "seq", "root": str(bench.local), "keys": layout.big}, 600)
                server_files = large_files(tmp / "data")
                for profile in profiles:
                    server.faults.set(settings[profile])
                    for group in groups:
                        # Warm the server for the group: its copies of the data in the page
                        # cache, and one untimed pass of the direct oss2 stream (else whichever
                        # system runs first is slower: the first 4 x 1 GiB run came out at half
                        # the rate of the other two, for ossfs and s3fs alike).
                        read_through(server_files)
                        if "oss2" in systems:
                            run_case(bench, "oss2", group, sizes.timeout_s)
                        for rep in range(args.repeat):
                            order = systems[rep % len(systems) :] + systems[: rep % len(systems)]
                            for system in order:
                                t0 = time.monotonic()
                                got = run_case(bench, system, group, sizes.timeout_s)
                                for name, sample in got.items():
                                    samples.setdefault((profile, name, system), []).append(sample)
                                    shown = fmt(sample.value) if sample.ok else sample.status
                                    print(
                                        f"[{time.monotonic() - began:6.0f}s] {profile:8} {name:8} "
                                        f"{system:7} {shown} ({time.monotonic() - t0:.1f}s)",
                                        file=sys.stderr,
                                        flush=True,
                                    )
                    server.faults.clear()
        finally:
            Mount.stop_all()
            remove_mount_root(mount_root)
    by_name = {w.name: w for w in every}
    results = {
        key: median_sample(runs, by_name[key[1]].higher_is_better) for key, runs in samples.items()
    }
    targets = evaluate_targets(results, sizes, memory_args, profiles)
    header = (
        f"## ossfs benchmark suite ({'quick' if args.quick else 'full'} sizes; ossfs {rev}; "
        f"median of {args.repeat} run(s); {os.cpu_count()} CPUs; "
        f"{time.monotonic() - began:.0f} s)\n\n"
        "MB/s = 10**6 bytes a second. Each case runs on a fresh mount (cold caches) except "
        "`warm` (the second read in the `seq1` mount) and `local` (page cache warm). "
        f"`remote` = {REMOTE_LATENCY_S * 1e3:.0f} ms before every answer (GET, HEAD, LIST), "
        f"{REMOTE_BANDWIDTH / 1e6:.0f} MB/s per connection in small pieces; `remote-chunked`: "
        "the same rate in 1 MiB pieces with sleeps between. Requests and bytes are what the server "
        "saw during the measured part only (mount, `stat` and listing before it excluded, except "
        "in `ls`/`find`); an aborted GET (the client hung up mid-body) is logged with 0 bytes, so "
        "`MB served` undercounts for clients that abort streams (see `aborted GETs`). (!) marks "
        "a read case during which the server saw LISTs: another process walked the mount, so "
        "that figure is disturbed. ossfs (and the null FUSE's imports) ran from a copy of the "
        "work tree's `ossfs` package taken at the start (`+dirty`: with uncommitted changes)."
    )
    text = report(
        results=results,
        sizes=sizes,
        systems=systems,
        profiles=profiles,
        chosen=chosen,
        targets=targets,
        header=header,
    )
    print(text)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text)
    (out / "chart.svg").write_text(chart_svg(results, systems, profiles, chosen))
    doc = {
        "ossfs_rev": rev,
        "quick": args.quick,
        "repeat": args.repeat,
        "sizes": asdict(sizes),
        "profiles": {p: settings[p].to_json() for p in profiles},
        "ossfs_seq4_args": memory_args,
        "workloads": [asdict(w) for w in chosen],
        "results": [
            {
                "profile": k[0],
                "workload": k[1],
                "system": k[2],
                "median": asdict(results[k]),
                "samples": [asdict(s) for s in samples[k]],
            }
            for k in samples
        ],
        "targets": [asdict(t) for t in targets],
    }
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(
        f"wrote {out / 'report.md'}, {out / 'results.json'}, {out / 'chart.svg'}", file=sys.stderr
    )
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(sys.stdin.read()))))
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except KeyboardInterrupt:
        Mount.stop_all()
        return 130


if __name__ == "__main__":
    sys.exit(main())
