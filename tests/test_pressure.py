"""`ossfs.read.pressure`: the scale follows the room left under the limit, shrinking at once and
growing back a step at a time; and, wired into a real cache, read-ahead and buffer pool, block
memory stays within what the scale allows while reads keep returning the right bytes.

Usage figures come from the test (no control group here; tests/test_memory_group_mount.py runs
real mounts in real groups).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest

from ossfs.app import wiring
from ossfs.app.memory_limit import MemoryLimit
from ossfs.app.mount_config import MountConfig
from ossfs.core.url import OssLocation
from ossfs.read.block_cache import BlockCache
from ossfs.read.buffers import BufferPool
from ossfs.read.handle_prefetch import PrefetchConfig
from ossfs.read.prefetch import Prefetcher
from ossfs.read.pressure import PressureConfig, PressureMonitor
from ossfs.read.reader import ObjectReader
from tests.support.fakes import FakeStore

MiB = 1 << 20
WAIT_S = 10.0
P = ParamSpec("P")
T = TypeVar("T")


class Gauge:
    """A usage figure the test sets, and the scales applied."""

    def __init__(self, usage: int | None, blocks: int = 0) -> None:
        self.usage = usage
        self.blocks = blocks
        self.applied: list[float] = []
        self.shrunk = 0

    def monitor(self, config: PressureConfig) -> PressureMonitor:
        return PressureMonitor(
            lambda: self.usage,
            lambda: self.blocks,
            config,
            self.applied.append,
            on_shrink=self.count_shrink,
        )

    def count_shrink(self) -> None:
        self.shrunk += 1


CONFIG = PressureConfig(limit_bytes=400 * MiB, budget_bytes=200 * MiB, high_fraction=0.9)


def test_pressure_room_under_the_limit_keeps_the_scale_at_one() -> None:
    gauge = Gauge(usage=100 * MiB, blocks=50 * MiB)
    monitor = gauge.monitor(CONFIG)
    assert monitor.poll() == 1.0
    assert gauge.applied == [] and gauge.shrunk == 0
    assert monitor.stats().usage_bytes == 100 * MiB


def test_pressure_shrinks_at_once_to_what_fits_under_the_high_mark() -> None:
    # 360 MiB is 90% of 400: 340 MiB in use with 100 MiB of blocks leaves 20 MiB to grow by,
    # so blocks may hold 120 MiB of their 200 MiB budget.
    gauge = Gauge(usage=340 * MiB, blocks=100 * MiB)
    monitor = gauge.monitor(CONFIG)
    assert monitor.poll() == pytest.approx(0.6)
    assert gauge.applied == [pytest.approx(0.6)] and gauge.shrunk == 1
    # Something else in the group grows past the mark: blocks must give up the difference.
    gauge.usage = 380 * MiB
    gauge.blocks = 120 * MiB
    assert monitor.poll() == pytest.approx(0.5)
    # Over the limit's mark by more than blocks hold: memory is short, scale 0.
    gauge.usage = 399 * MiB
    gauge.blocks = 20 * MiB
    assert monitor.poll() == 0.0
    assert gauge.shrunk == 3
    stats = monitor.stats()
    assert (stats.scale, stats.shrinks, stats.grows) == (0.0, 3, 0)


def test_pressure_grows_back_one_step_a_poll() -> None:
    gauge = Gauge(usage=400 * MiB, blocks=0)
    monitor = gauge.monitor(CONFIG)
    assert monitor.poll() == 0.0
    gauge.usage = 100 * MiB  # plenty of room again
    scales = [monitor.poll() for _ in range(10)]
    assert scales == [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.0, 1.0]
    assert gauge.shrunk == 1
    assert monitor.stats().grows == 8


def test_pressure_grows_no_further_than_the_room_allows() -> None:
    gauge = Gauge(usage=400 * MiB, blocks=0)
    monitor = gauge.monitor(CONFIG)
    monitor.poll()
    gauge.usage, gauge.blocks = 330 * MiB, 0  # 30 MiB of room: 0.15 of the budget
    assert [monitor.poll() for _ in range(3)] == [0.125, pytest.approx(0.15), pytest.approx(0.15)]


def test_pressure_keeps_room_for_the_daemons_own_growth() -> None:
    """The daemon uses 40 MiB besides its blocks and may use up to 80: 40 MiB of the room
    under the mark are kept for that, not given to blocks; once it uses 80, none is."""
    config = PressureConfig(400 * MiB, 200 * MiB, own_reserve_bytes=80 * MiB)
    own = [140 * MiB]  # resident: 100 MiB of blocks and 40 of its own
    gauge = Gauge(usage=300 * MiB, blocks=100 * MiB)
    monitor = PressureMonitor(
        lambda: gauge.usage,
        lambda: gauge.blocks,
        config,
        gauge.applied.append,
        own_bytes=lambda: own[0],
    )
    # 360 - 300 = 60 MiB of room, 40 of them kept: blocks may hold 120 MiB, 0.6 of the budget.
    assert monitor.poll() == pytest.approx(0.6)
    own[0] = 180 * MiB  # its own needs grew to 80 MiB (counted in the usage too)
    gauge.usage = 340 * MiB
    assert monitor.poll() == pytest.approx(0.6)  # that room was kept for it: no change


def test_pressure_unreadable_usage_changes_nothing() -> None:
    gauge = Gauge(usage=None)
    monitor = gauge.monitor(CONFIG)
    assert monitor.poll() == 1.0
    assert gauge.applied == [] and monitor.stats().usage_bytes == 0


def test_pressure_config_rejects_bad_values() -> None:
    for bad in (
        {"limit_bytes": 0},
        {"budget_bytes": 0},
        {"high_fraction": 0.0},
        {"high_fraction": 1.5},
        {"interval_s": 0.0},
        {"grow_step": 0.0},
        {"own_reserve_bytes": -1},
    ):
        values: dict[str, float] = {"limit_bytes": MiB, "budget_bytes": MiB, **bad}
        with pytest.raises(ValueError):
            PressureConfig(**values)  # type: ignore[arg-type]


def test_pressure_thread_polls_until_closed() -> None:
    polled = threading.Event()
    gauge = Gauge(usage=400 * MiB)

    def usage() -> int | None:
        polled.set()
        return gauge.usage

    monitor = PressureMonitor(
        usage,
        lambda: 0,
        PressureConfig(400 * MiB, 200 * MiB, interval_s=0.01),
        gauge.applied.append,
    )
    monitor.start()
    try:
        assert polled.wait(WAIT_S)
    finally:
        monitor.close()
    assert gauge.applied[0] == 0.0
    assert not any(t.name == "memory-pressure" for t in threading.enumerate())


def test_pressure_thread_survives_a_failing_poll() -> None:
    calls: list[int] = []
    second = threading.Event()

    def usage() -> int | None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("gone for a moment")
        second.set()
        return 0

    monitor = PressureMonitor(
        usage, lambda: 0, PressureConfig(MiB, MiB, interval_s=0.01), lambda scale: None
    )
    monitor.start()
    try:
        assert second.wait(WAIT_S)
    finally:
        monitor.close()


# -- wired as a mount wires it --------------------------------------------------------------------
BS = 1 << 16


def mount_config(group: Path, limit_bytes: int, budget_bytes: int, cache_bytes: int) -> MountConfig:
    """A mount's configuration whose memory limit is a cgroup v2 group at ``group`` (a
    directory the test writes the group's files in)."""
    return MountConfig(
        location=OssLocation("bucket", ""),
        mountpoint=Path("/nonexistent"),
        endpoint="http://127.0.0.1:1",
        credentials=None,
        cache_size_bytes=cache_bytes,
        max_memory_bytes=budget_bytes,
        memory_limit=MemoryLimit(limit_bytes, str(group / "memory.max"), "/x"),
        block_size_bytes=BS,
    )


