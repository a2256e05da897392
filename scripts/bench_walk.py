"""Cold paths and tree walks through a fresh mount, on the emulator's remote profile.

Usage: python scripts/bench_walk.py [--repeat 2] [--latency-ms 20] [--baseline SRC] [--json OUT]

Each case runs on a fresh mount (nothing listed yet) and reports seconds and the LIST, HEAD and
GET requests the server saw:

- ``cold``: first byte of ``cold/deep/one.bin``, never listed (open + 1-byte read);
- ``find``: ``find -type f`` over 100 directories x 20 files (empty); ``find2``: the same after
  an untimed ``ls`` of the mount root (the tree is known from its parent's listing, not probed);
  ``du``: ``du -s`` of that tree; ``lsR``: ``ls -lR``; ``tar``: ``tar -cf -``; ``cpr``: ``cp -r``
  to a local directory; ``flat``: one flat ListObjectsV2 of the same prefix through oss2 (the
  floor a walk is compared with);
- ``ls10k``: ``ls -l`` of 10,000 entries;
- ``import``: ``import numpy`` with numpy copied into the bucket (``--import-python``'s numpy,
  imported by that Python with ``-S``; a synthesized package of a similar shape when it has none).

``--baseline SRC`` mounts with another ossfs source tree (``PYTHONPATH=SRC``) too, interleaved
with this one in every repeat (A/B in one run); ``--this SRC`` mounts a snapshot instead of the
installed ossfs (so that editing the tree during a run changes nothing). The figures are
wall-clock on a shared machine: compare the ratios within one run; the request counts do not
move with load.
"""

from __future__ import annotations

import argparse
import json
import os
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.samples import classify  # the request classes of the suite: GET, HEAD, LIST

BUCKET = "bench"
AK, SK = "bench-ak", "bench-sk"
WALK_DIRS, WALK_FILES = 100, 20
LS_ENTRIES = 10_000
CASES = ("cold", "find", "find2", "du", "lsR", "tar", "cpr", "flat", "ls10k", "import")


def settled(server: Any) -> dict[str, int]:
    """The server's request counts once they stop moving (entries are logged after answers)."""
    last: dict[str, int] | None = None
    while True:
        now = server.log.counts()
        if now == last:
            out = {"LIST": 0, "HEAD": 0, "GET": 0, "other": 0}
            for op, n in now.items():
                out[classify(op)] += n
            return out
        last = now
        time.sleep(0.3)


