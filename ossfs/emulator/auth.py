"""The vocabulary of request authentication in the local OSS-compatible server, and the checks
every signature version shares.

Responsibility: `Credential` (an access key the server accepts, maybe STS), `SignedRequest` (the
parts of a request that signatures cover), `AuthError` (a refusal with OSS's code, message,
status and ``<Error>`` extras), and the shared steps with OSS's answers: access key lookup, the
STS token check, clock skew and expiry of a signature, the constant-time comparison that yields
SignatureDoesNotMatch, canonical query and URI encoding, memoised HMAC bases, and the date
formats of ``Date`` and ``x-oss-date``.

Deliberately not done here: no string to sign and no choice of signature version (that is
`ossfs.emulator.signatures`, whose `authenticate` is the entry point); no I/O and no state but
the memoised per-secret HMAC bases; no authorization. Everything is safe to call from many
threads.
"""

from __future__ import annotations

import base64
import calendar
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

__all__ = [
    "MAX_CLOCK_SKEW_S",
    "MSG_NEEDS_DATE",
    "AuthError",
    "Credential",
    "SignedRequest",
    "canonical_query",
    "check_expiry",
    "check_skew",
    "check_token",
    "compare",
    "encode",
    "first",
    "header_list",
    "hmac_b64",
    "invalid_argument",
    "iso_ms",
    "lookup",
    "parse_iso_basic",
    "sha1_base",
    "sha256_base",
    "split_fields",
    "url_token",
]

MAX_CLOCK_SKEW_S: Final = 15 * 60
"""A header-signed request whose Date/x-oss-date is further than this from ``now`` is refused."""

_MSG_NO_SUCH_AK: Final = "The OSS Access Key Id you provided does not exist in our records."
_MSG_STS_TOKEN_LOST: Final = (
    _MSG_NO_SUCH_AK + " The Security Token may be lost to specify that it is a STS Access Id."
)
_MSG_BAD_SIGNATURE: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
_MSG_SKEWED: Final = "The difference between the request time and the current time is too large."
MSG_NEEDS_DATE: Final = "OSS authentication requires a valid Date."
_MSG_EXPIRED: Final = "Request has expired."

_MONTHS: Final = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_HTTP_DATE_RE: Final = re.compile(
    r"^[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$"
)
_ISO_BASIC_RE: Final = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


@dataclass(frozen=True, slots=True)
class Credential:
    """One access key the server accepts; with ``security_token`` it is an STS credential and
    every request signed with it must carry exactly that token."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The parts of an HTTP request that signatures cover, as the server parsed them.

    ``key`` is the decoded object key (``unquote`` of the path, not ``unquote_plus``), None for
    bucket-level requests; ``bucket`` is None for service-level requests. ``query`` holds the
    decoded parameters in request order (``unquote_plus``; a bare name has the value ``""``).
    Header names are lower-case. ``raw_path`` is the percent-encoded path as sent, without the
    query; signatures are computed from ``bucket`` and ``key`` (OSS signs ``/bucket/key`` in
    virtual-hosted and CNAME style too), so it serves only diagnostics.
    """

    method: str
    bucket: str | None
    key: str | None
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    raw_path: str


