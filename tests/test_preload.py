"""Tests of ``ossfs preload``: the engine on a local tree (order, symlinks, overlaps, failures,
cancel), then the command on real mounts of the emulator (later reads cost no GET, JSON, exit
codes, progress only on a terminal, one fetch per block when a reader overlaps, bad inputs)."""

from __future__ import annotations

import argparse
import errno
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import oss2
import pytest

from ossfs.app.preload import Failure, FileEntry, Plan, Preloader, walk
from ossfs.app.preload_cli import configure_parser, run
from ossfs.core.errors import UsageError
from ossfs.emulator import EmulatorServer
from ossfs.emulator.faults import FaultSettings
from tests.support import BUCKET
from tests.support.mounts import (
    MIB,
    Mounts,
    daemon_pid,
    data_for,
    files_under,
    mounts_fixture,
    ossfs_env,
    run_ossfs,
    settled_counts,
    wait_daemon_gone,
)
from tests.support.waiting import wait_until


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ossfs preload")
    configure_parser(parser)
    return parser.parse_args(argv)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _preload(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ossfs", "preload", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=ossfs_env(),
        check=False,
    )


# -- the engine on a local tree -------------------------------------------------------------------


def _tree(root: Path) -> None:
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "b.txt").write_bytes(b"bb")
    (root / "d" / "a.txt").write_bytes(b"a")
    (root / "d" / "sub" / "c.txt").write_bytes(b"ccc")
    (root / "top.txt").write_bytes(b"t" * 10)


def test_walk_lists_each_directory_in_readdir_order_files_before_subdirectories(
    tmp_path: Path,
) -> None:
    _tree(tmp_path)
    plan = walk([tmp_path / "d"], jobs=3)
    names_in_d = [e.name for e in os.scandir(tmp_path / "d") if e.is_file()]
    expected = [tmp_path / "d" / n for n in names_in_d] + [tmp_path / "d" / "sub" / "c.txt"]
    assert [f.path for f in plan.files] == expected
    assert plan.total_bytes == 6
    assert plan.failures == ()


