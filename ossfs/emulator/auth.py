"""Signature verification for the local OSS-compatible server.

Responsibility: given one parsed HTTP request and the server's credentials, decide who signed it
and answer every failure with the error code, message, HTTP status and extra ``<Error>`` children
that real OSS gives. Supported, as oss2 and the v2 SDK produce them:

* header signatures V1 (``OSS ak:sig``, HMAC-SHA1), V2 (``OSS2 AccessKeyId:..,Signature:..``,
  HMAC-SHA256) and V4 (``OSS4-HMAC-SHA256 Credential=..,Signature=..``);
* presigned URLs V1 (``OSSAccessKeyId``/``Expires``/``Signature``), V2
  (``x-oss-signature-version=OSS2``) and V4 (``x-oss-signature-version=OSS4-HMAC-SHA256``);
* STS credentials: the token travels in ``x-oss-security-token`` (header signatures), in the
  ``security-token`` query parameter (V1/V2 URLs) or in ``x-oss-security-token`` (V4 URLs).

Deliberately not done here: no I/O and no state; no authorization (bucket ACLs and policies
belong to the server); the body is never hashed (V4's ``x-oss-content-sha256`` is signed as sent,
not compared with the payload); POST-policy form uploads and S3-compatible (AWS) signatures are not
understood. A V4 scope's date is not compared with ``x-oss-date``; the region and product are
taken from the scope as sent.

Everything is a pure function of its arguments and safe to call from many threads; the per-secret
HMAC state and the V4 signing keys are memoised because this runs on every request.
"""

from __future__ import annotations

import base64
import calendar
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

__all__ = [
    "MAX_CLOCK_SKEW_S",
    "SUBRESOURCES",
    "AuthError",
    "Credential",
    "SignedRequest",
    "authenticate",
]

MAX_CLOCK_SKEW_S: Final = 15 * 60
"""A header-signed request whose Date/x-oss-date is further than this from ``now`` is refused."""

_MAX_V4_URL_EXPIRES_S: Final = 7 * 24 * 3600

SUBRESOURCES: Final[frozenset[str]] = frozenset(
    {
        # The query parameters that V1 signs (all others, such as prefix, marker, max-keys,
        # delimiter, encoding-type, list-type, start-after and fetch-owner, are unsigned). The
        # set is fixed by OSS; a verifier must sign exactly what the SDKs sign.
        "accessPoint",
        "accessPointPolicy",
        "acl",
        "append",
        "asyncFetch",
        "bucketArchiveDirectRead",
        "bucketInfo",
        "callback",
        "callback-var",
        "cname",
        "comp",
        "continuation-token",
        "cors",
        "delete",
        "encryption",
        "endTime",
        "group",
        "httpsConfig",
        "inventory",
        "inventoryId",
        "lifecycle",
        "link",
        "live",
        "location",
        "logging",
        "metaQuery",
        "objectInfo",
        "objectMeta",
        "partNumber",
        "policy",
        "position",
        "publicAccessBlock",
        "qos",
        "qosInfo",
        "qosRequester",
        "redundancyTransition",
        "referer",
        "regionList",
        "replication",
        "replicationLocation",
        "replicationProgress",
        "requestPayment",
        "requesterQosInfo",
        "resourceGroup",
        "resourcePool",
        "resourcePoolBuckets",
        "resourcePoolInfo",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "security-token",
        "sequential",
        "startTime",
        "stat",
        "status",
        "style",
        "styleName",
        "symlink",
        "tagging",
        "transferAcceleration",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "vod",
        "website",
        "worm",
        "wormExtend",
        "wormId",
        "x-oss-ac-forward-allow",
        "x-oss-ac-source-ip",
        "x-oss-ac-subnet-mask",
        "x-oss-ac-vpc-id",
        "x-oss-access-point-name",
        "x-oss-async-process",
        "x-oss-process",
        "x-oss-redundancy-transition-taskid",
        "x-oss-request-payer",
        "x-oss-target-redundancy-type",
        "x-oss-traffic-limit",
        "x-oss-write-get-object-response",
    }
)

