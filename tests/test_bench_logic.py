"""The benchmark suite's pure logic (``scripts/bench/``): network bytes per application byte, CPU
per GiB, the reads of two interleaved streams, which rows apply to which system, the synthetic
Python package, the epoch rows and the evaluation of issues 15's and 17's targets. No benchmark
runs here: the samples are built by hand, and the figures in them are inputs, not measurements.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from bench.config import EPOCH_OVER_MEMORY, MIB, QUICK  # noqa: E402
from bench.dataset import Layout  # noqa: E402
from bench.epoch import epoch_mount_args, epoch_order, epoch_spec  # noqa: E402
from bench.pypkg import PACKAGE, package_sources, write_package  # noqa: E402
from bench.reporting import amplification_cell, not_applicable_notes, targets_tables  # noqa: E402
from bench.samples import Key, Sample, amplification, cpu_per_gib  # noqa: E402
from bench.targets import Target  # noqa: E402
from bench.targets_issue15 import (  # noqa: E402
    EPOCH1_CACHE_COST,
    EPOCH2_OVER_LOCAL,
    evaluate_issue15,
)
from bench.targets_issue17 import evaluate_issue17, fetched_per_read  # noqa: E402
from bench.worker_tasks import interleaved_reads  # noqa: E402
from bench.workloads import not_applicable, workloads  # noqa: E402

GIB = 1 << 30


def ok(value: float, **kw: object) -> Sample:
    return Sample("ok", value, **kw)  # type: ignore[arg-type]


# -- amplification and CPU ------------------------------------------------------------------------


def test_amplification_is_served_over_read() -> None:
    sample = ok(1.0, payload_bytes=4 * MIB, bytes_served=10 * MIB, requests={"aborted": 0})
    assert amplification(sample) == (2.5, False)
    assert amplification_cell(sample) == "2.50"


def test_amplification_is_a_lower_bound_with_aborted_gets() -> None:
    sample = ok(1.0, payload_bytes=MIB, bytes_served=3 * MIB, requests={"aborted": 2})
    assert amplification(sample) == (3.0, True)
    assert amplification_cell(sample) == ">= 3.00"


def test_amplification_without_bytes_read_is_none() -> None:
    sample = ok(1.0, payload_bytes=0, bytes_served=MIB)
    assert amplification(sample) is None
    assert amplification_cell(sample) == "-"


def test_cpu_per_gib_adds_user_and_system() -> None:
    sample = ok(1.0, payload_bytes=GIB // 4, cpu_user_s=0.25, cpu_system_s=0.5)
    assert cpu_per_gib(sample) == pytest.approx(3.0)
    assert cpu_per_gib(ok(1.0, payload_bytes=GIB)) is None
    assert cpu_per_gib(ok(1.0, cpu_user_s=1.0, cpu_system_s=1.0)) is None


def test_fetched_per_read_divides_served_bytes_by_reads() -> None:
    sample = ok(1.0, ops=4, bytes_served=MIB, requests={"aborted": 0})
    assert fetched_per_read(sample) == (MIB / 4, False)
    assert fetched_per_read(ok(1.0, ops=0)) is None


# -- two streams -----------------------------------------------------------------------------------


@given(
    offset=st.integers(0, 1 << 40),
    io=st.integers(1, 4 * MIB),
    pieces=st.integers(0, 300),
    rest=st.integers(0, 4 * MIB),
)
def test_interleaved_reads_cover_both_streams_in_turns(
    offset: int, io: int, pieces: int, rest: int
) -> None:
    length = pieces * io + rest % io
    reads = interleaved_reads(offset, length, io)
    first, second = reads[0::2], reads[1::2]
    assert len(first) == len(second)
    for stream, start in ((first, 0), (second, offset)):
        pos = start
        for off, size in stream:  # contiguous, in order, each at most io bytes
            assert off == pos
            assert 0 < size <= io
            pos += size
        assert pos == start + length
    for (a_off, a_size), (b_off, b_size) in zip(first, second, strict=True):
        assert b_off - a_off == offset  # each turn reads the same place of both streams
        assert a_size == b_size


def test_interleaved_reads_refuse_a_zero_read_size() -> None:
    with pytest.raises(ValueError, match="io must be"):
        interleaved_reads(0, MIB, 0)


# -- rows and systems ----------------------------------------------------------------------------


def test_verify_rows_are_ossfs_only_with_a_reason() -> None:
    for system in ("s3fs", "rclone", "nullfs", "local"):
        for row in ("verify1", "verifysmall"):
            reason = not_applicable(row, system)
            assert reason is not None
            assert "ossfs-only" in reason
    assert not_applicable("verify1", "oss2") is None  # oss2 streams the same object
    assert not_applicable("verifysmall", "oss2") is not None
    assert not_applicable("verify1", "ossfs@abc123") is None
    assert not_applicable("verifysmall", "ossfs") is None


def test_peers_take_the_walk_cold_and_stream_rows() -> None:
    for row in ("find2k", "du2k", "cold", "twostream", "ls1k", "ls10k", "import"):
        for system in ("s3fs", "rclone"):
            assert not_applicable(row, system) is None
    assert not_applicable("import", "oss2") is not None
    assert not_applicable("import", "nullfs") is not None


def test_every_row_has_a_unique_name_and_the_walk_tree_is_the_issues() -> None:
    names = [w.name for w in workloads(QUICK)]
    assert len(names) == len(set(names))
    assert {"find2k", "du2k", "cold", "twostream", "verify1", "verifysmall", "import"} <= set(names)
    assert (QUICK.walk_dirs, QUICK.walk_per_dir) == (100, 20)
    assert QUICK.stream_offset == 128 * MIB


def test_not_applicable_notes_name_each_row_and_reason_once() -> None:
    results: dict[Key, Sample] = {
        (p, "verify1", s): Sample("n/a: verify is ossfs-only")
        for p in ("remote", "remote-chunked")
        for s in ("s3fs", "rclone")
    }
    chosen = [w for w in workloads(QUICK) if w.name == "verify1"]
    lines = not_applicable_notes(results, ["ossfs", "s3fs", "rclone"], chosen)
    assert [line for line in lines if line.startswith("- ")] == [
        "- `verify1` on s3fs, rclone: verify is ossfs-only"
    ]


# -- the synthetic package -----------------------------------------------------------------------


def test_synthetic_package_imports_every_module(tmp_path: Path) -> None:
    written = write_package(tmp_path, 3, 4)
    sources = package_sources(3, 4)
    assert len(written) == 2 * len(sources)  # each source with its byte-code
    assert all(p.is_file() for p in written)
    code = f"import sys; sys.path.insert(0, sys.argv[1]); import {PACKAGE} as p; print(p.MODULES)"
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "12"


def test_synthetic_package_is_deterministic() -> None:
    assert package_sources(2, 3) == package_sources(2, 3)
    assert len(package_sources(2, 3)) == 2 * (3 + 1) + 1


# -- issue 17's targets --------------------------------------------------------------------------


def remote_results(**overrides: Sample) -> dict[Key, Sample]:
    """A run on ``remote`` in which every target of issue 17 is met, except as overridden
    (``workload__system=sample``)."""
    gib_read = {"payload_bytes": GIB, "cpu_user_s": 0.5, "cpu_system_s": 0.5}
    rows: dict[tuple[str, str], Sample] = {
        ("seq1", "ossfs"): ok(500.0, cpu_process="daemon", **gib_read),
        ("seq1", "oss2"): ok(100.0),
        ("cold", "ossfs"): ok(50.0),
        ("cold", "oss2"): ok(45.0),
        ("ls10k", "ossfs"): ok(1.0, requests={"LIST": 10, "HEAD": 0}),
        ("find2k", "ossfs"): ok(0.7),
        ("find2k", "oss2"): ok(0.5),
        ("du2k", "ossfs"): ok(0.7),
        ("du2k", "oss2"): ok(0.5),
        ("rand4k", "ossfs"): ok(50.0, ops=100, bytes_served=100 * 128 * 1024),
        ("twostream", "ossfs"): ok(200.0),
        ("verify1", "ossfs"): ok(400.0),
        ("verify1", "oss2"): ok(100.0),
        ("ttfb", "ossfs"): ok(25.0),
        ("ttfb", "oss2"): ok(21.0),
        ("import", "ossfs"): ok(1.0),
        ("import", "ossfs@old"): ok(2.0),
    }
    for name, sample in overrides.items():
        workload, _, system = name.partition("__")
        rows[(workload, system.replace("_at_", "@"))] = sample
    return {("remote", w, s): sample for (w, s), sample in rows.items()}


def verdicts(results: dict[Key, Sample]) -> dict[str, bool | None]:
    targets = evaluate_issue17(results, QUICK, ["remote"])
    assert all(t.issue == 17 for t in targets)
    return {t.name: t.met for t in targets}


def verdict(results: dict[Key, Sample], words: str) -> bool | None:
    (met,) = [m for name, m in verdicts(results).items() if words in name]
    return met


def test_issue17_targets_all_met_when_every_figure_is_good_enough() -> None:
    got = verdicts(remote_results())
    assert got
    assert all(met is True for met in got.values()), got


@pytest.mark.parametrize(
    ("words", "override", "expected"),
    [
        ("default options", {"seq1__ossfs": ok(499.0, cpu_process="daemon")}, False),
        ("default options", {"seq1__ossfs": ok(500.0)}, True),
        (
            "CPU-s per GiB",
            {
                "seq1__ossfs": ok(
                    500.0,
                    payload_bytes=GIB,
                    cpu_user_s=0.5,
                    cpu_system_s=1.01,
                    cpu_process="daemon",
                )
            },
            False,
        ),
        ("CPU-s per GiB", {"seq1__ossfs": ok(500.0, payload_bytes=GIB)}, None),
        ("never-listed", {"cold__ossfs": ok(56.3)}, False),
        ("never-listed", {"cold__ossfs": ok(56.25)}, True),
        ("stays at 10 LISTs", {"ls10k__ossfs": ok(1.0, requests={"LIST": 10, "HEAD": 1})}, False),
        ("stays at 10 LISTs", {"ls10k__ossfs": ok(1.0, requests={"LIST": 11})}, False),
        ("find over", {"find2k__ossfs": ok(0.76)}, False),
        ("du -s over", {"du2k__ossfs": ok(0.76)}, False),
        ("du -s over", {"du2k__oss2": Sample("timeout after 300 s")}, None),
        (
            "random 4 KiB",
            {"rand4k__ossfs": ok(1.0, ops=100, bytes_served=100 * 257 * 1024)},
            False,
        ),
        (
            "random 4 KiB",
            {
                "rand4k__ossfs": ok(
                    1.0, ops=100, bytes_served=100 * 100 * 1024, requests={"aborted": 3}
                )
            },
            None,
        ),
        ("two streams", {"twostream__ossfs": ok(199.0)}, False),
        ("verify of one", {"verify1__ossfs": ok(399.0)}, False),
        ("TTFB", {"ttfb__ossfs": ok(26.5)}, False),
        ("TTFB", {"ttfb__ossfs": ok(26.0)}, True),
        ("import", {"import__ossfs": ok(1.01)}, False),
        ("import", {"import__ossfs": Sample("mount failed: x")}, None),
    ],
)
def test_issue17_target_follows_its_threshold(
    words: str, override: dict[str, Sample], expected: bool | None
) -> None:
    assert verdict(remote_results(**override), words) is expected


def test_issue17_import_target_needs_a_baseline() -> None:
    results = {k: v for k, v in remote_results().items() if k[2] != "ossfs@old"}
    targets = [t for t in evaluate_issue17(results, QUICK, ["remote"]) if "import" in t.name]
    assert len(targets) == 1
    assert targets[0].met is None
    assert "--baseline-rev" in targets[0].note


def test_issue17_rate_targets_run_on_both_pacing_modes_only() -> None:
    results = {
        (p, w, s): v
        for (_, w, s), v in remote_results().items()
        for p in ("loopback", "remote", "remote-chunked")
    }
    profiles = ["loopback", "remote", "remote-chunked"]
    names = [t.name for t in evaluate_issue17(results, QUICK, profiles)]
    assert sum("two streams" in n for n in names) == 2
    assert sum("default options" in n for n in names) == 2
    # the daemon's CPU per GiB is asked for on every profile
    assert sum("CPU-s per GiB" in n for n in names) == 3


def test_targets_are_reported_by_issue() -> None:
    lines = targets_tables([Target("a", "1x", True), Target("b", "n/a", None, "why", issue=17)])
    assert "### Targets of issue 5" in lines
    assert "### Targets of issue 17" in lines
    assert lines.index("### Targets of issue 5") < lines.index("### Targets of issue 17")
    assert "| b | n/a | not measured (why) |" in lines


# -- the epoch rows and issue 15's targets --------------------------------------------------------


@given(repeats=st.integers(1, 20))
def test_epoch_order_puts_each_mount_first_equally_often(repeats: int) -> None:
    orders = [epoch_order(rep) for rep in range(2 * repeats)]
    assert all(sorted(order) == ["off", "on"] for order in orders)
    assert sum(order[0] == "on" for order in orders) == repeats
    assert orders[0] != orders[1]


def test_epoch_data_set_is_four_times_the_mount_memory(tmp_path: Path) -> None:
    layout = Layout(QUICK)
    total = len(layout.epoch) * QUICK.epoch_file_bytes
    assert total == EPOCH_OVER_MEMORY * QUICK.epoch_memory
    assert len(set(layout.epoch)) == QUICK.epoch_files
    args = epoch_mount_args(QUICK, None)
    assert args == ["--max-memory", f"{QUICK.epoch_memory // MIB}MiB"]
    assert epoch_mount_args(QUICK, tmp_path)[-2:] == ["--cache-dir", str(tmp_path)]
    spec = epoch_spec(layout, str(tmp_path))
    assert (spec["task"], spec["keys"], spec["root"]) == ("seq", layout.epoch, str(tmp_path))


def test_epoch_rows_are_ossfs_with_local_as_epoch2_reference() -> None:
    for row in ("epoch1", "epoch1c", "epoch2"):
        assert not_applicable(row, "ossfs") is None
        assert not_applicable(row, "ossfs@abc") is None
        for peer in ("oss2", "s3fs", "rclone", "nullfs"):
            assert not_applicable(row, peer)
    assert not_applicable("epoch2", "local") is None
    assert not_applicable("epoch1", "local")
    assert not_applicable("epoch1c", "local")
    assert {w.group for w in workloads(QUICK) if w.name.startswith("epoch")} == {"epoch"}


def epoch_results(
    epoch2: float = 800.0,
    local: float = 1000.0,
    gets: int = 0,
    on: float = 950.0,
    off: float = 1000.0,
) -> dict[Key, Sample]:
    return {
        ("remote", "epoch2", "ossfs"): ok(epoch2, requests={"GET": gets}),
        ("remote", "epoch2", "local"): ok(local),
        ("remote", "epoch1c", "ossfs"): ok(on, cpu_user_s=1.0, cpu_system_s=1.0),
        ("remote", "epoch1", "ossfs"): ok(off, cpu_user_s=1.0, cpu_system_s=0.5),
    }


def issue15(results: dict[Key, Sample], words: str) -> bool | None:
    (target,) = [t for t in evaluate_issue15(results, ["remote"]) if words in t.name]
    assert target.issue == 15
    return target.met


@given(share=st.floats(0.05, 2.0), gets=st.integers(0, 3))
def test_issue15_epoch2_target_needs_the_share_and_no_get(share: float, gets: int) -> None:
    assume(abs(share - EPOCH2_OVER_LOCAL) > 1e-6)  # not at the threshold itself (rounding)
    results = epoch_results(epoch2=1000.0 * share, local=1000.0, gets=gets)
    assert issue15(results, "epoch 2") is (share >= EPOCH2_OVER_LOCAL and gets == 0)


@given(cost=st.floats(0.5, 3.0))
def test_issue15_epoch1_target_compares_times_with_and_without(cost: float) -> None:
    assume(abs(cost - EPOCH1_CACHE_COST) > 1e-6)  # not at the threshold itself (rounding)
    results = epoch_results(on=1000.0 / cost, off=1000.0)
    assert issue15(results, "epoch 1") is (cost <= EPOCH1_CACHE_COST)


def test_issue15_targets_not_measured_without_both_sides() -> None:
    results = epoch_results()
    del results[("remote", "epoch2", "local")]
    results[("remote", "epoch1", "ossfs")] = Sample("mount failed: x")
    targets = evaluate_issue15(results, ["remote"])
    assert [t.met for t in targets] == [None, None]
    assert targets[1].note == "mount failed: x"


def test_issue15_epoch1_note_says_blocks_not_written_and_read_ahead_waits() -> None:
    results = epoch_results()
    results[("remote", "epoch1c", "ossfs")] = ok(
        950.0,
        cpu_user_s=1.0,
        cpu_system_s=1.0,
        counters={
            "disk_cache.writes_dropped": 2.0,
            "disk_cache.read_ahead_waits": 300.0,
            "disk_cache.read_ahead_wait_ms": 4875.0,
        },
    )
    (target,) = [t for t in evaluate_issue15(results, ["remote"]) if "epoch 1" in t.name]
    assert target.note == (
        "daemon CPU 1.33x; 2 blocks not written; read-ahead waited for the disk 300 times, 4.9 s"
    )
