"""`OssStore` against the local server misbehaving: never-answering, down and back, and heavy
body faults. The bound on a failing read is the retry budget plus one attempt's timeouts.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from ossfs.core.errors import NotFoundError, RemoteIOError
from ossfs.emulator import EmulatorServer
from ossfs.store.config import OssConfig
from ossfs.store.oss_store import OssStore
from ossfs.store.retry import RetryPolicy
from tests.support import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET
from tests.support.mounts import MIB, data_for, emulator_config, free_port


def _store(endpoint: str, *, low_speed_time_s: int = 10, budget_s: float = 30.0) -> OssStore:
    return OssStore(
        OssConfig(
            endpoint=endpoint,
            bucket=BUCKET,
            access_key_id=ACCESS_KEY_ID,
            access_key_secret=ACCESS_KEY_SECRET,
            connect_timeout_s=1.0,
            low_speed_time_s=low_speed_time_s,
            retry=RetryPolicy(
                max_attempts=50, base_delay_s=0.01, max_delay_s=0.2, total_budget_s=budget_s
            ),
        )
    )


def test_reliability_store_never_answering_server_fails_within_budget_plus_timeout(
    emulator: EmulatorServer,
) -> None:
    emulator.put_object(BUCKET, "slow.bin", b"x" * 1000)
    emulator.faults.update(latency_s=60.0)
    with _store(emulator.endpoint, low_speed_time_s=1, budget_s=1.5) as store:
        started = time.monotonic()
        with pytest.raises(RemoteIOError, match="gave up after"):
            store.get_range("slow.bin", 0, 1000)
        elapsed = time.monotonic() - started
        emulator.faults.clear()
    assert elapsed < 1.5 + 3.0, elapsed  # the budget ends every wait (+ slack for a busy machine)
    assert store.stats()["gave_up"] == 1


def test_reliability_store_server_down_then_back_same_store(tmp_path: Path) -> None:
    port = free_port()
    server = EmulatorServer(emulator_config(tmp_path / "data", port))
    server.start()
    data = data_for(5, 2 * MIB)
    server.put_object(BUCKET, "k.bin", data)
    try:
        with _store(server.endpoint, budget_s=2.0) as store:
            assert store.get_range("k.bin", 0, MIB) == data[:MIB]
            server.stop()
            started = time.monotonic()
            with pytest.raises(RemoteIOError):
                store.get_range("k.bin", MIB, 2 * MIB)
            assert time.monotonic() - started < 2.0 + 1.0 + 3.0
            server.start()
            assert store.get_range("k.bin", MIB, 2 * MIB) == data[MIB:]
    finally:
        server.stop()


def test_reliability_store_heavy_body_faults_never_wrong_bytes(emulator: EmulatorServer) -> None:
    data = data_for(6, 3 * MIB + 17)
    emulator.put_object(BUCKET, "f.bin", data)
    emulator.faults.update(error_rate=0.2, reset_rate=0.3, truncate_rate=0.3)
    with _store(emulator.endpoint) as store:
        ranges = [(0, len(data)), (5, MIB), (MIB - 1, 2 * MIB + 1), (len(data) - 1, len(data))]
        rng = random.Random(6)
        for _ in range(16):
            start = rng.randrange(len(data))
            ranges.append((start, min(len(data), start + rng.randrange(1, MIB))))
        for start, end in ranges:
            assert store.get_range("f.bin", start, end) == data[start:end]
        stats = store.stats()
    faults = emulator.log.fault_counts()
    emulator.faults.clear()
    assert faults.get("reset", 0) + faults.get("truncate", 0) > 0, faults
    assert stats["retries"] > 0 and stats["gave_up"] == 0, stats


def test_reliability_store_key_not_utf8_is_not_found_without_a_request(
    emulator: EmulatorServer,
) -> None:
    with _store(emulator.endpoint) as store:
        for call in (
            lambda: store.head("bad\udcff.txt"),
            lambda: store.get_range("bad\udcff.txt", 0, 10),
            lambda: store.list_page("dir\udcc3/"),
        ):
            with pytest.raises(NotFoundError, match="not valid UTF-8"):
                call()
        assert store.stats()["requests"] == 0
    assert emulator.log.counts() == {}