_V4_ALGORITHM: Final = "OSS4-HMAC-SHA256"
_V4_TERMINATOR: Final = "aliyun_v4_request"
_UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
_V4_ALWAYS_SIGNED: Final = frozenset({"content-type", "content-md5"})

_MSG_NO_SUCH_AK: Final = "The OSS Access Key Id you provided does not exist in our records."
_MSG_STS_TOKEN_LOST: Final = (
    _MSG_NO_SUCH_AK + " The Security Token may be lost to specify that it is a STS Access Id."
)
_MSG_BAD_SIGNATURE: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
_MSG_SKEWED: Final = "The difference between the request time and the current time is too large."
_MSG_NEEDS_DATE: Final = "OSS authentication requires a valid Date."
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


def authenticate(
    request: SignedRequest, credentials: Mapping[str, Credential], *, now: float
) -> str | None:
    """Return the verified access key id, or None if the request carries no signature at all.

    ``credentials`` maps access key ids to credentials; ``now`` is the server's clock in epoch
    seconds. A request is signed if it has an ``Authorization`` header, or (without one) the query
    parameter ``OSSAccessKeyId`` (V1 URL) or ``x-oss-signature-version`` (V2/V4 URL).

    Raises `AuthError`, with the answers of real OSS:

    * unknown access key id: 403 ``InvalidAccessKeyId`` (extra ``OSSAccessKeyId``);
    * a security token with a key that is not an STS key: the same ``InvalidAccessKeyId``;
    * an STS key without its token: 403 ``InvalidAccessKeyId`` whose message adds "The Security
      Token may be lost to specify that it is a STS Access Id." (EC 0002-00000003);
    * an STS key with another token: 403 ``InvalidSecurityToken`` "The security token you
      provided is invalid." (extra ``SecurityToken``; EC 0002-00000004 describes this case);
    * wrong signature: 403 ``SignatureDoesNotMatch`` (extras ``OSSAccessKeyId``,
      ``SignatureProvided``, ``StringToSign``, ``StringToSignBytes``, plus ``CanonicalRequest``
      for V4);
    * unparseable Authorization header or signed-URL parameters: 400 ``InvalidArgument``
      (extras ``ArgumentName``, ``ArgumentValue``);
    * header signature without a valid Date/x-oss-date: 403 ``AccessDenied`` "OSS authentication
      requires a valid Date.";
    * header signature dated more than `MAX_CLOCK_SKEW_S` away from ``now``: 403
      ``RequestTimeTooSkewed`` (extras ``RequestTime``, ``ServerTime``,
      ``MaxAllowedSkewMilliseconds``);
    * expired signed URL: 403 ``AccessDenied`` "Request has expired." (extras ``Expires``,
      ``ServerTime``); a V4 URL dated more than 15 minutes in the future: 403 ``AccessDenied``.
    """
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme == "OSS":
            return _verify_v1_header(request, authorization, rest.strip(), credentials, now)
        if scheme == _V4_ALGORITHM:
            return _verify_v4_header(request, authorization, rest.strip(), credentials, now)
        if scheme == "OSS2":
            return _verify_v2_header(request, authorization, rest.strip(), credentials, now)
        raise _invalid_argument("Authorization", authorization, "Authorization header is invalid.")
    if _first(request.query, "OSSAccessKeyId") is not None:
        return _verify_v1_url(request, credentials, now)
    version = _first(request.query, "x-oss-signature-version")
    if version is None:
        return None
    if version == _V4_ALGORITHM:
        return _verify_v4_url(request, credentials, now)
    if version == "OSS2":
        return _verify_v2_url(request, credentials, now)
    raise _invalid_argument(
        "x-oss-signature-version", version, "Unsupported signature version in the URL."
    )


