"""The systems under test: their environments, the snapshot of the ossfs package every mount
uses, one mount daemon (`Mount`, always torn down), and `Bench` (what a case needs).

It deliberately measures nothing (that is `bench.measuring`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mount_helpers import LOCAL_HOSTS

from bench.config import AK, BUCKET, MOUNTED, REPO, SCRIPTS, SK
from bench.dataset import Layout


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


SNAPSHOT: list[Path] = []  # the copy of the ossfs package every mount of this run uses
BASELINE_TREES: dict[str, Path] = {}  # "ossfs@REV" -> the folder holding that revision's package


def kind(system: str) -> str:
    """``ossfs`` for ``ossfs@REV`` (another revision of ossfs), else the system itself."""
    return system.partition("@")[0]


def snapshot_ossfs(tmp: Path) -> Path:
    """Copy this work tree's ``ossfs`` package (uncommitted changes included) under ``tmp``: every
    mount of the run then measures the same code, even if the work tree changes meanwhile."""
    root = tmp / "ossfs-snapshot"
    shutil.copytree(REPO / "ossfs", root / "ossfs", ignore=shutil.ignore_patterns("__pycache__"))
    SNAPSHOT[:] = [root]
    return root


def python_cwd() -> Path:
    """Where our Python subprocesses run (``python -m`` puts the cwd first on sys.path)."""
    return SNAPSHOT[0] if SNAPSHOT else REPO


def peer_env_base() -> dict[str, str]:
    env = dict(os.environ)
    env["NO_PROXY"] = env["no_proxy"] = LOCAL_HOSTS
    if SNAPSHOT:
        env["PYTHONPATH"] = os.pathsep.join([str(SNAPSHOT[0]), env.get("PYTHONPATH", "")])
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

    def start(self, timeout_s: float = 60.0, *, list_root: bool = True) -> None:
        """Start the daemon and wait until it answers; ``list_root=False`` waits with a ``stat``
        of the root instead of a listing (for cases that must find nothing listed)."""
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
            if list_root:
                os.listdir(self.mountpoint)
            else:
                os.stat(self.mountpoint)

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
            return Mount(argv, ossfs_env(), mp, log, BASELINE_TREES.get(system, python_cwd()))
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
