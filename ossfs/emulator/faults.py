"""Fault injection: what can go wrong on the wire, decided per request, reproducibly.

`FaultSettings` is the immutable configuration (from CLI flags, the admin API or tests);
`Faults` holds the current settings and a seeded random generator behind a lock and turns each
request into a `FaultPlan`. This module decides; the HTTP layer carries the plan out.
Latency (the wait before an answer's head) applies to every request, as a remote link delays
HEAD, LIST and the probe as much as a GET. Body faults (bandwidth, reset, truncate, corrupt) apply
to GetObject bodies; error answers (503 SlowDown / 500 InternalError) also to HEAD and LIST.
Bandwidth is paced ``smooth`` (small pieces, each sent on time) or ``chunked`` (1 MiB pieces,
then a sleep until the rate is met, as some servers and proxies write).
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

FAULT_KINDS = ("latency", "bandwidth", "error", "reset", "truncate", "corrupt")
PACINGS = ("smooth", "chunked")


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """All rates are probabilities in [0, 1] per matching request; 0 turns a fault off.

    ``key_prefix``: when set, only keys starting with it are affected (listings: the prefix).
    ``corrupt_keys``: keys whose bodies are always corrupted.
    ``pacing``: how a bandwidth cap sends a body, one of `PACINGS`.
    """

    latency_s: float = 0.0
    bandwidth_bytes_per_s: int = 0
    pacing: str = "smooth"
    error_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    corrupt_rate: float = 0.0
    corrupt_keys: tuple[str, ...] = field(default=())
    key_prefix: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "reset_rate", "truncate_rate", "corrupt_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {value!r}")
        if self.latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, not {self.latency_s!r}")
        if self.bandwidth_bytes_per_s < 0:
            raise ValueError("bandwidth_bytes_per_s must be >= 0")
        if self.pacing not in PACINGS:
            raise ValueError(f"pacing must be one of {', '.join(PACINGS)}, not {self.pacing!r}")

    def to_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["corrupt_keys"] = list(self.corrupt_keys)
        return data

    @classmethod
    def from_json(
        cls, data: Mapping[str, object], base: FaultSettings | None = None
    ) -> FaultSettings:
        """Settings from a JSON object; fields not given keep ``base``'s values.

        Raise ValueError on unknown fields or wrong types.
        """
        current = (base or cls()).to_json()
        for name, value in data.items():
            if name not in current:
                raise ValueError(f"unknown fault setting {name!r}")
            current[name] = value
        try:
            keys = current["corrupt_keys"]
            prefix = current["key_prefix"]
            seed = current["seed"]
            pacing = current["pacing"]
            if not isinstance(pacing, str):
                raise ValueError("pacing must be a string")
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise ValueError("corrupt_keys must be a list of strings")
            if prefix is not None and not isinstance(prefix, str):
                raise ValueError("key_prefix must be a string or null")
            if seed is not None and not isinstance(seed, int):
                raise ValueError("seed must be an integer or null")
            return cls(
                latency_s=_number(current["latency_s"]),
                bandwidth_bytes_per_s=int(_number(current["bandwidth_bytes_per_s"])),
                pacing=pacing,
                error_rate=_number(current["error_rate"]),
                reset_rate=_number(current["reset_rate"]),
                truncate_rate=_number(current["truncate_rate"]),
                corrupt_rate=_number(current["corrupt_rate"]),
                corrupt_keys=tuple(keys),
                key_prefix=prefix,
                seed=seed,
            )
        except TypeError as exc:
            raise ValueError(str(exc)) from exc


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to do to one response. ``cut_fraction`` says where a reset/truncate/corrupt hits."""

    latency_s: float = 0.0
    bandwidth_bytes_per_s: int = 0
    pacing: str = "smooth"
    error_status: int | None = None  # 503 SlowDown or 500 InternalError
    reset: bool = False
    truncate: bool = False
    corrupt: bool = False
    cut_fraction: float = 0.5

    @property
    def needs_python_stream(self) -> bool:
        """True when the body cannot go out with zero-copy sendfile."""
        return bool(self.bandwidth_bytes_per_s or self.reset or self.truncate or self.corrupt)


NO_FAULTS = FaultPlan()


class Faults:
    """The current `FaultSettings` plus a seeded generator. Thread-safe."""

    def __init__(self, settings: FaultSettings | None = None) -> None:
        self._lock = threading.Lock()
        self._settings = settings or FaultSettings()
        self._rng = random.Random(self._settings.seed)

    @property
    def settings(self) -> FaultSettings:
        with self._lock:
            return self._settings

    def set(self, settings: FaultSettings) -> None:
        """Replace every setting; the generator restarts from the (new) seed."""
        with self._lock:
            self._settings = settings
            self._rng = random.Random(settings.seed)

    def update(self, **changes: object) -> FaultSettings:
        """Change some settings (same names as `FaultSettings` fields); return the new ones."""
        new = FaultSettings.from_json(changes, self.settings)
        self.set(new)
        return new

    def clear(self) -> None:
        self.set(FaultSettings())

    def latency_plan(self, key: str | None) -> FaultPlan:
        """Only the latency, for a request that gets no other fault (no random draw)."""
        with self._lock:
            s = self._settings
            if not s.latency_s or not _matches(s, key):
                return NO_FAULTS
            return FaultPlan(latency_s=s.latency_s)

    def plan(self, key: str | None, *, body: bool) -> FaultPlan:
        """Decide the faults for a request on ``key`` (None: bucket-level); ``body``: a GET body."""
        with self._lock:
            s = self._settings
            if not _matches(s, key):
                return NO_FAULTS
            rng = self._rng
            error: int | None = None
            if s.error_rate and rng.random() < s.error_rate:
                error = 503 if rng.random() < 0.5 else 500
            if not body:
                if not (error or s.latency_s):
                    return NO_FAULTS
                return FaultPlan(latency_s=s.latency_s, error_status=error)
            reset = bool(s.reset_rate) and rng.random() < s.reset_rate
            truncate = not reset and bool(s.truncate_rate) and rng.random() < s.truncate_rate
            corrupt = (key in s.corrupt_keys) or (
                bool(s.corrupt_rate) and rng.random() < s.corrupt_rate
            )
            cut = rng.random()
            if not (
                error or reset or truncate or corrupt or s.latency_s or s.bandwidth_bytes_per_s
            ):
                return NO_FAULTS
            return FaultPlan(
                latency_s=s.latency_s,
                bandwidth_bytes_per_s=s.bandwidth_bytes_per_s,
                pacing=s.pacing,
                error_status=error,
                reset=reset,
                truncate=truncate,
                corrupt=corrupt,
                cut_fraction=cut,
            )


def _matches(settings: FaultSettings, key: str | None) -> bool:
    return settings.key_prefix is None or (key or "").startswith(settings.key_prefix)
