"""Fault injection, the admin API, the S3 dialect, restarts and the CLI."""

from __future__ import annotations

import http.client
import os
import socket
import struct
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import oss2
import pytest
import requests

from ossfs.core.crc64 import crc64
from ossfs.emulator import Credential, EmulatorConfig, EmulatorServer, Faults, FaultSettings
from ossfs.emulator.faults import NO_FAULTS, FaultPlan
from ossfs.emulator.httpbase import stream_piece_bytes
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, settled_entries
from tests.support.waiting import wait_until

DATA = os.urandom(300_000)


def test_faults_error_rate_gives_5xx(oss_bucket: oss2.Bucket, emulator: EmulatorServer) -> None:
    emulator.put_object(BUCKET, "k", b"x")
    emulator.faults.update(error_rate=1.0, seed=1)
    statuses = set()
    for _ in range(20):
        with pytest.raises(oss2.exceptions.ServerError) as info:
            oss_bucket.head_object("k")
        statuses.add((info.value.status, info.value.code))
    assert statuses == {(503, "SlowDown"), (500, "InternalError")}
    assert emulator.log.fault_counts()["error"] == 20
    emulator.faults.clear()
    assert oss_bucket.get_object("k").read() == b"x"


def test_faults_key_prefix_filter(oss_bucket: oss2.Bucket, emulator: EmulatorServer) -> None:
    emulator.put_object(BUCKET, "hit/k", b"x")
    emulator.put_object(BUCKET, "miss/k", b"y")
    emulator.faults.update(error_rate=1.0, key_prefix="hit/")
    assert oss_bucket.get_object("miss/k").read() == b"y"
    with pytest.raises(oss2.exceptions.ServerError):
        oss_bucket.get_object("hit/k")


@pytest.mark.parametrize("kind", ["truncate_rate", "reset_rate"])
def test_faults_cut_body_raises_in_requests(
    oss_bucket: oss2.Bucket, emulator: EmulatorServer, kind: str
) -> None:
    emulator.put_object(BUCKET, "big", DATA)
    emulator.faults.update(**{kind: 1.0})
    got = oss_bucket.get_object("big")
    assert got.headers["Content-Length"] == str(len(DATA))
    with pytest.raises(requests.RequestException):
        got.read()
    assert emulator.log.fault_counts()[kind.removesuffix("_rate")] == 1
    emulator.faults.clear()
    assert oss_bucket.get_object("big").read() == DATA


def test_faults_corrupt_keeps_original_crc_header(
    oss_bucket: oss2.Bucket, emulator: EmulatorServer
) -> None:
    emulator.put_object(BUCKET, "c", DATA)
    emulator.faults.update(corrupt_keys=["c"])
    got = oss_bucket.get_object("c")
    body = got.read()
    assert len(body) == len(DATA) and body != DATA
    assert sum(a != b for a, b in zip(body, DATA, strict=True)) == 1
    assert got.headers["x-oss-hash-crc64ecma"] == str(crc64(DATA))
    assert crc64(body) != crc64(DATA)


def test_faults_latency_and_bandwidth_are_recorded(
    oss_bucket: oss2.Bucket, emulator: EmulatorServer
) -> None:
    emulator.put_object(BUCKET, "k", DATA)
    emulator.faults.set(FaultSettings(latency_s=0.01, bandwidth_bytes_per_s=50_000_000))
    assert oss_bucket.get_object("k").read() == DATA
    assert emulator.log.fault_counts() == {"latency": 1, "bandwidth": 1}


def test_faults_latency_delays_every_request(
    oss_bucket: oss2.Bucket, emulator: EmulatorServer
) -> None:
    """A remote link delays HEAD, LIST and the bucket probe as much as a GET."""
    emulator.put_object(BUCKET, "dir/k", b"x")
    emulator.faults.set(FaultSettings(latency_s=0.001))
    oss_bucket.head_object("dir/k")
    oss_bucket.list_objects_v2(prefix="dir/", delimiter="/")
    oss_bucket.get_bucket_info()
    oss_bucket.get_object_meta("dir/k")
    assert oss_bucket.get_object("dir/k").read() == b"x"
    settled_entries(emulator, 5)
    assert emulator.log.fault_counts() == {"latency": 5}


