"""Tests of ``ossfs verify``: `run` on fakes (output, JSON, usage errors, progress), then the
real command in a subprocess against the emulator (faults included)."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ossfs.app.progress import Progress, format_duration
from ossfs.app.verify_cli import configure_parser, format_result, run
from ossfs.core.crc64 import crc64
from ossfs.core.errors import NotFoundError, UsageError
from ossfs.core.object_store import ListPage, ObjectStore
from ossfs.emulator import EmulatorServer
from ossfs.store.config import OssConfig
from ossfs.verify.model import ObjectResult, Status
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.support.fakes import FakeStore
from tests.support.faulty_store import FaultyStore

ENV = {
    "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
    "OSS_ENDPOINT": "http://127.0.0.1:1",
}
COMMAND = (sys.executable, "-m", "ossfs", "verify")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ossfs verify")
    configure_parser(parser)
    return parser.parse_args(argv)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(store: ObjectStore, *argv: str, stderr: io.StringIO | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), stderr if stderr is not None else io.StringIO()
    configs: list[OssConfig] = []

    def factory(config: OssConfig) -> ObjectStore:
        configs.append(config)
        return store

    code = run(_args(*argv), env=ENV, store_factory=factory, stdout=out, stderr=err)
    assert configs[0].bucket == "bkt"
    return code, out.getvalue(), err.getvalue()


# -- run() on fakes -----------------------------------------------------------------------------


def test_run_all_ok_prints_one_line_per_object_and_summary() -> None:
    store = FakeStore()
    store.put("p/a", b"aaa")
    store.put("p/sub/b c", b"bb")
    store.put("p/sub/", b"")
    code, out, err = _run(store, "oss://bkt/p")
    lines = out.splitlines()
    assert code == 0
    assert sorted(lines[:2]) == [
        'OK                   2 "p/sub/b c"',
        "OK                   3 p/a",
    ]
    assert lines[2].startswith("2 objects, 5 B in ")
    assert lines[2].endswith(": 2 OK, 0 MISMATCH, 0 NO-CRC, 0 ERROR")
    assert len(lines) == 3
    assert err == ""


def corrupting(inner: FakeStore, key: str) -> FaultyStore:
    """``inner`` with the first byte of every stream of ``key`` flipped (metadata intact)."""
    store = FaultyStore(inner)
    store.corrupt("stream", piece=1, offset=0, key=key, times=None)
    return store


def test_run_mismatch_exits_1_and_shows_both_crcs() -> None:
    inner = FakeStore()
    inner.put("p/good", b"g" * 10)
    inner.put("p/bad", b"b" * 10)
    code, out, _ = _run(corrupting(inner, "p/bad"), "oss://bkt/p/", "--jobs", "1")
    assert code == 1
    expected, computed = crc64(b"b" * 10), crc64(bytes([ord("b") ^ 0xFF]) + b"b" * 9)
    assert f"MISMATCH            10 p/bad  expected crc64 {expected}  computed {computed}" in out
    assert "OK                  10 p/good" in out


def test_run_json_prints_only_the_document() -> None:
    inner = FakeStore()
    inner.put("good", b"g" * 10)
    inner.put("bad", b"b" * 10)
    code, out, _ = _run(corrupting(inner, "bad"), "--json", "oss://bkt", "good", "bad", "missing")
    doc = json.loads(out)
    assert code == 1
    assert doc["location"] == "oss://bkt/"
    assert [o["key"] for o in doc["objects"]] == ["good", "bad", "missing"]
    good, bad, missing = doc["objects"]
    assert good == {
        "key": "good",
        "size": 10,
        "status": "OK",
        "expected_crc64": str(crc64(b"g" * 10)),
        "computed_crc64": str(crc64(b"g" * 10)),
        "error": None,
    }
    assert bad["status"] == "MISMATCH"
    assert bad["expected_crc64"] != bad["computed_crc64"]
    assert missing["status"] == "ERROR"
    assert "missing" in missing["error"]
    summary = doc["summary"]
    assert set(summary) == {"objects", "bytes", "seconds", "ok", "mismatch", "no_crc", "error"}
    assert (summary["objects"], summary["bytes"], summary["ok"]) == (3, 20, 1)
    assert (summary["mismatch"], summary["no_crc"], summary["error"]) == (1, 0, 1)


def test_run_progress_only_on_a_terminal() -> None:
    store = FakeStore()
    store.put("a", b"x" * 5000)
    tty = _Tty()
    code, out, err = _run(store, "oss://bkt", stderr=tty)
    assert code == 0
    assert "\r\x1b[K" in err
    assert "1/1 objects" in err
    assert err.endswith("\r\x1b[K")  # the status line is erased at the end
    assert "OK                5000 a" in out
    _, _, plain_err = _run(store, "oss://bkt")
    assert plain_err == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("s3://bkt",), "expected oss://BUCKET"),
        (("oss://B_ad",), "invalid bucket name"),
        (("oss://bkt/empty/",), "no objects under oss://bkt/empty/"),
        (("oss://bkt", "--jobs", "0"), "invalid --jobs 0"),
        (("oss://bkt", "--streams", "0"), "invalid --streams 0"),
        (("oss://bkt", "--part-size", "64KiB"), "invalid --part-size 64KiB: use 1MiB to 1GiB"),
        (("oss://bkt", "--part-size", "lots"), "invalid --part-size 'lots'"),
        (("oss://bkt", "dir/"), "ends with '/'"),
        (("oss://bkt", ""), "empty KEY"),
        (("oss://bkt", "--through", "/nonexistent-dir"), "not a directory"),
    ],
)
def test_run_usage_errors(argv: Sequence[str], message: str) -> None:
    store = FakeStore()
    store.put("a", b"a")
    with pytest.raises(UsageError, match=message):
        _run(store, *argv)


def test_run_through_a_directory_that_is_not_mounted_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a mount point"):
        _run(FakeStore(), "oss://bkt", "--through", str(tmp_path))


def test_run_missing_credentials_is_usage_error() -> None:
    with pytest.raises(UsageError, match="OSS_ACCESS_KEY_SECRET"):
        run(_args("oss://bkt"), env={"OSS_ACCESS_KEY_ID": "x", "OSS_ENDPOINT": "http://h"})


def test_run_unknown_bucket_is_usage_error() -> None:
    class NoBucketStore(FakeStore):
        def list_page(
            self,
            prefix: str,
            *,
            delimiter: str = "/",
            token: str | None = None,
            max_keys: int = 1000,
        ) -> ListPage:
            raise NotFoundError("bucket 'bkt' does not exist")

    with pytest.raises(UsageError, match="cannot list oss://bkt/: bucket 'bkt' does not exist"):
        _run(NoBucketStore(), "oss://bkt")


def test_format_result_quotes_odd_keys_and_explains_errors() -> None:
    assert format_result(ObjectResult("a\tb", 1, Status.OK)) == 'OK                   1 "a\\tb"'
    assert (
        format_result(ObjectResult("k", 0, Status.ERROR, error="NotFoundError: k"))
        == "ERROR                0 k  NotFoundError: k"
    )
    line = format_result(
        ObjectResult("k", 9, Status.MISMATCH, 1, 2, "read 8 bytes, but the object has 9")
    )
    assert line.endswith("expected crc64 1  computed 2  (read 8 bytes, but the object has 9)")


def test_progress_line_shows_bytes_rate_eta_and_objects() -> None:
    now = [100.0]
    out = io.StringIO()
    progress = Progress(out, total_bytes=4 << 20, total_objects=2, clock=lambda: now[0])
    now[0] = 102.0
    progress.add_bytes(1 << 20)
    progress.object_done()
    assert progress.line() == "1.0 MiB / 4.0 MiB (25%)  512.0 KiB/s  ETA 6s  1/2 objects"
    final = io.StringIO()
    progress.print_above("OK a", final)
    assert final.getvalue() == "OK a\n"
    progress.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_format_duration() -> None:
    assert format_duration(5.4) == "5s"
    assert format_duration(75) == "1m15s"
    assert format_duration(7260) == "2h01m"
    assert format_duration(float("inf")) == "?"


# -- the real command against the emulator ------------------------------------------------------


def _cli(
    server: EmulatorServer, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.pop("OSS_ENDPOINT", None)
    full_env.update(
        env
        if env is not None
        else {"OSS_ACCESS_KEY_ID": ACCESS_KEY_ID, "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET}
    )
    return subprocess.run(
        [*COMMAND, "--endpoint", server.endpoint, *argv],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _put_many(server: EmulatorServer, prefix: str, count: int, size: int) -> dict[str, bytes]:
    objects = {f"{prefix}obj-{i:03d}.bin": os.urandom(size + i) for i in range(count)}
    for key, data in objects.items():
        server.put_object(BUCKET, key, data)
    return objects


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout


def test_cli_all_good_prefix_exits_0(emulator: EmulatorServer) -> None:
    _put_many(emulator, "data/", 12, 70_000)
    emulator.put_object(BUCKET, "data/", b"")
    emulator.put_object(BUCKET, "data/empty", b"")
    emulator.put_object(BUCKET, "data/odd dir/ü ñ+%&?=#.txt", b"odd" * 1000)
    emulator.put_object(BUCKET, "elsewhere", b"not verified")
    result = _cli(emulator, f"oss://{BUCKET}/data")
    _no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 15
    assert all(line.startswith("OK ") for line in lines[:-1])
    assert '"data/odd dir/ü ñ+%&?=#.txt"' in result.stdout
    assert "elsewhere" not in result.stdout
    assert lines[-1].endswith("14 OK, 0 MISMATCH, 0 NO-CRC, 0 ERROR")


def test_cli_one_corrupt_object_exits_1_naming_it(emulator: EmulatorServer) -> None:
    objects = _put_many(emulator, "c/", 8, 300_000)
    bad = "c/obj-005.bin"
    emulator.faults.update(corrupt_keys=[bad])
    result = _cli(emulator, f"oss://{BUCKET}/c/", "--jobs", "3")
    _no_traceback(result)
    assert result.returncode == 1
    (mismatch,) = [line for line in result.stdout.splitlines() if line.startswith("MISMATCH")]
    assert bad in mismatch
    assert f"expected crc64 {crc64(objects[bad])}  computed " in mismatch
    assert mismatch.split()[-1] != str(crc64(objects[bad]))
    assert result.stdout.count("\nOK ") + result.stdout.startswith("OK ") == 7
    assert "7 OK, 1 MISMATCH, 0 NO-CRC, 0 ERROR" in result.stdout


def test_cli_multi_part_object_is_read_in_pinned_ranges(emulator: EmulatorServer) -> None:
    """A 5.5 MiB object with 1 MiB parts: one HEAD, six ranged GETs, OK; corrupted: MISMATCH."""
    data = os.urandom((5 << 20) + (1 << 19))
    emulator.put_object(BUCKET, "parts/big.bin", data)
    emulator.put_object(BUCKET, "parts/small.bin", b"small")
    argv = ("--json", "--debug", "--part-size", "1MiB", "--streams", "3", f"oss://{BUCKET}/parts/")
    result = _cli(emulator, *argv)
    _no_traceback(result)
    doc = json.loads(result.stdout)
    big, small = doc["objects"]
    assert result.returncode == 0, result.stderr
    assert big == {
        "key": "parts/big.bin",
        "size": len(data),
        "status": "OK",
        "expected_crc64": str(crc64(data)),
        "computed_crc64": str(crc64(data)),
        "error": None,
    }
    assert small["status"] == "OK"
    gets = sorted(
        line.split("range=")[1].split()[0]
        for line in result.stderr.splitlines()
        if "get 'parts/big.bin' range=" in line
    )
    mib = 1 << 20
    assert gets == sorted(f"{s}-{min(s + mib, len(data))}" for s in range(0, len(data), mib))
    assert result.stderr.count("head 'parts/big.bin'") == 1  # each request logged once
    assert "get 'parts/small.bin' range=0-" in result.stderr  # one stream, no HEAD
    assert "head 'parts/small.bin'" not in result.stderr

    emulator.faults.update(corrupt_keys=["parts/big.bin"])
    result = _cli(emulator, *argv)
    _no_traceback(result)
    big, _ = json.loads(result.stdout)["objects"]
    assert result.returncode == 1
    assert big["status"] == "MISMATCH" and big["expected_crc64"] == str(crc64(data))
    assert big["computed_crc64"] != big["expected_crc64"]


def test_cli_transient_faults_do_not_become_mismatches(emulator: EmulatorServer) -> None:
    _put_many(emulator, "flaky/", 20, 2 << 20)
    emulator.faults.update(
        error_rate=0.2, reset_rate=0.25, truncate_rate=0.25, key_prefix="flaky/", seed=11
    )
    result = _cli(emulator, "--jobs", "4", "--json", "--verbose", f"oss://{BUCKET}/flaky/")
    _no_traceback(result)
    doc = json.loads(result.stdout)
    assert [o["status"] for o in doc["objects"]] == ["OK"] * 20, doc["objects"]
    assert doc["summary"]["bytes"] == sum((2 << 20) + i for i in range(20))
    assert result.returncode == 0
    assert "body broke" in result.stderr or "body ended" in result.stderr  # faults did happen


def test_cli_json_schema_with_keys_missing_and_archived(emulator: EmulatorServer) -> None:
    emulator.put_object(BUCKET, "j/a", b"alpha")
    emulator.put_object(BUCKET, "j/cold", b"frozen", storage_class="Archive")
    result = _cli(emulator, "--json", "--jobs", "2", f"oss://{BUCKET}/j", "a", "nope", "cold")
    _no_traceback(result)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["location"] == f"oss://{BUCKET}/j/"
    a, nope, cold = doc["objects"]
    assert a == {
        "key": "j/a",
        "size": 5,
        "status": "OK",
        "expected_crc64": str(crc64(b"alpha")),
        "computed_crc64": str(crc64(b"alpha")),
        "error": None,
    }
    assert (nope["key"], nope["status"]) == ("j/nope", "ERROR")
    assert "NoSuchKey" in nope["error"] or "not found" in nope["error"]
    assert cold["status"] == "ERROR"
    assert "Archive" in cold["error"] and "restore" in cold["error"]
    assert doc["summary"]["ok"] == 1 and doc["summary"]["error"] == 2


def test_cli_keys_may_come_before_and_after_options(emulator: EmulatorServer) -> None:
    emulator.put_object(BUCKET, "m/a", b"alpha")
    emulator.put_object(BUCKET, "m/b", b"beta")
    result = _cli(emulator, f"oss://{BUCKET}/m", "a", "--json", "b", "--jobs", "1")
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert [o["key"] for o in json.loads(result.stdout)["objects"]] == ["m/a", "m/b"]
    bad = _cli(emulator, f"oss://{BUCKET}/m", "a", "--no-such-flag", "b")
    _no_traceback(bad)
    assert bad.returncode == 2 and "unrecognized arguments: --no-such-flag" in bad.stderr


@pytest.mark.parametrize(
    ("location", "env", "message"),
    [
        (f"oss://{BUCKET}/nothing-here/", None, "no objects under"),
        ("oss://no-such-bucket", None, "does not exist"),
        (f"oss://{BUCKET}", {"OSS_ACCESS_KEY_ID": "only-the-id"}, "OSS_ACCESS_KEY_SECRET"),
        (
            f"oss://{BUCKET}",
            {"OSS_ACCESS_KEY_ID": ACCESS_KEY_ID, "OSS_ACCESS_KEY_SECRET": "wrong"},
            "access denied",
        ),
        ("oss:/bad", None, "expected oss://BUCKET"),
    ],
)
def test_cli_configuration_errors_exit_2_with_one_line(
    emulator: EmulatorServer, location: str, env: dict[str, str] | None, message: str
) -> None:
    emulator.put_object(BUCKET, "x", b"x")
    result = _cli(emulator, location, env=env)
    _no_traceback(result)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("ossfs verify: error: ")
    assert message in result.stderr


# -- through a real mount -----------------------------------------------------------------------


@pytest.fixture
def mounted(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Path]:
    """``oss://BUCKET/m/`` mounted (daemonized) by ``ossfs mount``; unmounted afterwards."""
    from ossfs.app.umount import is_mounted

    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    env = {
        **os.environ,
        "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
    }
    env.pop("OSS_ENDPOINT", None)

    def ossfs(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ossfs", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = ossfs("mount", f"oss://{BUCKET}/m", str(mountpoint), "--endpoint", emulator.endpoint)
    assert result.returncode == 0, result.stderr
    try:
        yield mountpoint
    finally:
        if is_mounted(mountpoint):
            assert ossfs("umount", str(mountpoint)).returncode == 0


@pytest.mark.mount
@pytest.mark.parametrize(
    "extra",
    [(), ("--part-size", "1MiB", "--streams", "3")],
    ids=["one-pass", "segments"],
)
def test_cli_through_mount_checks_the_mount_data_path(
    emulator: EmulatorServer, mounted: Path, extra: tuple[str, ...]
) -> None:
    objects = {
        "m/empty": b"",
        "m/small.txt": b"hello through the mount\n",
        "m/dir/odd name +%&.bin": os.urandom(100_000),
        "m/dir/big.bin": os.urandom((5 << 20) + 12345),
        "m/dir/corrupt.bin": os.urandom((3 << 20) + 1),
    }
    for key, data in objects.items():
        emulator.put_object(BUCKET, key, data)
    emulator.put_object(BUCKET, "m/dir/", b"")
    # Corrupted bytes on the wire (before the mount ever read them) must not come out as OK.
    bad = "m/dir/corrupt.bin"
    emulator.faults.update(corrupt_keys=[bad])
    result = _cli(emulator, "--json", *extra, "--through", str(mounted), f"oss://{BUCKET}/m")
    _no_traceback(result)
    doc = json.loads(result.stdout)
    by_key = {o["key"]: o for o in doc["objects"]}
    assert set(by_key) == set(objects)
    entry = by_key.pop(bad)
    assert entry["status"] in ("MISMATCH", "ERROR"), entry
    assert entry["expected_crc64"] == str(crc64(objects[bad]))
    for key, got in by_key.items():
        assert got["status"] == "OK", got
        assert got["computed_crc64"] == str(crc64(objects[key]))
    assert result.returncode == 1


@pytest.mark.mount
def test_cli_through_a_bucket_root_mount_verifies_a_sub_prefix(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    from ossfs.app.umount import is_mounted

    emulator.put_object(BUCKET, "sub/a.bin", os.urandom(70_000))
    emulator.put_object(BUCKET, "other.txt", b"not verified")
    mountpoint = tmp_path / "root"
    mountpoint.mkdir()
    env = {
        **os.environ,
        "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
    }
    base = [sys.executable, "-m", "ossfs"]
    mount = [*base, "mount", f"oss://{BUCKET}", str(mountpoint), "--endpoint", emulator.endpoint]
    subprocess.run(mount, env=env, check=True, timeout=60)
    try:
        assert os.getxattr(mountpoint, "user.ossfs.prefix") == b""
        result = _cli(emulator, "--json", "--through", str(mountpoint), f"oss://{BUCKET}/sub")
        _no_traceback(result)
        doc = json.loads(result.stdout)
        assert [(o["key"], o["status"]) for o in doc["objects"]] == [("sub/a.bin", "OK")]
        assert result.returncode == 0
    finally:
        if is_mounted(mountpoint):
            subprocess.run([*base, "umount", str(mountpoint)], env=env, check=True, timeout=60)
