"""The values of a verification: its configuration, what to verify, and what came of it.

Responsibility: `VerifyConfig` (validated once), `MountView` (where a mount shows a key),
`Target` (one object to verify), `ObjectResult` and `Status` (the outcome for one object),
`Summary` and `VerifyReport` (all outcomes, counted), and `ETAG_XATTR`. All are immutable.

It deliberately does no I/O, no reading, no CRC and no retrying: `ossfs.verify.verifier` is the
engine that produces these values.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ossfs.core.errors import NotFoundError
from ossfs.core.names import split_path, validate_root_prefix
from ossfs.core.object_store import ObjectMeta

__all__ = [
    "ETAG_XATTR",
    "MountView",
    "ObjectResult",
    "Status",
    "Summary",
    "Target",
    "VerifyConfig",
    "VerifyReport",
]

ETAG_XATTR: Final = "user.oss.etag"
"""The extended attribute in which an ossfs mount shows the ETag of the version it serves."""


class Status(enum.Enum):
    """The outcome for one object. Only OK counts as verified."""

    OK = "OK"
    MISMATCH = "MISMATCH"
    NO_CRC = "NO-CRC"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """How to verify.

    ``jobs``: objects verified at once (worker threads). ``chunk_bytes``: the largest piece of
    an object held in memory per GET in flight. An object larger than ``part_bytes`` is read
    as parts of ``part_bytes`` with up to ``streams`` ranged GETs in flight (``streams`` 1: every
    object is one stream), so at most ``jobs * streams`` GETs and as many chunks are in flight
    in all. ``max_attempts``: failed attempts in a row that made no
    progress before an object is given up as ERROR (an attempt that advanced resets the count,
    so a long object whose body keeps breaking but advancing is still read to its end; counted
    per part for an object read in parts).
    ``max_restarts``: how often an object that changed while it was read is restarted from its
    first byte before it is given up. Backoff between failed attempts is full-jitter
    exponential from ``retry_base_delay_s`` up to ``retry_max_delay_s`` seconds.
    """

    jobs: int = 4
    chunk_bytes: int = 1 << 20
    streams: int = 8
    part_bytes: int = 8 << 20
    max_attempts: int = 5
    max_restarts: int = 3
    retry_base_delay_s: float = 0.1
    retry_max_delay_s: float = 2.0

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs}")
        if self.chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be >= 1, got {self.chunk_bytes}")
        if self.streams < 1:
            raise ValueError(f"streams must be >= 1, got {self.streams}")
        if self.part_bytes < 1:
            raise ValueError(f"part_bytes must be >= 1, got {self.part_bytes}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if not 0 <= self.retry_base_delay_s <= self.retry_max_delay_s:
            raise ValueError("need 0 <= retry_base_delay_s <= retry_max_delay_s")


@dataclass(frozen=True, slots=True)
class MountView:
    """A running ossfs mount of the key prefix ``root_prefix`` at ``mountpoint``."""

    mountpoint: Path
    root_prefix: str = ""

    def __post_init__(self) -> None:
        validate_root_prefix(self.root_prefix)

    def path_of(self, key: str) -> Path:
        """The file that shows ``key`` on the mount.

        Raises `NotFoundError` when the key is outside the root prefix or one of its parts
        cannot be a file name (such keys are not visible on a mount).
        """
        if not key.startswith(self.root_prefix):
            raise NotFoundError(f"{key!r} is outside the mount's prefix {self.root_prefix!r}")
        parts = split_path("/" + key[len(self.root_prefix) :])
        return self.mountpoint.joinpath(*parts)


@dataclass(frozen=True, slots=True)
class Target:
    """One object to verify: its key and what a listing or HEAD said about it (if anything).

    ``error`` is set when the object could not even be looked up (e.g. a KEY that does not
    exist); such a target becomes an ERROR result without further requests.
    """

    key: str
    listed: ObjectMeta | None = None
    error: str | None = None

    @property
    def size_hint(self) -> int:
        return self.listed.size if self.listed is not None else 0


@dataclass(frozen=True, slots=True)
class ObjectResult:
    """The outcome for one object.

    ``size`` is the object's size as the server gave it (0 when unknown); ``bytes_read`` how many
    bytes of the final version were read and checked. ``expected_crc64`` is the server's CRC
    (None when it sent none or was never reached); ``computed_crc64`` the CRC of the bytes read
    (None when reading never completed). ``resumes`` counts resumed reads after transient
    failures, ``restarts`` the re-reads from byte 0 because the object changed.
    """

    key: str
    size: int
    status: Status
    expected_crc64: int | None = None
    computed_crc64: int | None = None
    error: str | None = None
    bytes_read: int = 0
    resumes: int = 0
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over all results; ``bytes`` is the total of bytes read and checked."""

    objects: int
    bytes: int
    seconds: float
    ok: int
    mismatch: int
    no_crc: int
    error: int

    @classmethod
    def of(cls, results: Sequence[ObjectResult], seconds: float) -> Summary:
        counts = dict.fromkeys(Status, 0)
        for r in results:
            counts[r.status] += 1
        return cls(
            objects=len(results),
            bytes=sum(r.bytes_read for r in results),
            seconds=seconds,
            ok=counts[Status.OK],
            mismatch=counts[Status.MISMATCH],
            no_crc=counts[Status.NO_CRC],
            error=counts[Status.ERROR],
        )

    @property
    def all_ok(self) -> bool:
        return self.ok == self.objects

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Every result, in the order of the targets, and the summary."""

    results: tuple[ObjectResult, ...]
    summary: Summary
