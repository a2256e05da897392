"""Streaming CRC-64 verification of objects against the server's ``x-oss-hash-crc64ecma``.

Responsibility: decide which objects to check (a recursive listing under a prefix, or explicit
keys), read each one from start to end in bounded memory (one chunk of ``chunk_bytes`` per
GET in flight, at most ``jobs`` objects at once), compute CRC-64/XZ as the bytes arrive,
compare it and the byte count with what the server promised, and classify the outcome as
OK, MISMATCH, NO-CRC or ERROR.

Bytes come either from the store or, in *through* mode, from the files of a running ossfs mount.
From the store, an object of at most ``part_bytes`` is one stream (`ObjectStore.stream`; the
CRC expected is the one in the very response that carries the bytes). A larger one is HEADed for
the version to pin, then read as parts with up to ``streams`` ranged GETs in flight, each pinned
to that ETag (`ossfs.verify.parts`); the part CRCs are folded in order and compared with the CRC
the GETs announced (the HEAD's when they announced none). Through a mount (a large file as
parallel segments: `ossfs.verify.file_reads`), the CRC expected comes from a HEAD of the object:
an end-to-end check of the mount's data path.

Transient failures never turn into a MISMATCH. A stream (or part) that breaks is resumed at the
byte it reached, pinned to the same version (If-Match on the ETag) and continuing its running
CRC; an object that changes while it is read (`StaleError`) is restarted from byte 0 with its new
version. Both are bounded, and running out of attempts gives ERROR.

It deliberately does not print, parse arguments, read the environment, or import oss2 or
fusepy: `ossfs.app.verify_cli` does the wiring and the output; the values it takes and returns
are in `ossfs.verify.model`. Thread-safety: one `Verifier` runs one verification at a time; its
callbacks are called from worker threads.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Final

from ossfs.core.crc64 import crc64
from ossfs.core.errors import NotFoundError, OssfsError, RemoteIOError, StaleError
from ossfs.core.object_store import ObjectMeta, ObjectStore
from ossfs.store.retry import RetryPolicy
from ossfs.verify.file_reads import read_file_crc
from ossfs.verify.model import (
    ETAG_XATTR,
    MountView,
    ObjectResult,
    Status,
    Summary,
    Target,
    VerifyConfig,
    VerifyReport,
)
from ossfs.verify.parts import Attempts, CancelledError, PartsReader

__all__ = ["Verifier"]

log = logging.getLogger(__name__)

_NO_CRC_REASON: Final = "the server sent no x-oss-hash-crc64ecma for this object"


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, f"errno {exc.errno}")
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{name}: {exc.strerror or os.strerror(exc.errno)}{where}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_directory_marker(meta: ObjectMeta) -> bool:
    return meta.key.endswith("/") and meta.size == 0


def _frozen_reason(meta: ObjectMeta) -> str:
    state = "being restored" if meta.restore else "not restored"
    return (
        f"the object is in storage class {meta.storage_class} and {state}; "
        "restore it before it can be read"
    )


class Verifier:
    """Verifies objects of one store, directly or through a mount (``mount``).

    ``sleep`` and ``rand`` (uniform [0, 1)) are injectable for tests; ``clock`` measures the
    summary's seconds.
    """

    def __init__(
        self,
        store: ObjectStore,
        config: VerifyConfig | None = None,
        *,
        mount: MountView | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.config = config if config is not None else VerifyConfig()
        self._mount = mount
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self._cancelled = threading.Event()
        # The jittered backoff of `ossfs.store.retry`; attempts are counted here (a resume that got
        # further starts a fresh count), so only the delay schedule is borrowed.
        self._backoff = RetryPolicy(
            max_attempts=self.config.max_attempts,
            base_delay_s=self.config.retry_base_delay_s,
            max_delay_s=self.config.retry_max_delay_s,
        )

    # -- what to verify -------------------------------------------------------------------------

    def collect(self, prefix: str, keys: Sequence[str] = ()) -> list[Target]:
        """The objects to verify, in key order for a listing, in the given order for ``keys``.

        Without ``keys``: every object under ``prefix`` (recursive listing, paged), directory
        markers (keys ending ``/`` with 0 bytes) left out. With ``keys`` (relative to
        ``prefix``): one probe of the bucket, then a HEAD of each key; a key that does not
        exist gives a target with ``error`` set. Raises the store's errors (NotFoundError for
        an unknown bucket, AccessDeniedError, RemoteIOError) for the listing or the probe.
        """
        if not keys:
            return list(self._list(prefix))
        self._store.probe()
        full_keys = [prefix + k for k in keys]
        with ThreadPoolExecutor(max_workers=min(self.config.jobs, len(full_keys))) as pool:
            return list(pool.map(self._head_target, full_keys))

    def _list(self, prefix: str) -> Iterator[Target]:
        token: str | None = None
        while True:
            page = self._store.list_page(prefix, delimiter="", token=token)
            for meta in page.objects:
                if not _is_directory_marker(meta):
                    yield Target(meta.key, meta)
            if page.next_token is None:
                return
            token = page.next_token

    def _head_target(self, key: str) -> Target:
        try:
            return Target(key, self._store.head(key))
        except OssfsError as exc:
            return Target(key, None, _error_text(exc))

    # -- verification ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """Make every object still being read stop at its next chunk (as ERROR "cancelled")."""
        self._cancelled.set()

    def run(
        self,
        targets: Sequence[Target],
        *,
        on_result: Callable[[ObjectResult], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Verify ``targets`` with ``config.jobs`` workers.

        ``on_result`` is called once per object as soon as it is finished and ``on_bytes``
        with each chunk's length as it is checked; both from worker threads, so they must be
        thread-safe. On KeyboardInterrupt the workers are cancelled and waited for, then the
        interrupt propagates.
        """
        started = self._clock()
        count_bytes = on_bytes if on_bytes is not None else _ignore_bytes

        def work(target: Target) -> ObjectResult:
            result = self.verify_one(target, count_bytes)
            if on_result is not None:
                on_result(result)
            return result

        pool = ThreadPoolExecutor(max_workers=self.config.jobs, thread_name_prefix="verify")
        futures: list[Future[ObjectResult]] = []
        try:
            futures = [pool.submit(work, t) for t in targets]
            results = tuple(f.result() for f in futures)
        except BaseException:
            self.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return VerifyReport(results, Summary.of(results, self._clock() - started))

    def verify_one(
        self, target: Target, on_bytes: Callable[[int], None] | None = None
    ) -> ObjectResult:
        """Verify one object; never raises for anything the store or the mount can do."""
        count_bytes = on_bytes if on_bytes is not None else _ignore_bytes
        if target.error is not None:
            return ObjectResult(target.key, 0, Status.ERROR, error=target.error)
        listed = target.listed
        if listed is not None and listed.is_frozen:
            return ObjectResult(target.key, listed.size, Status.ERROR, error=_frozen_reason(listed))
        try:
            if self._mount is not None:
                return self._verify_through(target, self._mount, count_bytes)
            if self.config.streams > 1 and target.size_hint > self.config.part_bytes:
                return self._verify_parts(target, count_bytes)
            return self._verify_direct(target, count_bytes)
        except CancelledError:
            return ObjectResult(target.key, target.size_hint, Status.ERROR, error="cancelled")
        except Exception as exc:  # a bug must not hide the other objects' results
            log.error("verify %r: unexpected error", target.key, exc_info=True)
            return ObjectResult(
                target.key,
                target.size_hint,
                Status.ERROR,
                error=f"internal error: {_error_text(exc)}",
            )

    def _verify_direct(self, target: Target, on_bytes: Callable[[int], None]) -> ObjectResult:
        key = target.key
        crc = 0
        done = 0
        pinned: ObjectMeta | None = None
        tries = Attempts()
        while pinned is None or done < pinned.size:
            try:
                meta, chunks = self._store.stream(
                    key,
                    start=done,
                    etag=pinned.etag if pinned is not None else None,
                    chunk_bytes=self.config.chunk_bytes,
                )
                if pinned is None:
                    pinned = meta
                elif meta.etag and meta.etag != pinned.etag:
                    _close(chunks)
                    raise StaleError(f"{key!r}: ETag changed from {pinned.etag} to {meta.etag}")
                try:
                    for chunk in chunks:
                        if self._cancelled.is_set():
                            raise CancelledError
                        crc = crc64(chunk, crc)
                        done += len(chunk)
                        on_bytes(len(chunk))
                        if done > pinned.size:
                            break
                finally:
                    _close(chunks)
                break
            except StaleError as exc:
                tries.restarts += 1
                if tries.restarts > self.config.max_restarts:
                    return self._gave_up(target, pinned, done, tries, exc, changing=True)
                log.info("verify %r: the object changed, restarting from byte 0: %s", key, exc)
                crc, done, pinned = 0, 0, None
                tries.failures, tries.done_at_last_failure = 0, -1
            except RemoteIOError as exc:
                if not self._may_retry(tries, done):
                    return self._gave_up(target, pinned, done, tries, exc, changing=False)
                log.info("verify %r: resuming at byte %d after: %s", key, done, exc)
            except OssfsError as exc:
                size = pinned.size if pinned is not None else target.size_hint
                return ObjectResult(
                    key,
                    size,
                    Status.ERROR,
                    error=_error_text(exc),
                    bytes_read=done,
                    resumes=tries.resumes,
                    restarts=tries.restarts,
                )
        assert pinned is not None
        return _classify(pinned, pinned.crc64, crc, done, tries)

    def _verify_parts(self, target: Target, on_bytes: Callable[[int], None]) -> ObjectResult:
        """An object larger than a part: HEAD it for the version to pin, read its parts in
        parallel, compare; restarted from the HEAD when the version changes."""
        key = target.key
        restarts = 0
        resumes = 0
        while True:
            try:
                meta = self._store.head(key)
            except OssfsError as exc:
                return ObjectResult(
                    key,
                    target.size_hint,
                    Status.ERROR,
                    error=_error_text(exc),
                    resumes=resumes,
                    restarts=restarts,
                )
            if meta.is_frozen:
                return ObjectResult(key, meta.size, Status.ERROR, error=_frozen_reason(meta))
            reader = PartsReader(
                self._store,
                meta,
                part_bytes=self.config.part_bytes,
                streams=self.config.streams,
                piece_bytes=self.config.chunk_bytes,
                may_retry=self._may_retry,
                cancelled=self._cancelled,
                on_bytes=on_bytes,
            )
            try:
                crc = reader.run()
            except StaleError as exc:
                restarts += 1
                resumes += reader.resumes
                tries = Attempts(resumes=resumes, restarts=restarts)
                if restarts > self.config.max_restarts:
                    return self._gave_up(target, meta, reader.bytes_read, tries, exc, changing=True)
                log.info("verify %r: the object changed, restarting from byte 0: %s", key, exc)
                continue
            except OssfsError as exc:
                tries = Attempts(reader.failures, resumes + reader.resumes, restarts)
                if reader.failures:
                    return self._gave_up(
                        target, meta, reader.bytes_read, tries, exc, changing=False
                    )
                return ObjectResult(
                    key,
                    meta.size,
                    Status.ERROR,
                    error=_error_text(exc),
                    bytes_read=reader.bytes_read,
                    resumes=tries.resumes,
                    restarts=restarts,
                )
            # The CRC the GETs of this version announced; a HEAD of it said the same.
            announced = self._store.announced_crc64(key, meta.etag)
            expected = announced if announced is not None else meta.crc64
            tries = Attempts(resumes=resumes + reader.resumes, restarts=restarts)
            return _classify(meta, expected, crc, reader.bytes_read, tries)

    def _may_retry(self, tries: Attempts, done: int) -> bool:
        """Count one failed attempt; sleep and return True when another one is allowed."""
        if done > tries.done_at_last_failure:
            tries.failures = 1
        else:
            tries.failures += 1
        tries.done_at_last_failure = done
        if tries.failures >= self.config.max_attempts:
            return False
        if self._cancelled.is_set():
            raise CancelledError
        tries.resumes += 1
        delay = self._backoff.delay_s(tries.failures - 1, self._rand)
        if delay > 0:
            self._sleep(delay)
        return True

    def _gave_up(
        self,
        target: Target,
        pinned: ObjectMeta | None,
        done: int,
        tries: Attempts,
        exc: OssfsError,
        *,
        changing: bool,
    ) -> ObjectResult:
        if changing:
            why = f"the object changed {tries.restarts} times while it was read"
        else:
            why = f"gave up after {tries.failures} failed attempt(s) in a row"
        return ObjectResult(
            target.key,
            pinned.size if pinned is not None else target.size_hint,
            Status.ERROR,
            expected_crc64=pinned.crc64 if pinned is not None else None,
            error=f"{why}; last: {_error_text(exc)}",
            bytes_read=done,
            resumes=tries.resumes,
            restarts=tries.restarts,
        )

    def _verify_through(
        self, target: Target, mount: MountView, on_bytes: Callable[[int], None]
    ) -> ObjectResult:
        key = target.key
        tries = Attempts()
        try:
            path = mount.path_of(key)
        except NotFoundError as exc:
            return ObjectResult(
                key,
                target.size_hint,
                Status.ERROR,
                error=f"not visible on the mount: {_error_text(exc)}",
            )
        while True:
            try:
                meta = self._store.head(key)
            except OssfsError as exc:
                return ObjectResult(key, target.size_hint, Status.ERROR, error=_error_text(exc))
            if meta.is_frozen:
                return ObjectResult(key, meta.size, Status.ERROR, error=_frozen_reason(meta))
            shown = _mounted_etag(path)
            if shown is not None and shown != meta.etag:
                return ObjectResult(
                    key,
                    meta.size,
                    Status.ERROR,
                    expected_crc64=meta.crc64,
                    error=(
                        f"the mount serves version {shown} but OSS has {meta.etag} "
                        "(the mount's metadata is older; retry after its metadata TTL)"
                    ),
                    restarts=tries.restarts,
                )
            try:
                crc, done = read_file_crc(
                    path,
                    meta.size,
                    chunk_bytes=self.config.chunk_bytes,
                    streams=self.config.streams,
                    part_bytes=self.config.part_bytes,
                    cancelled=self._cancelled,
                    on_bytes=on_bytes,
                )
            except OSError as exc:
                return ObjectResult(
                    key,
                    meta.size,
                    Status.ERROR,
                    expected_crc64=meta.crc64,
                    error=f"reading through the mount: {_error_text(exc)}",
                    restarts=tries.restarts,
                )
            result = _classify(meta, meta.crc64, crc, done, tries)
            if result.status is not Status.MISMATCH:
                return result
            # A mismatch is only real if the object did not change while it was read.
            try:
                now = self._store.head(key)
            except OssfsError:
                return result
            if now.etag == meta.etag:
                return result
            tries.restarts += 1
            if tries.restarts > self.config.max_restarts:
                return replace(
                    result,
                    status=Status.ERROR,
                    error=f"the object changed {tries.restarts} times while it was read",
                )


def _classify(
    meta: ObjectMeta, expected: int | None, crc: int, done: int, tries: Attempts
) -> ObjectResult:
    base = ObjectResult(
        meta.key,
        meta.size,
        Status.OK,
        expected_crc64=expected,
        computed_crc64=crc,
        bytes_read=done,
        resumes=tries.resumes,
        restarts=tries.restarts,
    )
    if done != meta.size:
        qualifier = "at least " if done > meta.size else ""
        return replace(
            base,
            status=Status.MISMATCH,
            error=f"read {qualifier}{done} bytes, but the object has {meta.size}",
        )
    if expected is None:
        return replace(base, status=Status.NO_CRC, error=_NO_CRC_REASON)
    if crc != expected:
        return replace(base, status=Status.MISMATCH, error="CRC-64 differs")
    return base


def _mounted_etag(path: Path) -> str | None:
    """The ETag the mount shows for ``path`` (xattr), or None when it shows none."""
    try:
        return os.getxattr(path, ETAG_XATTR).decode("utf-8", "replace")
    except OSError:
        return None


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if callable(close):
        close()


def _ignore_bytes(n: int) -> None:
    del n