def test_pressure_as_wired_shrinks_cache_pool_and_read_ahead_together(tmp_path: Path) -> None:
    config = mount_config(tmp_path, 64 * MiB, 32 * MiB, 24 * MiB)
    (tmp_path / "memory.stat").write_text(f"anon 1\ninactive_file {MiB}\n")
    pool = BufferPool(BS, 8)
    cache = BlockCache(config.cache_size_bytes, pool, total_bytes=32 * MiB - pool.max_bytes)
    prefetcher = Prefetcher(_Refuse(), PrefetchConfig(max_inflight_bytes=4 * MiB))
    monitor = wiring.build_pressure(config, cache, pool, prefetcher, None)
    assert monitor is not None
    for index in range(24 * MiB // BS):
        cache.put(("k", "e", index), bytearray(BS))
    for _ in range(8):
        buffer = bytearray(BS)
        assert pool.give(buffer)
        del buffer
    assert cache.used_bytes == 24 * MiB and pool.free_bytes == 8 * BS
    # The whole limit in use (less 1 MiB of inactive file cache, not counted): the blocks give
    # up at once at least what is over 90% of it (6.4 MiB of their 24.5), and more if this
    # process uses less than 80 MiB besides them (room kept for its growth).
    (tmp_path / "memory.current").write_text(f"{65 * MiB}\n")
    scale = monitor.poll()
    assert 0 < scale <= (24.5 - 6.4) / 32
    assert monitor.stats().usage_bytes == 64 * MiB
    assert cache.limit_bytes == int(24 * MiB * scale) and cache.used_bytes <= cache.limit_bytes
    assert pool.free_bytes <= int(8 * scale) * BS
    # Others in the group take even more: nothing is left for blocks, memory is short.
    (tmp_path / "memory.current").write_text(f"{100 * MiB}\n")
    assert monitor.poll() == 0.0
    assert pool.free_bytes == 0
    assert cache.used_bytes == cache.limit_bytes == wiring._FLOOR_BLOCKS * BS
    assert prefetcher.scale == 0.0
    (tmp_path / "memory.current").write_text(f"{MiB}\n")
    for _ in range(8):
        monitor.poll()
    assert monitor.scale == 1.0
    assert cache.limit_bytes == 24 * MiB and prefetcher.scale == 1.0


def test_pressure_no_limit_no_monitor(tmp_path: Path) -> None:
    config = dataclasses.replace(
        mount_config(tmp_path, 64 * MiB, 32 * MiB, 24 * MiB), memory_limit=None
    )
    assert wiring.build_pressure(config, BlockCache(MiB), None, None, None) is None


def test_pressure_reads_at_scale_zero_fetch_only_their_blocks() -> None:
    """Memory short: no read-ahead, and a sequential reader still gets every byte, one GET per
    block it reads, with the cache at its floor."""
    store = FakeStore()
    data = bytes(range(256)) * (BS * 32 // 256)
    meta = store.put("a.bin", data)
    cache = BlockCache(16 * BS, total_bytes=24 * BS)
    prefetcher = Prefetcher(_Refuse(), PrefetchConfig(part_size_bytes=4 * BS))
    prefetcher.set_scale(0.0)
    cache.resize(0.0, floor_bytes=2 * BS)
    reader = ObjectReader(store, cache, meta, block_size_bytes=BS, read_ahead=prefetcher.attach)
    store.reset_calls()
    got = b"".join(bytes(reader.read(offset, BS // 4)) for offset in range(0, len(data), BS // 4))
    assert got == data
    assert [c[2:4] for c in store.calls] == [(i * BS, (i + 1) * BS) for i in range(32)]
    assert prefetcher.stats().parts_issued == 0
    assert cache.used_bytes <= 2 * BS and cache.reserved_bytes == 0


class _Refuse(Executor):
    """An executor that is never asked to run anything in these tests (read-ahead is off or
    not exercised); refusing makes a wrong call visible."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        raise AssertionError("no read-ahead expected here")
