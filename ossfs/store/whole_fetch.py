"""Directory read-ahead's GETs of whole objects: this store's requests, run by a `CurlLoop`.

Responsibility: build each GET of a whole object (bytes ``[0, size)`` pinned with If-Match)
with the store's endpoint and credentials, count it as sent, and check the head of its answer
as `OssStore.read_range` checks its own (status, Content-Range, ETag, Content-Length; the
announced CRC is remembered). V1 and anonymous GETs are signed by `V1Signer`, the same bytes
as oss2's at a fraction of the cost; V4 GETs by oss2. Each GET may take at most the retry
budget (a reader waiting for it then fetches the file itself).

It deliberately does not retry (a failure is left to the reader, which fetches the file itself,
with retries and the real error) or move bytes (`ossfs.net.curl_loop` does, through the same
engine settings as every other request: proxy, TLS, stall rule).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable

import oss2
import oss2.http

from ossfs.core.errors import RemoteIOError
from ossfs.core.object_store import Piece
from ossfs.net.curl_loop import CurlLoop
from ossfs.net.curl_setup import EngineSettings
from ossfs.net.http_api import Headers, HttpRequest
from ossfs.store.config import OssConfig
from ossfs.store.counters import Counters
from ossfs.store.failures import check_sendable
from ossfs.store.ranges import RangedAnswers, read_headers
from ossfs.store.sessions import signed_request, v1_signer

__all__ = ["WholeGets"]

log = logging.getLogger(__name__)


class WholeGets:
    """Prepares and accepts the GETs a `CurlLoop` runs for one store. Thread-safe.

    ``signing_bucket``: the store's oss2 bucket over a `SigningSession` (it signs V4 GETs);
    ``answers``: the store's checker of ranged answers; ``take_buffer(size)``: where bodies
    are received.
    """

    def __init__(
        self,
        config: OssConfig,
        bucket_url: str,
        settings: EngineSettings,
        signing_bucket: oss2.Bucket,
        *,
        counters: Counters,
        answers: RangedAnswers,
        take_buffer: Callable[[int], Piece],
    ) -> None:
        self._config = config
        self._settings = settings
        parts = urllib.parse.urlsplit(bucket_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._signing_bucket = signing_bucket
        self._signer = v1_signer(config, bucket_url)
        self._counters = counters
        self._answers = answers
        self._take_buffer = take_buffer

    def fetcher(self, *, max_idle: int) -> CurlLoop:
        """A new `CurlLoop` for these GETs (the caller closes it), on at most ``max_idle``
        connections."""
        counters = self._counters
        return CurlLoop(
            self.prepare,
            self.accept,
            settings=self._settings,
            take_buffer=self._take_buffer,
            received=lambda nbytes: counters.add("bytes_fetched", nbytes),
            deadline_s=self._config.retry.total_budget_s,
            max_connections=max_idle,
        )

    def prepare(self, key: str, etag: str, size: int) -> HttpRequest:
        """The signed GET of bytes ``[0, size)`` of ``key`` at ``etag`` (counted as sent):
        signed by `V1Signer` for V1 and anonymous access, else by oss2."""
        check_sendable(key)
        headers = read_headers(etag, 0, size)
        signer = self._signer
        if signer is None:
            request = self.oss2_request(key, headers)
        else:
            headers["User-Agent"] = oss2.http.USER_AGENT  # as oss2's Request adds it
            signed = signer.sign_get(key, list(headers.items()))
            request = HttpRequest("GET", self._origin + signer.target(key), dict(signed))
        self._counters.request("get")
        return request

    def oss2_request(self, key: str, headers: dict[str, str]) -> HttpRequest:
        """A GET of ``key`` with ``headers`` as oss2 builds and signs it."""
        return signed_request(self._signing_bucket, key, headers)

    def accept(self, key: str, etag: str, size: int, status: int, headers: Headers) -> None:
        """Raises unless ``status``/``headers`` answer `prepare`'s request."""
        log.debug("get %r range=0-%d -> %s (read-ahead)", key, size, status)
        if status // 100 != 2:
            code = headers.get("x-oss-ec", "") or "no error code"
            raise RemoteIOError(f"GET {key!r}: HTTP {status} ({code})")
        self._answers.check(key, status=status, headers=headers, start=0, end=size, pinned=[etag])