def test_faults_latency_follows_the_key_prefix(
    oss_bucket: oss2.Bucket, emulator: EmulatorServer
) -> None:
    emulator.put_object(BUCKET, "slow/k", b"x")
    emulator.put_object(BUCKET, "fast/k", b"y")
    emulator.faults.set(FaultSettings(latency_s=0.001, key_prefix="slow/"))
    oss_bucket.head_object("fast/k")
    oss_bucket.list_objects_v2(prefix="fast/")
    assert emulator.log.fault_counts() == {}
    oss_bucket.head_object("slow/k")
    oss_bucket.list_objects_v2(prefix="slow/")
    assert emulator.log.fault_counts() == {"latency": 2}


def test_faults_latency_plan_draws_nothing_from_the_seeded_generator() -> None:
    settings = FaultSettings(latency_s=0.01, error_rate=0.5, seed=7)
    a, b = Faults(settings), Faults(settings)
    assert a.latency_plan("k") == FaultPlan(latency_s=0.01)
    assert [a.plan("k", body=True) for _ in range(20)] == [
        b.plan("k", body=True) for _ in range(20)
    ]
    assert Faults().latency_plan("k") is NO_FAULTS


@pytest.mark.parametrize(
    ("plan", "piece"),
    [
        (FaultPlan(), 256 * 1024),
        (FaultPlan(bandwidth_bytes_per_s=100_000_000), 256 * 1024),
        (FaultPlan(bandwidth_bytes_per_s=1_000_000), 50_000),
        (FaultPlan(bandwidth_bytes_per_s=10_000), 1024),
        (FaultPlan(bandwidth_bytes_per_s=100_000_000, pacing="chunked"), 1 << 20),
        (FaultPlan(bandwidth_bytes_per_s=10_000, pacing="chunked"), 1 << 20),
    ],
)
def test_faults_pacing_sets_the_piece_written_at_once(plan: FaultPlan, piece: int) -> None:
    assert stream_piece_bytes(plan) == piece


def test_faults_chunked_pacing_sends_the_whole_body(
    oss_bucket: oss2.Bucket, emulator: EmulatorServer
) -> None:
    data = os.urandom(3 * (1 << 20) + 123)
    emulator.put_object(BUCKET, "paced", data)
    emulator.faults.set(FaultSettings(bandwidth_bytes_per_s=1_000_000_000, pacing="chunked"))
    assert oss_bucket.get_object("paced").read() == data
    assert emulator.faults.plan("paced", body=True).pacing == "chunked"


def test_faults_seed_is_reproducible() -> None:
    settings = FaultSettings(error_rate=0.5, truncate_rate=0.3, corrupt_rate=0.2, seed=42)
    a, b = Faults(settings), Faults(settings)
    plans_a = [a.plan("k", body=True) for _ in range(50)]
    assert plans_a == [b.plan("k", body=True) for _ in range(50)]
    assert any(p.error_status for p in plans_a) and any(p.truncate for p in plans_a)
    assert Faults().plan("k", body=True) == FaultPlan()


def test_fault_settings_validation() -> None:
    with pytest.raises(ValueError):
        FaultSettings(error_rate=2.0)
    with pytest.raises(ValueError):
        FaultSettings.from_json({"nope": 1})
    with pytest.raises(ValueError):
        FaultSettings.from_json({"latency_s": "slow"})
    with pytest.raises(ValueError, match="pacing must be one of smooth, chunked"):
        FaultSettings(pacing="bursty")
    with pytest.raises(ValueError):
        FaultSettings.from_json({"pacing": 1})
    assert FaultSettings.from_json({"pacing": "chunked"}).pacing == "chunked"