def test_walk_does_not_follow_symlinks_and_counts_them(tmp_path: Path) -> None:
    _tree(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    (tmp_path / "d" / "to_dir").symlink_to(outside)
    (tmp_path / "d" / "to_file").symlink_to(outside / "secret")
    plan = walk([tmp_path / "d"], jobs=2)
    assert all(outside not in f.path.parents for f in plan.files)
    assert plan.symlinks == 2


def test_walk_takes_a_file_once_when_paths_overlap(tmp_path: Path) -> None:
    _tree(tmp_path)
    d = tmp_path / "d"
    plan = walk([d / "a.txt", d, d / "sub", tmp_path], jobs=4)
    paths = [f.path for f in plan.files]
    assert len(paths) == len(set(paths)) == 4
    assert paths[0] == d / "a.txt"  # in the order the paths were given


def test_walk_reports_a_path_that_cannot_be_listed(tmp_path: Path) -> None:
    plan = walk([tmp_path / "gone"], jobs=1)
    assert plan.files == ()
    assert [(f.path, f.error.split(":")[0]) for f in plan.failures] == [
        (str(tmp_path / "gone"), "ENOENT")
    ]


def test_preloader_reads_every_byte_and_reports_vanished_files(tmp_path: Path) -> None:
    _tree(tmp_path)
    plan = walk([tmp_path], jobs=2)
    (tmp_path / "d" / "b.txt").unlink()  # removed after the walk listed it
    seen: list[tuple[FileEntry, Failure | None]] = []
    counted: list[int] = []
    lock = threading.Lock()

    def on_file(entry: FileEntry, failure: Failure | None) -> None:
        with lock:
            seen.append((entry, failure))

    report = Preloader(jobs=3, chunk_bytes=4).run(plan, on_file=on_file, on_bytes=counted.append)
    assert report.files_read == 3
    assert report.bytes_read == sum(counted) == 1 + 3 + 10
    assert [(f.path, f.error.split(":")[0]) for f in report.failures] == [
        (str(tmp_path / "d" / "b.txt"), "ENOENT")
    ]
    assert len(seen) == 4
    assert not report.all_read


def test_preloader_refuses_a_symlink_put_in_a_listed_file_s_place(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "f").symlink_to(tmp_path / "target")
    report = Preloader(jobs=1).run(Plan((FileEntry(tmp_path / "f", 1),)))
    assert report.files_read == 0
    assert report.failures[0].error.startswith("ELOOP")


def test_preloader_cancelled_stops_before_the_next_read(tmp_path: Path) -> None:
    data = tmp_path / "f"
    data.write_bytes(b"x" * 100)
    preloader = Preloader(jobs=1, chunk_bytes=10)
    counted: list[int] = []

    def cancel_after_first(n: int) -> None:
        counted.append(n)
        preloader.cancel()

    plan = Plan((FileEntry(data, 100), FileEntry(data, 100)))
    report = preloader.run(plan, on_bytes=cancel_after_first)
    assert counted == [10]
    assert (report.files_read, report.failures) == (0, ())


def test_preloader_on_ctrl_c_returns_the_report_so_far_marked_interrupted(tmp_path: Path) -> None:
    """KeyboardInterrupt while the calling thread waits: readers cancelled, report returned."""
    data = tmp_path / "f"
    data.write_bytes(b"x" * 100)
    reading = threading.Event()
    release = threading.Event()
    preloader = Preloader(jobs=1, chunk_bytes=10)

    def block(n: int) -> None:
        del n
        reading.set()
        release.wait(30)

    def interrupt_main() -> None:  # Ctrl-C: SIGINT to the main thread, which waits in run()
        reading.wait(30)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        release.set()

    threading.Thread(target=interrupt_main, daemon=True).start()
    report = preloader.run(Plan((FileEntry(data, 100),)), on_bytes=block)
    assert report.interrupted
    assert report.bytes_read == 10
    assert report.files_read == 0


# -- the command on real mounts -------------------------------------------------------------------


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    yield from mounts_fixture(tmp_path)


def _put_tree(bucket: oss2.Bucket) -> dict[str, bytes]:
    objects = {f"data/part{i % 3}/f{i:03d}": data_for(i, 1000 + 37 * i) for i in range(30)}
    objects["data/big.bin"] = data_for(99, 3 * MIB + 5)
    for key, body in objects.items():
        bucket.put_object(key, body)
    bucket.put_symlink("data/big.bin", "data/link")
    return objects


@pytest.mark.mount
def test_preload_then_reading_the_tree_costs_no_get(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts
) -> None:
    objects = _put_tree(oss_bucket)
    mp = mounts.mount(emulator.endpoint)
    result = _preload(str(mp / "data"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("31 of 31 files read")
    assert "1 symbolic link not followed" in result.stdout
    assert result.stderr == ""  # not a terminal: no progress line
    settled_counts(emulator)
    emulator.log.clear()
    expected = {k.removeprefix("data/"): v for k, v in objects.items()}
    expected["link"] = objects["data/big.bin"]  # read through the link: the same blocks
    assert files_under(mp / "data") == expected
    counts = settled_counts(emulator)
    assert counts.get("GetObject", 0) == 0, counts


@pytest.mark.mount
def test_preload_with_a_disk_cache_then_remount_reads_the_tree_with_no_get(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts, tmp_path: Path
) -> None:
    objects = _put_tree(oss_bucket)
    # A memory cache smaller than the tree: what survives is the disk cache's doing.
    args = ("--cache-dir", str(tmp_path / "cache"), "--cache-size", "2MiB")
    mp = mounts.mount(emulator.endpoint, *args)
    result = _preload(str(mp / "data"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no "outgrows the memory cache" warning: it has a disk cache
    assert run_ossfs("umount", str(mp)).returncode == 0
    wait_daemon_gone(mp)  # the daemon writes what it queued before it exits
    settled_counts(emulator)
    emulator.log.clear()

    mp = mounts.mount(emulator.endpoint, *args, mountpoint=mp)
    expected = {k.removeprefix("data/"): v for k, v in objects.items()}
    expected["link"] = objects["data/big.bin"]
    assert files_under(mp / "data") == expected
    counts = settled_counts(emulator)
    assert counts.get("GetObject", 0) == 0, counts


@pytest.mark.mount
def test_preload_json_document(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts
) -> None:
    objects = _put_tree(oss_bucket)
    mp = mounts.mount(emulator.endpoint)
    result = _preload("--json", "-j", "3", str(mp / "data" / "part1"), str(mp / "data/big.bin"))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    part1 = {k: v for k, v in objects.items() if k.startswith("data/part1/")}
    expected_bytes = sum(map(len, part1.values())) + len(objects["data/big.bin"])
    assert doc["paths"] == [str(mp / "data" / "part1"), str(mp / "data" / "big.bin")]
    assert (doc["files"], doc["files_read"]) == (len(part1) + 1, len(part1) + 1)
    assert doc["bytes"] == doc["bytes_read"] == expected_bytes
    assert (doc["failed"], doc["failures"], doc["interrupted"]) == (0, [], False)
    assert (doc["symlinks_skipped"], doc["other_filesystems_skipped"]) == (0, 0)
    assert doc["warnings"] == []
    assert isinstance(doc["seconds"], float | int)
    assert result.stderr == ""


@pytest.mark.mount
def test_preload_a_file_deleted_since_listing_fails_with_its_reason_exit_1(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts
) -> None:
    _put_tree(oss_bucket)
    mp = mounts.mount(emulator.endpoint)
    # The mount's listings now have f001 and f002; then they go from the bucket.
    assert "f001" in os.listdir(mp / "data" / "part1")
    assert "f002" in os.listdir(mp / "data" / "part2")
    oss_bucket.delete_object("data/part1/f001")
    oss_bucket.delete_object("data/part2/f002")
    result = _preload("--json", str(mp / "data" / "part1"), str(mp / "data" / "part0"))
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["failed"] == 1
    assert doc["failures"][0]["path"] == str(mp / "data" / "part1" / "f001")
    assert doc["failures"][0]["error"].startswith("ENOENT")
    assert doc["files_read"] == doc["files"] - 1 == 19
    human = _preload(str(mp / "data" / "part2"))
    assert human.returncode == 1
    assert f"FAILED {mp / 'data' / 'part2' / 'f002'}: ENOENT" in human.stdout
    assert human.stdout.splitlines()[-1].startswith("9 of 10 files read")
    assert human.stdout.splitlines()[-1].endswith(", 1 failed")


@pytest.mark.mount
def test_preload_names_the_storage_class_of_an_archived_object(
    emulator: EmulatorServer, mounts: Mounts
) -> None:
    emulator.put_object(BUCKET, "cold/a.bin", b"frozen", storage_class="Archive")
    emulator.put_object(BUCKET, "cold/b.bin", b"warm")
    mp = mounts.mount(emulator.endpoint)
    result = _preload("--json", str(mp / "cold"))
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["files_read"] == 1
    assert doc["failures"] == [
        {
            "path": str(mp / "cold" / "a.bin"),
            "error": "EACCES: Permission denied "
            "(storage class Archive: restore the object in OSS first)",
        }
    ]


@pytest.mark.mount
def test_preload_progress_only_on_a_terminal(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts
) -> None:
    _put_tree(oss_bucket)
    mp = mounts.mount(emulator.endpoint)
    out, tty = io.StringIO(), _Tty()
    assert run(_args(str(mp / "data")), stdout=out, stderr=tty) == 0
    assert "\r\x1b[K" in tty.getvalue()
    assert "/31 files" in tty.getvalue()  # drawn at most every 0.2 s: the first draw at least
    assert tty.getvalue().endswith("\r\x1b[K")  # the status line is erased at the end
    assert out.getvalue().startswith("31 of 31 files read")
    out, plain = io.StringIO(), io.StringIO()
    assert run(_args(str(mp / "data")), stdout=out, stderr=plain) == 0
    assert plain.getvalue() == ""


@pytest.mark.mount
def test_preload_and_a_reader_of_the_same_file_fetch_each_block_once(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts
) -> None:
    """A reader that starts while preload is reading the file joins its fetches (single flight
    in the block cache): the server sends each byte once."""
    size = 12 * MIB
    body = data_for(7, size)
    oss_bucket.put_object("big.bin", body)
    mp = mounts.mount(emulator.endpoint)
    os.listdir(mp)
    settled_counts(emulator)
    emulator.log.clear()
    emulator.faults.set(FaultSettings(bandwidth_bytes_per_s=4 * MIB))  # about 3 s for the file
    preload = subprocess.Popen(
        [sys.executable, "-m", "ossfs", "preload", str(mp / "big.bin")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ossfs_env(),
    )
    try:
        wait_until(lambda: bool(emulator.log.counts().get("GetObject")), 60, "preload's first GET")
        # The overlap this test is about: preload has not finished when the reader starts.
        assert preload.poll() is None
        assert (mp / "big.bin").read_bytes() == body
        out, err = preload.communicate(timeout=120)
    finally:
        if preload.poll() is None:
            preload.kill()
            preload.wait()
    assert preload.returncode == 0, err
    assert out.startswith("1 of 1 file read")
    settled_counts(emulator)
    gets = emulator.log.entries("GetObject")
    assert sum(e.bytes for e in gets) == size, [(e.range, e.bytes) for e in gets]


@pytest.mark.mount
def test_preload_bad_inputs_exit_2_with_one_line(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts, tmp_path: Path
) -> None:
    _put_tree(oss_bucket)
    # A symlink of the bucket to a key outside the mounted prefix leads out of the mount.
    oss_bucket.put_symlink("elsewhere/dir", "data/out")
    mp = mounts.mount(emulator.endpoint, location=f"oss://{BUCKET}/data")
    outside = tmp_path / "elsewhere" / "dir"
    outside.mkdir(parents=True)
    (outside / "local.txt").write_bytes(b"not in the bucket")
    assert "out" in os.listdir(mp)
    assert os.readlink(mp / "out") == "../elsewhere/dir"
    assert (mp / "out").resolve() == outside
    cases = [
        ((str(mp / "nope"),), f"{mp / 'nope'}: no such file or directory"),
        ((str(outside),), f"{outside} is not inside an ossfs mount"),
        ((str(mp / "out"),), f"{mp / 'out'} is not inside an ossfs mount"),
        ((str(mp), str(outside)), f"{outside} is not inside an ossfs mount"),
        (("--jobs", "0", str(mp)), "invalid --jobs 0: use 1 to 256"),
        (("--jobs", "x", str(mp)), "argument -j/--jobs: invalid int value: 'x'"),
        ((), "the following arguments are required: PATH"),
    ]
    for argv, message in cases:
        result = _preload(*argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (argv, result.stderr)
        assert message in lines[0], (argv, lines[0])
    # Walking the mount does not follow the link out of it.
    doc = json.loads(_preload("--json", str(mp)).stdout)
    assert doc["symlinks_skipped"] == 2  # "out" and "link"
    assert all(not path.startswith(str(tmp_path / "elsewhere")) for path in doc["paths"])
    assert doc["files"] == 31


@pytest.mark.mount
def test_preload_warns_when_the_files_outgrow_the_memory_cache(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts
) -> None:
    _put_tree(oss_bucket)  # 3 MiB and some
    mp = mounts.mount(emulator.endpoint, "--cache-size", "2MiB")
    result = _preload(str(mp / "data"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(
        f"ossfs preload: warning: 3.0 MiB to preload on {mp} is more than its memory cache "
        "(2.0 MiB) and it has no disk cache"
    )
    doc = json.loads(_preload("--json", str(mp / "data")).stdout)
    assert len(doc["warnings"]) == 1
    assert "--cache-dir" in doc["warnings"][0]
    assert _preload(str(mp / "data" / "part0")).stderr == ""  # a part that fits: no warning


@pytest.mark.mount
def test_preload_ctrl_c_exits_130_with_the_summary_so_far(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts
) -> None:
    oss_bucket.put_object("slow.bin", data_for(3, 16 * MIB))
    mp = mounts.mount(emulator.endpoint)
    os.listdir(mp)
    settled_counts(emulator)
    emulator.log.clear()
    emulator.faults.set(FaultSettings(bandwidth_bytes_per_s=MIB))  # 16 s for the file
    for argv in ((), ("--json",)):
        emulator.log.clear()
        preload = subprocess.Popen(
            [sys.executable, "-m", "ossfs", "preload", *argv, str(mp / "slow.bin")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ossfs_env(),
        )
        try:
            wait_until(
                lambda: bool(emulator.log.counts().get("GetObject")), 60, "preload's first GET"
            )
            preload.send_signal(signal.SIGINT)
            out, err = preload.communicate(timeout=60)
        finally:
            if preload.poll() is None:
                preload.kill()
                preload.wait()
        assert preload.returncode == 130, err
        assert "Traceback" not in err
        if argv:
            doc = json.loads(out)
            assert doc["interrupted"] is True
            assert (doc["files"], doc["files_read"], doc["failed"]) == (1, 0, 0)
            assert 0 <= doc["bytes_read"] < 16 * MIB
        else:
            assert out.startswith("interrupted: 0 of 1 file read, "), out
        # A file stopped half way may have been cached in part; the mount still serves it whole.
    emulator.faults.clear()
    assert (mp / "slow.bin").read_bytes() == data_for(3, 16 * MIB)


@pytest.mark.mount
def test_preload_on_a_dead_mount_exits_2_with_one_line(
    emulator: EmulatorServer, oss_bucket: oss2.Bucket, mounts: Mounts
) -> None:
    _put_tree(oss_bucket)
    mp = mounts.mount(emulator.endpoint)
    pid = daemon_pid(mp)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 15, "the killed daemon to be gone")
    with pytest.raises(OSError) as info:
        os.listdir(mp)
    assert info.value.errno == errno.ENOTCONN
    result = _preload(str(mp / "data"))
    assert result.returncode == 2
    assert result.stderr == (
        f"ossfs preload: error: {mp} is a dead mount (its daemon is gone): "
        f"run 'ossfs umount {mp}'\n"
    )


def test_run_refuses_a_path_outside_any_ossfs_mount(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not inside an ossfs mount"):
        run(_args(str(tmp_path)), stdout=io.StringIO(), stderr=io.StringIO())
