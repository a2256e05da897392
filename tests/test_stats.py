"""Observability: the `Stats` snapshot, the root's ``user.ossfs.obs.stats`` xattr, ``ossfs stats``,
the Prometheus endpoint and the daemon's ``--log-file`` — in process over a FakeStore, and
through real mounts of the local OSS server.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ossfs.app import mounting
from ossfs.app.cli import main
from ossfs.app.memory_budget import default_budgets
from ossfs.app.memory_limit import find_memory_limit
from ossfs.app.mount_config import MountConfig
from ossfs.app.umount import is_mounted
from ossfs.core.errors import UsageError
from ossfs.core.sizes import format_size
from ossfs.core.url import OssLocation
from ossfs.emulator import EmulatorServer
from ossfs.fs.filesystem import Filesystem, FsConfig
from ossfs.fs.namespace import Namespace
from ossfs.fuse.fuse_ops import FuseOperations, FuseOSError
from ossfs.net.metrics_server import MetricsServer, parse_address
from ossfs.obs.stats import (
    STATS_XATTR,
    MemorySettings,
    MountStats,
    StoreCounters,
    format_human,
    format_prometheus,
    parse_stats,
)
from ossfs.read.block_cache import BlockCache
from tests.support import ACCESS_KEY_SECRET, BUCKET
from tests.support.fakes import FakeStore
from tests.support.mounts import free_port, run_ossfs

BLOCK = 4096


class CountingStore(FakeStore):
    """A FakeStore with `OssStore.stats`-style counters built from its recorded calls."""

    def stats(self) -> dict[str, int]:
        counts: dict[str, int] = {"requests": len(self.calls), "bytes_fetched": 0, "errors": 0}
        for call in self.calls:
            name = f"requests.{call[0]}"
            counts[name] = counts.get(name, 0) + 1
        return counts


def _ops(
    store: CountingStore, counters: StoreCounters | None = None
) -> tuple[FuseOperations, MountStats]:
    ns = Namespace(store, metadata_ttl_s=60.0)
    cache = BlockCache(16 * BLOCK)
    fs = Filesystem(
        ns, store, cache, FsConfig(uid=0, gid=0, block_size_bytes=BLOCK), mount_time_ns=0
    )
    stats = MountStats(
        mount=f"oss://{BUCKET}/",
        store=counters or store,
        cache=cache,
        cache_capacity_bytes=16 * BLOCK,
        namespace=ns,
        prefetcher=None,
        open_handles=fs.open_handles,
    )
    return FuseOperations(fs, stats=stats), stats


def _errno_of(call: object) -> int:
    with pytest.raises(FuseOSError) as info:
        assert callable(call)
        call()
    return int(info.value.errno)


def test_fuse_ops_count_opens_reads_bytes_and_errors_by_errno() -> None:
    store = CountingStore()
    store.put("a.txt", b"0123456789")
    ops, stats = _ops(store)
    fh = ops.call("open", "/a.txt", os.O_RDONLY)
    assert isinstance(fh, int)
    assert ops.call("read", "/a.txt", 4, 0, fh) == b"0123"
    assert ops.call("read", "/a.txt", 100, 4, fh) == b"456789"
    assert _errno_of(lambda: ops.call("getattr", "/missing")) == errno.ENOENT
    assert _errno_of(lambda: ops.call("unlink", "/a.txt")) == errno.EROFS
    assert _errno_of(lambda: ops.call("getxattr", "/a.txt", "security.selinux")) == errno.ENOTSUP
    assert _errno_of(lambda: ops.call("getxattr", "/a.txt", "user.none")) == errno.ENODATA

    snap = stats.snapshot()
    assert (snap.served.opens, snap.served.reads, snap.served.bytes) == (1, 2, 10)
    assert dict(snap.served.errors_by_errno) == {
        "ENOENT": 1,
        "ENODATA": 1,
        "ENOTSUP": 1,
        "EROFS": 1,
    }
    assert snap.open_handles == 1
    assert snap.cache.misses >= 1 and snap.cache.used_bytes == 10
    assert snap.store["requests.get_range"] == store.count("get_range")


def test_fuse_ops_root_xattr_answers_the_snapshot_as_json() -> None:
    store = CountingStore()
    store.put("a.txt", b"abc")
    ops, _ = _ops(store)
    names = ops.call("listxattr", "/")
    # Readable, not listed: cp -a and rsync -X copy listed attributes.
    assert isinstance(names, list) and STATS_XATTR not in names
    fh = ops.call("open", "/a.txt", os.O_RDONLY)
    ops.call("read", "/a.txt", 3, 0, fh)
    raw = ops.call("getxattr", "/", STATS_XATTR)
    assert isinstance(raw, bytes)
    doc = parse_stats(raw)
    assert doc["mount"] == f"oss://{BUCKET}/"
    served = doc["served"]
    assert isinstance(served, dict) and served["bytes"] == 3 and served["reads"] == 1
    store_section = doc["store"]
    assert isinstance(store_section, dict)
    by_op = store_section["requests_by_op"]
    assert isinstance(by_op, dict) and by_op["get_range"] == 1
    assert set(doc) >= {"cache", "namespace", "memory", "uptime_s", "version"}
    assert "prefetch" not in doc  # no prefetcher in this mount
    memory = doc["memory"]
    assert isinstance(memory, dict) and memory["cache_bytes"] == 3
    assert set(memory) == {"rss_bytes", "cache_bytes"}  # no limit was given to these stats
    assert _errno_of(lambda: ops.call("getxattr", "/a.txt", STATS_XATTR)) == errno.ENODATA


def test_stats_memory_section_has_the_budget_and_the_limit_with_its_source() -> None:
    store = CountingStore()
    cache = BlockCache(16 * BLOCK)
    stats = MountStats(
        mount=f"oss://{BUCKET}/",
        store=store,
        cache=cache,
        cache_capacity_bytes=16 * BLOCK,
        namespace=Namespace(store, metadata_ttl_s=60.0),
        prefetcher=None,
        open_handles=lambda: 0,
        memory=MemorySettings(200 << 20, 400 << 20, "cgroup /x.service memory.max"),
    )
    memory = stats.snapshot().to_json()["memory"]
    assert isinstance(memory, dict)
    assert memory["budget_bytes"] == 200 << 20
    assert memory["limit_bytes"] == 400 << 20
    assert memory["limit_source"] == "cgroup /x.service memory.max"


def test_stats_xattr_size_is_stable_while_counters_move() -> None:
    store = CountingStore()
    store.put("a.txt", b"x" * 5000)
    ops, stats = _ops(store)
    first = stats.snapshot().to_xattr()
    fh = ops.call("open", "/a.txt", os.O_RDONLY)
    for offset in range(0, 5000, 10):
        ops.call("read", "/a.txt", 10, offset, fh)
    second = stats.snapshot().to_xattr()
    assert first != second and len(first) == len(second)
    assert parse_stats(second)["served"] != parse_stats(first)["served"]


class StubStore:
    def stats(self) -> dict[str, int]:
        return {
            "errors": 1,
            "errors.NotFoundError": 1,
            "requests": 3,
            "requests.get": 2,
            "requests.list": 1,
            "bytes_fetched": 5,
            "retries": 1,
            "retries.get": 1,
            "gave_up": 0,
            "new_counter": 4,
        }


def test_stats_store_section_orders_counters_and_groups_labels() -> None:
    _, stats = _ops(CountingStore(), StubStore())
    section = stats.snapshot().to_json()["store"]
    assert isinstance(section, dict)
    assert list(section.items()) == [
        ("requests", 3),
        ("requests_by_op", {"get": 2, "list": 1}),
        ("bytes_fetched", 5),
        ("retries", 1),
        ("retries_by_op", {"get": 1}),
        ("gave_up", 0),
        ("errors", 1),
        ("errors_by_class", {"NotFoundError": 1}),
        ("new_counter", 4),
    ]


SAMPLE: dict[str, object] = {
    "ossfs_stats": 1,
    "version": "0.1.0",
    "mount": "oss://b/p/",
    "uptime_s": 3723.5,
    "store": {
        "requests": 5,
        "bytes_fetched": 2 << 20,
        "requests_by_op": {"get": 3, "list": 2},
        "errors": 0,
        "errors_by_class": {},
        "first_byte_us": 31250,
    },
    "served": {"bytes": 1500, "errors_by_errno": {"ENOENT": 2}},
    "cache": {"hits": 3, "used_bytes": 4096, "hit_rate": 0.75},
    "memory": {
        "rss_bytes": 90 << 20,
        "budget_bytes": 200 << 20,
        "limit_bytes": 400 << 20,
        "limit_source": 'cgroup /system.slice/a"b.service memory.max',
    },
}


def test_format_prometheus_families_labels_and_types() -> None:
    text = format_prometheus(json.loads(json.dumps(SAMPLE)))
    lines = text.splitlines()
    assert "# TYPE ossfs_uptime_seconds gauge" in lines and "ossfs_uptime_seconds 3723.5" in lines
    assert "# TYPE ossfs_store_requests_total counter" in lines
    assert 'ossfs_store_requests_total{op="get"} 3' in lines
    assert 'ossfs_store_requests_total{op="list"} 2' in lines
    assert "ossfs_store_requests_total 5" not in lines  # the labelled series carry it
    assert "ossfs_store_bytes_fetched_total 2097152" in lines
    assert "# TYPE ossfs_store_first_byte_us gauge" in lines  # a level, not a count
    assert "ossfs_store_first_byte_us 31250" in lines
    assert 'ossfs_served_errors_total{errno="ENOENT"} 2' in lines
    assert "# TYPE ossfs_cache_used_bytes gauge" in lines and "ossfs_cache_used_bytes 4096" in lines
    assert "ossfs_cache_hits_total 3" in lines and "ossfs_cache_hit_rate 0.75" in lines
    assert all(ln.startswith(("#", "ossfs_")) for ln in lines)
    # Every family says what it is, right before its TYPE (what promtool's lint asks for).
    assert "# HELP ossfs_store_requests_total ossfs store: requests, by op" in lines
    assert "# HELP ossfs_cache_hit_rate ossfs cache: hit rate" in lines
    # The memory limit is a level, labelled with where it came from; the text is no series.
    assert "# TYPE ossfs_memory_limit_bytes gauge" in lines
    assert (
        'ossfs_memory_limit_bytes{source="cgroup /system.slice/a\\"b.service memory.max"} '
        f"{400 << 20}"
    ) in lines
    assert "# TYPE ossfs_memory_budget_bytes gauge" in lines
    assert f"ossfs_memory_budget_bytes {200 << 20}" in lines
    assert f"ossfs_memory_rss_bytes {90 << 20}" in lines  # no source: no label
    assert not any("limit_source" in ln for ln in lines)
    types = [i for i, ln in enumerate(lines) if ln.startswith("# TYPE ")]
    assert types and all(lines[i - 1].startswith(f"# HELP {lines[i].split()[2]} ") for i in types)


def test_format_human_sections_sizes_and_rates() -> None:
    text = format_human(json.loads(json.dumps(SAMPLE)))
    assert text.splitlines()[:2] == [
        "oss://b/p/  (ossfs 0.1.0, up 1h02m03s)",
        "  5 requests, 2.0 MiB fetched, 1.5 KiB served, cache hit rate 75.0%, 2 errors answered",
    ]
    assert "store:" in text and "served:" in text and "cache:" in text
    assert "get=3 list=2" in text
    assert "  bytes_fetched          2.0 MiB (2097152)" in text.splitlines()
    assert "75.0%" in text and "ENOENT=2" in text
    assert "  limit_bytes            400.0 MiB (419430400)" in text.splitlines()
    assert '  limit_source           cgroup /system.slice/a"b.service memory.max' in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0)), ("host:1", ("host", 1))],
)
def test_metrics_parse_address_accepts_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["9464", ":9464", "127.0.0.1:", "127.0.0.1:x", "h:70000"])
def test_metrics_parse_address_rejects_with_a_hint(text: str) -> None:
    with pytest.raises(UsageError, match=r"use HOST:PORT, e\.g\. 127\.0\.0\.1:9464"):
        parse_address(text)


def test_metrics_server_answers_metrics_and_404() -> None:
    store = CountingStore()
    store.put("a.txt", b"abc")
    ops, stats = _ops(store)
    fh = ops.call("open", "/a.txt", os.O_RDONLY)
    ops.call("read", "/a.txt", 3, 0, fh)
    server = MetricsServer("127.0.0.1", 0)
    server.start(lambda: format_prometheus(stats.snapshot().to_json()))
    try:
        host, port = server.address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = response.read().decode()
        assert "ossfs_served_bytes_total 3" in body.splitlines()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://{host}:{port}/nope", timeout=10)
        assert info.value.code == 404
    finally:
        server.close()


def test_metrics_server_taken_port_is_a_usage_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            UsageError, match=f"cannot listen on --metrics-address 127.0.0.1:{port}"
        ):
            MetricsServer("127.0.0.1", port)


def test_stats_cli_on_a_plain_directory_says_not_an_ossfs_mount(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"ossfs stats: error: {tmp_path} is not an ossfs mount: "
        "give the directory an ossfs mount is mounted on"
    )
    assert main(["stats", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_setup_logging_daemon_without_log_file_logs_to_syslog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock_path = tmp_path / "log"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sock_path))
    receiver.settimeout(10)
    monkeypatch.setattr(mounting, "SYSLOG_SOCKET", str(sock_path))
    config = MountConfig(
        location=OssLocation(BUCKET, ""),
        mountpoint=tmp_path,
        endpoint="http://127.0.0.1:9",
        credentials=None,
        log_level="warning",
    )
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        mounting.setup_logging(config, daemon=True)
        logging.getLogger("ossfs.test").info("not at warning level")
        logging.getLogger("ossfs.test").warning("read %s failed", "k.bin")
        message = receiver.recv(4096).decode()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
        receiver.close()
    # <12>: facility user (1) * 8 + severity warning (4); the tag journald and syslog file by.
    assert message.rstrip("\x00") == f"<12>ossfs[{os.getpid()}]: WARNING read k.bin failed"


# -- through real mounts --------------------------------------------------------------------------


@pytest.fixture
def mounted(emulator: EmulatorServer, tmp_path: Path) -> Iterator[list[Path]]:
    """Mountpoints a test mounted; unmounted afterwards."""
    mountpoints: list[Path] = []
    yield mountpoints
    for mp in mountpoints:
        if is_mounted(mp):
            assert run_ossfs("umount", str(mp)).returncode == 0


def _mount(emulator: EmulatorServer, mp: Path, mounted: list[Path], *extra: str) -> None:
    mp.mkdir()
    result = run_ossfs("mount", f"oss://{BUCKET}", str(mp), "--endpoint", emulator.endpoint, *extra)
    assert result.returncode == 0, result.stderr
    mounted.append(mp)


def _stats_json(mp: Path) -> dict[str, dict[str, object]]:
    result = run_ossfs("stats", "--json", str(mp))
    assert result.returncode == 0, result.stderr
    doc: dict[str, dict[str, object]] = {
        k: v for k, v in json.loads(result.stdout).items() if isinstance(v, dict)
    }
    return doc


@pytest.mark.mount
def test_mount_stats_and_metrics_move_when_a_file_is_read(
    emulator: EmulatorServer, tmp_path: Path, mounted: list[Path]
) -> None:
    data = os.urandom(3 << 20)
    emulator.put_object(BUCKET, "d/big.bin", data)
    port = free_port()
    mp = tmp_path / "m"
    _mount(emulator, mp, mounted, "--metrics-address", f"127.0.0.1:{port}")

    before = _stats_json(mp)
    cat = subprocess.run(["cat", str(mp / "d" / "big.bin")], capture_output=True, check=True)
    assert cat.stdout == data
    after = _stats_json(mp)

    def number(doc: dict[str, dict[str, object]], section: str, key: str) -> int:
        value = doc[section].get(key, 0)
        assert isinstance(value, int)
        return value

    assert number(after, "served", "bytes") - number(before, "served", "bytes") >= len(data)
    assert number(after, "served", "opens") == number(before, "served", "opens") + 1
    fetched = number(after, "store", "bytes_fetched") - number(before, "store", "bytes_fetched")
    assert fetched >= len(data)
    gets_after = after["store"]["requests_by_op"]
    assert isinstance(gets_after, dict) and gets_after.get("get", 0) >= 1
    assert number(after, "memory", "rss_bytes") > 0
    assert number(after, "memory", "cache_bytes") > 0
    # The limit of the test's group (the daemon's too) and the default budget from it.
    limit = find_memory_limit()
    assert number(after, "memory", "limit_bytes") == limit.limit_bytes
    assert after["memory"]["limit_source"] == limit.describe()
    budget, _ = default_budgets(limit.limit_bytes, max_memory=None, cache_size=None)
    assert number(after, "memory", "budget_bytes") == budget

    human = run_ossfs("stats", str(mp))
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith(f"oss://{BUCKET}/  (ossfs ")
    assert "served:" in human.stdout and "hit_rate" in human.stdout

    getfattr = shutil.which("getfattr")
    if getfattr:  # the README's way of reading it without ossfs
        shown = subprocess.run(
            [getfattr, "--only-values", "-n", STATS_XATTR, str(mp)],
            capture_output=True,
            check=True,
        ).stdout
        assert parse_stats(shown)["mount"] == f"oss://{BUCKET}/"

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        metrics = response.read().decode().splitlines()
    served = [ln for ln in metrics if ln.startswith("ossfs_served_bytes_total ")]
    assert served and int(served[0].split()[1]) >= len(data)
    assert any(ln.startswith('ossfs_store_requests_total{op="get"} ') for ln in metrics)


@pytest.mark.mount
@pytest.mark.parametrize("level", ["info", "warning"])
def test_mount_log_file_has_the_mount_info_and_a_warning_for_a_failed_read(
    emulator: EmulatorServer, tmp_path: Path, mounted: list[Path], level: str
) -> None:
    emulator.put_object(BUCKET, "cold.bin", b"frozen", storage_class="Archive")
    log_file = tmp_path / "ossfs.log"
    mp = tmp_path / "m"
    _mount(emulator, mp, mounted, "--log-file", str(log_file), "--log-level", level)
    with pytest.raises(PermissionError):
        (mp / "cold.bin").read_bytes()
    lines = log_file.read_text().splitlines()
    # No --max-memory given: the default budget, from the limit of this process (the test's
    # group is the daemon's).
    limit = find_memory_limit()
    budget, cache = default_budgets(limit.limit_bytes, max_memory=None, cache_size=None)
    said = [
        f"INFO ossfs.app.mounting: mounting oss://{BUCKET}/ read-only on {mp}",
        f"INFO ossfs.app.mounting: endpoint {emulator.endpoint}; credentials from "
        "$OSS_ACCESS_KEY_ID/$OSS_ACCESS_KEY_SECRET",
        f"INFO ossfs.app.mounting: memory limit {format_size(limit.limit_bytes)} "
        f"({limit.describe()}): ossfs uses up to {format_size(budget)} (--max-memory), "
        f"{format_size(cache)} of it to cache file data (--cache-size)",
    ]
    for words in said:
        assert any(words in ln for ln in lines) == (level == "info"), (words, lines)
    assert not any("read-ahead" in ln for ln in lines)  # its workings are DEBUG's business
    assert any("WARNING" in ln and "cold.bin" in ln and "not restored" in ln for ln in lines)
    assert not any(ACCESS_KEY_SECRET in ln for ln in lines)


@pytest.mark.mount
def test_stats_cli_on_a_subdirectory_of_a_mount_says_not_an_ossfs_mount(
    emulator: EmulatorServer, tmp_path: Path, mounted: list[Path]
) -> None:
    emulator.put_object(BUCKET, "d/a.txt", b"a")
    mp = tmp_path / "m"
    _mount(emulator, mp, mounted)
    result = run_ossfs("stats", str(mp / "d"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"ossfs stats: error: {mp / 'd'} is not an ossfs mount: "
        "give the directory an ossfs mount is mounted on"
    )


@pytest.mark.mount
def test_mount_metrics_address_taken_is_one_line_before_mounting(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    mp = tmp_path / "m"
    mp.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_ossfs(
            *("mount", f"oss://{BUCKET}", str(mp), "--endpoint", emulator.endpoint),
            *("--metrics-address", f"127.0.0.1:{port}"),
        )
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"ossfs mount: error: cannot listen on --metrics-address 127.0.0.1:{port} ("
    )
    assert result.stderr.endswith("choose a free port\n") and len(result.stderr.splitlines()) == 1
    assert not is_mounted(mp)
