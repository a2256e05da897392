"""The targets the report checks: each a measured figure against what the issues ask, met,
missed or not measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.config import BLOCK_BYTES, MIB, PEERS, Sizes
from bench.samples import Key, Sample, ratio
from bench.systems import ossfs_default_cache_bytes


@dataclass(frozen=True, slots=True)
class Target:
    """One target: what was measured and whether it was met (None: not measured, see note)."""

    name: str
    measured: str
    met: bool | None
    note: str = ""
    issue: int = 5  # the issue that asks for it


def evaluate_targets(
    results: dict[Key, Sample], sizes: Sizes, memory_args: list[str], profiles: Sequence[str]
) -> list[Target]:
    def get(profile: str, workload: str, system: str) -> Sample | None:
        return results.get((profile, workload, system))

    def better_peer(profile: str, workload: str, higher: bool) -> tuple[str, Sample] | None:
        peers = [(p, get(profile, workload, p)) for p in PEERS]
        ok = [(p, s) for p, s in peers if s is not None and s.ok]
        if not ok:
            return None
        pick = max if higher else min
        return pick(ok, key=lambda ps: ps[1].value or 0.0)

    targets: list[Target] = []
    size = f"{sizes.seq_bytes / MIB:.0f} MiB"

    def add_ratio(name: str, r: float | None, need: float, what: str, note: str = "") -> None:
        if r is None:
            targets.append(Target(name, "n/a", None, note or "a side failed or did not run"))
        else:
            targets.append(Target(name, f"{r:.2f}x {what}", r >= need, note))

    if "remote" in profiles:
        o = get("remote", "seq1", "ossfs")
        add_ratio(
            f"remote, {size} sequential: ossfs >= 3x oss2 stream",
            ratio(o, get("remote", "seq1", "oss2"), True),
            3.0,
            "oss2",
        )
        bp = better_peer("remote", "seq1", True)
        add_ratio(
            f"remote, {size} sequential: ossfs >= 1.5x better of s3fs/rclone",
            ratio(o, bp[1] if bp else None, True),
            1.5,
            bp[0] if bp else "peer",
        )
    if "loopback" in profiles:
        o = get("loopback", "seq1", "ossfs")
        bp = better_peer("loopback", "seq1", True)
        add_ratio(
            f"loopback, {size} sequential: ossfs >= better of s3fs/rclone",
            ratio(o, bp[1] if bp else None, True),
            1.0,
            bp[0] if bp else "peer",
        )
        add_ratio(
            f"loopback, {size} sequential: ossfs >= 50% of null FUSE",
            ratio(o, get("loopback", "seq1", "nullfs"), True),
            0.5,
            "nullfs",
        )
    for profile in profiles:
        add_ratio(
            f"{profile}: warm re-read >= 50% of local file",
            ratio(get(profile, "warm", "ossfs"), get(profile, "warm", "local"), True),
            0.5,
            "local",
        )
    for profile in profiles:
        s = get(profile, "rand4k", "ossfs")
        name = f"{profile}: random 4 KiB, bytes fetched <= 1.1x distinct blocks x 1 MiB"
        if s is None or not s.ok or not s.extra.get("distinct_blocks"):
            targets.append(Target(name, "n/a", None, s.status if s else "did not run"))
        else:
            r = s.bytes_served / (s.extra["distinct_blocks"] * BLOCK_BYTES)
            blocks = s.extra["distinct_blocks"]
            got = f"{r:.2f}x ({s.bytes_served / MIB:.0f} MiB for {blocks:.0f} blocks)"
            note = ""
            lru = s.extra.get("lru_fetches")
            if lru and lru > blocks:
                note = (
                    f"touched blocks exceed the {ossfs_default_cache_bytes() // MIB} MiB cache: "
                    f"an ideal LRU of that size fetches {lru:.0f} MiB, ossfs "
                    f"{s.bytes_served / (lru * BLOCK_BYTES):.2f}x that"
                )
            targets.append(Target(name, got, r <= 1.1, note))
    for profile in profiles:
        for wl in ("small1", "small8"):
            s = get(profile, wl, "ossfs")
            if profile == "loopback" or wl == "small1":
                name = f"{profile}, {wl}: 1 GET and 0 HEAD per file after the listing"
                if s is None or not s.ok or not s.ops:
                    targets.append(Target(name, "n/a", None, s.status if s else "did not run"))
                else:
                    gets, heads = (
                        s.requests.get("GET", 0) / s.ops,
                        s.requests.get("HEAD", 0) / s.ops,
                    )
                    targets.append(
                        Target(
                            name,
                            f"{gets:.2f} GET, {heads:.2f} HEAD per file",
                            abs(gets - 1) < 1e-9 and heads == 0,
                        )
                    )
            bp = better_peer(profile, wl, True)
            add_ratio(
                f"{profile}, {wl}: ossfs >= 2x better peer",
                ratio(s, bp[1] if bp else None, True),
                2.0,
                bp[0] if bp else "peer",
            )
    if "loopback" in profiles:
        s = get("loopback", "ls10k", "ossfs")
        n = sizes.ls_counts[1]
        want = math.ceil(n / 1000)
        name = f"ls -l of {n:,}: {want} LISTs, 0 HEADs"
        if s is None or not s.ok:
            targets.append(Target(name, "n/a", None, s.status if s else "did not run"))
        else:
            lists, heads = s.requests.get("LIST", 0), s.requests.get("HEAD", 0)
            targets.append(
                Target(name, f"{lists} LIST, {heads} HEAD", lists == want and heads == 0)
            )
        add_ratio(
            f"ls -l of {n:,}: ossfs >= 5x faster than s3fs",
            ratio(s, get("loopback", "ls10k", "s3fs"), False),
            5.0,
            "s3fs",
        )
    for profile in profiles:
        s = get(profile, "seq4", "ossfs")
        name = (
            f"{profile}, 4 readers with {' '.join(memory_args) or 'defaults'}: peak RSS <= 640 MiB"
        )
        note = "" if "--max-memory" in memory_args else "ossfs has no --max-memory yet"
        if s is None or s.peak_rss_bytes is None:
            targets.append(Target(name, "n/a", None, s.status if s else "did not run"))
        else:
            rss = s.peak_rss_bytes / MIB
            targets.append(Target(name, f"{rss:.0f} MiB", rss <= 640, note))
    return targets
