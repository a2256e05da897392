"""OSS signature V4 (``OSS4-HMAC-SHA256``) for the local OSS-compatible server: the
Authorization header and presigned URLs.

Responsibility: parse the credential scope, build V4's canonical request and string to sign,
derive the (memoised) signing key, and refuse with OSS's answers: a malformed header or URL
parameters, a missing or skewed ``x-oss-date``, an ``x-oss-expires`` outside 1..604800 seconds,
a URL dated in the future or expired, and SignatureDoesNotMatch with the CanonicalRequest.

Deliberately not done here: choosing the signature version (`ossfs.emulator.signatures`'s
`authenticate` does, and calls `verify_v4_header` or `verify_v4_url`); V1 and V2; hashing the
body (``x-oss-content-sha256`` is signed as sent); comparing the scope's date with
``x-oss-date``. Pure functions, safe to call from many threads.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ossfs.emulator.auth import (
    MAX_CLOCK_SKEW_S,
    MSG_NEEDS_DATE,
    AuthError,
    Credential,
    SignedRequest,
    canonical_query,
    check_expiry,
    check_skew,
    check_token,
    compare,
    encode,
    first,
    header_list,
    invalid_argument,
    iso_ms,
    lookup,
    parse_iso_basic,
    split_fields,
    url_token,
)

__all__ = ["V4_ALGORITHM", "verify_v4_header", "verify_v4_url"]

_MAX_V4_URL_EXPIRES_S: Final = 7 * 24 * 3600

V4_ALGORITHM: Final = "OSS4-HMAC-SHA256"
_V4_TERMINATOR: Final = "aliyun_v4_request"
_UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
_V4_ALWAYS_SIGNED: Final = frozenset({"content-type", "content-md5"})


@dataclass(frozen=True, slots=True)
class _Scope:
    access_key_id: str
    date: str
    region: str
    product: str

    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.product}/{_V4_TERMINATOR}"


def verify_v4_header(
    request: SignedRequest,
    authorization: str,
    value: str,
    credentials: Mapping[str, Credential],
    now: float,
) -> str:
    fields = split_fields(
        value, "=", authorization, {"Credential", "AdditionalHeaders", "Signature"}
    )
    signature = fields.get("Signature", "")
    scope = _parse_scope(fields.get("Credential", ""))
    if scope is None or not signature:
        raise invalid_argument("Authorization", authorization, "Authorization header is invalid.")
    credential = lookup(credentials, scope.access_key_id)
    check_token(credential, request.headers.get("x-oss-security-token"))
    date_time = request.headers.get("x-oss-date", "")
    if parse_iso_basic(date_time) is None:
        raise AuthError("AccessDenied", MSG_NEEDS_DATE)
    check_skew(date_time, now)
    additional = header_list(fields.get("AdditionalHeaders", ""))
    _compare_v4(
        request,
        credential,
        scope,
        date_time=date_time,
        additional=additional,
        signature=signature,
        skip=None,
    )
    return scope.access_key_id


def verify_v4_url(request: SignedRequest, credentials: Mapping[str, Credential], now: float) -> str:
    credential_text = first(request.query, "x-oss-credential")
    date_time = first(request.query, "x-oss-date")
    expires = first(request.query, "x-oss-expires")
    signature = first(request.query, "x-oss-signature")
    if credential_text is None or date_time is None or expires is None or signature is None:
        raise AuthError(
            "AccessDenied",
            "A signed URL needs the x-oss-credential, x-oss-date, x-oss-expires and "
            "x-oss-signature parameters.",
        )
    scope = _parse_scope(credential_text)
    if scope is None:
        raise invalid_argument("x-oss-credential", credential_text, "Credential is invalid.")
    signed_at = parse_iso_basic(date_time)
    if signed_at is None:
        raise invalid_argument("x-oss-date", date_time, "x-oss-date is invalid.")
    if not expires.isdigit() or not 0 < int(expires) <= _MAX_V4_URL_EXPIRES_S:
        raise invalid_argument(
            "x-oss-expires", expires, "x-oss-expires must be between 1 and 604800 seconds."
        )
    credential = lookup(credentials, scope.access_key_id)
    check_token(credential, url_token(request, "x-oss-security-token"))
    if signed_at - now > MAX_CLOCK_SKEW_S:
        raise AuthError(
            "AccessDenied",
            "Request is not valid yet.",
            extra={"ServerTime": iso_ms(now)},
        )
    check_expiry(signed_at + int(expires), now)
    additional = header_list(first(request.query, "x-oss-additional-headers") or "")
    _compare_v4(
        request,
        credential,
        scope,
        date_time=date_time,
        additional=additional,
        signature=signature,
        skip="x-oss-signature",
    )
    return scope.access_key_id


def _compare_v4(
    request: SignedRequest,
    credential: Credential,
    scope: _Scope,
    *,
    date_time: str,
    additional: list[str],
    signature: str,
    skip: str | None,
) -> None:
    headers = request.headers
    wanted = frozenset(additional)
    signed = sorted(
        (k, v)
        for k, v in headers.items()
        if k.startswith("x-oss-") or k in _V4_ALWAYS_SIGNED or k in wanted
    )
    path = "/" if request.bucket is None else f"/{request.bucket}/{request.key or ''}"
    canonical_request = "\n".join(
        (
            request.method,
            encode(path, "/"),
            canonical_query(request.query, skip),
            "".join(f"{k}:{v}\n" for k, v in signed),
            ";".join(additional),
            headers.get("x-oss-content-sha256", _UNSIGNED_PAYLOAD),
        )
    )
    string_to_sign = "\n".join(
        (
            V4_ALGORITHM,
            date_time,
            scope.text(),
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        )
    )
    key = _v4_signing_key(credential.access_key_secret, scope.date, scope.region, scope.product)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    compare(expected, signature, scope.access_key_id, string_to_sign, canonical_request)


def _parse_scope(text: str) -> _Scope | None:
    parts = text.rsplit("/", 4)
    if len(parts) != 5 or parts[4] != _V4_TERMINATOR or not all(parts[:4]):
        return None
    if len(parts[1]) != 8 or not parts[1].isdigit():
        return None
    return _Scope(parts[0], parts[1], parts[2], parts[3])


@functools.lru_cache(maxsize=256)
def _v4_signing_key(secret: str, date: str, region: str, product: str) -> bytes:
    key = ("aliyun_v4" + secret).encode()
    for part in (date, region, product, _V4_TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
