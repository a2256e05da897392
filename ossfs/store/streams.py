"""The answer to `OssStore.stream`'s GET: its head checked into `ObjectMeta` (`stream_meta`),
then its body's chunks in order, counted, a broken or short body failed mid-stream
(`StreamChunks`).

It deliberately does not resume (the caller restarts from its own offset) or retry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from ossfs.core.errors import IntegrityError, OssfsError, RemoteIOError, StaleError
from ossfs.core.object_store import ObjectMeta
from ossfs.net.http_api import HttpResponse
from ossfs.store.answers import meta_from_headers
from ossfs.store.counters import Counters
from ossfs.store.failures import describe
from ossfs.store.ranges import check_content_range

__all__ = ["StreamChunks", "stream_meta"]


def stream_meta(
    key: str, status: int, headers: Mapping[str, str], *, start: int, etag: str | None
) -> ObjectMeta:
    """The object's metadata from the head of an answer to a GET of ``key`` from ``start`` to
    its end (header names lower-cased): a 200 from 0, else a 206 whose Content-Range gives the
    size. Raises `IntegrityError` (status, range or length wrong), `StaleError` (not ``etag``).
    """
    if start > 0:
        total = check_content_range(key, status, headers.get("content-range"), start, None)
        if total is None:
            raise IntegrityError(f"GET {key!r}: Content-Range without a total size")
        meta = meta_from_headers(key, headers, size=total)
    else:
        if status != 200:
            raise IntegrityError(f"GET {key!r}: expected HTTP 200, got {status}")
        meta = meta_from_headers(key, headers)
    if etag is not None and meta.etag and meta.etag != etag:
        raise StaleError(f"GET {key!r}: ETag {meta.etag} does not match {etag}")
    expected = meta.size - start
    length = headers.get("content-length")
    if length is not None and int(length) != expected:
        raise IntegrityError(
            f"GET {key!r}: Content-Length {length}, expected {expected} from offset {start}"
        )
    return meta


class StreamChunks(Iterator[bytes]):
    """Chunks of one streamed body; `close` releases the connection early."""

    def __init__(
        self,
        key: str,
        body: HttpResponse,
        *,
        start: int,
        expected: int,
        chunk_bytes: int,
        counters: Counters,
        fail: Callable[[BaseException], OssfsError],
    ) -> None:
        """``expected``: the body's bytes from offset ``start``; ``fail(error)``: the store's
        translated, counted and logged error to raise."""
        self._counters = counters
        self._fail = fail
        self._key = key
        self._body = body
        self._offset = start
        self._left = expected
        self._chunk_bytes = chunk_bytes
        self._closed = expected == 0
        if self._closed:
            body.close()

    def __iter__(self) -> StreamChunks:
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        try:
            chunk = self._body.read(min(self._chunk_bytes, self._left))
        except Exception as exc:
            self.close()
            raise self._fail(
                RemoteIOError(
                    f"stream {self._key!r}: body broke at offset {self._offset}: {describe(exc)}"
                )
            ) from exc
        if not chunk:
            self.close()
            raise self._fail(
                IntegrityError(
                    f"stream {self._key!r}: body ended at offset {self._offset}, "
                    f"{self._left} byte(s) short"
                )
            )
        self._counters.add("bytes_fetched", len(chunk))
        self._offset += len(chunk)
        self._left -= len(chunk)
        if self._left <= 0:
            self.close()
        return chunk

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._body.close()
