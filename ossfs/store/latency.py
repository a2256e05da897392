"""How long the store's link takes to answer: the best recent time to a GET's first byte.

Responsibility: keep the times from sending a GET to its response's head (status and headers)
of the last few GETs and answer with the shortest. The shortest, because anything but the
link itself (queueing behind other requests on a busy machine, a slow disk on the server) only
adds to it; a few samples, because a mount's endpoint rarely changes but a network can.

Deliberately not here: taking the times (`ossfs.store.oss_store`), what they decide (`prefetch`).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Final

SAMPLES: Final = 8
"""GETs looked at: the latest ones."""


class FirstByteLatency:
    """The shortest of the last `SAMPLES` first-byte times noted. Thread-safe."""

    def __init__(self, samples: int = SAMPLES) -> None:
        """Raises ValueError unless ``samples > 0``."""
        if samples <= 0:
            raise ValueError(f"samples must be > 0, not {samples}")
        self._samples = samples
        self._times: deque[float] = deque(maxlen=samples)
        self._lock = threading.Lock()

    def note(self, seconds: float) -> None:
        """A GET's response head arrived ``seconds`` after the request was sent."""
        with self._lock:
            self._times.append(seconds)

    def best(self) -> float | None:
        """The shortest of the last `SAMPLES` times; None until there were that many."""
        with self._lock:
            times = self._times
            return min(times) if len(times) == self._samples else None
