"""`ObjectStore` on Alibaba Cloud OSS through oss2: the only module that imports oss2.

Responsibility: authentication (anonymous, V1, V4 with a region, STS), one shared connection
pool, separate connect/read timeouts, the range rules (half-open ranges in, one conversion to
oss2's inclusive ``byte_range``, ``x-oss-range-behavior: standard`` and ``If-Match`` on every
ranged GET, strict checks of status, ``Content-Range`` and body length), retries of transient
failures through `ossfs.store.retry` (resuming a broken body where it stopped), translation of every
oss2/requests failure into an `ossfs.core.errors` class, and cheap thread-safe request counters.

It deliberately does not cache, prefetch, verify CRCs of bodies (the layers above combine block
CRCs), restore archived objects, or write anything.

Transport: oss2 builds and signs every request and parses every answer (but for the directory
read-ahead's V1 or anonymous GETs, built by `ossfs.store.v1_signature` at a fraction of the
cost, the same bytes); `ossfs.net.oss_http` carries them (oss2's session interface,
`_TransportSession`).
oss2 passes its ``connect_timeout`` argument unchanged to the session as ``timeout=``, so a
``(connect_s, read_s)`` tuple gives separate connect and per-socket-read timeouts.
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, TypeVar, cast

import oss2
import oss2.exceptions
import oss2.http
import oss2.xml_utils
from cachetools import LRUCache

from ossfs.core.errors import (
    AccessDeniedError,
    ArchivedError,
    IntegrityError,
    NotFoundError,
    OssfsError,
    RemoteIOError,
    StaleError,
    UsageError,
)
from ossfs.core.object_store import ListPage, ObjectMeta, Piece
from ossfs.net.environ import default_ca_bundle
from ossfs.net.fetch_loop import FetchLoop, PreparedGet
from ossfs.net.http_wire import Headers, request_head
from ossfs.net.oss_http import (
    CONNECTION_ERRORS,
    NO_ANSWER_ERRORS,
    HttpRequest,
    HttpResponse,
    PooledTransport,
    Timeouts,
    Transport,
)
from ossfs.store.credentials import Credentials
from ossfs.store.latency import FirstByteLatency
from ossfs.store.retry import DEFAULT_RETRY_POLICY, Retrier, RetriesExhaustedError, RetryPolicy
from ossfs.store.v1_signature import V1Signer

__all__ = [
    "OssConfig",
    "OssStore",
    "check_content_range",
    "is_transient",
    "meta_from_headers",
    "parse_content_range",
    "translate_error",
]

log = logging.getLogger(__name__)

R = TypeVar("R")

RANGE_BEHAVIOR_HEADER: Final = "x-oss-range-behavior"
USER_META_PREFIX: Final = "x-oss-meta-"
MAX_LIST_KEYS: Final = 1000
_ANNOUNCED_CRCS: Final = 4096
_CONTENT_RANGE_RE: Final = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_UNSATISFIED_RANGE_RE: Final = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$")
_AUTH_CODES: Final = frozenset(
    {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidSecurityToken"}
)
_TRANSIENT_CODES: Final = frozenset({"SlowDown", "RequestTimeout", "ServiceUnavailable"})


def _unquote_listed_key(text: str) -> str:
    """Decode one URL-encoded name of a listing, keeping bytes that are not UTF-8.

    ListObjectsV2 sends keys URL-encoded (``encoding-type=url``) because XML cannot carry every
    key. oss2 decodes them with urllib's default ``errors="replace"``, which turns bytes that
    are not UTF-8 into U+FFFD: such a key would be shown under a name that is not its key (its
    reads would fail ENOENT) and two of them could show as one name. ``surrogateescape`` keeps
    each one distinct and recognisable (lone surrogates), so the namespace skips it with a
    warning. Valid UTF-8 decodes exactly as before.
    """
    return urllib.parse.unquote(text, errors="surrogateescape")


# oss2's listing parsers call ``xml_utils.urlunquote`` on every key, prefix and marker.
oss2.xml_utils.urlunquote = _unquote_listed_key


@dataclass(frozen=True, slots=True)
class OssConfig:
    """How to reach one bucket. No access key and no secret means anonymous access.

    ``security_token`` selects STS credentials; ``region`` selects V4 signing (else V1).
    ``pool_size`` is the size of the one HTTP connection pool shared by all threads; it should
    be at least the number of threads that call the store at once. ``ca_bundle``: the PEM file
    TLS trusts (None: certifi's, as requests, and so oss2, would).
    """

    endpoint: str
    bucket: str
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    region: str | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    pool_size: int = 32
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        if not self.endpoint.strip():
            raise UsageError("OSS endpoint is empty")
        if not self.bucket.strip():
            raise UsageError("OSS bucket name is empty")
        if (self.access_key_id is None) != (self.access_key_secret is None):
            raise UsageError("give both an access key id and its secret, or neither (anonymous)")
        if self.security_token is not None and self.access_key_id is None:
            raise UsageError("an STS security token needs an access key id and secret")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise UsageError("connect and read timeouts must be > 0 seconds")
        if self.pool_size < 1:
            raise UsageError(f"pool_size must be >= 1, got {self.pool_size}")

    @property
    def anonymous(self) -> bool:
        return self.access_key_id is None

    @property
    def signature_version(self) -> str:
        return "v4" if self.region else "v1"


# -- pure helpers (header parsing, range checks, error classification) ---------------------------


def parse_content_range(value: str) -> tuple[int, int, int | None]:
    """Parse ``bytes FIRST-LAST/TOTAL`` (LAST inclusive; TOTAL ``*`` gives None).

    Raises `IntegrityError` for anything else.
    """
    m = _CONTENT_RANGE_RE.match(value)
    if m is None:
        raise IntegrityError(f"malformed Content-Range {value!r}")
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def check_content_range(
    key: str, status: int, content_range: str | None, start: int, end: int | None
) -> int | None:
    """Check a ranged GET's answer for the half-open range ``[start, end)``.

    ``end`` None means "to the end of the object" (``bytes=start-``). Requires status 206 and a
    ``Content-Range`` with exactly the requested first/last byte and a total that can hold them.
    Returns the object's total size from the header (None if the server sent ``*``); raises
    `IntegrityError` otherwise.
    """
    if status != 206:
        # Without standard range behaviour OSS answers 200 and the *whole* object for a range
        # it cannot satisfy; any 200 here means the bytes are not the ones asked for.
        raise IntegrityError(f"GET {key!r} bytes {start}-{end}: expected HTTP 206, got {status}")
    if content_range is None:
        raise IntegrityError(f"GET {key!r} bytes {start}-{end}: 206 without Content-Range")
    first, last, total = parse_content_range(content_range)
    want_last = None if end is None else end - 1
    if first != start or (want_last is not None and last != want_last) or last < first:
        raise IntegrityError(
            f"GET {key!r}: asked for bytes {start}-{'' if want_last is None else want_last}, "
            f"got Content-Range {content_range!r}"
        )
    if total is not None and total <= last:
        raise IntegrityError(f"GET {key!r}: inconsistent Content-Range {content_range!r}")
    if end is None and total is not None and last != total - 1:
        raise IntegrityError(
            f"GET {key!r}: asked for bytes {start}- to the end, got {content_range!r}"
        )
    return total


def _parse_http_date_ns(value: str) -> int:
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        raise IntegrityError(f"unparsable Last-Modified {value!r}")
    return email.utils.mktime_tz(parsed) * 1_000_000_000


def meta_from_headers(
    key: str, headers: Mapping[str, str], *, size: int | None = None
) -> ObjectMeta:
    """Build `ObjectMeta` from HEAD/GET response headers (names lower-cased).

    ``size`` overrides Content-Length (needed for a 206, whose Content-Length is the body's).
    Raises `IntegrityError` when a size, date or CRC header is missing or malformed.
    """
    if size is None:
        length = headers.get("content-length")
        if length is None or not length.strip().isdigit():
            raise IntegrityError(f"{key!r}: missing or bad Content-Length {length!r}")
        size = int(length)
    last_modified = headers.get("last-modified")
    mtime_ns = 0 if last_modified is None else _parse_http_date_ns(last_modified)
    crc_text = headers.get("x-oss-hash-crc64ecma")
    crc: int | None = None
    if crc_text is not None:
        if not crc_text.strip().isdigit() or int(crc_text) >= 1 << 64:
            raise IntegrityError(f"{key!r}: bad x-oss-hash-crc64ecma {crc_text!r}")
        crc = int(crc_text)
    user_meta = tuple(
        sorted(
            (name[len(USER_META_PREFIX) :], value)
            for name, value in headers.items()
            if name.startswith(USER_META_PREFIX)
        )
    )
    return ObjectMeta(
        key=key,
        size=size,
        etag=headers.get("etag", "").strip().strip('"'),
        mtime_ns=mtime_ns,
        crc64=crc,
        storage_class=headers.get("x-oss-storage-class", "Standard"),
        object_type=headers.get("x-oss-object-type", "Normal"),
        content_type=headers.get("content-type"),
        restore=headers.get("x-oss-restore"),
        user_meta=user_meta,
    )


class _ShortBodyError(Exception):
    """The body ended cleanly before Content-Length; a resumed request may get the rest."""


class _UnsendableKeyError(Exception):
    """The key cannot be put in a request (not UTF-8); nothing was sent."""


class _MalformedResponseError(Exception):
    """oss2 could not parse what the server sent (XML, dates, headers)."""


def _status_and_code(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, oss2.exceptions.OssError):
        return int(exc.status), str(exc.code or "")
    return 0, ""


def is_transient(exc: BaseException) -> bool:
    """True for failures worth another request: 5xx, 429, SlowDown, connection and body errors."""
    if isinstance(exc, _ShortBodyError):
        return True
    if isinstance(exc, oss2.exceptions.RequestError):
        return True
    if isinstance(exc, oss2.exceptions.ServerError):
        status, code = _status_and_code(exc)
        return status >= 500 or status == 429 or code in _TRANSIENT_CODES
    # Raised while a body is read (before a response arrives, the session wraps them in
    # oss2's RequestError).
    return isinstance(exc, CONNECTION_ERRORS)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, oss2.exceptions.RequestError):
        return f"RequestError: {exc.exception}"
    if isinstance(exc, oss2.exceptions.ServerError):
        status, code = _status_and_code(exc)
        code = code or {404: "NotFound", 403: "Forbidden"}.get(status, "UnknownError")
        message = str(exc.message or "").strip()
        text = f"{code} (HTTP {status}, request id {exc.request_id or '-'})"
        return f"{text}: {message}" if message else text
    if isinstance(exc, oss2.exceptions.OssError):
        return f"{type(exc).__name__}: {exc.body}"
    return f"{type(exc).__name__}: {exc}"


def translate_error(
    exc: BaseException, *, op: str, key: str | None, bucket: str, endpoint: str
) -> OssfsError:
    """Map an oss2/requests failure (possibly wrapped in `RetriesExhaustedError`) to ossfs.

    The message names the operation, the key (or bucket), the OSS error code and request id.
    `OssfsError` instances pass through unchanged.
    """
    suffix = ""
    if isinstance(exc, RetriesExhaustedError):
        suffix = f" (gave up after {exc.attempts} attempt(s) in {exc.elapsed_s:.1f}s)"
        exc = exc.last
    if isinstance(exc, OssfsError):
        return exc
    what = f"{op} {key!r} in bucket {bucket!r}" if key is not None else f"{op} bucket {bucket!r}"
    detail = _describe(exc) + suffix
    status, code = _status_and_code(exc)
    if isinstance(exc, oss2.exceptions.NoSuchBucket) or code == "NoSuchBucket":
        return NotFoundError(f"bucket {bucket!r} does not exist at {endpoint}: {detail}")
    if isinstance(exc, oss2.exceptions.NotFound) or status == 404:
        return NotFoundError(f"{what}: not found: {detail}")
    if code == "InvalidObjectState":
        return ArchivedError(
            f"{what}: the object is archived and not restored (restore it first): {detail}"
        )
    if code == "RequestTimeTooSkewed":
        return AccessDeniedError(
            f"{what}: this machine's clock is off by more than 15 minutes from OSS's; "
            f"fix the clock (NTP): {detail}"
        )
    if code in _AUTH_CODES or status in (401, 403):
        return AccessDeniedError(f"{what}: access denied: {detail}")
    if isinstance(exc, oss2.exceptions.PreconditionFailed) or status == 412:
        return StaleError(f"{what}: the object changed (ETag no longer matches): {detail}")
    if status == 416:
        return IntegrityError(f"{what}: range not satisfiable: {detail}")
    if isinstance(exc, oss2.exceptions.RequestError):
        return RemoteIOError(f"{what}: cannot reach OSS endpoint {endpoint}: {detail}")
    if isinstance(exc, _ShortBodyError):
        return IntegrityError(f"{what}: {exc}{suffix}")
    if isinstance(exc, _MalformedResponseError):
        return RemoteIOError(f"{what}: unusable response from {endpoint}: {exc}{suffix}")
    if isinstance(exc, _UnsendableKeyError):
        return NotFoundError(f"{what}: {exc}")
    return RemoteIOError(f"{what}: {detail}")


# -- counters ------------------------------------------------------------------------------------


class _Counters:
    """Thread-safe named counters; one lock, taken only around dict updates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"requests": 0, "bytes_fetched": 0, "errors": 0}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def request(self, op: str) -> None:
        with self._lock:
            self._counts["requests"] += 1
            name = f"requests.{op}"
            self._counts[name] = self._counts.get(name, 0) + 1

    def error(self, cls_name: str) -> None:
        with self._lock:
            self._counts["errors"] += 1
            name = f"errors.{cls_name}"
            self._counts[name] = self._counts.get(name, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


# -- the store -----------------------------------------------------------------------------------


class _StreamIterator(Iterator[bytes]):
    """Chunks of one streamed body; `close` releases the connection early."""

    def __init__(
        self,
        store: OssStore,
        key: str,
        body: HttpResponse,
        *,
        start: int,
        expected: int,
        chunk_bytes: int,
    ) -> None:
        self._store = store
        self._key = key
        self._body = body
        self._offset = start
        self._left = expected
        self._chunk_bytes = chunk_bytes
        self._closed = expected == 0
        if self._closed:
            body.close()

    def __iter__(self) -> _StreamIterator:
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        try:
            chunk = self._body.read(min(self._chunk_bytes, self._left))
        except Exception as exc:
            self.close()
            raise self._store._fail(
                RemoteIOError(
                    f"stream {self._key!r}: body broke at offset {self._offset}: {_describe(exc)}"
                ),
                "stream",
                self._key,
            ) from exc
        if not chunk:
            self.close()
            raise self._store._fail(
                IntegrityError(
                    f"stream {self._key!r}: body ended at offset {self._offset}, "
                    f"{self._left} byte(s) short"
                ),
                "stream",
                self._key,
            )
        self._store._counters.add("bytes_fetched", len(chunk))
        self._offset += len(chunk)
        self._left -= len(chunk)
        if self._left <= 0:
            self.close()
        return chunk

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._body.close()


class _TransportSession(oss2.Session):  # type: ignore[misc]
    """oss2's session interface over an `ossfs.net.oss_http.Transport`.

    oss2 builds and signs the request (`_http_request`); a request that got no answer raises
    oss2's RequestError, as oss2's own session does.
    """

    transport: Transport  # set by the store once it is built (it needs the bucket's URL)

    def __init__(self) -> None:  # no requests.Session underneath
        pass

    def do_request(self, req: oss2.http.Request, timeout: object) -> HttpResponse:
        request = _http_request(req)
        try:
            return self.transport.send(request, _timeouts(timeout))
        except NO_ANSWER_ERRORS as exc:
            raise oss2.exceptions.RequestError(exc) from exc


class _SignedRequest(Exception):
    """Carries a request oss2 built and signed out of `_SigningSession`."""

    def __init__(self, request: HttpRequest) -> None:
        super().__init__()
        self.request = request


class _SigningSession(oss2.Session):  # type: ignore[misc]
    """oss2's session interface that sends nothing: the signed request comes back raised as
    `_SignedRequest`, for requests another sender carries (`ossfs.net.fetch_loop`)."""

    def __init__(self) -> None:  # no requests.Session underneath
        pass

    def do_request(self, req: oss2.http.Request, timeout: object) -> HttpResponse:
        raise _SignedRequest(_http_request(req))


def _http_request(req: oss2.http.Request) -> HttpRequest:
    """oss2's request as it goes on the wire: its ``None`` header values mean "do not send
    this default", and the query is encoded from its params as requests would (an empty value
    as ``name=``, None dropped), so what is signed is what is sent."""
    headers = {name: value for name, value in req.headers.items() if value is not None}
    url = str(req.url)
    if req.params:
        pairs = [(k, v) for k, v in req.params.items() if v is not None]
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(pairs)
    body = req.data or b""
    if not isinstance(body, bytes):
        raise TypeError("only in-memory request bodies are sent")
    return HttpRequest(req.method, url, headers, body)


def _timeouts(timeout: object) -> Timeouts:
    if isinstance(timeout, tuple):
        return float(timeout[0]), float(timeout[1])
    return float(timeout), float(timeout)  # type: ignore[arg-type]


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
        ``proxies(url)``: the proxies (URL scheme -> ``http://`` proxy) that reach a URL, asked
        once, here, for the bucket's (the app passes `ossfs.net.environ.environ_proxies`); None:
        none, requests go straight to the endpoint;
        ``transport`` replaces the pooled HTTP transport (tests script responses with it);
        ``take_buffer(size)``: a writable buffer of ``size`` bytes for a body to be read into
        (the mount's `ossfs.read.buffers.BufferPool`); None: a new bytearray each time.
        Raises `UsageError` for an endpoint, bucket name or proxy that cannot be used.
        """
        self.config = config
        self._retrier = retrier if retrier is not None else Retrier(config.retry)
        self._counters = _Counters()
        self._first_byte = FirstByteLatency()
        self._take_buffer: Callable[[int], Piece] = (
            take_buffer if take_buffer is not None else bytearray
        )
        # Whole-object CRCs seen on GET responses, per version: listings carry no CRC, and a
        # handle that read a whole object checks it against this without an extra HEAD.
        self._announced_lock = threading.Lock()
        self._announced: LRUCache[tuple[str, str], int] = LRUCache(maxsize=_ANNOUNCED_CRCS)
        session = _TransportSession()
        try:
            auth = _make_auth(config)
            self._bucket = _make_bucket(config, auth, session)
            # The same requests, signed and handed back instead of sent (`whole_fetcher`).
            self._signer = _make_bucket(config, auth, _SigningSession())
        except oss2.exceptions.ClientError as exc:
            raise UsageError(
                f"invalid OSS endpoint {config.endpoint!r} or bucket {config.bucket!r}: {exc.body}"
            ) from exc
        # The bucket's URL (what the endpoint, proxy included, is decided from).
        self._root_url = str(self._bucket._make_url(config.bucket, ""))
        # `whole_fetcher`'s GETs, built without oss2 where the signature is V1 (or none).
        self._whole_get_signer = _whole_get_signer(config, self._root_url)
        if transport is None:
            transport = _default_transport(config, self._root_url, proxies)
        self._transport = session.transport = transport
        # Only the pooled transport can tell where `whole_fetcher`'s GETs go (and encode them).
        self._pooled = transport if isinstance(transport, PooledTransport) else None
        self._root_endpoint = self._pooled.endpoint(self._root_url) if self._pooled else None

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
        """The shortest time to a response's head of the last few GETs (`ossfs.store.latency`);
        None before there were enough. How slow the link is, for read-ahead's decisions."""
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
        self, prefix: str, *, delimiter: str = "/", token: str | None = None, max_keys: int = 1000
    ) -> ListPage:
        """One ListObjectsV2 page; ``next_token`` is None on the last page.

        Listed objects carry size, etag, mtime (whole seconds, as OSS lists them), type,
        storage class and restore info; ``crc64`` is None (listings do not carry it).
        """
        if not 1 <= max_keys <= MAX_LIST_KEYS:
            raise ValueError(f"max_keys must be in 1..{MAX_LIST_KEYS}, got {max_keys}")

        def attempt() -> ListPage:
            result = self._request(
                "list",
                prefix,
                f"token={token or ''}",
                lambda: self._bucket.list_objects_v2(
                    prefix=prefix,
                    delimiter=delimiter,
                    continuation_token=token or "",
                    max_keys=max_keys,
                ),
            )
            return _list_page_from_result(prefix, result)

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
            headers = _read_headers(pinned[0])
            # Half-open [first, end) becomes HTTP's inclusive byte range here, the only place
            # a range is converted.
            headers["Range"] = f"bytes={first}-{end - 1}"
            response = self._request(
                "get", key, f"{first}-{end}", lambda: self._get_object(key, headers)
            )
            try:
                self._check_ranged_response(
                    key,
                    status=response.status,
                    response_headers=response.headers,
                    pos=first,
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
                        raise _ShortBodyError(
                            f"GET {key!r}: body ended at offset {pos}, before {end}"
                        )
                    filled += got
                    pos += got
                    self._counters.add("bytes_fetched", got)
                    if filled == len(piece):
                        on_piece(piece)
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

    def _check_ranged_response(
        self,
        key: str,
        *,
        status: int,
        response_headers: Headers,
        pos: int,
        end: int,
        pinned: list[str | None],
    ) -> None:
        """Status, Content-Range, ETag (pinning the first one seen) and Content-Length of a
        ranged GET for ``[pos, end)``; remembers the whole-object CRC the response announced."""
        check_content_range(key, status, response_headers.get("content-range"), pos, end)
        got_etag = response_headers.get("etag", "").strip().strip('"')
        if pinned[0] is None:
            pinned[0] = got_etag or None
        elif got_etag and got_etag != pinned[0]:
            raise StaleError(f"GET {key!r}: ETag {got_etag} does not match pinned {pinned[0]}")
        crc_text = response_headers.get("x-oss-hash-crc64ecma", "")
        if got_etag and crc_text.isdigit():
            with self._announced_lock:
                self._announced[(key, got_etag)] = int(crc_text)
        length = response_headers.get("content-length")
        if length is not None and int(length) != end - pos:
            raise IntegrityError(
                f"GET {key!r} bytes {pos}-{end - 1}: Content-Length {length}, expected {end - pos}"
            )

    def announced_crc64(self, key: str, etag: str) -> int | None:
        """The whole-object CRC-64 a GET response for this version carried, if one did."""
        with self._announced_lock:
            return self._announced.get((key, etag))

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
        headers = _read_headers(etag)
        if start > 0:  # open-ended; from 0, no Range at all (the answer is a plain 200)
            headers["Range"] = f"bytes={start}-"

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
            response_headers = result.headers
            status = result.status
            if start > 0:
                total = check_content_range(
                    key, status, response_headers.get("content-range"), start, None
                )
                if total is None:
                    raise IntegrityError(f"GET {key!r}: Content-Range without a total size")
                meta = meta_from_headers(key, response_headers, size=total)
            else:
                if status != 200:
                    raise IntegrityError(f"GET {key!r}: expected HTTP 200, got {status}")
                meta = meta_from_headers(key, response_headers)
            if etag is not None and meta.etag and meta.etag != etag:
                raise StaleError(f"GET {key!r}: ETag {meta.etag} does not match {etag}")
            expected = meta.size - start
            length = response_headers.get("content-length")
            if length is not None and int(length) != expected:
                raise IntegrityError(
                    f"GET {key!r}: Content-Length {length}, expected {expected} from offset {start}"
                )
        except Exception as exc:
            result.close()
            raise self._fail(exc, "stream", key) from exc
        return meta, _StreamIterator(
            self, key, result, start=start, expected=expected, chunk_bytes=chunk_bytes
        )

    def whole_fetcher(self, *, max_idle: int) -> FetchLoop | None:
        """A `FetchLoop` for GETs of whole objects with this store's endpoint and credentials
        (directory read-ahead), or None where it cannot go: an endpoint reached through a
        proxy, or a transport other than the pooled one. The caller closes it.

        Its GETs are signed (by `V1Signer`, or by oss2 for V4), pinned with If-Match, counted
        and checked like
        `read_range`'s (status, Content-Range, ETag, Content-Length; the announced CRC is
        remembered), but never retried: a failure is left to the reader. Bodies are received
        into buffers from ``take_buffer``, as `read_range`'s are."""
        pooled, endpoint = self._pooled, self._root_endpoint
        if pooled is None or endpoint is None or endpoint.proxy is not None:
            return None
        return FetchLoop(
            self._prepare_whole_get,
            self._accept_whole_get,
            take_buffer=self._take_buffer,
            received=lambda nbytes: self._counters.add("bytes_fetched", nbytes),
            ssl_context=pooled.ssl_context,
            connect_timeout_s=self.config.connect_timeout_s,
            read_timeout_s=self.config.read_timeout_s,
            max_idle=max_idle,
        )

    def _prepare_whole_get(self, key: str, etag: str, size: int) -> PreparedGet:
        """The signed GET of bytes ``[0, size)`` of ``key`` at ``etag`` (counted as sent):
        signed by `V1Signer` for V1 and anonymous access, else by oss2."""
        _check_sendable(key)
        pooled, endpoint = self._pooled, self._root_endpoint
        assert pooled is not None and endpoint is not None  # (else whole_fetcher made no loop)
        headers = _read_headers(etag)
        headers["Range"] = f"bytes=0-{size - 1}"
        signer = self._whole_get_signer
        if signer is None:
            endpoint, data = pooled.encode(self._oss2_whole_get(key, headers))
        else:
            headers["User-Agent"] = oss2.http.USER_AGENT  # as oss2's Request adds it
            signed = signer.sign_get(key, list(headers.items()))
            data = request_head("GET", signer.target(key), endpoint, signed, 0)
        self._counters.request("get")
        return PreparedGet(endpoint, data, size)

    def _oss2_whole_get(self, key: str, headers: dict[str, str]) -> HttpRequest:
        """A GET of ``key`` with ``headers`` as oss2 builds and signs it."""
        signer = self._signer
        try:
            signer._do("GET", signer.bucket_name, key, headers=headers)
        except _SignedRequest as signed:
            return signed.request
        raise AssertionError("the signing session sent a request")  # pragma: no cover

    def _accept_whole_get(
        self, key: str, etag: str, size: int, status: int, headers: Headers
    ) -> None:
        """Raises unless ``status``/``headers`` answer `_prepare_whole_get`'s request."""
        log.debug("get %r range=0-%d -> %s (read-ahead)", key, size, status)
        if status // 100 != 2:
            code = headers.get("x-oss-ec", "") or "no error code"
            raise RemoteIOError(f"GET {key!r}: HTTP {status} ({code})")
        self._check_ranged_response(
            key, status=status, response_headers=headers, pos=0, end=size, pinned=[etag]
        )

    # -- internals --------------------------------------------------------------------------------

    def _request(self, op: str, key: str, rng: str, call: Callable[[], R]) -> R:
        """Send one request through oss2, counting and DEBUG-logging it.

        A key (or prefix) that is not valid UTF-8 text (lone surrogates, from a listing of
        keys that are not UTF-8) cannot be sent by oss2: `_UnsendableKeyError`, no request.
        """
        _check_sendable(key)
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
            raise _MalformedResponseError(f"{type(exc).__name__}: {exc}") from exc
        elapsed = time.perf_counter() - t0
        if op == "get":  # the response's head is in, its body not read yet
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
        """GetObject as oss2 sends it (oss2's URL, signature and error parsing: its ``_do``),
        answered with the transport's response itself: ``Bucket.get_object`` would wrap it in
        result classes that parse a dozen headers nobody here reads. Raises oss2's exceptions.
        """
        if not key:
            raise oss2.exceptions.ClientError("key should not be null or empty.")
        bucket = self._bucket
        return cast(HttpResponse, bucket._do("GET", bucket.bucket_name, key, headers=headers))

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
                f"{meta_size} bytes: {_describe(exc)}"
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


def _read_headers(etag: str | None) -> dict[str, str]:
    # Without "standard", OSS answers an unsatisfiable Range with 200 and the whole object.
    headers = {RANGE_BEHAVIOR_HEADER: "standard"}
    if etag is not None:
        headers["If-Match"] = f'"{etag}"'
    return headers


def _list_page_from_result(prefix: str, result: object) -> ListPage:
    objects = tuple(
        ObjectMeta(
            key=str(info.key),
            size=int(info.size),
            etag=str(info.etag).strip('"'),
            mtime_ns=int(info.last_modified) * 1_000_000_000,
            crc64=None,
            storage_class=str(info.storage_class or "Standard"),
            object_type=str(info.type or "Normal"),
            restore=None if info.restore_info is None else str(info.restore_info),
        )
        for info in result.object_list  # type: ignore[attr-defined]
    )
    prefixes = tuple(str(p) for p in result.prefix_list)  # type: ignore[attr-defined]
    next_token: str | None = None
    if result.is_truncated:  # type: ignore[attr-defined]
        next_token = str(result.next_continuation_token or "")  # type: ignore[attr-defined]
        if not next_token:
            raise _MalformedResponseError(f"list {prefix!r}: truncated page without a next token")
    return ListPage(objects=objects, prefixes=prefixes, next_token=next_token)


def _default_transport(
    config: OssConfig, bucket_url: str, proxies: Callable[[str], Mapping[str, str]] | None
) -> PooledTransport:
    """The pooled transport, with the proxies for ``bucket_url`` and the config's CA bundle."""
    try:
        return PooledTransport(
            pool_size=config.pool_size,
            proxies=proxies(bucket_url) if proxies is not None else None,
            ca_bundle=config.ca_bundle or default_ca_bundle(),
        )
    except ValueError as exc:
        raise UsageError(f"{exc} (from HTTP_PROXY/HTTPS_PROXY, or unset them)") from exc


def _check_sendable(key: str) -> None:
    """Raises `_UnsendableKeyError` for a key (or prefix) oss2 cannot send: one that is not
    valid UTF-8 text (lone surrogates, from a listing of keys that are not UTF-8)."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise _UnsendableKeyError(
            "the key is not valid UTF-8 text, and oss2 can only request UTF-8 keys"
        ) from None


def _make_bucket(config: OssConfig, auth: object, session: oss2.Session | None) -> oss2.Bucket:
    return oss2.Bucket(
        auth,
        config.endpoint,
        config.bucket,
        session=session,
        # A tuple reaches the session unchanged: separate connect and read timeouts.
        connect_timeout=(config.connect_timeout_s, config.read_timeout_s),
        # oss2 would CRC every ranged body for nothing; the layers above check CRCs.
        enable_crc=False,
        region=config.region,
    )


def _whole_get_signer(config: OssConfig, root_url: str) -> V1Signer | None:
    """The signer of `OssStore.whole_fetcher`'s GETs, or None for V4 (oss2 signs those)."""
    if config.region:
        return None
    credentials = None
    if config.access_key_id is not None and config.access_key_secret is not None:
        credentials = Credentials(
            config.access_key_id, config.access_key_secret, config.security_token
        )
    return V1Signer(
        bucket=config.bucket,
        root_target=urllib.parse.urlsplit(root_url).path or "/",
        credentials=credentials,
    )


def _make_auth(config: OssConfig) -> object:
    if config.access_key_id is None or config.access_key_secret is None:
        return oss2.AnonymousAuth()
    if config.security_token is not None:
        version = oss2.AUTH_VERSION_4 if config.region else oss2.AUTH_VERSION_1
        return oss2.StsAuth(
            config.access_key_id,
            config.access_key_secret,
            config.security_token,
            auth_version=version,
        )
    if config.region:
        return oss2.AuthV4(config.access_key_id, config.access_key_secret)
    return oss2.Auth(config.access_key_id, config.access_key_secret)