def _url_signature(
    request: SignedRequest, id_name: str, expires_name: str, signature_name: str
) -> tuple[str, str, str]:
    """The access key id, expiry (decimal epoch text) and signature of a presigned URL."""
    access_key_id = _first(request.query, id_name) or ""
    expires = _first(request.query, expires_name)
    signature = _first(request.query, signature_name)
    if not access_key_id or expires is None or signature is None:
        raise AuthError(
            "AccessDenied",
            f"A signed URL needs the {id_name}, {expires_name} and {signature_name} parameters.",
        )
    if not expires.isdigit():
        raise _invalid_argument(
            expires_name, expires, f"{expires_name} must be an integer epoch time."
        )
    return access_key_id, expires, signature


def _compare_hmac(
    base: Callable[[str], hmac.HMAC], credential: Credential, signature: str, string_to_sign: str
) -> None:
    """Raise SignatureDoesNotMatch unless ``signature`` is the base64 HMAC of the string."""
    _compare(
        _hmac_b64(base(credential.access_key_secret), string_to_sign),
        signature,
        credential.access_key_id,
        string_to_sign,
    )


# -- V1 ----------------------------------------------------------------------------------------


def _verify_v1_header(
    request: SignedRequest,
    authorization: str,
    value: str,
    credentials: Mapping[str, Credential],
    now: float,
) -> str:
    access_key_id, sep, signature = value.partition(":")
    if not sep or not access_key_id or not signature:
        raise _invalid_argument("Authorization", authorization, "Authorization header is invalid.")
    credential = _lookup(credentials, access_key_id)
    _check_token(credential, request.headers.get("x-oss-security-token"))
    date_line = request.headers.get("x-oss-date") or request.headers.get("date") or ""
    _check_skew(date_line, now)
    string_to_sign = _v1_string_to_sign(request, date_line)
    _compare_hmac(_sha1_base, credential, signature, string_to_sign)
    return access_key_id


def _verify_v1_url(
    request: SignedRequest, credentials: Mapping[str, Credential], now: float
) -> str:
    access_key_id, expires, signature = _url_signature(
        request, "OSSAccessKeyId", "Expires", "Signature"
    )
    credential = _lookup(credentials, access_key_id)
    _check_token(credential, _url_token(request, "security-token"))
    _check_expiry(int(expires), now)
    string_to_sign = _v1_string_to_sign(request, expires)
    _compare_hmac(_sha1_base, credential, signature, string_to_sign)
    return access_key_id


def _v1_string_to_sign(request: SignedRequest, date_line: str) -> str:
    headers = request.headers
    oss_headers = sorted((k, v) for k, v in headers.items() if k.startswith("x-oss-"))
    resource = "/" if request.bucket is None else f"/{request.bucket}/{request.key or ''}"
    subresources = sorted(
        ((k, v) for k, v in request.query if k in SUBRESOURCES), key=lambda kv: kv[0]
    )
    if subresources:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)
    return "".join(
        (
            request.method,
            "\n",
            headers.get("content-md5", ""),
            "\n",
            headers.get("content-type", ""),
            "\n",
            date_line,
            "\n",
            "".join(f"{k}:{v}\n" for k, v in oss_headers),
            resource,
        )
    )


# -- V2 ----------------------------------------------------------------------------------------


def _verify_v2_header(
    request: SignedRequest,
    authorization: str,
    value: str,
    credentials: Mapping[str, Credential],
    now: float,
) -> str:
    fields = _split_fields(
        value, ":", authorization, {"AccessKeyId", "AdditionalHeaders", "Signature"}
    )
    access_key_id = fields.get("AccessKeyId", "")
    signature = fields.get("Signature", "")
    if not access_key_id or not signature:
        raise _invalid_argument("Authorization", authorization, "Authorization header is invalid.")
    credential = _lookup(credentials, access_key_id)
    _check_token(credential, request.headers.get("x-oss-security-token"))
    date_line = request.headers.get("date", "")
    _check_skew(date_line or request.headers.get("x-oss-date", ""), now)
    string_to_sign = _v2_string_to_sign(
        request, date_line, _header_list(fields.get("AdditionalHeaders", "")), skip=None
    )
    _compare_hmac(_sha256_base, credential, signature, string_to_sign)
    return access_key_id


