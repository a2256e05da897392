"""Real FUSE mounts of buckets served by the local OSS server, driven by standard Unix tools.

These need FUSE (installed by scripts/setup.sh; see tests/support/fuse.py); CI runs them as root.
"""

from __future__ import annotations

import errno
import filecmp
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ossfs.app.umount import is_mounted
from ossfs.emulator import EmulatorServer
from ossfs.obs.stats import STATS_XATTR
from tests.support import BUCKET
from tests.support.mounts import data_for as _data
from tests.support.mounts import ossfs_env as _env
from tests.support.mounts import run_ossfs as _ossfs
from tests.support.mounts import settled_counts, wait_daemon_gone
from tests.support.waiting import poll_until, wait_until

pytestmark = pytest.mark.mount

BLOCK = 1 << 20
MIXED_SIZES = {
    "empty": 0,
    "one": 1,
    "block-1": BLOCK - 1,
    "block": BLOCK,
    "block+1": BLOCK + 1,
    "several": 5 * BLOCK + 12345,
}

Mounter = Callable[..., Path]


@pytest.fixture
def mount(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Mounter]:
    mounted: list[Path] = []

    def do_mount(location: str = f"oss://{BUCKET}", *extra: str) -> Path:
        mountpoint = tmp_path / f"mnt{len(mounted)}"
        mountpoint.mkdir()
        result = _ossfs("mount", location, str(mountpoint), "--endpoint", emulator.endpoint, *extra)
        assert result.returncode == 0, result.stderr
        assert is_mounted(mountpoint)
        mounted.append(mountpoint)
        return mountpoint

    yield do_mount
    for mountpoint in mounted:
        if is_mounted(mountpoint):
            result = _ossfs("umount", str(mountpoint))
            assert result.returncode == 0, result.stderr
        assert not is_mounted(mountpoint)
        wait_daemon_gone(mountpoint)


def _put_tree(emulator: EmulatorServer, prefix: str = "") -> dict[str, bytes]:
    tree: dict[str, bytes] = {}
    for i, (name, size) in enumerate(MIXED_SIZES.items()):
        tree[f"{prefix}mixed/{name}.bin"] = _data(i, size)
        tree[f"{prefix}mixed/sub/{name}.dat"] = _data(100 + i, min(size, 3000))
    tree[f"{prefix}odd/a b+c%d&e<f.txt"] = b"odd name\n"
    tree[f"{prefix}odd/中文 名字.txt"] = b"unicode\n"
    tree[f"{prefix}implicit/deep/er/file.txt"] = b"deep\n"
    tree[f"{prefix}marker/"] = b""
    tree[f"{prefix}marker/inside.txt"] = b"inside\n"
    for key, data in tree.items():
        emulator.put_object(BUCKET, key, data)
    return tree


def _files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_mount_cp_r_is_byte_identical(
    emulator: EmulatorServer, mount: Mounter, tmp_path: Path
) -> None:
    tree = _put_tree(emulator)
    mp = mount()
    out = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(mp), str(out)], check=True, timeout=120)
    expected = {k: v for k, v in tree.items() if not k.endswith("/")}
    assert _files_under(out) == expected
    assert (out / "marker").is_dir() and (out / "implicit" / "deep" / "er").is_dir()


