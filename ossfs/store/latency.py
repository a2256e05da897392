"""How long the store's link takes to answer: the best recent time to a response's head.

Responsibility: keep the times from sending a request (GET, HEAD or LIST) to its response's
head (status and headers) of the last few and answer with the shortest. The shortest, because
anything but the link itself (queueing behind other requests on a busy machine, a slow disk or
a long listing on the server, a new connection's handshake) only adds to it: so one sample is
already an answer, never too low, and a link is never taken for faster than it is. A few
samples, because a mount's endpoint rarely changes but a network can.

Deliberately not here: taking the times (`ossfs.store.oss_store`), what they decide (`prefetch`).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Final

SAMPLES: Final = 8
"""Requests looked at: the latest ones."""


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
        """A response's head arrived ``seconds`` after its request was sent."""
        with self._lock:
            self._times.append(seconds)

    def best(self) -> float | None:
        """The shortest of the last `SAMPLES` times; None before the first."""
        with self._lock:
            times = self._times
            return min(times) if times else None
