"""`ossfs demo MOUNTPOINT`: a sample bucket on a local OSS server, mounted, with no account.

It starts the local server on a temporary directory, fills a sample bucket, mounts it with
`ossfs mount -f` in a child process, prints what to try, and on Ctrl-C (or SIGTERM) unmounts and
removes everything it made.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from ossfs.app.mounting import check_mountpoint
from ossfs.app.umount import is_mounted
from ossfs.core.errors import UsageError
from ossfs.core.sizes import format_size
from ossfs.emulator import EmulatorConfig, EmulatorServer
from ossfs.emulator.auth import Credential

BUCKET: Final = "ossfs-demo"
_MOUNT_TIMEOUT_S: Final = 30.0
_CHUNK: Final = 8 << 20


def _fill_bucket(server: EmulatorServer, workdir: Path, large_bytes: int) -> int:
    """Sample objects: nested dirs, small files, one large file, a symlink, user metadata."""
    rng = random.Random(2026)
    count = 0
    for year in (2024, 2025):
        for month in range(1, 13):
            for day in range(1, 11):
                key = f"logs/{year}/{month:02d}/day-{day:02d}.log"
                lines = "".join(f"{year}-{month:02d}-{day:02d} event {i}\n" for i in range(50))
                server.put_object(BUCKET, key, lines.encode(), content_type="text/plain")
                count += 1
    server.put_object(
        BUCKET,
        "README.txt",
        b"Welcome to the ossfs demo bucket. Everything here is served by a local OSS server.\n",
        content_type="text/plain",
        user_meta={"author": "ossfs", "purpose": "demo"},
    )
    server.put_object(BUCKET, "photos/", b"")
    for i in range(20):
        server.put_object(BUCKET, f"photos/img-{i:03d}.raw", rng.randbytes(64 << 10))
    big = workdir / "large.bin"
    with big.open("wb") as out:
        left = large_bytes
        while left > 0:
            n = min(_CHUNK, left)
            out.write(rng.randbytes(n))
            left -= n
    server.put_object_from_file(BUCKET, "datasets/large.bin", big)
    big.unlink()
    server.put_symlink(BUCKET, "latest.log", "logs/2025/12/day-10.log")
    return count + 23


def run_demo(mountpoint: Path, *, large_bytes: int = 256 << 20) -> int:
    """Serve, fill, mount and wait for Ctrl-C; clean up everything on the way out."""
    mountpoint = mountpoint.absolute()
    created_mountpoint = not mountpoint.exists()
    if created_mountpoint:
        mountpoint.mkdir(parents=True)
    try:
        check_mountpoint(mountpoint, nonempty_ok=False)
    except UsageError:
        if created_mountpoint:
            mountpoint.rmdir()
        raise
    workdir = Path(tempfile.mkdtemp(prefix="ossfs-demo-"))
    key_id, secret = "demo-" + secrets.token_hex(6), secrets.token_urlsafe(24)
    server = EmulatorServer(
        EmulatorConfig(
            data_dir=workdir / "data",
            buckets=(BUCKET,),
            credentials=(Credential(key_id, secret),),
        )
    )
    child: subprocess.Popen[bytes] | None = None
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    # Explicit handlers: Ctrl-C must clean up even when the shell started us with SIGINT ignored.
    old_term = signal.signal(signal.SIGTERM, on_signal)
    old_int = signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
        print(f"ossfs demo: local OSS server at {server.endpoint}; creating sample objects ...")
        count = _fill_bucket(server, workdir, large_bytes)
        env = {
            **os.environ,
            "OSS_ACCESS_KEY_ID": key_id,
            "OSS_ACCESS_KEY_SECRET": secret,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        command = [sys.executable, "-m", "ossfs", "mount", f"oss://{BUCKET}", str(mountpoint)]
        child = subprocess.Popen([*command, "-f", "--endpoint", server.endpoint], env=env)
        deadline = time.monotonic() + _MOUNT_TIMEOUT_S
        while not is_mounted(mountpoint):
            if child.poll() is not None or time.monotonic() > deadline:
                raise UsageError("the demo mount did not come up (see the messages above)")
            time.sleep(0.1)
        _print_tips(mountpoint, server.endpoint, key_id, secret, count=count, large=large_bytes)
        while not stop and child.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        print("\nossfs demo: unmounting and cleaning up ...", flush=True)
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if is_mounted(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if created_mountpoint:
            with contextlib.suppress(OSError):
                mountpoint.rmdir()
    print("ossfs demo: done, nothing left behind.")
    return 0


def _print_tips(
    mountpoint: Path, endpoint: str, key_id: str, secret: str, *, count: int, large: int
) -> None:
    mp = str(mountpoint)
    print(
        f"""
ossfs demo: oss://{BUCKET} ({count} objects, one of {format_size(large)}) is mounted at {mp}

Try, in another terminal:
  ls -l {mp}
  find {mp}/logs | head
  cat {mp}/README.txt
  cat {mp}/latest.log | head -3            # an OSS symlink
  getfattr -d {mp}/README.txt              # object metadata as xattrs
  time cp {mp}/datasets/large.bin /dev/null
  OSS_ACCESS_KEY_ID={key_id} OSS_ACCESS_KEY_SECRET={secret} \\
    {sys.executable} -m ossfs verify oss://{BUCKET} --endpoint {endpoint}

Press Ctrl-C to unmount and remove everything.
""",
        flush=True,
    )