def test_mount_cat_tar_find_du(emulator: EmulatorServer, mount: Mounter, tmp_path: Path) -> None:
    tree = _put_tree(emulator)
    mp = mount()
    cat = subprocess.run(
        ["cat", str(mp / "mixed" / "several.bin")], capture_output=True, check=True
    )
    assert cat.stdout == tree["mixed/several.bin"]
    archive = tmp_path / "t.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", str(mp), "mixed"], check=True, timeout=120)
    with tarfile.open(archive) as tar:
        member = tar.extractfile("mixed/block+1.bin")
        assert member is not None and member.read() == tree["mixed/block+1.bin"]
    found = subprocess.run(
        ["find", ".", "-type", "f"], cwd=mp, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert sorted(f[2:] for f in found) == sorted(k for k in tree if not k.endswith("/"))
    du = subprocess.run(
        ["du", "-sb", str(mp / "mixed")], capture_output=True, text=True, check=True
    ).stdout
    assert int(du.split()[0]) >= sum(len(v) for k, v in tree.items() if k.startswith("mixed/"))


def test_mount_ls_l_of_5000_entries_costs_5_lists_and_no_head(
    emulator: EmulatorServer, mount: Mounter
) -> None:
    for i in range(5000):
        emulator.put_object(BUCKET, f"big/f{i:05d}", b"x" * (i % 7))
    mp = mount()
    os.listdir(mp)  # big is known from its parent's listing, as in `ls -l big` after `ls`
    settled_counts(emulator)
    emulator.log.clear()
    listing = subprocess.run(
        ["ls", "-l", str(mp / "big")], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert len([ln for ln in listing.splitlines() if ln.startswith("-")]) == 5000
    counts = settled_counts(emulator)
    assert counts.get("ListObjectsV2", 0) == 5
    assert counts.get("HeadObject", 0) == 0
    assert counts.get("GetObject", 0) == 0


def _mount_stats(mp: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(os.getxattr(mp, "user.ossfs.obs.stats"))
    return doc


def test_mount_ls_l_asks_nothing_per_entry_and_shows_lookup_attributes(
    emulator: EmulatorServer, mount: Mounter
) -> None:
    for i in range(300):
        emulator.put_object(BUCKET, f"many/f{i:03d}", b"x" * (i % 5))
    emulator.put_object(BUCKET, "many/sub/inner", b"i")
    listed = mount()
    probed = mount()  # the same entries learned by LOOKUP, one name at a time
    before = _mount_stats(listed)
    shown = subprocess.run(
        ["ls", "-la", str(listed / "many")], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [ln.split()[-1] for ln in shown[1:4]] == [".", "..", "f000"]
    assert len(shown) == 1 + 2 + 301
    fields = ["st_ino", "st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_mtime_ns"]
    for name in [*(f"f{i:03d}" for i in range(300)), "sub"]:
        got, want = os.lstat(listed / "many" / name), os.lstat(probed / "many" / name)
        compared = fields[:-1] if name == "sub" else fields  # a directory: its mount's start
        assert [getattr(got, f) for f in compared] == [getattr(want, f) for f in compared], name
    after = _mount_stats(listed)
    # The directory read gave the kernel every entry's attributes: no LOOKUP per entry. And
    # ls stops asking for security.selinux and ACLs once told the filesystem has none.
    assert after["namespace"]["hits"] - before["namespace"]["hits"] < 30
    errors_before = before["served"]["errors_by_errno"]
    errors = {k: v - errors_before.get(k, 0) for k, v in after["served"]["errors_by_errno"].items()}
    assert errors.get("ENOTSUP", 0) <= 4 and errors.get("ENODATA", 0) == 0, errors
    with pytest.raises(OSError) as info:
        os.getxattr(listed / "many" / "f001", "security.selinux")
    assert info.value.errno == errno.ENOTSUP
    with pytest.raises(OSError) as info:
        os.getxattr(listed / "many" / "f001", "user.none")
    assert info.value.errno == errno.ENODATA


def test_mount_stat_shows_size_mtime_and_modes(emulator: EmulatorServer, mount: Mounter) -> None:
    before = time.time()
    emulator.put_object(BUCKET, "d/s.txt", b"12345")
    mp = mount(f"oss://{BUCKET}", "--file-mode", "440", "--dir-mode", "550", "--uid", "123")
    st = os.stat(mp / "d" / "s.txt")
    assert st.st_size == 5
    assert before - 2 <= st.st_mtime <= time.time() + 2
    assert st.st_mode & 0o7777 == 0o440 and st.st_uid == 123
    assert os.stat(mp / "d").st_mode & 0o7777 == 0o550
    assert os.stat(mp / "d").st_ino != st.st_ino


def test_mount_random_preads_match_source(emulator: EmulatorServer, mount: Mounter) -> None:
    data = _data(7, 3 * BLOCK + 777)
    emulator.put_object(BUCKET, "r.bin", data)
    mp = mount("oss://" + BUCKET, "--block-size", "64KiB", "--cache-size", "256KiB")
    rng = random.Random(3)
    fd = os.open(mp / "r.bin", os.O_RDONLY)
    try:
        for _ in range(300):
            off = rng.randrange(0, len(data) + 100)
            size = rng.choice([1, 100, 4096, 65536, 200_000])
            assert os.pread(fd, size, off) == data[off : off + size]
    finally:
        os.close(fd)


def test_mount_prefix_mount_shows_only_the_prefix(emulator: EmulatorServer, mount: Mounter) -> None:
    emulator.put_object(BUCKET, "data/2024/a.txt", b"a")
    emulator.put_object(BUCKET, "data/2024/x/b.txt", b"bb")
    emulator.put_object(BUCKET, "data/other.txt", b"no")
    mp = mount(f"oss://{BUCKET}/data/2024")
    assert sorted(os.listdir(mp)) == ["a.txt", "x"]
    assert (mp / "x" / "b.txt").read_bytes() == b"bb"


def test_mount_symlink_and_xattrs(emulator: EmulatorServer, mount: Mounter) -> None:
    emulator.put_object(
        BUCKET,
        "d/target.txt",
        b"target bytes",
        content_type="text/plain",
        user_meta={"owner": "me"},
    )
    emulator.put_symlink(BUCKET, "d/link", "d/target.txt")
    mp = mount()
    assert os.readlink(mp / "d" / "link") == "target.txt"
    assert (mp / "d" / "link").read_bytes() == b"target bytes"
    names = os.listxattr(mp / "d" / "target.txt")
    assert "user.oss.etag" in names and "user.oss.crc64ecma" in names
    assert os.getxattr(mp / "d" / "target.txt", "user.oss.meta.owner") == b"me"
    assert os.getxattr(mp / "d" / "target.txt", "user.oss.content_type") == b"text/plain"
    assert os.getxattr(mp / "d" / "target.txt", "user.oss.storage_class") == b"Standard"
    getfattr = shutil.which("getfattr")
    if getfattr:
        shown = subprocess.run(
            [getfattr, "-d", str(mp / "d" / "target.txt")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert 'user.oss.meta.owner="me"' in shown


def test_mount_errors_enoent_erofs(emulator: EmulatorServer, mount: Mounter) -> None:
    emulator.put_object(BUCKET, "f.txt", b"hello")
    mp = mount()
    with pytest.raises(FileNotFoundError):
        (mp / "missing.txt").read_bytes()
    for action in (
        lambda: (mp / "new.txt").write_bytes(b"x"),
        lambda: open(mp / "f.txt", "ab").close(),
        lambda: os.mkdir(mp / "dir"),
        lambda: os.unlink(mp / "f.txt"),
        lambda: (mp / "f.txt").rename(mp / "g.txt"),
        lambda: os.chmod(mp / "f.txt", 0o600),
        lambda: os.setxattr(mp / "f.txt", "user.x", b"1"),
    ):
        with pytest.raises(OSError) as info:
            action()
        assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM), info.value
    assert (mp / "f.txt").read_bytes() == b"hello"


def test_mount_archive_object_fails_eacces(emulator: EmulatorServer, mount: Mounter) -> None:
    emulator.put_object(BUCKET, "cold.bin", b"frozen", storage_class="Archive")
    mp = mount()
    assert os.stat(mp / "cold.bin").st_size == 6
    with pytest.raises(PermissionError):
        (mp / "cold.bin").read_bytes()


def test_mount_replaced_object_gives_estale_never_mixed(
    emulator: EmulatorServer, mount: Mounter
) -> None:
    old = _data(1, 4 * BLOCK)
    emulator.put_object(BUCKET, "v.bin", old)
    mp = mount()
    with open(mp / "v.bin", "rb", buffering=0) as f:
        assert f.read(4096) == old[:4096]
        emulator.put_object(BUCKET, "v.bin", _data(2, 4 * BLOCK))
        f.seek(3 * BLOCK)
        with pytest.raises(OSError) as info:
            f.read(4096)
        assert info.value.errno == errno.ESTALE


def test_mount_concurrent_readers_of_one_file(emulator: EmulatorServer, mount: Mounter) -> None:
    data = _data(9, 6 * BLOCK + 5)
    emulator.put_object(BUCKET, "shared.bin", data)
    mp = mount()
    results: list[bool] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        with open(mp / "shared.bin", "rb") as f:
            for _ in range(40):
                off = rng.randrange(len(data))
                f.seek(off)
                results.append(f.read(100_000) == data[off : off + 100_000])

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 8 * 40 and all(results)


def test_mount_umount_with_open_file_then_after_close(
    emulator: EmulatorServer, mount: Mounter
) -> None:
    emulator.put_object(BUCKET, "open.txt", b"still open")
    mp = mount()
    f = open(mp / "open.txt", "rb")  # noqa: SIM115 - kept open across the unmount attempt
    try:
        busy = _ossfs("umount", str(mp))
        if busy.returncode != 0:
            assert busy.returncode == 2 and "Traceback" not in busy.stderr
            assert is_mounted(mp)
    finally:
        f.close()
    if is_mounted(mp):
        assert _ossfs("umount", str(mp)).returncode == 0
    assert not is_mounted(mp)


def test_mount_fusermount_u_unmounts_and_daemon_exits(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.put_object(BUCKET, "a.txt", b"a")
    mp = tmp_path / "fm"
    mp.mkdir()
    result = _ossfs("mount", f"oss://{BUCKET}", str(mp), "--endpoint", emulator.endpoint)
    assert result.returncode == 0, result.stderr
    assert (mp / "a.txt").read_bytes() == b"a"
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    assert tool is not None, "fuse3 (fusermount3) is installed by scripts/setup.sh"
    subprocess.run([tool, "-u", str(mp)], check=True, timeout=30)
    assert not is_mounted(mp)
    wait_daemon_gone(mp)


def test_mount_foreground_sigterm_unmounts_cleanly(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    emulator.put_object(BUCKET, "a.txt", b"a")
    mp = tmp_path / "fg"
    mp.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ossfs",
            "mount",
            f"oss://{BUCKET}",
            str(mp),
            "-f",
            "--endpoint",
            emulator.endpoint,
        ],
        env=_env(),
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: is_mounted(mp), 30, "the foreground mount")
        assert (mp / "a.txt").read_bytes() == b"a"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not is_mounted(mp)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if is_mounted(mp):
            subprocess.run(["umount", "-l", str(mp)], check=False)


_OWN_LOG_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ossfs\.[\w.]+: "
)


def test_mount_foreground_stderr_has_only_ossfs_log_lines(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    # libfuse 3.14.0 printed "Ignoring invalid max threads value 4294967295 > max (100000)." on
    # every mount unless told max_idle_threads; a user should meet only ossfs's own words.
    emulator.put_object(BUCKET, "a.txt", b"a")
    mp = tmp_path / "fg"
    mp.mkdir()
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "ossfs", "mount", f"oss://{BUCKET}", str(mp)),
                *("-f", "--endpoint", emulator.endpoint),
            ],
            env=_env(),
            stderr=stderr,
        )
    try:
        wait_until(lambda: is_mounted(mp), 30, "the foreground mount", step_s=0.1)
        assert (mp / "a.txt").read_bytes() == b"a"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if is_mounted(mp):
            subprocess.run(["umount", "-l", str(mp)], check=False)
    lines = stderr_path.read_text(errors="replace").splitlines()
    assert any(f"on {mp}" in line for line in lines), lines  # it did log: stderr was read
    assert not [line for line in lines if "max threads" in line or not _OWN_LOG_LINE.match(line)]


@pytest.mark.parametrize(
    ("location", "env_key", "needle"),
    [
        ("oss://no-such-bucket", None, "not found"),
        (f"oss://{BUCKET}", "OSS_ACCESS_KEY_SECRET", "denied"),
    ],
)
def test_mount_startup_errors_are_reported_before_detaching(
    emulator: EmulatorServer, tmp_path: Path, location: str, env_key: str | None, needle: str
) -> None:
    mp = tmp_path / "m"
    mp.mkdir()
    env = _env()
    if env_key:
        env[env_key] = "wrong-secret"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ossfs",
            "mount",
            location,
            str(mp),
            "--endpoint",
            emulator.endpoint,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not is_mounted(mp)


def test_mount_unreachable_endpoint_is_reported(tmp_path: Path) -> None:
    mp = tmp_path / "m"
    mp.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ossfs",
            "mount",
            f"oss://{BUCKET}",
            str(mp),
            "--endpoint",
            "http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    assert result.returncode == 2
    assert "cannot reach" in result.stderr and "Traceback" not in result.stderr
    assert not is_mounted(mp)


def test_mount_tree_matches_local_copy_via_filecmp(
    emulator: EmulatorServer, mount: Mounter, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    for key, data in _put_tree(emulator).items():
        if key.endswith("/"):
            (src / key).mkdir(parents=True, exist_ok=True)
            continue
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)
    mp = mount()
    cmp = filecmp.dircmp(src, mp)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files


def test_demo_mounts_sample_and_cleans_up_on_ctrl_c(tmp_path: Path) -> None:
    mp = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ossfs", "demo", str(mp), "--large-size", "3MiB"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        poll_until(lambda: is_mounted(mp) or proc.poll() is not None, 60)
        assert is_mounted(mp), proc.poll()
        assert (mp / "README.txt").read_bytes().startswith(b"Welcome")
        assert (mp / "datasets" / "large.bin").stat().st_size == 3 << 20
        assert os.readlink(mp / "latest.log") == "logs/2025/12/day-10.log"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "nothing left behind" in out
        assert not is_mounted(mp) and not mp.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_mount_whole_file_crc_mismatch_fails_the_read(
    emulator: EmulatorServer, mount: Mounter, tmp_path: Path
) -> None:
    good, bad = _data(11, 3 * BLOCK + 99), _data(12, 2 * BLOCK + 7)
    emulator.put_object(BUCKET, "good.bin", good)
    emulator.put_object(BUCKET, "bad.bin", bad)
    # The server corrupts bad.bin's bytes on the wire but keeps its original CRC-64 header.
    emulator.faults.update(corrupt_keys=["bad.bin"])
    mp = mount()
    assert (mp / "good.bin").read_bytes() == good
    copy = subprocess.run(
        ["cp", str(mp / "bad.bin"), str(tmp_path / "bad.copy")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert copy.returncode != 0
    assert "Input/output error" in copy.stderr
    cat = subprocess.run(["cat", str(mp / "bad.bin")], capture_output=True, check=False)
    assert cat.returncode != 0


def test_mount_small_memory_budget_and_no_prefetch_read_exact_bytes(
    emulator: EmulatorServer, mount: Mounter
) -> None:
    data = _data(21, 9 * BLOCK + 17)
    emulator.put_object(BUCKET, "m.bin", data)
    tight = mount(f"oss://{BUCKET}", "--max-memory", "12MiB", "--cache-size", "4MiB")
    assert (tight / "m.bin").read_bytes() == data
    plain = mount(f"oss://{BUCKET}", "--no-prefetch", "--max-memory", "8MiB")
    settled_counts(emulator)
    emulator.log.clear()
    assert (plain / "m.bin").read_bytes() == data
    settled_counts(emulator)
    spans = []
    for entry in emulator.log.entries("GetObject"):
        assert entry.key == "m.bin" and entry.range is not None
        start, _, end = entry.range.removeprefix("bytes=").partition("-")
        spans.append(int(end) - int(start) + 1)
    # Without read-ahead every GET is one block (reads are block-aligned): no multi-block parts.
    assert spans and max(spans) <= BLOCK and sum(spans) == len(data)


def test_mount_silent_server_fails_eio_within_the_retry_budget(
    emulator: EmulatorServer, mount: Mounter
) -> None:
    emulator.put_object(BUCKET, "slow.bin", _data(31, 3 * BLOCK))
    mp = mount(f"oss://{BUCKET}", "--low-speed-time", "1", "--retry-budget", "2", "--retries", "3")
    os.stat(mp / "slow.bin")
    emulator.faults.update(latency_s=20.0)  # the server goes silent before each body
    started = time.monotonic()
    with pytest.raises(OSError) as info:
        (mp / "slow.bin").read_bytes()
    waited = time.monotonic() - started
    emulator.faults.update(latency_s=0.0)
    assert info.value.errno == errno.EIO
    # Never a hang: the budget (2 s) per kernel attempt, with slack.
    assert waited < 15, waited
    assert (mp / "slow.bin").read_bytes() == _data(31, 3 * BLOCK)  # and the mount still works


def test_mount_on_an_already_mounted_mountpoint_is_exit_2(
    emulator: EmulatorServer, mount: Mounter
) -> None:
    mp = mount()
    again = _ossfs("mount", f"oss://{BUCKET}", str(mp), "--endpoint", emulator.endpoint)
    assert again.returncode == 2
    assert "already a mount point" in again.stderr and "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_mount_endpoint_that_never_answers_is_exit_2_not_a_hang(tmp_path: Path) -> None:
    import socket

    mp = tmp_path / "m"
    mp.mkdir()
    with socket.socket() as silent:  # the kernel completes handshakes; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        result = _ossfs(
            "mount", f"oss://{BUCKET}", str(mp), "--endpoint", f"http://127.0.0.1:{port}",
            "--low-speed-time", "1", "--retry-budget", "2", "--retries", "2",
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "cannot reach" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not is_mounted(mp)


def test_mount_directory_walk_prefetches_small_files_one_get_each_and_no_head(
    emulator: EmulatorServer, mount: Mounter
) -> None:
    files = {f"walk/f{i:03d}": _data(100 + i, 100 * 1024 + i) for i in range(60)}
    for key, data in files.items():
        emulator.put_object(BUCKET, key, data)
    mp = mount()
    names = sorted(os.listdir(mp / "walk"))
    settled_counts(emulator)
    emulator.log.clear()
    for name in names:  # what cp -r, tar and grep -r do: whole files, in listing order
        assert (mp / "walk" / name).read_bytes() == files[f"walk/{name}"]
    counts = settled_counts(emulator)
    assert counts.get("GetObject", 0) == len(files)
    assert counts.get("HeadObject", 0) == 0
    assert sorted(str(e.key) for e in emulator.log.entries("GetObject")) == sorted(files)
    siblings = json.loads(os.getxattr(mp, STATS_XATTR))["sibling_prefetch"]
    assert siblings["files_prefetched"] > len(files) // 2
    assert siblings["files_used"] == siblings["files_prefetched"]
    assert siblings["files_wasted"] == 0 and siblings["files_failed"] == 0


def test_mount_no_prefetch_disables_directory_read_ahead(
    emulator: EmulatorServer, mount: Mounter
) -> None:
    for i in range(10):
        emulator.put_object(BUCKET, f"walk/f{i:03d}", _data(i, 1000))
    mp = mount(f"oss://{BUCKET}", "--no-prefetch")
    for name in sorted(os.listdir(mp / "walk")):
        (mp / "walk" / name).read_bytes()
    assert "sibling_prefetch" not in json.loads(os.getxattr(mp, STATS_XATTR))
