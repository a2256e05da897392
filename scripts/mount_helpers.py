"""What the benchmark and soak scripts share about an ossfs mount run as a subprocess.

A daemonized mount of the local server's bucket (``mounted``), unmounting whatever is left of
one (``unmount``), finding its daemon's processes (``daemon_pids``), their peak RSS
(``peak_rss``), CPU time (``cpu_seconds``) and its split with page faults and context switches
(``daemon_counters``), the environment that points a client at the
local server (``client_env``), and the package of another git revision to compare with
(``baseline_tree``).
Scripts import it as a sibling module (``python scripts/NAME.py`` puts this folder first on
``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = "127.0.0.1,localhost"


def baseline_tree(rev: str, tmp: Path) -> Path:
    """The ``ossfs`` package of git revision ``rev``, extracted under ``tmp`` (run ``python -m
    ossfs`` with this folder as the working directory to use it)."""
    out = tmp / f"rev-{rev}"
    out.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "ossfs"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def client_env(access_key_id: str, access_key_secret: str) -> dict[str, str]:
    """This process's environment with the local server's credentials and no proxy for it."""
    return {
        **os.environ,
        "OSS_ACCESS_KEY_ID": access_key_id,
        "OSS_ACCESS_KEY_SECRET": access_key_secret,
        "NO_PROXY": LOCAL_HOSTS,
        "no_proxy": LOCAL_HOSTS,
    }


def daemon_pids(mountpoint: Path) -> list[int]:
    """Processes (other than this one) whose command line is a mount of ``mountpoint``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if str(mountpoint).encode() in argv and b"mount" in argv:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU seconds ``pids`` have used so far (all their threads; /proc)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def daemon_counters(pids: Sequence[int]) -> dict[str, float]:
    """What ``pids`` have used so far, all their threads (/proc): ``user_s`` and ``system_s``
    of CPU, ``minor_faults`` (pages faulted in), ``voluntary_switches`` (a thread went to
    sleep: a wait for the GIL, a lock, the network) and ``involuntary_switches``."""
    totals = dict.fromkeys(
        ("user_s", "system_s", "minor_faults", "voluntary_switches", "involuntary_switches"), 0.0
    )
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            totals["minor_faults"] += int(fields[7])
            totals["user_s"] += int(fields[11]) / tick
            totals["system_s"] += int(fields[12]) / tick
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    for line in (task / "status").read_text().splitlines():
                        name, _, value = line.partition(":")
                        if name == "voluntary_ctxt_switches":
                            totals["voluntary_switches"] += int(value)
                        elif name == "nonvoluntary_ctxt_switches":
                            totals["involuntary_switches"] += int(value)
    return totals


def peak_rss(pids: Sequence[int]) -> int | None:
    """The largest peak resident set (VmHWM) of ``pids``, in bytes; None if none is readable."""
    peaks = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) * 1024)
    return max(peaks) if peaks else None


@contextlib.contextmanager
def mounted(
    url: str,
    mountpoint: Path,
    *,
    env: dict[str, str],
    args: Sequence[str] = (),
    pythonpath: Path | None = None,
) -> Iterator[Path]:
    """``ossfs mount URL MOUNTPOINT ARGS...`` (daemonized), unmounted on the way out.

    ``pythonpath``: run the ``ossfs`` package found there (another revision) instead of this
    checkout's. Raises RuntimeError with the mount's own message if it fails.
    """
    mountpoint.mkdir(parents=True, exist_ok=True)
    run_env = dict(env)
    if pythonpath is not None:
        run_env["PYTHONPATH"] = str(pythonpath)
    result = subprocess.run(
        [sys.executable, "-m", "ossfs", "mount", url, str(mountpoint), *args],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=pythonpath or REPO,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mount failed: {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        unmount(mountpoint, env)


def unmount(mountpoint: Path, env: dict[str, str]) -> None:
    """Unmount by every means there is until nothing is mounted there, then wait (up to 15 s)
    for the daemon to exit."""
    from ossfs.app.umount import is_mounted  # imported here: the suite's workers never need it

    for cmd in (
        [sys.executable, "-m", "ossfs", "umount", str(mountpoint)],
        ["fusermount3", "-u", str(mountpoint)],
        ["fusermount", "-u", str(mountpoint)],
        ["umount", "-l", str(mountpoint)],
    ):
        if not is_mounted(mountpoint):
            break
        if shutil.which(cmd[0]) or cmd[0] == sys.executable:
            subprocess.run(cmd, env=env, capture_output=True, timeout=60, check=False, cwd=REPO)
    deadline = time.monotonic() + 15
    while daemon_pids(mountpoint) and time.monotonic() < deadline:
        time.sleep(0.1)
