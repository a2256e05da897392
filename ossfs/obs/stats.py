"""Live counters of a mount: one `Stats` snapshot, its JSON form, a human table and Prometheus text.

Responsibility: gather one snapshot from the live objects of a mount (the store's request
counters, the block cache, the namespace, the prefetcher, what `ServedCounters` counted in the
FUSE adapter, the process's RSS), and render a snapshot as JSON (what the mount root's
``user.ossfs.obs.stats`` xattr answers), as the human table of ``ossfs stats`` and as the Prometheus
text exposition format (``--metrics-address``). Renderers work on the JSON form, so a newer
daemon's extra counters show up in an older ``ossfs stats`` instead of breaking it.

Deliberately not here: counting (each layer counts its own work, thread-safely), reading the
xattr (the CLI) and serving HTTP (`ossfs.obs.metrics`).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, TypeGuard

from ossfs import __version__
from ossfs.core.sizes import format_size
from ossfs.fs.namespace import Namespace, NamespaceStats
from ossfs.read.block_cache import BlockCache, CacheStats
from ossfs.read.disk.disk_cache import DiskCache
from ossfs.read.disk.disk_stats import DiskCacheStats
from ossfs.read.prefetch import Prefetcher, PrefetchStats
from ossfs.read.pressure import PressureMonitor, PressureStats
from ossfs.read.sibling_prefetch import SiblingPrefetcher, SiblingPrefetchStats

STATS_XATTR: Final = "user.ossfs.obs.stats"
"""On the mount root: the current `Stats` as JSON (UTF-8, padded with trailing spaces)."""
STATS_FORMAT: Final = 1
"""``ossfs_stats`` in the JSON: bumped when a field changes meaning (new fields do not bump it)."""

Json = dict[str, "Json"] | list["Json"] | str | int | float | bool | None
"""A value `json.loads` can return."""

# Store counters are ``NAME`` and ``NAME.LABEL``; the JSON keeps ``NAME`` and a ``NAME_by_KIND``
# map. Unknown names get the generic kind "kind".
_LABEL_KINDS: Final = {"requests": "op", "retries": "op", "gave_up": "op", "errors": "class"}
_STORE_ORDER: Final = ("requests", "bytes_fetched", "retries", "gave_up", "errors")
# Keys (in any section) that are levels, not monotonic counters.
_GAUGES: Final = frozenset(
    {
        "uptime_s",
        "used_bytes",
        "capacity_bytes",
        "hit_rate",
        "rss_bytes",
        "cache_bytes",
        "open_handles",
        "inflight_bytes",
        "waste_ratio",
        "inflight_gets",
        "unread_bytes",
        "first_byte_us",
        "budget_bytes",
        "limit_bytes",
        "reserved_bytes",
        "in_use_bytes",
        "scale",
        "blocks",
        "enabled",
    }
)
_PAD_TO: Final = 1024
_PAD_SLACK: Final = 256


class StoreCounters(Protocol):
    """What `OssStore` offers: ``requests``, ``requests.<op>``, ``bytes_fetched``, ..."""

    def stats(self) -> dict[str, int]: ...


class ServedCounters:
    """What the FUSE adapter answered: opens, reads, bytes served and errors by errno.

    Thread-safe; one lock around integer updates.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opens = 0
        self._reads = 0
        self._bytes = 0
        self._errors: dict[int, int] = {}

    def opened(self) -> None:
        with self._lock:
            self._opens += 1

    def served(self, nbytes: int) -> None:
        """One read answered with ``nbytes`` bytes."""
        with self._lock:
            self._reads += 1
            self._bytes += nbytes

    def failed(self, err: int) -> None:
        """One callback answered with errno ``err``."""
        with self._lock:
            self._errors[err] = self._errors.get(err, 0) + 1

    def snapshot(self) -> ServedStats:
        with self._lock:
            errors = {errno.errorcode.get(e, str(e)): n for e, n in sorted(self._errors.items())}
            return ServedStats(self._opens, self._reads, self._bytes, errors)