def test_admin_api_faults_and_stats(oss_bucket: oss2.Bucket, emulator: EmulatorServer) -> None:
    emulator.put_object(BUCKET, "k", b"x")
    base = f"{emulator.endpoint}/_emulator"
    put = requests.put(f"{base}/faults", json={"error_rate": 1.0, "seed": 3}, timeout=5)
    assert put.status_code == 200 and put.json()["error_rate"] == 1.0
    assert emulator.faults.settings.error_rate == 1.0
    assert requests.get(f"{base}/faults", timeout=5).json()["seed"] == 3
    with pytest.raises(oss2.exceptions.ServerError):
        oss_bucket.get_object("k")
    assert requests.put(f"{base}/faults", json={"error_rate": 7}, timeout=5).status_code == 400
    requests.delete(f"{base}/faults", timeout=5)
    assert oss_bucket.get_object("k").read() == b"x"
    settled_entries(emulator, 2, "GetObject")
    stats = requests.get(f"{base}/stats", timeout=5).json()
    assert stats["counts"]["GetObject"] == 2
    assert stats["faults"] == {"error": 1}
    assert stats["recent"][-1]["status"] == 200
    assert requests.post(f"{base}/stats/reset", timeout=5).status_code == 200
    assert emulator.log.counts() == {}
    assert requests.get(f"{base}/nothing", timeout=5).status_code == 404


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(data_dir=tmp_path, buckets=(BUCKET,), s3_port=0, anonymous=True)
    server = EmulatorServer(config)
    server.start()
    server.put_object(BUCKET, "dir/a b.txt", DATA[:1000])
    server.put_object(BUCKET, "top", b"t")
    yield server
    server.stop()


def _s3(
    server: EmulatorServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    assert server.s3_endpoint is not None
    host, port = server.s3_endpoint.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def test_s3_get_ranges_and_head(s3_server: EmulatorServer) -> None:
    status, headers, body = _s3(
        s3_server, "GET", "/test-bucket/dir/a%20b.txt", {"Range": "bytes=10-19"}
    )
    assert (status, body, headers["content-range"]) == (206, DATA[10:20], "bytes 10-19/1000")
    status, headers, body = _s3(
        s3_server, "GET", "/test-bucket/dir/a%20b.txt", {"Range": "bytes=990-2000"}
    )
    assert (status, body) == (206, DATA[990:1000])
    status, _, body = _s3(s3_server, "GET", "/test-bucket/dir/a%20b.txt", {"Range": "bytes=1000-"})
    assert status == 416 and b"<Code>InvalidRange</Code>" in body
    status, headers, body = _s3(s3_server, "HEAD", "/test-bucket/dir/a%20b.txt")
    assert (status, headers["content-length"], body) == (200, "1000", b"")
    assert headers["etag"].islower()
    assert _s3(s3_server, "HEAD", "/test-bucket")[0] == 200
    assert _s3(s3_server, "HEAD", "/no-bucket")[0] == 404
    status, _, body = _s3(s3_server, "GET", "/test-bucket/missing")
    assert status == 404 and b"NoSuchKey" in body
    assert _s3(s3_server, "PUT", "/test-bucket/new")[0] == 403


def test_s3_latency_delays_every_request(s3_server: EmulatorServer) -> None:
    s3_server.faults.set(FaultSettings(latency_s=0.001))
    assert _s3(s3_server, "HEAD", "/test-bucket/dir/a%20b.txt")[0] == 200
    assert _s3(s3_server, "GET", "/test-bucket?list-type=2")[0] == 200
    assert _s3(s3_server, "HEAD", "/test-bucket")[0] == 200
    assert _s3(s3_server, "GET", "/test-bucket/dir/a%20b.txt")[0] == 200
    settled_entries(s3_server, 4)
    assert s3_server.log.fault_counts() == {"latency": 4}


def test_s3_listing_dialect(s3_server: EmulatorServer) -> None:
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    status, _, body = _s3(s3_server, "GET", "/test-bucket?list-type=2&delimiter=%2F&max-keys=1")
    root = ET.fromstring(body)
    assert status == 200 and root.tag == f"{ns}ListBucketResult"
    assert root.findtext(f"{ns}IsTruncated") == "true"
    assert root.findtext(f"{ns}CommonPrefixes/{ns}Prefix") == "dir/"
    token = root.findtext(f"{ns}NextContinuationToken")
    assert token
    _, _, body = _s3(
        s3_server, "GET", f"/test-bucket?list-type=2&delimiter=%2F&continuation-token={token}"
    )
    root = ET.fromstring(body)
    assert [e.text for e in root.iter(f"{ns}Key")] == ["top"]
    _, _, body = _s3(s3_server, "GET", "/test-bucket?prefix=dir%2F")
    assert [e.text for e in ET.fromstring(body).iter(f"{ns}Key")] == ["dir/a b.txt"]
    _, _, body = _s3(s3_server, "GET", "/test-bucket?location")
    assert ET.fromstring(body).text == "cn-hangzhou"
    with urllib.request.urlopen(f"{s3_server.s3_endpoint}/") as resp:
        assert b"<Name>test-bucket</Name>" in resp.read()


def test_storage_survives_restart(tmp_path: Path) -> None:
    config = EmulatorConfig(
        data_dir=tmp_path,
        buckets=(BUCKET,),
        credentials=(Credential(ACCESS_KEY_ID, ACCESS_KEY_SECRET),),
    )
    with EmulatorServer(config) as first:
        etag = first.put_object(BUCKET, "keep/me", DATA, user_meta={"a": "b"})
        first.put_symlink(BUCKET, "ln", "keep/me")
    with EmulatorServer(config) as second:
        bucket = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), second.endpoint, BUCKET)
        got = bucket.get_object("ln")
        assert got.read() == DATA
        assert got.etag == etag
        assert bucket.head_object("keep/me").headers["x-oss-meta-a"] == "b"


