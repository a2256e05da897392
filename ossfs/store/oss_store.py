"""`ObjectStore` on Alibaba Cloud OSS through oss2: each operation, from request to answer.

Responsibility: the store's operations (probe, head, list, symlink target, ranged reads into
pieces, streams) as oss2 requests carried by one shared `ossfs.net` transport, with the rules
of a ranged read: ``x-oss-range-behavior: standard`` and ``If-Match`` on every ranged GET,
strict checks of status, ``Content-Range``, ETag and body length, the version pinned across
resumed requests, retries of transient failures through `ossfs.store.retry` (resuming a broken
body where it stopped), 416 told from the end of the object by a HEAD, and each failure
translated, counted and logged once. Every request is logged at DEBUG and counted.

The jobs around it have their own modules in `ossfs.store`: `config` (`OssConfig`), `sessions`
(oss2's auth, bucket and sessions, and the transport under them), `ranges` (the Range header,
the one conversion of a half-open range, and the checks of a ranged answer), `answers` (headers
and listings to `ObjectMeta` and `ListPage`), `streams` (the answer to `stream`), `failures`
(transient or not, and the `ossfs.core.errors` class of each), `counters`, and `whole_fetch`
(directory read-ahead's GETs, run by `ossfs.net.curl_loop`).

It deliberately does not cache, prefetch, verify CRCs of bodies (the layers above combine block
CRCs), restore archived objects, write anything, or read the environment (the app passes in
proxies and the CA bundle).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Final, TypeVar

import oss2
import oss2.exceptions
import oss2.http

from ossfs.core.errors import (
    IntegrityError,
    NotFoundError,
    OssfsError,
    StaleError,
    UsageError,
)
from ossfs.core.object_store import ListPage, ObjectMeta, Piece
from ossfs.net.curl_loop import CurlLoop
from ossfs.net.curl_transport import CurlTransport
from ossfs.net.http_api import HttpResponse, Transport
from ossfs.store.answers import list_page_from_xml, meta_from_headers
from ossfs.store.config import OssConfig
from ossfs.store.counters import Counters
from ossfs.store.failures import (
    MalformedResponseError,
    ShortBodyError,
    check_sendable,
    describe,
    is_transient,
    translate_error,
)
from ossfs.store.latency import FirstByteLatency
from ossfs.store.ranges import RangedAnswers, read_headers
from ossfs.store.retry import Retrier
from ossfs.store.sessions import (
    SigningSession,
    TransportSession,
    bucket_url,
    curl_transport,
    engine_settings,
    make_auth,
    make_bucket,
    signed_get,
    signed_list,
    v1_signer,
)
from ossfs.store.streams import StreamChunks, stream_meta
from ossfs.store.whole_fetch import WholeGets

__all__ = ["OssStore"]

log = logging.getLogger(__name__)

R = TypeVar("R")

MAX_LIST_KEYS: Final = 1000
_TIMED: Final = frozenset({"get", "head", "list"})
"""Requests whose time to a successful answer's head is a sample of the link's latency
(`ossfs.store.latency`; errors are not: a quick refusal says little of the data path)."""


class OssStore:
    """`ObjectStore` over oss2. Thread-safe: one Bucket and one Session are shared.

    Every remote request is logged at DEBUG (op, key, range, status, ms) and counted; see
    `stats`. Failures come out as `ossfs.core.errors` classes whose messages name the key, the OSS
    error code and the request id.
    """

    def __init__(
        self,
        config: OssConfig,
        *,
        retrier: Retrier | None = None,
        proxies: Callable[[str], Mapping[str, str]] | None = None,
        transport: Transport | None = None,
        take_buffer: Callable[[int], Piece] | None = None,
    ) -> None:
        """Build the auth, transport and bucket; no request is sent (see `probe`).

        ``retrier`` overrides the one built from ``config.retry`` (tests inject fake time);
        ``proxies(url)``: the proxies (URL scheme -> proxy URL) that reach a URL, asked once,
        here, for the bucket's (the app passes `ossfs.net.environ.environ_proxies`); None:
        none, requests go straight to the endpoint;
        ``transport`` replaces the HTTP engine's transport (tests script responses with it);
        ``take_buffer(size)``: a writable buffer of ``size`` bytes for a body to be read into
        (the mount's `ossfs.read.buffers.BufferPool`); None: a new bytearray each time.
        Raises `UsageError` for an endpoint, bucket name or proxy that cannot be used.
        """
        self.config = config
        self._retrier = retrier if retrier is not None else Retrier(config.retry)
        self._counters = Counters()
        self._first_byte = FirstByteLatency()
        self._take_buffer: Callable[[int], Piece] = (
            take_buffer if take_buffer is not None else bytearray
        )
        self._answers = RangedAnswers()
        session = self._session = TransportSession()
        try:
            auth = make_auth(config)
            self._bucket = make_bucket(config, auth, session)
            # The same requests, signed and handed back instead of sent: GETs and listings
            # this store sends itself, and `whole_fetcher`'s.
            self._signing_bucket = signing_bucket = make_bucket(config, auth, SigningSession())
            root_url = bucket_url(signing_bucket)
        except oss2.exceptions.ClientError as exc:
            raise UsageError(
                f"invalid OSS endpoint {config.endpoint!r} or bucket {config.bucket!r}: {exc.body}"
            ) from exc
        self._root_url = root_url
        self._v1 = v1_signer(config, root_url)
        settings = engine_settings(config, root_url, proxies)
        if transport is None:
            transport = curl_transport(config, settings)
        self._transport = session.transport = transport
        # A scripted transport has no engine for `whole_fetcher`'s GETs to run on.
        self._whole_gets = (
            WholeGets(
                config,
                root_url,
                settings,
                signing_bucket,
                counters=self._counters,
                answers=self._answers,
                take_buffer=self._take_buffer,
            )
            if isinstance(transport, CurlTransport)
            else None
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled connections. The store must not be used afterwards."""
        self._transport.close()

    def __enter__(self) -> OssStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- observability ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters so far: ``requests``, ``requests.<op>``, ``bytes_fetched``, ``retries``,
        ``retries.<op>``, ``gave_up``, ``errors``, ``errors.<ErrorClass>``; and, once known, the
        level ``first_byte_us`` (`first_byte_s` in microseconds). Cheap, thread-safe."""
        counts = self._counters.snapshot()
        counts.update(self._retrier.counters.snapshot())
        first_byte = self._first_byte.best()
        if first_byte is not None:
            counts["first_byte_us"] = round(first_byte * 1e6)
        return counts

    def first_byte_s(self) -> float | None:
        """The shortest time to a response's head of the last few GETs, HEADs and LISTs
        (`ossfs.store.latency`); None before the first. How slow the link is, for read-ahead's
        decisions."""
        return self._first_byte.best()

    # -- ObjectStore ------------------------------------------------------------------------------

    def probe(self) -> None:
        """One ``max-keys=1`` ListObjectsV2 of the bucket root.

        A list, not GetBucketInfo: anonymous access to a public bucket may list but never read
        bucket info, and listing is exactly the permission a mount needs. Raises NotFoundError
        (no such bucket), AccessDeniedError (credentials, signature, clock skew), RemoteIOError
        (endpoint unreachable, naming it).
        """

        def attempt() -> None:
            self._request(
                "list",
                "",
                "max-keys=1",
                lambda: self._bucket.list_objects_v2(prefix="", delimiter="/", max_keys=1),
            )

        try:
            self._retrier.call("probe", attempt, is_transient)
        except Exception as exc:
            raise self._fail(exc, "probe", None) from exc

    def head(self, key: str) -> ObjectMeta:
        """HEAD ``key``: size, etag (unquoted), mtime, CRC-64, class, type, restore, user meta."""

        def attempt() -> ObjectMeta:
            result = self._request("head", key, "", lambda: self._bucket.head_object(key))
            # The transport's headers are keyed by lower-case name already.
            return meta_from_headers(key, result.headers)

        try:
            return self._retrier.call("head", attempt, is_transient)
        except Exception as exc:
            raise self._fail(exc, "head", key) from exc

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "/",
        token: str | None = None,
        max_keys: int = 1000,
        start_after: str = "",
    ) -> ListPage:
        """One ListObjectsV2 page; ``next_token`` is None on the last page.

        Listed objects carry size, etag, mtime (whole seconds, as OSS lists them), type,
        storage class and restore info; ``crc64`` is None (listings do not carry it).
        """
        if not 1 <= max_keys <= MAX_LIST_KEYS:
            raise ValueError(f"max_keys must be in 1..{MAX_LIST_KEYS}, got {max_keys}")

        def attempt() -> ListPage:
            response = self._request(
                "list",
                prefix,
                f"token={token or ''}",
                lambda: self._send(
                    signed_list(
                        self._signing_bucket,
                        prefix=prefix,
                        delimiter=delimiter,
                        token=token or "",
                        max_keys=max_keys,
                        start_after=start_after,
                    )
                ),
            )
            return list_page_from_xml(prefix, response.read())

        try:
            return self._retrier.call("list", attempt, is_transient)
        except Exception as exc:
            raise self._fail(exc, "list", prefix) from exc

    def symlink_target(self, key: str) -> str:
        """The key the symlink object ``key`` points at (GetSymlink); "" if it names none."""

        def attempt() -> str:
            result = self._request("get_symlink", key, "", lambda: self._bucket.get_symlink(key))
            # A missing or empty target names no object: "" (the namespace shows such a link
            # pointing at itself) rather than an error that would fail its whole directory.
            return str(result.target_key or "")

        try:
            return self._retrier.call("get_symlink", attempt, is_transient)
        except Exception as exc:
            raise self._fail(exc, "get_symlink", key) from exc

    def get_range(self, key: str, start: int, end: int, *, etag: str | None = None) -> bytes:
        """Exactly the bytes ``[start, end)`` of ``key``, of one object version.

        ``etag`` (unquoted) pins the version with ``If-Match``; without it the version of the
        first response is pinned for any resumed request. A body that breaks is resumed from
        where it stopped. Raises NotFoundError, AccessDeniedError, ArchivedError, StaleError
        (version changed), IntegrityError (wrong status/range/length, or a range that ends
        past the object), RemoteIOError (retries exhausted). A range starting at or past the
        object's end returns ``b""``.
        """
        if start < 0 or end < start:
            raise ValueError(f"bad range [{start}, {end})")
        if start == end:
            return b""
        pieces: list[Piece] = []
        if not self._read_pieces(
            key, start, end, etag=etag, piece_bytes=end - start, on_piece=pieces.append
        ):
            return b""
        return bytes(memoryview(pieces[0]))

    def read_range(
        self,
        key: str,
        start: int,
        end: int,
        *,
        etag: str | None,
        piece_bytes: int,
        on_piece: Callable[[Piece], None],
    ) -> None:
        """`ObjectStore.read_range`: one ranged GET read straight into pieces.

        The body goes from the socket into each piece's own buffer (no intermediate copies);
        a body that breaks is resumed where it stopped, inside the piece it was filling.
        Raises like `get_range`, and IntegrityError for a range past the object's end.
        """
        if start < 0 or end <= start or piece_bytes <= 0:
            raise ValueError(f"bad range [{start}, {end}) or piece size {piece_bytes}")
        if not self._read_pieces(
            key, start, end, etag=etag, piece_bytes=piece_bytes, on_piece=on_piece
        ):
            raise self._fail(
                IntegrityError(f"GET {key!r} bytes {start}-{end - 1}: the object ends first"),
                "get",
                key,
            )

    def _read_pieces(
        self,
        key: str,
        start: int,
        end: int,
        *,
        etag: str | None,
        piece_bytes: int,
        on_piece: Callable[[Piece], None],
    ) -> bool:
        """The ranged GET of `get_range` and `read_range`; False if ``start`` is at or past
        the object's end (a 416 confirmed by a HEAD)."""
        pinned: list[str | None] = [etag]  # the version every resumed request must match
        pos = start  # the next byte to receive
        piece: Piece = bytearray()  # the piece being filled; ``filled`` bytes of it are in
        filled = 0

        def attempt() -> None:
            nonlocal pos, piece, filled
            first = pos
            headers = read_headers(pinned[0], first, end)
            response = self._request(
                "get", key, f"{first}-{end}", lambda: self._get_object(key, headers)
            )
            try:
                self._answers.check(
                    key,
                    status=response.status,
                    headers=response.headers,
                    start=first,
                    end=end,
                    pinned=pinned,
                )
                while pos < end:
                    if filled == len(piece):
                        size = min(piece_bytes, end - pos)
                        piece = self._take_buffer(size)
                        filled = 0
                    got = response.readinto(memoryview(piece)[filled:])
                    if not got:
                        raise ShortBodyError(
                            f"GET {key!r}: body ended at offset {pos}, before {end}"
                        )
                    filled += got
                    pos += got
                    self._counters.add("bytes_fetched", got)
                    if filled == len(piece):
                        on_piece(piece)
                        # Not held here while the next piece fills: a block its taker
                        # lets go of is freed (or recycled) at once.
                        piece, filled = bytearray(), 0
            finally:
                response.close()

        try:
            self._retrier.call("get", attempt, is_transient, progress=lambda: pos - start)
        except oss2.exceptions.ServerError as exc:
            if int(exc.status) == 416:
                return self._invalid_range(key, start, pos, pinned[0], exc)
            raise self._fail(exc, "get", key) from exc
        except Exception as exc:
            raise self._fail(exc, "get", key) from exc
        return True

    def announced_crc64(self, key: str, etag: str) -> int | None:
        """The whole-object CRC-64 a GET response for this version carried, if one did."""
        return self._answers.announced_crc64(key, etag)

    def stream(
        self, key: str, *, start: int = 0, etag: str | None = None, chunk_bytes: int = 1 << 20
    ) -> tuple[ObjectMeta, Iterator[bytes]]:
        """One GET from ``start`` to the end: the metadata from its headers, then the body.

        Only opening the response is retried; the iterator raises RemoteIOError (or
        IntegrityError for a short body) mid-stream and the caller restarts from its own
        offset. Consume the iterator to its end or call its ``close()`` to free the connection.
        """
        if start < 0:
            raise ValueError(f"bad start offset {start}")
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
        # Open-ended; from 0, no Range at all (the answer is a plain 200).
        headers = read_headers(etag, start)

        def attempt() -> HttpResponse:
            return self._request("get", key, f"{start}-", lambda: self._get_object(key, headers))

        try:
            result = self._retrier.call("stream", attempt, is_transient)
        except oss2.exceptions.ServerError as exc:
            if int(exc.status) == 416:
                meta = self._size_after_416(key, etag, exc)
                if start >= meta.size:
                    return meta, iter(())
                raise self._fail(exc, "stream", key) from exc
            raise self._fail(exc, "stream", key) from exc
        except Exception as exc:
            raise self._fail(exc, "stream", key) from exc

        try:
            meta = stream_meta(key, result.status, result.headers, start=start, etag=etag)
        except Exception as exc:
            result.close()
            raise self._fail(exc, "stream", key) from exc
        return meta, StreamChunks(
            key,
            result,
            start=start,
            expected=meta.size - start,
            chunk_bytes=chunk_bytes,
            counters=self._counters,
            fail=lambda exc: self._fail(exc, "stream", key),
        )

    def whole_fetcher(self, *, max_idle: int) -> CurlLoop | None:
        """A `CurlLoop` for GETs of whole objects with this store's endpoint and credentials
        (directory read-ahead), or None with a transport other than the HTTP engine's (a
        scripted one). The caller closes it.

        Its GETs are signed (by `V1Signer`, or by oss2 for V4), pinned with If-Match, counted
        and checked like `read_range`'s (status, Content-Range, ETag, Content-Length; the
        announced CRC is remembered), but never retried: a failure is left to the reader.
        Bodies are received into buffers from ``take_buffer``, as `read_range`'s are
        (`ossfs.store.whole_fetch`)."""
        gets = self._whole_gets
        return gets.fetcher(max_idle=max_idle) if gets is not None else None

    # -- internals --------------------------------------------------------------------------------

    def _request(self, op: str, key: str, rng: str, call: Callable[[], R]) -> R:
        """Send one request through oss2, counting and DEBUG-logging it.

        A key (or prefix) that is not valid UTF-8 text (lone surrogates, from a listing of
        keys that are not UTF-8) cannot be sent by oss2: `UnsendableKeyError`, no request.
        """
        check_sendable(key)
        self._counters.request(op)
        t0 = time.perf_counter()
        try:
            result = call()
        except oss2.exceptions.OssError as exc:
            log.debug(
                "%s %r range=%s -> %s %s in %.1f ms",
                op,
                key,
                rng or "-",
                exc.status,
                exc.code or type(exc).__name__,
                (time.perf_counter() - t0) * 1000,
            )
            raise
        except (ValueError, TypeError, RuntimeError, SyntaxError) as exc:
            # oss2 parses XML, dates and headers inside the call; a failure there means the
            # server sent something unusable, not that this code is wrong.
            raise MalformedResponseError(f"{type(exc).__name__}: {exc}") from exc
        elapsed = time.perf_counter() - t0
        if op in _TIMED:  # the response's head is in (a probe's tiny body too)
            self._first_byte.note(elapsed)
        log.debug(
            "%s %r range=%s -> %s in %.1f ms",
            op,
            key,
            rng or "-",
            getattr(result, "status", "?"),
            elapsed * 1000,
        )
        return result

    def _get_object(self, key: str, headers: dict[str, str]) -> HttpResponse:
        """GetObject as oss2 builds and signs it, answered with the transport's response itself
        (oss2's result class would parse a dozen headers nobody here reads, and fail on
        malformed ones before the store's own checks could say what is wrong). Raises oss2's
        exceptions.

        V1 and anonymous GETs are built by `V1Signer`: the same request, byte for byte (tests
        compare both), for about a fifth of the CPU of oss2's public ``get_object``, which
        formats debug strings of its header dictionaries whether logging is on or not. V4 GETs
        are oss2's (`signed_get`)."""
        signer = self._v1
        if signer is None:
            return self._send(signed_get(self._signing_bucket, key, headers))
        if not key:
            raise oss2.exceptions.ClientError("key should not be null or empty.")  # as oss2
        headers["User-Agent"] = oss2.http.USER_AGENT  # as oss2's Request adds it
        signed = signer.sign_get(key, list(headers.items()))
        url = self._root_url + urllib.parse.quote(key, safe="")  # as oss2 quotes a key
        return self._send(oss2.http.Request("GET", url, headers=dict(signed)))

    def _send(self, request: oss2.http.Request) -> HttpResponse:
        """Send a request oss2 built and signed through the store's session; an answer that is
        not a success is raised as oss2's exception for it, as oss2's own requests are."""
        response = self._session.do_request(request, None)  # the engine bounds every request
        if response.status // 100 != 2:
            raise oss2.exceptions.make_exception(response)
        return response

    def _invalid_range(
        self, key: str, start: int, pos: int, etag: str | None, exc: BaseException
    ) -> bool:
        """416: False (nothing to read) when the caller's range starts at/after the real size,
        else IntegrityError."""
        meta_size = self._size_after_416(key, etag, exc).size
        if pos == start and start >= meta_size:
            return False
        raise self._fail(
            IntegrityError(
                f"GET {key!r} bytes {pos}-: range not satisfiable but the object has "
                f"{meta_size} bytes: {describe(exc)}"
            ),
            "get",
            key,
        ) from exc

    def _size_after_416(self, key: str, etag: str | None, exc: BaseException) -> ObjectMeta:
        """The object's current metadata after a 416 (HEAD), checked against ``etag``."""
        del exc  # OSS's 416 carries no usable size; HEAD is the authority.
        meta = self.head(key)
        if etag is not None and meta.etag != etag:
            raise self._fail(
                StaleError(f"{key!r}: the object changed (ETag {meta.etag}, expected {etag})"),
                "get",
                key,
            )
        return meta

    def _fail(self, exc: BaseException, op: str, key: str | None) -> OssfsError:
        """Translate, count and log one failure that will reach the caller."""
        err = translate_error(
            exc, op=op, key=key, bucket=self.config.bucket, endpoint=self.config.endpoint
        )
        self._counters.error(type(err).__name__)
        if isinstance(err, NotFoundError) and key is not None:
            log.debug("%s", err)  # lookups of missing names are routine, not failures
        else:
            log.warning("%s", err)
        return err