class AuthError(Exception):
    """A request OSS would refuse: ``code``/``message`` go into ``<Error>``, ``status`` is the HTTP
    status, and ``extra`` holds further ``<Error>`` children in order (for example StringToSign)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 403,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra: dict[str, str] = dict(extra) if extra else {}


# -- shared pieces -----------------------------------------------------------------------------


def first(query: Iterable[tuple[str, str]], name: str) -> str | None:
    for k, v in query:
        if k == name:
            return v
    return None


def url_token(request: SignedRequest, param: str) -> str | None:
    token = first(request.query, param)
    return token if token is not None else request.headers.get("x-oss-security-token")


def lookup(credentials: Mapping[str, Credential], access_key_id: str) -> Credential:
    credential = credentials.get(access_key_id)
    if credential is None:
        raise AuthError(
            "InvalidAccessKeyId", _MSG_NO_SUCH_AK, extra={"OSSAccessKeyId": access_key_id}
        )
    return credential


def check_token(credential: Credential, token: str | None) -> None:
    expected = credential.security_token
    if expected is None:
        if token is not None:
            # A token makes OSS look the key up among STS keys, where a long-term key is unknown.
            raise AuthError(
                "InvalidAccessKeyId",
                _MSG_NO_SUCH_AK,
                extra={"OSSAccessKeyId": credential.access_key_id},
            )
        return
    if token is None:
        raise AuthError(
            "InvalidAccessKeyId",
            _MSG_STS_TOKEN_LOST,
            extra={"OSSAccessKeyId": credential.access_key_id},
        )
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise AuthError(
            "InvalidSecurityToken",
            "The security token you provided is invalid.",
            extra={"SecurityToken": token},
        )


def check_skew(date_text: str, now: float) -> None:
    when = _parse_http_date(date_text)
    if when is None:
        when = parse_iso_basic(date_text)
    if when is None:
        raise AuthError("AccessDenied", MSG_NEEDS_DATE)
    if abs(when - now) > MAX_CLOCK_SKEW_S:
        raise AuthError(
            "RequestTimeTooSkewed",
            _MSG_SKEWED,
            extra={
                "RequestTime": date_text,
                "ServerTime": iso_ms(now),
                "MaxAllowedSkewMilliseconds": str(MAX_CLOCK_SKEW_S * 1000),
            },
        )


def check_expiry(expires_at: int, now: float) -> None:
    if now > expires_at:
        raise AuthError(
            "AccessDenied",
            _MSG_EXPIRED,
            extra={"Expires": iso_ms(expires_at), "ServerTime": iso_ms(now)},
        )


def compare(
    expected: str,
    provided: str,
    access_key_id: str,
    string_to_sign: str,
    canonical_request: str | None = None,
) -> None:
    if hmac.compare_digest(expected.encode(), provided.encode()):
        return
    extra = {
        "OSSAccessKeyId": access_key_id,
        "SignatureProvided": provided,
        "StringToSign": string_to_sign,
        "StringToSignBytes": " ".join(f"{b:02X}" for b in string_to_sign.encode()),
    }
    if canonical_request is not None:
        extra["CanonicalRequest"] = canonical_request
    raise AuthError("SignatureDoesNotMatch", _MSG_BAD_SIGNATURE, extra=extra)


def split_fields(
    value: str, separator: str, authorization: str, allowed: frozenset[str] | set[str]
) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in value.split(","):
        name, sep, field = part.strip().partition(separator)
        if not sep or name not in allowed or name in fields:
            raise invalid_argument(
                "Authorization", authorization, "Authorization header is invalid."
            )
        fields[name] = field.strip()
    return fields


def header_list(text: str) -> list[str]:
    return sorted({h.strip().lower() for h in text.split(";") if h.strip()})


def canonical_query(query: Iterable[tuple[str, str]], skip: str | None) -> str:
    encoded = sorted((encode(k, ""), encode(v, "")) for k, v in query if k != skip)
    return "&".join(f"{k}={v}" if v else k for k, v in encoded)


def encode(text: str, safe: str) -> str:
    # quote() keeps exactly RFC 3986's unreserved set (A-Z a-z 0-9 - . _ ~) plus ``safe``.
    return quote(text, safe=safe)


@functools.lru_cache(maxsize=256)
def sha1_base(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=hashlib.sha1)


@functools.lru_cache(maxsize=256)
def sha256_base(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def hmac_b64(base: hmac.HMAC, text: str) -> str:
    mac = base.copy()
    mac.update(text.encode())
    return base64.b64encode(mac.digest()).decode("ascii")


def _parse_http_date(text: str) -> int | None:
    """``Wed, 25 Nov 2026 12:00:00 GMT`` -> epoch seconds, or None."""
    match = _HTTP_DATE_RE.match(text)
    if match is None:
        return None
    day, month_name, year, hour, minute, second = match.groups()
    month = _MONTHS.get(month_name)
    if month is None:
        return None
    return _epoch((int(year), month, int(day), int(hour), int(minute), int(second)))


def parse_iso_basic(text: str) -> int | None:
    """``20261125T120000Z`` -> epoch seconds, or None."""
    match = _ISO_BASIC_RE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    return _epoch((year, month, day, hour, minute, second))


def _epoch(fields: tuple[int, int, int, int, int, int]) -> int | None:
    year, month, day, hour, minute, second = fields
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def iso_ms(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def invalid_argument(name: str, value: str, message: str) -> AuthError:
    return AuthError(
        "InvalidArgument",
        message,
        status=400,
        extra={"ArgumentName": name, "ArgumentValue": value},
    )
