"""The HTTP transport under oss2: requests over pooled keep-alive ``http.client`` connections.

Responsibility: carry one already-signed request to the endpoint (directly, or through an
``http://`` proxy: absolute-URI requests for ``http`` endpoints, a CONNECT tunnel for ``https``)
and hand back its status, headers and a body to read, with separate connect and read timeouts,
TLS verified against a CA bundle, connections kept for the next request once a body has been
read to its end, and one immediate resend when a kept connection turns out to have been closed
by the server before it answered. Bodies are read straight into the caller's buffer
(`HttpResponse.readinto`), and a body shorter than its ``Content-Length`` is an
``http.client.IncompleteRead``.

It deliberately does not build, sign or interpret requests (oss2 does), retry failures (the
store's retrier does), follow redirects (a signed request must not be re-sent elsewhere), or
decode content encodings (OSS is asked for identity). Compared with requests + urllib3 it
spends about a third of the CPU per small GET: no cookie jars, hooks, environment lookups,
adapters or per-read generators.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol, overload

__all__ = [
    "Headers",
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
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
_RESENDABLE_METHODS: Final = frozenset({"GET", "HEAD"})


class Headers(dict[str, str]):
    """Response headers by lower-case name; ``[]``, ``get`` and ``in`` ignore case.

    One value per name (a repeated header keeps its last value; OSS repeats none of the ones
    read here).
    """

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    @overload  # type: ignore[override]
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        return super().get(name.lower(), default)


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
        parts = urllib.parse.urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class _Body(Protocol):
    def readinto(self, buffer: memoryview, /) -> int: ...


class HttpResponse:
    """One answer: ``status``, ``headers`` and the body, read once, in order.

    Offers what oss2's result classes read (``status``, ``headers``, ``request_id``, ``read``,
    iteration, ``response.close()``) plus `readinto`. ``release`` is called exactly once:
    ``release(True)`` as soon as the body has been read to its end (the connection can serve
    the next request), ``release(False)`` on `close` before that or on a broken body. Not
    thread-safe: one reader at a time.
    """

    def __init__(
        self,
        status: int,
        headers: Headers,
        body: _Body,
        *,
        has_body: bool = True,
        release: Callable[[bool], None] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.request_id = headers.get("x-oss-request-id", "") or ""
        self._body = body
        self._release = release
        length = headers.get("content-length")
        # None: read until the body says it ended (chunked, or no length given).
        self._left: int | None = (
            (int(length) if length and length.isdigit() else None) if (has_body) else 0
        )
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


class Transport(Protocol):
    """Sends one request and returns its answer (any status); raises ``OSError`` or
    ``http.client.HTTPException`` when no answer arrived."""

    def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Route:
    """How to reach one endpoint: where to connect, and what to put in the request line."""

    scheme: str
    host: str
    port: int
    proxy: tuple[str, int] | None
    proxy_headers: tuple[tuple[str, str], ...]

    @property
    def absolute_target(self) -> bool:
        # An http:// endpoint behind a proxy: the proxy reads the absolute URI. https goes
        # through a CONNECT tunnel and sees only the origin-form target.
        return self.proxy is not None and self.scheme == "http"


class PooledTransport:
    """`Transport` over keep-alive ``http.client`` connections, kept per endpoint.

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
        self._idle: dict[_Route, list[http.client.HTTPConnection]] = {}
        self._routes: dict[tuple[str, str], _Route] = {}
        self._closed = False

    # -- Transport --------------------------------------------------------------------------------

    def send(self, request: HttpRequest, timeouts: Timeouts) -> HttpResponse:
        route, target = self._route(request.url)
        conn, reused = self._take(route, timeouts)
        try:
            response = self._exchange(conn, route, target, request, timeouts)
        except _STALE_ERRORS:
            conn.close()
            if not reused or request.method not in _RESENDABLE_METHODS:
                raise
            conn = self._connect(route, timeouts)
            try:
                response = self._exchange(conn, route, target, request, timeouts)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        headers = Headers((name.lower(), value) for name, value in response.getheaders())
        return HttpResponse(
            response.status,
            headers,
            response,
            has_body=request.method != "HEAD" and response.status not in (204, 304),
            release=lambda reusable: self._give_back(route, conn, response, reusable),
        )

    def close(self) -> None:
        """Close the idle connections; connections in use close when their body ends."""
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    # -- internals --------------------------------------------------------------------------------

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        route: _Route,
        target: str,
        request: HttpRequest,
        timeouts: Timeouts,
    ) -> http.client.HTTPResponse:
        if conn.sock is None:
            self._open(conn, timeouts)
        headers = request.headers
        if route.absolute_target and route.proxy_headers:
            headers = {**headers, **dict(route.proxy_headers)}
        conn.request(request.method, target, body=request.body or None, headers=headers)
        return conn.getresponse()

    def _route(self, url: str) -> tuple[_Route, str]:
        """The route to ``url``'s endpoint and the request target to send."""
        scheme, netloc, path, query, _ = urllib.parse.urlsplit(url)
        route = self._routes.get((scheme, netloc))
        if route is None:
            route = self._new_route(scheme, netloc)
        target = (path or "/") + (f"?{query}" if query else "")
        if route.absolute_target:
            target = f"{scheme}://{netloc}{target}"
        return route, target

    def _new_route(self, scheme: str, netloc: str) -> _Route:
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {scheme!r}: use http or https")
        parts = urllib.parse.urlsplit(f"//{netloc}")
        if not parts.hostname:
            raise ValueError(f"no host in endpoint {netloc!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        proxy_url = self._proxies.get(scheme) or self._proxies.get("all")
        proxy, proxy_headers = _parse_proxy(scheme, proxy_url) if proxy_url else (None, ())
        route = _Route(scheme, parts.hostname, port, proxy, proxy_headers)
        with self._lock:
            self._routes[(scheme, netloc)] = route
        return route

    def _take(self, route: _Route, timeouts: Timeouts) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to ``route`` (and True), or a new unopened one (and False)."""
        with self._lock:
            idle = self._idle.get(route)
            if idle:
                conn = idle.pop()
                reused = True
            else:
                conn = None
                reused = False
        if conn is None:
            return self._connect(route, timeouts), False
        if conn.sock is not None:
            conn.sock.settimeout(timeouts[1])
        return conn, reused

    def _connect(self, route: _Route, timeouts: Timeouts) -> http.client.HTTPConnection:
        host, port = route.proxy or (route.host, route.port)
        conn: http.client.HTTPConnection
        if route.scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeouts[0], context=self._ssl_context()
            )
            if route.proxy is not None:
                conn.set_tunnel(route.host, route.port, headers=dict(route.proxy_headers))
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeouts[0])
        return conn

    def _open(self, conn: http.client.HTTPConnection, timeouts: Timeouts) -> None:
        """Connect within the connect timeout, then give every read the read timeout."""
        conn.timeout = timeouts[0]
        conn.connect()
        conn.sock.settimeout(timeouts[1])

    def _ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl is None:
                self._ssl = ssl.create_default_context(cafile=self._ca_bundle)
            return self._ssl

    def _give_back(
        self,
        route: _Route,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        reusable: bool,
    ) -> None:
        if reusable and not response.will_close:
            response.close()  # the body is read: this frees the connection for a new request
            with self._lock:
                if not self._closed:
                    idle = self._idle.setdefault(route, [])
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
