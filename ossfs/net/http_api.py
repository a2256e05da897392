"""What the HTTP engine offers the store: a request, an answer, a transport, and its failures.

Responsibility: the values and protocols between the store and the engine (`HttpRequest`,
`HttpResponse`, `Transport`, `Headers`), and the one failure class the engine raises
(`TransferError`: the exchange failed, not the request; it says whether another attempt on a
fresh connection may succeed).

It deliberately moves no bytes (`ossfs.net.curl_transport` and `ossfs.net.curl_loop` do) and
knows nothing of OSS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, overload

__all__ = ["Headers", "HttpRequest", "HttpResponse", "TransferError", "Transport"]


@dataclass(slots=True)
class HttpRequest:
    """One request as it goes on the wire. ``url`` is absolute, query included."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Headers(dict[str, str]):
    """Answer headers by lower-case name; ``[]``, ``get`` and ``in`` ignore case.

    One value per name: a repeated header keeps its values joined by ", " (RFC 9110 5.3).
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

    def add(self, name: str, value: str) -> None:
        """Add one header line's value (``name`` lower-cased); a repeated name joins with ", "."""
        key = name.lower()
        old = super().get(key)
        self[key] = value if old is None else f"{old}, {value}"


class HttpResponse(Protocol):
    """One answer: ``status``, ``headers`` (by lower-case name) and the body, read once, in
    order. Offers what oss2's result classes read (``status``, ``headers``, ``request_id``,
    ``read``, iteration, ``response.close()``) plus `readinto`. Not thread-safe: one reader
    at a time."""

    status: int
    headers: Headers
    request_id: str

    @property
    def response(self) -> HttpResponse:
        """Itself (oss2's ``GetObjectResult.close`` calls ``resp.response.close()``)."""
        ...

    def readinto(self, buffer: memoryview, /) -> int:
        """Fill the start of ``buffer`` with the next body bytes; 0 at the end of the body.
        Raises `TransferError` when the body cannot be read to its end."""
        ...

    def read(self, amt: int | None = None, /) -> bytes:
        """Up to ``amt`` bytes (all the rest if None); ``b""`` at the end of the body."""
        ...

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None:
        """Drop the rest of the body (and the connection, if the body was not finished)."""
        ...


class Transport(Protocol):
    """Sends one request and returns its answer (any status). Raises `TransferError` when no
    answer arrived. Thread-safe."""

    def send(self, request: HttpRequest) -> HttpResponse: ...

    def close(self) -> None: ...


class TransferError(Exception):
    """An exchange failed: no answer, or a body that could not be read to its end.

    ``code`` is libcurl's error number (28 for a stall or a passed deadline); ``transient``
    is True when the failure is the connection's or the server's moment, so that the same
    request on a fresh connection may succeed (False: a TLS certificate that is not trusted,
    a CA bundle that cannot be read, a malformed URL: only the user can fix those).
    """

    def __init__(self, code: int, message: str, *, transient: bool = True) -> None:
        super().__init__(f"{message} (curl error {code})")
        self.code = code
        self.transient = transient