def _verify_v2_url(
    request: SignedRequest, credentials: Mapping[str, Credential], now: float
) -> str:
    access_key_id, expires, signature = _url_signature(
        request, "x-oss-access-key-id", "x-oss-expires", "x-oss-signature"
    )
    credential = _lookup(credentials, access_key_id)
    _check_token(credential, _url_token(request, "security-token"))
    _check_expiry(int(expires), now)
    additional = _header_list(_first(request.query, "x-oss-additional-headers") or "")
    string_to_sign = _v2_string_to_sign(request, expires, additional, skip="x-oss-signature")
    _compare_hmac(_sha256_base, credential, signature, string_to_sign)
    return access_key_id


def _v2_string_to_sign(
    request: SignedRequest, date_line: str, additional: list[str], *, skip: str | None
) -> str:
    headers = request.headers
    wanted = frozenset(additional)
    signed = sorted((k, v) for k, v in headers.items() if k.startswith("x-oss-") or k in wanted)
    path = "/" if request.bucket is None else f"/{request.bucket}/{request.key or ''}"
    # V2 encodes '/' in the resource as well, unlike V4.
    resource = _encode(path, "")
    query = _canonical_query(request.query, skip)
    if query:
        resource += "?" + query
    return "".join(
        (
            request.method,
            "\n",
            headers.get("content-md5", ""),
            "\n",
            headers.get("content-type", ""),
            "\n",
            date_line,
            "\n",
            "".join(f"{k}:{v}\n" for k, v in signed),
            ";".join(additional),
            "\n",
            resource,
        )
    )


# -- V4 ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scope:
    access_key_id: str
    date: str
    region: str
    product: str

    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.product}/{_V4_TERMINATOR}"


def _verify_v4_header(
    request: SignedRequest,
    authorization: str,
    value: str,
    credentials: Mapping[str, Credential],
    now: float,
) -> str:
    fields = _split_fields(
        value, "=", authorization, {"Credential", "AdditionalHeaders", "Signature"}
    )
    signature = fields.get("Signature", "")
    scope = _parse_scope(fields.get("Credential", ""))
    if scope is None or not signature:
        raise _invalid_argument("Authorization", authorization, "Authorization header is invalid.")
    credential = _lookup(credentials, scope.access_key_id)
    _check_token(credential, request.headers.get("x-oss-security-token"))
    date_time = request.headers.get("x-oss-date", "")
    if _parse_iso_basic(date_time) is None:
        raise AuthError("AccessDenied", _MSG_NEEDS_DATE)
    _check_skew(date_time, now)
    additional = _header_list(fields.get("AdditionalHeaders", ""))
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


def _verify_v4_url(
    request: SignedRequest, credentials: Mapping[str, Credential], now: float
) -> str:
    credential_text = _first(request.query, "x-oss-credential")
    date_time = _first(request.query, "x-oss-date")
    expires = _first(request.query, "x-oss-expires")
    signature = _first(request.query, "x-oss-signature")
    if credential_text is None or date_time is None or expires is None or signature is None:
        raise AuthError(
            "AccessDenied",
            "A signed URL needs the x-oss-credential, x-oss-date, x-oss-expires and "
            "x-oss-signature parameters.",
        )
    scope = _parse_scope(credential_text)
    if scope is None:
        raise _invalid_argument("x-oss-credential", credential_text, "Credential is invalid.")
    signed_at = _parse_iso_basic(date_time)
    if signed_at is None:
        raise _invalid_argument("x-oss-date", date_time, "x-oss-date is invalid.")
    if not expires.isdigit() or not 0 < int(expires) <= _MAX_V4_URL_EXPIRES_S:
        raise _invalid_argument(
            "x-oss-expires", expires, "x-oss-expires must be between 1 and 604800 seconds."
        )
    credential = _lookup(credentials, scope.access_key_id)
    _check_token(credential, _url_token(request, "x-oss-security-token"))
    if signed_at - now > MAX_CLOCK_SKEW_S:
        raise AuthError(
            "AccessDenied",
            "Request is not valid yet.",
            extra={"ServerTime": _iso_ms(now)},
        )
    _check_expiry(signed_at + int(expires), now)
    additional = _header_list(_first(request.query, "x-oss-additional-headers") or "")
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
            _encode(path, "/"),
            _canonical_query(request.query, skip),
            "".join(f"{k}:{v}\n" for k, v in signed),
            ";".join(additional),
            headers.get("x-oss-content-sha256", _UNSIGNED_PAYLOAD),
        )
    )
    string_to_sign = "\n".join(
        (
            _V4_ALGORITHM,
            date_time,
            scope.text(),
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        )
    )
    key = _v4_signing_key(credential.access_key_secret, scope.date, scope.region, scope.product)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    _compare(expected, signature, scope.access_key_id, string_to_sign, canonical_request)


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


