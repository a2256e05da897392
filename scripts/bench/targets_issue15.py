"""The performance targets of issue 15 (the disk cache), evaluated on one run's results.

On every profile of the run: epoch 2 (a data set 4x ``--max-memory`` re-read through a remounted
mount with the same ``--cache-dir``) at least `EPOCH2_OVER_LOCAL` of the speed of the same files
read from the local directory, with 0 GETs; and epoch 1 with the cache on costs at most
`EPOCH1_CACHE_COST` of its time with it off. Both sides of each come from the same run
(``bench.epoch``: the two epoch-1 mounts alternate ABBA). A target whose sides did not both
run is "not measured", with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from bench.samples import Key, Sample
from bench.targets import Target

EPOCH2_OVER_LOCAL: Final = 0.7  # epoch 2 >= 70% of the speed of reading local files
EPOCH1_CACHE_COST: Final = 1.10  # epoch 1 with the cache <= 110% of its time without

ISSUE: Final = 15


def _missing(name: str, *samples: Sample | None) -> Target:
    why = next((s.status for s in samples if s is not None and not s.ok), "did not run")
    return Target(name, "n/a", None, why, issue=ISSUE)


def _dropped(sample: Sample) -> str:
    """The disk cache's blocks not written during the case, and read-ahead's waits for its
    writes, if its counters say."""
    dropped = sample.counters.get("disk_cache.writes_dropped")
    waits = sample.counters.get("disk_cache.read_ahead_waits")
    wait_ms = sample.counters.get("disk_cache.read_ahead_wait_ms")
    out = "" if dropped is None else f"; {dropped:.0f} blocks not written"
    if waits is not None and wait_ms is not None:
        out += f"; read-ahead waited for the disk {waits:.0f} times, {wait_ms / 1000:.1f} s"
    return out


def evaluate_issue15(results: dict[Key, Sample], profiles: Sequence[str]) -> list[Target]:
    """Issue 15's epoch targets for each profile of the run."""
    targets: list[Target] = []
    for p in profiles:
        epoch2, local = results.get((p, "epoch2", "ossfs")), results.get((p, "epoch2", "local"))
        name = (
            f"{p}: epoch 2 (remounted, same --cache-dir) >= {EPOCH2_OVER_LOCAL:g}x the speed of "
            "reading the files locally, with 0 GETs"
        )
        if epoch2 is None or local is None or not epoch2.ok or not local.ok or not local.value:
            targets.append(_missing(name, epoch2, local))
        else:
            share = (epoch2.value or 0.0) / local.value
            gets = epoch2.requests.get("GET", 0)
            got = f"{share:.2f}x local ({epoch2.value:.0f} vs {local.value:.0f} MB/s), {gets} GETs"
            targets.append(Target(name, got, share >= EPOCH2_OVER_LOCAL and gets == 0, issue=ISSUE))
        on, off = results.get((p, "epoch1c", "ossfs")), results.get((p, "epoch1", "ossfs"))
        name = f"{p}: epoch 1 with --cache-dir takes <= {EPOCH1_CACHE_COST:g}x its time without"
        if on is None or off is None or not on.ok or not off.ok or not on.value:
            targets.append(_missing(name, on, off))
        else:
            cost = (off.value or 0.0) / on.value  # MB/s: time with / time without
            got = f"{cost:.2f}x ({on.value:.0f} vs {off.value:.0f} MB/s)"
            cpu = ""
            if on.cpu_s and off.cpu_s:
                cpu = f"daemon CPU {on.cpu_s / off.cpu_s:.2f}x"
            note = (cpu + _dropped(on)).lstrip("; ")
            targets.append(Target(name, got, cost <= EPOCH1_CACHE_COST, note, issue=ISSUE))
    return targets
