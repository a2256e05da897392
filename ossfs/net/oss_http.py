"""The HTTP transport under oss2: requests over pooled keep-alive connections.

Responsibility: carry one already-signed request to the endpoint (directly, or through an
``http://`` proxy: absolute-URI requests for ``http`` endpoints, a CONNECT tunnel for ``https``)
and hand back its status, headers and a body to read, with separate connect and read timeouts,
TLS verified against a CA bundle, connections kept for the next request once a body has been
read to its end, and one immediate resend when a kept connection turns out to have been closed
by the server before it answered. Bodies are read straight into the caller's buffer
(`HttpResponse.readinto`), and a body shorter than its ``Content-Length`` is an
``http.client.IncompleteRead``. The wire format is `ossfs.net.http_wire`'s.

It deliberately does not build, sign or interpret requests (oss2 does), retry failures (the
store's retrier does), follow redirects (a signed request must not be re-sent elsewhere), or
decode content encodings (OSS is asked for identity). Compared with requests + urllib3 it
spends about a quarter of the CPU per small GET: no cookie jars, hooks, environment lookups,
adapters, per-read generators or ``email``-based header parsing.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from ossfs.net.http_wire import Connection, Endpoint, Headers, ReadableBody, request_head

__all__ = [
    "CONNECTION_ERRORS",
    "NO_ANSWER_ERRORS",
    "HttpRequest",
    "HttpResponse",
    "PooledTransport",
    "Timeouts",
    "Transport",
]

Timeouts = tuple[float, float]  # (connect_s, read_s): each socket operation's limit
_CHUNK: Final = 8192
# Raised when a kept connection was closed by the server before (or while) this request was
# sent or answered: nothing was processed, so sending it again on a new connection is safe.
_STALE_ERRORS: Final = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
_RESENDABLE_METHODS: Final = frozenset({"GET", "HEAD"})

NO_ANSWER_ERRORS: Final[tuple[type[BaseException], ...]] = (OSError, http.client.HTTPException)
"""What `Transport.send` raises when no answer arrived."""
CONNECTION_ERRORS: Final[tuple[type[BaseException], ...]] = (
    ConnectionError,
    TimeoutError,
    ssl.SSLError,
    http.client.HTTPException,  # IncompleteRead: a body shorter than its Content-Length
)
"""What making a connection or reading a body raises when the connection failed, not the
request: a new request may well succeed."""


@dataclass(slots=True)
class HttpRequest:
    """One request as it goes on the wire. ``url`` is absolute, query included."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path_url(self) -> str:
        """The path and query (the request target sent to the endpoint itself)."""
        return _split_url(self.url)[2]


def _split_url(url: str) -> tuple[str, str, str]:
    """``(scheme, netloc, path and query)`` of an absolute URL."""
    scheme, netloc, path, query, _ = urllib.parse.urlsplit(url)
    return scheme, netloc, (path or "/") + (f"?{query}" if query else "")


