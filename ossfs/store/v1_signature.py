"""OSS's header signature V1 for GETs: the fetch loop's requests, signed without oss2's cost
per request.

oss2 builds and signs every other request. The directory read-ahead sends one GET per small
file, one after another on one thread; built through oss2 each cost about 120 us of the
daemon's CPU in a mount (a Request object, a case-insensitive header dict, the Date formatted
anew, debug strings formatted with logging off, a second Bucket's bookkeeping), a fifth of all
it spends per 100 KiB file. Here the same GET is built from strings: the Date is formatted once
a second, and the signature is one HMAC-SHA1 call. The caller gives the headers (the store
builds them once for this and for oss2's path).

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
from collections.abc import Callable, Sequence

from ossfs.store.credentials import Credentials


class V1Signer:
    """Signs ``GET`` requests of one bucket's objects with V1 credentials, or leaves them
    unsigned when there are none (anonymous).

    ``bucket`` is the bucket's name (the signed resource is ``/bucket/key``), ``root_target``
    the request target of the bucket's root, ``clock`` the time in seconds (default:
    `time.time`, looked up at each call as oss2 does, so tests can fix both). Thread-safe.
    """

    def __init__(
        self,
        *,
        bucket: str,
        root_target: str,
        credentials: Credentials | None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._bucket = bucket
        self._root_target = root_target
        self._credentials = credentials
        self._secret = credentials.access_key_secret.encode() if credentials else b""
        self._clock = clock or _now
        self._date: tuple[int, str] = (-1, "")

    def target(self, key: str) -> str:
        """The request target of ``key``: the root's, then the key with every byte that is not
        unreserved percent-encoded, ``/`` included (as oss2 does)."""
        return self._root_target + urllib.parse.quote(key, safe="")

    def sign_get(self, key: str, headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """``headers`` of a GET of ``key`` (no query) followed, as oss2 adds them, by the
        security token (STS), ``date`` and ``authorization``; unchanged when anonymous.
        Every ``x-oss-`` header is signed. Raises UnicodeEncodeError for a key that is not
        text."""
        credentials = self._credentials
        if credentials is None:
            return list(headers)
        signed = list(headers)
        if credentials.security_token is not None:
            signed.append(("x-oss-security-token", credentials.security_token))
        canonical = []
        for name, value in signed:
            lower = name.lower()
            if lower.startswith("x-oss-"):
                canonical.append((lower, value))
        canonical.sort()
        oss_headers = "".join(f"{name}:{value}\n" for name, value in canonical)
        date = self._http_date()
        # Content-MD5 and Content-Type are empty; no sub-resource.
        to_sign = f"GET\n\n\n{date}\n{oss_headers}/{self._bucket}/{key}".encode()
        digest = hmac.digest(self._secret, to_sign, "sha1")
        signature = base64.b64encode(digest).decode("ascii")
        signed.append(("date", date))
        signed.append(("authorization", f"OSS {credentials.access_key_id}:{signature}"))
        return signed

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