# -- shared pieces -----------------------------------------------------------------------------


def _first(query: Iterable[tuple[str, str]], name: str) -> str | None:
    for k, v in query:
        if k == name:
            return v
    return None


def _url_token(request: SignedRequest, param: str) -> str | None:
    token = _first(request.query, param)
    return token if token is not None else request.headers.get("x-oss-security-token")


def _lookup(credentials: Mapping[str, Credential], access_key_id: str) -> Credential:
    credential = credentials.get(access_key_id)
    if credential is None:
        raise AuthError(
            "InvalidAccessKeyId", _MSG_NO_SUCH_AK, extra={"OSSAccessKeyId": access_key_id}
        )
    return credential


def _check_token(credential: Credential, token: str | None) -> None:
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


def _check_skew(date_text: str, now: float) -> None:
    when = _parse_http_date(date_text)
    if when is None:
        when = _parse_iso_basic(date_text)
    if when is None:
        raise AuthError("AccessDenied", _MSG_NEEDS_DATE)
    if abs(when - now) > MAX_CLOCK_SKEW_S:
        raise AuthError(
            "RequestTimeTooSkewed",
            _MSG_SKEWED,
            extra={
                "RequestTime": date_text,
                "ServerTime": _iso_ms(now),
                "MaxAllowedSkewMilliseconds": str(MAX_CLOCK_SKEW_S * 1000),
            },
        )


def _check_expiry(expires_at: int, now: float) -> None:
    if now > expires_at:
        raise AuthError(
            "AccessDenied",
            _MSG_EXPIRED,
            extra={"Expires": _iso_ms(expires_at), "ServerTime": _iso_ms(now)},
        )


def _compare(
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


def _split_fields(
    value: str, separator: str, authorization: str, allowed: frozenset[str] | set[str]
) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in value.split(","):
        name, sep, field = part.strip().partition(separator)
        if not sep or name not in allowed or name in fields:
            raise _invalid_argument(
                "Authorization", authorization, "Authorization header is invalid."
            )
        fields[name] = field.strip()
    return fields


def _header_list(text: str) -> list[str]:
    return sorted({h.strip().lower() for h in text.split(";") if h.strip()})


def _canonical_query(query: Iterable[tuple[str, str]], skip: str | None) -> str:
    encoded = sorted((_encode(k, ""), _encode(v, "")) for k, v in query if k != skip)
    return "&".join(f"{k}={v}" if v else k for k, v in encoded)


def _encode(text: str, safe: str) -> str:
    # quote() keeps exactly RFC 3986's unreserved set (A-Z a-z 0-9 - . _ ~) plus ``safe``.
    return quote(text, safe=safe)


@functools.lru_cache(maxsize=256)
def _sha1_base(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=hashlib.sha1)


@functools.lru_cache(maxsize=256)
def _sha256_base(secret: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def _hmac_b64(base: hmac.HMAC, text: str) -> str:
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


def _parse_iso_basic(text: str) -> int | None:
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


def _iso_ms(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def _invalid_argument(name: str, value: str, message: str) -> AuthError:
    return AuthError(
        "InvalidArgument",
        message,
        status=400,
        extra={"ArgumentName": name, "ArgumentValue": value},
    )