@dataclass(frozen=True, slots=True)
class ServedStats:
    """``opens``/``reads`` answered, ``bytes`` returned by reads, ``errors_by_errno`` (by name)."""

    opens: int
    reads: int
    bytes: int
    errors_by_errno: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class MemorySettings:
    """What a mount was given to live within: ``budget_bytes`` (``--max-memory``), and the
    memory limit of the process (``limit_bytes``) with where it came from in words
    (``limit_source``: ``cgroup /x.service memory.max``, or ``RAM``)."""

    budget_bytes: int
    limit_bytes: int
    limit_source: str


@dataclass(frozen=True, slots=True)
class Stats:
    """One snapshot of a mount's counters (counters count since the mount started)."""

    mount: str
    uptime_s: float
    store: Mapping[str, int]
    served: ServedStats
    open_handles: int
    cache: CacheStats
    cache_capacity_bytes: int
    namespace: NamespaceStats
    prefetch: PrefetchStats | None
    rss_bytes: int
    sibling_prefetch: SiblingPrefetchStats | None = None
    memory: MemorySettings | None = None
    pressure: PressureStats | None = None
    disk_cache: DiskCacheStats | None = None

    def to_json(self) -> dict[str, Json]:
        """The JSON form (sections of numbers, and maps of numbers by label)."""
        cache = self.cache
        lookups = cache.hits + cache.misses + cache.joined
        out: dict[str, Json] = {
            "ossfs_stats": STATS_FORMAT,
            "version": __version__,
            "mount": self.mount,
            "uptime_s": round(self.uptime_s, 3),
            "store": _store_section(self.store),
            "served": {
                "opens": self.served.opens,
                "reads": self.served.reads,
                "bytes": self.served.bytes,
                "open_handles": self.open_handles,
                "errors_by_errno": dict(self.served.errors_by_errno),
            },
            "cache": {
                **_ints(cache),
                "capacity_bytes": self.cache_capacity_bytes,
                "hit_rate": round((cache.hits + cache.joined) / lookups, 4) if lookups else 0.0,
            },
            "namespace": _ints(self.namespace),
        }
        if self.prefetch is not None:
            pf = self.prefetch
            waste = pf.bytes_unused / pf.bytes_prefetched if pf.bytes_prefetched else 0.0
            out["prefetch"] = {**_ints(pf), "waste_ratio": round(waste, 4)}
        if self.sibling_prefetch is not None:
            sp = self.sibling_prefetch
            waste = sp.files_wasted / sp.files_prefetched if sp.files_prefetched else 0.0
            out["sibling_prefetch"] = {**_ints(sp), "waste_ratio": round(waste, 4)}
        if self.disk_cache is not None:
            dc = self.disk_cache
            looked = dc.hits + dc.misses
            rate = round(dc.hits / looked, 4) if looked else 0.0
            out["disk_cache"] = {**_ints(dc), "hit_rate": rate}
        memory: dict[str, Json] = {"rss_bytes": self.rss_bytes, "cache_bytes": cache.used_bytes}
        if self.memory is not None:
            memory["budget_bytes"] = self.memory.budget_bytes
            memory["limit_bytes"] = self.memory.limit_bytes
            memory["limit_source"] = self.memory.limit_source
        if self.pressure is not None:
            # How much of the limit is in use, and how far the block memory is shrunk for it.
            memory["in_use_bytes"] = self.pressure.usage_bytes
            memory["scale"] = self.pressure.scale
            memory["shrinks"] = self.pressure.shrinks
            memory["grows"] = self.pressure.grows
        out["memory"] = memory
        return out

    def to_xattr(self) -> bytes:
        """The xattr value: JSON padded with spaces to a stable size.

        Tools ask for an xattr's size, then for its value; padding keeps the second answer from
        outgrowing the first while counters move (which would be ERANGE).
        """
        text = json.dumps(self.to_json(), separators=(",", ":")).encode()
        size = (len(text) + _PAD_SLACK + _PAD_TO - 1) // _PAD_TO * _PAD_TO
        return text.ljust(size)