def test_delete_and_overwrite_remove_data_files(tmp_path: Path) -> None:
    with EmulatorServer(EmulatorConfig(data_dir=tmp_path, buckets=(BUCKET,))) as server:
        server.put_object(BUCKET, "k", b"one")
        server.put_object(BUCKET, "k", b"two")
        assert len([p for p in (tmp_path / "objects").rglob("*") if p.is_file()]) == 1
        server.delete_object(BUCKET, "k")
        assert not [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]


def test_cli_prints_endpoint_first_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    (seed / "sub").mkdir(parents=True)
    (seed / "sub" / "f.txt").write_bytes(b"seeded")
    env = {
        **os.environ,
        "OSS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "OSS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ossfs",
            "emulator",
            "--data",
            str(tmp_path / "d"),
            "--seed",
            str(seed),
        ],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().decode().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        bucket = oss2.Bucket(oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET), endpoint, "test-bucket")
        assert bucket.get_object("sub/f.txt").read() == b"seeded"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--anonymous", "--bucket", "Bad_Name"],
        ["--anonymous", "--error-rate", "2"],
        ["--anonymous", "--bandwidth", "fast"],
        ["--access-key-id", "only-id"],
    ],
)
def test_cli_bad_input_exits_2(tmp_path: Path, argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSS_ACCESS")}
    result = subprocess.run(
        [sys.executable, "-m", "ossfs", "emulator", "--data", str(tmp_path), *argv],
        capture_output=True,
        env=env,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.decode().strip().splitlines()) == 1


def test_client_resetting_its_connection_prints_no_traceback(
    emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = urlsplit(emulator.endpoint).hostname, urlsplit(emulator.endpoint).port
    assert host is not None and port is not None
    before = set(threading.enumerate())
    for _ in range(5):
        with socket.create_connection((host, port)) as sock:
            # Close with RST while the server waits for the request line.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(b"GET / HTTP/1.1\r\n")
    # The server still answers, and said nothing about the resets.
    assert requests.get(emulator.endpoint, timeout=10).status_code in (200, 403)
    # The server accepted (and started a handler thread for) every reset connection before
    # the GET's. Whatever a handler prints, it prints before its thread ends.
    handlers = [t for t in threading.enumerate() if t not in before and "process_request" in t.name]
    wait_until(lambda: not any(t.is_alive() for t in handlers), 10, "the handler threads to end")
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "ConnectionResetError" not in captured.err
