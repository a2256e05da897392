"""OSS's header signature V1 for whole-object GETs: the fetch loop's requests, signed without
oss2's cost per request.

oss2 builds and signs every other request. The directory read-ahead sends one GET per small
file, one after another on one thread; built through oss2 each cost about 120 us of the
daemon's CPU in a mount (a Request object, a case-insensitive header dict, the Date formatted
anew, debug strings formatted with logging off, a second Bucket's bookkeeping), a fifth of all
it spends per 100 KiB file. Here the same GET is built from strings: the Date is formatted once
a second, and the signature is one HMAC-SHA1 call.

What is sent is byte for byte what oss2's `Auth`, `StsAuth` (V1) and `AnonymousAuth` send for the
same request in the same second (tests compare both). V4 signatures stay with oss2. This module
does not know endpoints or URLs: the caller gives the request target of the bucket's root.
"""

from __future__ import annotations

import base64
import email.utils
import hmac
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

RANGE_BEHAVIOR: Final = ("x-oss-range-behavior", "standard")
"""Without it, OSS answers an unsatisfiable Range with 200 and the whole object."""


@dataclass(frozen=True, slots=True)
class V1Credentials:
    """An access key, its secret and, for STS credentials, the security token."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


class WholeGetSigner:
    """The headers of ``GET`` of a whole object (``Range: bytes=0-{size-1}``, pinned with
    ``If-Match``), signed with V1 credentials, or unsigned when there are none (anonymous).

    ``bucket`` is the bucket's name (the signed resource is ``/bucket/key``), ``user_agent``
    the User-Agent oss2 sends, ``clock`` the time in seconds (default: `time.time`, looked up
    at each call as oss2 does, so tests can fix both). Thread-safe.
    """

    def __init__(
        self,
        *,
        bucket: str,
        root_target: str,
        credentials: V1Credentials | None,
        user_agent: str,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._bucket = bucket
        self._root_target = root_target
        self._credentials = credentials
        self._secret = credentials.access_key_secret.encode() if credentials else b""
        self._user_agent = user_agent
        self._clock = clock or _now
        self._date: tuple[int, str] = (-1, "")

    def target(self, key: str) -> str:
        """The request target of ``key``: the root's, then the key with every byte that is not
        unreserved percent-encoded, ``/`` included (as oss2 does)."""
        return self._root_target + urllib.parse.quote(key, safe="")

    def headers(self, key: str, etag: str, size: int) -> list[tuple[str, str]]:
        """The headers, in oss2's order, of the GET of bytes ``[0, size)`` of ``key`` at
        ``etag`` (``size`` >= 1). Raises UnicodeEncodeError for a key that is not text."""
        headers = [
            RANGE_BEHAVIOR,
            ("If-Match", f'"{etag}"'),
            ("Range", f"bytes=0-{size - 1}"),
            ("User-Agent", self._user_agent),
        ]
        credentials = self._credentials
        if credentials is None:
            return headers
        signed_oss_headers = "x-oss-range-behavior:standard\n"
        if credentials.security_token is not None:
            headers.append(("x-oss-security-token", credentials.security_token))
            # Canonical x-oss- headers are sorted by name: range-behavior < security-token.
            signed_oss_headers += f"x-oss-security-token:{credentials.security_token}\n"
        date = self._http_date()
        # Content-MD5 and Content-Type are empty; no sub-resource.
        to_sign = f"GET\n\n\n{date}\n{signed_oss_headers}/{self._bucket}/{key}".encode()
        digest = hmac.digest(self._secret, to_sign, "sha1")
        signature = base64.b64encode(digest).decode("ascii")
        headers.append(("date", date))
        headers.append(("authorization", f"OSS {credentials.access_key_id}:{signature}"))
        return headers

    def _http_date(self) -> str:
        """The Date header of this second (RFC 1123, GMT), formatted once a second."""
        now = int(self._clock())
        second, date = self._date
        if second != now:
            date = email.utils.formatdate(now, usegmt=True)
            self._date = (now, date)
        return date


def _now() -> float:
    return time.time()