def _ints(
    snapshot: CacheStats | NamespaceStats | PrefetchStats | SiblingPrefetchStats | DiskCacheStats,
) -> dict[str, Json]:
    values = ((f.name, getattr(snapshot, f.name)) for f in dataclasses.fields(snapshot))
    return {name: value for name, value in values if isinstance(value, int)}


def _store_section(counts: Mapping[str, int]) -> dict[str, Json]:
    """``NAME`` counters in a fixed order, each followed by its ``NAME_by_KIND`` map if any."""
    scalars = [n for n in _STORE_ORDER if n in counts]
    scalars += sorted(n for n in counts if "." not in n and n not in _STORE_ORDER)
    maps: dict[str, dict[str, Json]] = {}
    for name in sorted(n for n in counts if "." in n):
        head, _, label = name.partition(".")
        maps.setdefault(head, {})[label] = counts[name]
    section: dict[str, Json] = {}
    for head in scalars + sorted(set(maps) - set(scalars)):
        if head in counts:
            section[head] = counts[head]
        if head in maps:
            section[f"{head}_by_{_LABEL_KINDS.get(head, 'kind')}"] = maps[head]
    return section


class MountStats:
    """Gathers `Stats` from the live objects of one mount. Thread-safe (each source is)."""

    def __init__(
        self,
        *,
        mount: str,
        store: StoreCounters,
        cache: BlockCache,
        cache_capacity_bytes: int,
        namespace: Namespace,
        prefetcher: Prefetcher | None,
        open_handles: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
        sibling_prefetcher: SiblingPrefetcher | None = None,
        memory: MemorySettings | None = None,
        pressure: PressureMonitor | None = None,
        disk_cache: DiskCache | None = None,
    ) -> None:
        self.served = ServedCounters()
        self._disk = disk_cache
        self._mount = mount
        self._store = store
        self._cache = cache
        self._capacity = cache_capacity_bytes
        self._namespace = namespace
        self._prefetcher = prefetcher
        self._siblings = sibling_prefetcher
        self._open_handles = open_handles
        self._clock = clock
        self._started = clock()
        self._memory = memory
        self._pressure = pressure

    def snapshot(self) -> Stats:
        return Stats(
            mount=self._mount,
            uptime_s=self._clock() - self._started,
            store=self._store.stats(),
            served=self.served.snapshot(),
            open_handles=self._open_handles(),
            cache=self._cache.stats(),
            cache_capacity_bytes=self._capacity,
            namespace=self._namespace.stats(),
            prefetch=self._prefetcher.stats() if self._prefetcher is not None else None,
            rss_bytes=rss_bytes(),
            sibling_prefetch=self._siblings.stats() if self._siblings is not None else None,
            memory=self._memory,
            pressure=self._pressure.stats() if self._pressure is not None else None,
            disk_cache=self._disk.stats() if self._disk is not None else None,
        )


def rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


# -- rendering the JSON form ----------------------------------------------------------------------


def parse_stats(data: bytes) -> dict[str, Json]:
    """The JSON form from an xattr value; ValueError if it is not one."""
    value: Json = json.loads(data.decode())
    if not isinstance(value, dict) or not isinstance(value.get("ossfs_stats"), int):
        raise ValueError("not an ossfs stats document")
    return value


def format_human(doc: Mapping[str, Json]) -> str:
    """``ossfs stats`` output: a header line, a summary line, then one block per section, one
    counter a line."""
    lines = [
        f"{doc.get('mount', '?')}  (ossfs {doc.get('version', '?')}, up {_duration(doc)})",
        _summary(doc),
    ]
    for section, body in doc.items():
        if not isinstance(body, dict):
            continue
        lines.append(f"{section}:")
        for key, value in body.items():
            lines.append(f"  {key:<22} {_human_value(key, value)}")
    return "\n".join(lines) + "\n"