class HttpResponse:
    """One answer: ``status``, ``headers`` and the body, read once, in order.

    Offers what oss2's result classes read (``status``, ``headers``, ``request_id``, ``read``,
    iteration, ``response.close()``) plus `readinto`. ``release`` is called exactly once:
    ``release(True)`` as soon as the body has been read to its end (the connection can serve
    the next request), ``release(False)`` on `close` before that or on a broken body. A
    ``body`` of None: the answer has none (HEAD, 204, 304), whatever its Content-Length says.
    Not thread-safe: one reader at a time.
    """

    def __init__(
        self,
        status: int,
        headers: Headers,
        body: ReadableBody | None,
        *,
        release: Callable[[bool], None] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.request_id = headers.get("x-oss-request-id", "")
        self._body: ReadableBody = body if body is not None else _NO_BODY
        self._release = release
        length = headers.get("content-length", "")
        # None: read until the body says it ended (chunked, or no length given).
        self._left: int | None = 0 if body is None else int(length) if length.isdigit() else None
        if self._left == 0:
            self._done(True)

    @property
    def response(self) -> HttpResponse:
        """oss2's ``GetObjectResult.close`` calls ``resp.response.close()``."""
        return self

    def readinto(self, buffer: memoryview) -> int:
        """Fill the start of ``buffer`` with the next body bytes; 0 at the end of the body.

        Raises ``http.client.IncompleteRead`` if the body ends before its ``Content-Length``,
        and whatever the socket raises (timeouts, resets).
        """
        left = self._left
        if left == 0:
            return 0
        if left is not None and len(buffer) > left:
            buffer = buffer[:left]
        if not buffer:
            return 0
        try:
            got = self._body.readinto(buffer)
        except BaseException:
            self._done(False)
            raise
        if got == 0:
            if left is not None:
                self._done(False)
                raise http.client.IncompleteRead(b"", left)
            self._done(True)
            return 0
        if left is not None:
            self._left = left - got
            if self._left == 0:
                self._done(True)
        return got

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes (all the rest if None); ``b""`` at the end of the body."""
        if amt is None:
            parts = []
            while chunk := self.read(_CHUNK if self._left is None else max(self._left, 1)):
                parts.append(chunk)
            return b"".join(parts)
        buffer = bytearray(amt)
        got = self.readinto(memoryview(buffer))
        del buffer[got:]
        return bytes(buffer)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(_CHUNK):
            yield chunk

    def close(self) -> None:
        """Drop the rest of the body (and the connection, if the body was not finished)."""
        self._done(False)

    def _done(self, reusable: bool) -> None:
        release, self._release = self._release, None
        self._left = 0
        if release is not None:
            release(reusable)


class _NoBody:
    def readinto(self, buffer: memoryview, /) -> int:
        return 0


_NO_BODY: Final = _NoBody()


class Transport(Protocol):
    """Sends one request and returns its answer (any status); raises ``OSError`` or
    ``http.client.HTTPException`` when no answer arrived."""

    def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse: ...

    def close(self) -> None: ...


class PooledTransport:
    """`Transport` over keep-alive `ossfs.net.http_wire` connections, kept per endpoint.

    Any number of requests may be in flight; up to ``pool_size`` idle connections are kept per
    endpoint (more are closed when their body ends). ``proxies`` maps a URL scheme
    (``http``/``https``) to an ``http://[user:password@]host:port`` proxy; ``ca_bundle`` is the
    PEM file TLS trusts (None: the system's). Thread-safe.
    """

    def __init__(
        self,
        *,
        pool_size: int,
        proxies: Mapping[str, str] | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        self._pool_size = pool_size
        self._proxies = dict(proxies or {})
        for scheme, proxy in self._proxies.items():
            _parse_proxy(scheme, proxy)  # fail at construction, not at the first request
        self._ca_bundle = ca_bundle
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._idle: dict[Endpoint, list[Connection]] = {}
        self._endpoints: dict[tuple[str, str], Endpoint] = {}
        self._closed = False

    # -- Transport --------------------------------------------------------------------------------

    def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse:
        endpoint, data = self.encode(request)
        conn, reused = self._take(endpoint, timeouts)
        while True:
            try:
                status, headers, body, keep_alive = conn.exchange(data, request.method)
                break
            except _STALE_ERRORS:
                conn.close()
                if not reused or request.method not in _RESENDABLE_METHODS:
                    raise
                conn, reused = self._connect(endpoint, timeouts), False  # once, on a new one
            except BaseException:
                conn.close()
                raise
        kept = conn
        return HttpResponse(
            status,
            headers,
            body,
            release=lambda reusable: self._give_back(endpoint, kept, reusable and keep_alive),
        )

    def endpoint(self, url: str) -> Endpoint:
        """Where requests for ``url`` go (straight there, or to a proxy)."""
        return self._endpoint(url)[0]

    def encode(self, request: HttpRequest) -> tuple[Endpoint, bytes]:
        """Where ``request`` goes and its bytes on the wire (head and body)."""
        endpoint, target = self._endpoint(request.url)
        data = request_head(
            request.method, target, endpoint, request.headers.items(), len(request.body)
        )
        return endpoint, data + request.body

    def ssl_context(self) -> ssl.SSLContext:
        """The context every TLS connection is verified with (made once, on first use)."""
        with self._lock:
            if self._ssl is None:
                self._ssl = ssl.create_default_context(cafile=self._ca_bundle)
            return self._ssl

    def close(self) -> None:
        """Close the idle connections; connections in use close when their body ends."""
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    # -- internals --------------------------------------------------------------------------------

    def _endpoint(self, url: str) -> tuple[Endpoint, str]:
        """The endpoint of ``url`` and the request target to send it."""
        scheme, netloc, target = _split_url(url)
        endpoint = self._endpoints.get((scheme, netloc))
        if endpoint is None:
            endpoint = self._new_endpoint(scheme, netloc)
        if endpoint.absolute_target:
            target = f"{scheme}://{netloc}{target}"
        return endpoint, target

    def _new_endpoint(self, scheme: str, netloc: str) -> Endpoint:
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {scheme!r}: use http or https")
        parts = urllib.parse.urlsplit(f"//{netloc}")
        if not parts.hostname:
            raise ValueError(f"no host in endpoint {netloc!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        proxy_url = self._proxies.get(scheme) or self._proxies.get("all")
        proxy, proxy_headers = _parse_proxy(scheme, proxy_url) if proxy_url else (None, ())
        endpoint = Endpoint(scheme, parts.hostname, port, proxy, proxy_headers)
        with self._lock:
            self._endpoints[(scheme, netloc)] = endpoint
        return endpoint

    def _take(self, endpoint: Endpoint, timeouts: Timeouts) -> tuple[Connection, bool]:
        """An idle connection to ``endpoint`` (and True), or a new one (and False)."""
        with self._lock:
            idle = self._idle.get(endpoint)
            conn = idle.pop() if idle else None
        if conn is None:
            return self._connect(endpoint, timeouts), False
        conn.set_read_timeout(timeouts[1])
        return conn, True

    def _connect(self, endpoint: Endpoint, timeouts: Timeouts) -> Connection:
        return Connection(
            endpoint,
            connect_timeout_s=timeouts[0],
            read_timeout_s=timeouts[1],
            ssl_context=self.ssl_context,
        )

    def _give_back(self, endpoint: Endpoint, conn: Connection, reusable: bool) -> None:
        if reusable:
            with self._lock:
                if not self._closed:
                    idle = self._idle.setdefault(endpoint, [])
                    if len(idle) < self._pool_size:
                        idle.append(conn)
                        return
        conn.close()


def _parse_proxy(
    scheme: str, proxy_url: str
) -> tuple[tuple[str, int], tuple[tuple[str, str], ...]]:
    """(host, port) of an ``http://`` proxy URL and the Proxy-Authorization header it needs."""
    parts = urllib.parse.urlsplit(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"unsupported {scheme} proxy {_without_password(proxy_url)!r}: "
            "give an http://host:port proxy"
        )
    headers: tuple[tuple[str, str], ...] = ()
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers = (("Proxy-Authorization", f"Basic {token}"),)
    return (parts.hostname, parts.port or 80), headers


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