def python_package(python: str) -> tuple[str, Path | None]:
    """numpy's directory if ``python`` has numpy, else None (a package is synthesized)."""
    found = subprocess.run(
        [python, "-c", "import numpy; print(numpy.__file__)"],
        check=False,
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        return "synthpkg", None
    return "numpy", Path(found.stdout.strip()).parent


def synth_package(root: Path) -> None:
    """A package of numpy's shape: 12 subpackages of 10 modules that import each other."""
    top = root / "synthpkg"
    subs = [f"sub{i:02d}" for i in range(12)]
    top.mkdir(parents=True)
    (top / "__init__.py").write_text("".join(f"from . import {s}\n" for s in subs))
    for s in subs:
        d = top / s
        d.mkdir()
        mods = [f"m{j:02d}" for j in range(10)]
        (d / "__init__.py").write_text("".join(f"from . import {m}\n" for m in mods))
        for m in mods:
            (d / f"{m}.py").write_text("X = 1\n" + "def f(a):\n    return a + 1\n" * 40)
        (d / "data.txt").write_text("unused\n" * 100)


def seed(server: Any, tmp: Path, python: str) -> str:
    keys = [f"walk/d{i:03d}/f{j:02d}" for i in range(WALK_DIRS) for j in range(WALK_FILES)]
    keys += [f"ls10k/e{i:06d}" for i in range(LS_ENTRIES)]
    server.put_empty_objects(BUCKET, keys)
    server.put_object(BUCKET, "cold/deep/one.bin", os.urandom(1 << 20))
    for i in range(5):
        server.put_object(BUCKET, f"cold/deep/other{i}.bin", b"x" * 100)
        server.put_object(BUCKET, f"cold/side{i}/f.txt", b"y" * 10)
    name, source = python_package(python)
    if source is None:
        synth_package(tmp / "pkg")
        source = tmp / "pkg" / name
    count = 0
    # numpy's wheel keeps its shared libraries (OpenBLAS) in numpy.libs beside the package.
    for tree in (source, source.parent / f"{name}.libs"):
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                key = f"sp/{tree.name}/{path.relative_to(tree)}"
                server.put_object_from_file(BUCKET, key, path)
                count += 1
    print(f"seeded: walk {len(keys) - LS_ENTRIES}, ls10k, cold, {name} ({count} files)")
    return name


def mount(server: Any, mnt: Path, src: str | None) -> None:
    env = {**os.environ, "OSS_ACCESS_KEY_ID": AK, "OSS_ACCESS_KEY_SECRET": SK}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    python = [sys.executable]
    if src:
        # -S: without site's .pth files, so that an editable install of this tree does not
        # shadow SRC; the dependencies come from site-packages named on the path. `-m` puts
        # the working directory first on the path: it is SRC too.
        env["PYTHONPATH"] = os.pathsep.join([src, *site.getsitepackages()])
        python.append("-S")
    subprocess.run(
        [
            *python,
            "-m",
            "ossfs",
            "mount",
            f"oss://{BUCKET}",
            str(mnt),
            "--endpoint",
            server.endpoint,
        ],
        check=True,
        env=env,
        timeout=120,
        cwd=src,
    )


def umount(mnt: Path) -> None:
    subprocess.run([sys.executable, "-m", "ossfs", "umount", str(mnt)], check=True, timeout=120)


def run_case(case: str, mnt: Path, package: str, python: str, tmp: Path) -> float:
    if case == "find2":
        os.listdir(mnt)  # not timed: walk/ is known from its parent's listing, never probed
    began = time.perf_counter()
    if case == "cold":
        with open(mnt / "cold" / "deep" / "one.bin", "rb", buffering=0) as f:
            if len(f.read(1)) != 1:
                raise RuntimeError("short read")
    elif case in ("find", "find2"):
        out = subprocess.run(
            ["find", str(mnt / "walk"), "-type", "f"], capture_output=True, check=True
        )
        seen = out.stdout.count(b"\n")
        if seen != WALK_DIRS * WALK_FILES:
            raise RuntimeError(f"find saw {seen} files")
    elif case == "du":
        subprocess.run(["du", "-s", str(mnt / "walk")], capture_output=True, check=True)
    elif case == "tar":
        argv = ["tar", "-cf", "-", "-C", str(mnt), "walk"]
        if not subprocess.run(argv, capture_output=True, check=True).stdout:
            raise RuntimeError("tar wrote nothing")
    elif case == "cpr":
        target = tmp / "copy"
        subprocess.run(["cp", "-r", str(mnt / "walk"), str(target)], check=True)
        subprocess.run(["rm", "-rf", str(target)], check=True)
    elif case == "lsR":
        subprocess.run(["ls", "-lR", str(mnt / "walk")], capture_output=True, check=True)
    elif case == "ls10k":
        out = subprocess.run(["ls", "-l", str(mnt / "ls10k")], capture_output=True, check=True)
        if out.stdout.count(b"\n") != LS_ENTRIES + 1:
            raise RuntimeError("ls -l saw the wrong number of entries")
    elif case == "import":
        code = f"import sys; sys.path.insert(0, {str(mnt / 'sp')!r}); import {package}"
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        subprocess.run([python, "-S", "-c", code], check=True, env=env)
    return time.perf_counter() - began


def flat_listing(server: Any) -> float:
    import oss2

    bucket = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET)
    began = time.perf_counter()
    n = sum(1 for _ in oss2.ObjectIteratorV2(bucket, "walk/", delimiter="", max_keys=1000))
    if n != WALK_DIRS * WALK_FILES:
        raise RuntimeError(f"flat listing saw {n} keys")
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--baseline", help="another ossfs source tree, mounted A/B")
    parser.add_argument("--this", help="mount this source tree (default: the installed ossfs)")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--import-python", default="python3", help="the Python whose numpy is copied and imported"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer
    from ossfs.emulator.faults import FaultSettings

    systems: list[tuple[str, str | None]] = [("this", args.this)]
    if args.baseline:
        systems.append(("baseline", args.baseline))
    cases = args.cases.split(",")
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="ossfs-walk-") as tmp_name:
        tmp = Path(tmp_name)
        config = EmulatorConfig(
            data_dir=tmp / "data",
            buckets=(BUCKET,),
            credentials=(Credential(AK, SK),),
            anonymous=False,
        )
        with EmulatorServer(config) as server:
            package = seed(server, tmp, args.import_python)
            server.faults.set(
                FaultSettings(latency_s=args.latency_ms / 1e3, bandwidth_bytes_per_s=100_000_000)
            )
            mnt = tmp / "mnt"
            mnt.mkdir()
            for rep in range(args.repeat):
                order = systems if rep % 2 == 0 else systems[::-1]
                for case in cases:
                    for name, src in order:
                        if case == "flat":
                            if name != "this":
                                continue
                            server.log.clear()
                            seconds = flat_listing(server)
                        else:
                            mount(server, mnt, src)
                            try:
                                settled(server)
                                server.log.clear()
                                seconds = run_case(case, mnt, package, args.import_python, tmp)
                            finally:
                                umount(mnt)
                        counts = settled(server)
                        row = {"seconds": seconds, **counts}
                        results.setdefault(f"{case} {name}", []).append(row)
                        print(
                            f"{case:7} {name:9} {seconds * 1e3:8.0f} ms  LIST {counts['LIST']:4}"
                            f"  HEAD {counts['HEAD']:4}  GET {counts['GET']:4}",
                            flush=True,
                        )
    print("\nmedian seconds (of the repeats), requests of the last run:")
    for label, rows in results.items():
        times = sorted(r["seconds"] for r in rows)
        mid = (
            times[len(times) // 2] if len(times) % 2 else sum(times[len(times) // 2 - 1 :][:2]) / 2
        )
        last = rows[-1]
        print(
            f"  {label:18} {mid * 1e3:8.0f} ms  LIST {last['LIST']:4}  HEAD {last['HEAD']:4}"
            f"  GET {last['GET']:4}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