def _summary(doc: Mapping[str, Json]) -> str:
    """One line: requests, bytes fetched and served, cache hit rate, errors answered."""

    def get(section: str, key: str) -> Json:
        body = doc.get(section)
        return body.get(key) if isinstance(body, dict) else None

    def size(value: Json) -> str:
        return format_size(value) if _is_number(value) else "?"

    errors = get("served", "errors_by_errno")
    answered = sum(v for v in errors.values() if _is_number(v)) if isinstance(errors, dict) else 0
    rate = get("cache", "hit_rate")
    parts = [
        f"{get('store', 'requests')} requests",
        f"{size(get('store', 'bytes_fetched'))} fetched",
        f"{size(get('served', 'bytes'))} served",
        f"cache hit rate {rate:.1%}" if _is_number(rate) else "cache hit rate ?",
        f"{answered} errors answered",
    ]
    return "  " + ", ".join(parts)


def _duration(doc: Mapping[str, Json]) -> str:
    up = doc.get("uptime_s")
    if not isinstance(up, int | float):
        return "?"
    seconds = int(up)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def _human_value(key: str, value: Json) -> str:
    if isinstance(value, dict):
        items = [f"{k}={_human_value(key, v)}" for k, v in value.items()]
        return " ".join(items) if items else "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key in ("hit_rate", "waste_ratio"):
        return f"{value:.1%}"
    if "bytes" in key and isinstance(value, int):
        return f"{format_size(value)} ({value})" if value >= 1024 else str(value)
    return str(value)


def format_prometheus(doc: Mapping[str, Json]) -> str:
    """The text exposition format (0.0.4): ``ossfs_<section>_<name>``; counters end ``_total``.

    A ``NAME_by_KIND`` map becomes the labelled series of ``NAME`` (label ``KIND``), and then
    ``NAME`` itself is not repeated unlabelled (a sum over the series would count it twice).
    A text ``BASE_source`` next to a number ``BASE_UNIT`` becomes its label ``source``
    (``ossfs_memory_limit_bytes{source="cgroup /x.service memory.max"}``).
    Each family has a HELP line (its section and name in words) before its TYPE line.
    """
    lines: list[str] = []

    def family(name: str, gauge: bool, samples: list[tuple[str, float]], what: str) -> None:
        metric = f"ossfs_{name}" if gauge else f"ossfs_{name}_total"
        lines.append(f"# HELP {metric} {_help_escape(what)}")
        lines.append(f"# TYPE {metric} {'gauge' if gauge else 'counter'}")
        lines.extend(f"{metric}{labels} {_number(v)}" for labels, v in samples)

    uptime = doc.get("uptime_s")
    if isinstance(uptime, int | float):
        family("uptime_seconds", True, [("", uptime)], "seconds since the mount started")
    for section, body in doc.items():
        if not isinstance(body, dict):
            continue
        labelled = {k.partition("_by_")[0] for k, v in body.items() if isinstance(v, dict)}
        for key, value in body.items():
            name = _metric_name(f"{section}_{key}")
            if isinstance(value, dict):
                base, _, kind = key.partition("_by_")
                samples = [
                    (f'{{{kind or "label"}="{_escape(label)}"}}', v)
                    for label, v in value.items()
                    if _is_number(v)
                ]
                what = f"{_words(section, base)}, by {kind or 'label'}"
                family(_metric_name(f"{section}_{base}"), False, samples, what)
            elif _is_number(value) and key not in labelled:
                source = body.get(f"{key.rpartition('_')[0]}_source")
                label = f'{{source="{_escape(source)}"}}' if isinstance(source, str) else ""
                family(name, key in _GAUGES, [(label, value)], _words(section, key))
    return "\n".join(lines) + "\n"


def _is_number(value: Json) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metric_name(text: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in text)


def _words(section: str, key: str) -> str:
    """A family's HELP text: its section and name in words (``ossfs stats`` shows the same
    figures under the same names; the README says what each section counts)."""
    return f"ossfs {section}: {key.replace('_', ' ')}"


def _help_escape(text: str) -> str:
    """A HELP text as the exposition format wants it: backslashes and line feeds escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(text: str) -> str:
    """A label value: escaped as a HELP text, and its double quotes too."""
    return _help_escape(text).replace('"', '\\"')


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))
