"""libcurl's options for every transfer of the engine, its errors as `TransferError`, and the
answer's head as libcurl hands it over.

Responsibility: `EngineSettings` (the bounds every request carries: connect timeout, stall
rule; TLS trust, proxy, receive buffer), validated once; `new_handle` (an easy handle with
them set); `per_request` (the options one request sets); `transfer_error` (libcurl's error
number as a `TransferError`, transient or not); `HeadLines` (the final answer's status and
headers from the lines libcurl passes on, interim 1xx answers skipped).

libcurl owns the framing (status line, headers, Content-Length, chunked), TLS, proxies
(HTTP, HTTPS, SOCKS) and keep-alive; a connection with any framing surprise is closed by
libcurl, never reused. It deliberately does not drive transfers (`ossfs.net.curl_transport`,
`ossfs.net.curl_loop` do) or read the environment (the app passes the proxy and CA bundle in).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Final

import certifi
import pycurl

from ossfs.net.http_api import Headers, HttpRequest, TransferError

__all__ = [
    "DEFAULT_LOW_SPEED_LIMIT",
    "DEFAULT_LOW_SPEED_TIME_S",
    "PROXY_SCHEMES",
    "EngineSettings",
    "HeadLines",
    "new_handle",
    "per_request",
    "transfer_error",
]

DEFAULT_LOW_SPEED_LIMIT: Final = 1024
"""Bytes per second a transfer must average over the stall window (`--low-speed-limit`)."""
DEFAULT_LOW_SPEED_TIME_S: Final = 10
"""The stall window in seconds (`--low-speed-time`)."""
PROXY_SCHEMES: Final = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})
# The 16 KiB default costs about twice the CPU per GiB (docs/PERFORMANCE.md, section 6).
_BUFFER_BYTES: Final = 512 << 10
# Errors only the user can fix: retrying them spends the budget for nothing.
_PERMANENT: Final = frozenset(
    {
        2,  # FAILED_INIT
        3,  # URL_MALFORMAT
        4,  # NOT_BUILT_IN
        43,  # BAD_FUNCTION_ARGUMENT
        48,  # UNKNOWN_OPTION
        58,  # SSL_CERTPROBLEM: the client certificate
        60,  # PEER_FAILED_VERIFICATION: the server's certificate is not trusted
        77,  # SSL_CACERT_BADFILE: the CA bundle cannot be read
        83,  # SSL_ISSUER_ERROR
        90,  # SSL_PINNEDPUBKEYNOTMATCH
        91,  # SSL_INVALIDCERTSTATUS
    }
)
# CURLOPT_SUPPRESS_CONNECT_HEADERS (libcurl 7.54), which pycurl has no name for.
_SUPPRESS_CONNECT_HEADERS: Final = 265
_BLANK: Final = (b"\r\n", b"\n")  # the line that ends a head


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """The bounds and the way out every request of the engine carries. Validated here.

    - ``connect_timeout_s``: name lookup, TCP, the proxy's handshake and TLS, together.
    - The stall rule: a transfer that moves fewer than ``low_speed_limit_bytes`` per second
      on average over ``low_speed_time_s`` seconds is abandoned (silence too, and interim
      answers do not count as progress). libcurl measures it per transfer.
    - ``ca_bundle``: the PEM file TLS trusts (None: certifi's), for the endpoint and for an
      ``https://`` proxy.
    - ``proxy``: ``scheme://[user:password@]host:port`` with a scheme of `PROXY_SCHEMES`
      (a bare ``host:port`` is ``http://``); "" for none. The environment is never consulted.
    Raises ValueError with a one-line reason.
    """

    connect_timeout_s: float = 10.0
    low_speed_limit_bytes: int = DEFAULT_LOW_SPEED_LIMIT
    low_speed_time_s: int = DEFAULT_LOW_SPEED_TIME_S
    ca_bundle: str | None = None
    proxy: str = field(default="", repr=False)  # may carry a password
    buffer_bytes: int = _BUFFER_BYTES

    def __post_init__(self) -> None:
        if not 0 < self.connect_timeout_s < 1e6:
            raise ValueError(f"connect timeout must be > 0 seconds, got {self.connect_timeout_s}")
        if self.low_speed_limit_bytes < 1:
            raise ValueError(
                f"low speed limit must be >= 1 byte/s, got {self.low_speed_limit_bytes}"
            )
        if self.low_speed_time_s < 1:
            raise ValueError(f"low speed time must be >= 1 second, got {self.low_speed_time_s}")
        if not 1024 <= self.buffer_bytes <= 10 << 20:
            raise ValueError(f"receive buffer must be 1 KiB to 10 MiB, got {self.buffer_bytes}")
        if self.proxy:
            scheme = urllib.parse.urlsplit(self.proxy_url).scheme
            if scheme not in PROXY_SCHEMES:
                raise ValueError(
                    f"unsupported proxy {without_password(self.proxy)!r}: give "
                    f"{'://, '.join(sorted(PROXY_SCHEMES))}:// and host:port"
                )

    @property
    def proxy_url(self) -> str:
        """The proxy with its scheme ("" for none)."""
        if not self.proxy or "://" in self.proxy:
            return self.proxy
        return f"http://{self.proxy}"


def without_password(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for messages."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def new_handle(settings: EngineSettings) -> pycurl.Curl:
    """An easy handle with the options every request carries."""
    handle = pycurl.Curl()
    for option, value in (
        (pycurl.NOSIGNAL, 1),  # threads: no SIGALRM for name lookups
        (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
        (pycurl.FOLLOWLOCATION, 0),  # a signed request is never re-sent elsewhere
        (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1),  # one transfer per connection
        (pycurl.CONNECTTIMEOUT_MS, max(1, round(settings.connect_timeout_s * 1000))),
        (pycurl.LOW_SPEED_LIMIT, settings.low_speed_limit_bytes),
        (pycurl.LOW_SPEED_TIME, settings.low_speed_time_s),
        (pycurl.BUFFERSIZE, settings.buffer_bytes),
        (pycurl.TCP_NODELAY, 1),
        (pycurl.TCP_KEEPALIVE, 1),
        # Only this bundle: the wheel's built-in paths are another distribution's.
        (pycurl.CAINFO, settings.ca_bundle or certifi.where()),
        (pycurl.PROXY_CAINFO, settings.ca_bundle or certifi.where()),
        # Set, even when empty: otherwise libcurl reads proxy variables its own way.
        (pycurl.PROXY, settings.proxy_url),
        (pycurl.NOPROXY, ""),
        (_SUPPRESS_CONNECT_HEADERS, 1),  # a proxy tunnel's answer is not the answer
        (pycurl.PATH_AS_IS, 1),  # the path is signed as it is: no dot-segment removal
    ):
        handle.setopt(option, value)
    handle.unsetopt(pycurl.CAPATH)
    handle.unsetopt(pycurl.PROXY_CAPATH)
    return handle


def per_request(handle: pycurl.Curl, request: HttpRequest) -> None:
    """Set ``request``'s URL, method, headers and body on ``handle`` (which may have carried
    another request before). Raises ValueError for a header that would break its line."""
    handle.setopt(pycurl.URL, request.url)
    lines = ["Accept:", "Expect:"]  # neither is signed or wanted; libcurl would add them
    for name, value in request.headers.items():
        # A control character would let a value end its line (header injection).
        if not (name.isprintable() and value.isprintable()) or ":" in name:
            raise ValueError(f"invalid HTTP header {name!r}")
        # "Name;" sends an empty header ("Name:" would remove it).
        lines.append(f"{name}: {value}" if value else f"{name};")
    handle.setopt(pycurl.HTTPHEADER, lines)
    method = request.method
    if method == "GET" and not request.body:
        handle.setopt(pycurl.HTTPGET, 1)
    elif method == "HEAD":
        handle.setopt(pycurl.NOBODY, 1)
    else:
        handle.setopt(pycurl.POST, 1)
        handle.setopt(pycurl.POSTFIELDSIZE, len(request.body))
        handle.setopt(pycurl.COPYPOSTFIELDS, request.body)
        handle.setopt(pycurl.CUSTOMREQUEST, method)
        return
    handle.setopt(pycurl.CUSTOMREQUEST, None)


def transfer_error(code: int, message: str) -> TransferError:
    """libcurl's error ``code`` and message as a `TransferError`."""
    return TransferError(
        code, message or pycurl.easy_strerror(code), transient=code not in _PERMANENT
    )


class HeadLines:
    """The header lines libcurl passes on, and the final answer's head once it is in.

    ``append`` is the header callback: a C method, so no Python runs per line. `check` is
    asked after libcurl ran: it turns True (and sets ``status`` and ``headers``) once the
    lines end with the empty line that closes a final (non-1xx) answer's head. Lines after it
    (a chunked body's trailers) are never read. libcurl has checked every line before it
    passes it on (a status line it cannot read fails the transfer); the status is the status
    line's second word (pycurl allows no ``getinfo`` inside a transfer's callbacks).
    """

    __slots__ = ("append", "complete", "headers", "lines", "status")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.append = self.lines.append
        self.complete = False
        self.status = 0
        self.headers = Headers()

    def check(self) -> bool:
        """True once the final answer's head is in (then ``status`` and ``headers`` are set)."""
        if self.complete:
            return True
        lines = self.lines
        if not lines or lines[-1] not in _BLANK:
            return False
        at = len(lines) - 2
        while at >= 0 and not lines[at].startswith(b"HTTP/"):
            at -= 1
        words = lines[at].split(None, 2) if at >= 0 else []
        status = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
        if status < 200:  # an interim answer (or none): the real one follows
            return False
        headers = Headers()
        for raw in lines[at + 1 : -1]:
            name, sep, value = raw.decode("latin-1").partition(":")
            if sep:
                headers.add(name.strip(), value.strip())
        self.status, self.headers, self.complete = status, headers, True
        return True
