"""Parsing of human sizes (``512MiB``, ``1G``) and durations (``30``, ``1.5``, ``forever``)."""

from __future__ import annotations

import math
import re
from typing import Final

from ossfs.core.errors import UsageError

_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1000**3,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1000**4,
    "tib": 1 << 40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, *, what: str = "size") -> int:
    """``"512MiB"`` -> 536870912; ``K``/``M``/``G`` are binary; raise `UsageError` when invalid."""
    match = _SIZE_RE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise UsageError(
            f"invalid {what} {text!r}: use a number with an optional unit, e.g. 512MiB"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def parse_ttl(text: str, *, what: str = "TTL") -> float:
    """Seconds as a float; ``forever`` gives ``math.inf``; raise `UsageError` when invalid."""
    if text.strip().lower() in ("forever", "inf", "infinite"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise UsageError(f"invalid {what} {text!r}: use seconds (e.g. 60, 0) or 'forever'")
    return value


def format_size(n: float) -> str:
    """Short human size: ``1.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
