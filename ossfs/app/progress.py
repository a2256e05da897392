"""A one-line progress display for a terminal: bytes done, rate, ETA and objects or files done.

Responsibility: count bytes and finished objects from any thread and redraw one status line,
at most every ``interval_s`` seconds, with ``\\r`` and erase-to-end-of-line; and let other
output appear above it without being garbled (`Progress.print_above`, `show_line`). It
deliberately decides nothing about *whether* to show progress (the CLI shows it only when stderr
is a TTY) and knows nothing about what is being counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Final, TextIO

from ossfs.core.sizes import format_size

_ERASE_LINE: Final = "\r\x1b[K"
_PLAIN_LOCK: Final = threading.Lock()


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1m15s"``; ``"?"`` when unknown (infinite or NaN)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """Thread-safe counters plus a throttled status line on ``out``.

    ``total_bytes``/``total_objects`` are what is expected (the ETA uses bytes); ``unit`` names
    what is counted (``"objects"``, ``"files"``). ``clock`` is monotonic seconds, injectable for
    tests. Call `close` at the end to erase the line.
    """

    def __init__(
        self,
        out: TextIO,
        *,
        total_bytes: int,
        total_objects: int,
        interval_s: float = 0.2,
        unit: str = "objects",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
        self._total_bytes = total_bytes
        self._total_objects = total_objects
        self._interval_s = interval_s
        self._unit = unit
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._last_draw = -math.inf
        self._bytes = 0
        self._objects = 0
        self._shown = False

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n
            self._maybe_draw()

    def object_done(self) -> None:
        with self._lock:
            self._objects += 1
            self._maybe_draw()

    def print_above(self, text: str, dest: TextIO) -> None:
        """Write ``text`` and a newline to ``dest`` with the status line erased, then redraw it."""
        with self._lock:
            self._erase()
            dest.write(text + "\n")
            dest.flush()
            self._draw()

    def close(self) -> None:
        """Erase the status line."""
        with self._lock:
            self._erase()

    def line(self) -> str:
        """The current status text (without control characters)."""
        with self._lock:
            return self._line()

    # -- internals (lock held) ------------------------------------------------------------------

    def _line(self) -> str:
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = self._bytes / elapsed
        left = max(self._total_bytes - self._bytes, 0)
        eta = left / rate if rate > 0 else math.inf
        pct = 100.0 * self._bytes / self._total_bytes if self._total_bytes else 100.0
        return (
            f"{format_size(self._bytes)} / {format_size(self._total_bytes)} ({pct:.0f}%)  "
            f"{format_size(rate)}/s  ETA {format_duration(eta)}  "
            f"{self._objects}/{self._total_objects} {self._unit}"
        )

    def _maybe_draw(self) -> None:
        if self._clock() - self._last_draw >= self._interval_s:
            self._draw()

    def _draw(self) -> None:
        self._out.write(_ERASE_LINE + self._line())
        self._out.flush()
        self._shown = True
        self._last_draw = self._clock()

    def _erase(self) -> None:
        if self._shown:
            self._out.write(_ERASE_LINE)
            self._out.flush()
            self._shown = False


def show_line(text: str, dest: TextIO, progress: Progress | None) -> None:
    """Write ``text`` and a newline to ``dest``, above ``progress``'s status line if there is
    one; callable from any thread (lines never interleave)."""
    if progress is not None:
        progress.print_above(text, dest)
        return
    with _PLAIN_LOCK:
        dest.write(text + "\n")
        dest.flush()
