"""Signature verification for the local OSS-compatible server: V1, V2 and V4, headers and URLs.

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

The values (`Credential`, `SignedRequest`, `AuthError`) and the checks every version shares
(key lookup, STS token, clock skew, expiry, comparison, canonical encoding) are in
`ossfs.emulator.auth`; V4 is in `ossfs.emulator.signatures_v4`. This module chooses the version
and builds V1's and V2's strings to sign.

Everything is a pure function of its arguments and safe to call from many threads; the per-secret
HMAC state and the V4 signing keys are memoised because this runs on every request.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Final

from ossfs.emulator.auth import (
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
    hmac_b64,
    invalid_argument,
    lookup,
    sha1_base,
    sha256_base,
    split_fields,
    url_token,
)
from ossfs.emulator.signatures_v4 import V4_ALGORITHM, verify_v4_header, verify_v4_url

__all__ = ["SUBRESOURCES", "authenticate"]

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
        if scheme == V4_ALGORITHM:
            return verify_v4_header(request, authorization, rest.strip(), credentials, now)
        if scheme == "OSS2":
            return _verify_v2_header(request, authorization, rest.strip(), credentials, now)
        raise invalid_argument("Authorization", authorization, "Authorization header is invalid.")
    if first(request.query, "OSSAccessKeyId") is not None:
        return _verify_v1_url(request, credentials, now)
    version = first(request.query, "x-oss-signature-version")
    if version is None:
        return None
    if version == V4_ALGORITHM:
        return verify_v4_url(request, credentials, now)
    if version == "OSS2":
        return _verify_v2_url(request, credentials, now)
    raise invalid_argument(
        "x-oss-signature-version", version, "Unsupported signature version in the URL."
    )


def _url_signature(
    request: SignedRequest, id_name: str, expires_name: str, signature_name: str
) -> tuple[str, str, str]:
    """The access key id, expiry (decimal epoch text) and signature of a presigned URL."""
    access_key_id = first(request.query, id_name) or ""
    expires = first(request.query, expires_name)
    signature = first(request.query, signature_name)
    if not access_key_id or expires is None or signature is None:
        raise AuthError(
            "AccessDenied",
            f"A signed URL needs the {id_name}, {expires_name} and {signature_name} parameters.",
        )
    if not expires.isdigit():
        raise invalid_argument(
            expires_name, expires, f"{expires_name} must be an integer epoch time."
        )
    return access_key_id, expires, signature


def _compare_hmac(
    base: Callable[[str], hmac.HMAC], credential: Credential, signature: str, string_to_sign: str
) -> None:
    """Raise SignatureDoesNotMatch unless ``signature`` is the base64 HMAC of the string."""
    compare(
        hmac_b64(base(credential.access_key_secret), string_to_sign),
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
        raise invalid_argument("Authorization", authorization, "Authorization header is invalid.")
    credential = lookup(credentials, access_key_id)
    check_token(credential, request.headers.get("x-oss-security-token"))
    date_line = request.headers.get("x-oss-date") or request.headers.get("date") or ""
    check_skew(date_line, now)
    string_to_sign = _v1_string_to_sign(request, date_line)
    _compare_hmac(sha1_base, credential, signature, string_to_sign)
    return access_key_id


def _verify_v1_url(
    request: SignedRequest, credentials: Mapping[str, Credential], now: float
) -> str:
    access_key_id, expires, signature = _url_signature(
        request, "OSSAccessKeyId", "Expires", "Signature"
    )
    credential = lookup(credentials, access_key_id)
    check_token(credential, url_token(request, "security-token"))
    check_expiry(int(expires), now)
    string_to_sign = _v1_string_to_sign(request, expires)
    _compare_hmac(sha1_base, credential, signature, string_to_sign)
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
    fields = split_fields(
        value, ":", authorization, {"AccessKeyId", "AdditionalHeaders", "Signature"}
    )
    access_key_id = fields.get("AccessKeyId", "")
    signature = fields.get("Signature", "")
    if not access_key_id or not signature:
        raise invalid_argument("Authorization", authorization, "Authorization header is invalid.")
    credential = lookup(credentials, access_key_id)
    check_token(credential, request.headers.get("x-oss-security-token"))
    date_line = request.headers.get("date", "")
    check_skew(date_line or request.headers.get("x-oss-date", ""), now)
    string_to_sign = _v2_string_to_sign(
        request, date_line, header_list(fields.get("AdditionalHeaders", "")), skip=None
    )
    _compare_hmac(sha256_base, credential, signature, string_to_sign)
    return access_key_id


def _verify_v2_url(
    request: SignedRequest, credentials: Mapping[str, Credential], now: float
) -> str:
    access_key_id, expires, signature = _url_signature(
        request, "x-oss-access-key-id", "x-oss-expires", "x-oss-signature"
    )
    credential = lookup(credentials, access_key_id)
    check_token(credential, url_token(request, "security-token"))
    check_expiry(int(expires), now)
    additional = header_list(first(request.query, "x-oss-additional-headers") or "")
    string_to_sign = _v2_string_to_sign(request, expires, additional, skip="x-oss-signature")
    _compare_hmac(sha256_base, credential, signature, string_to_sign)
    return access_key_id


def _v2_string_to_sign(
    request: SignedRequest, date_line: str, additional: list[str], *, skip: str | None
) -> str:
    headers = request.headers
    wanted = frozenset(additional)
    signed = sorted((k, v) for k, v in headers.items() if k.startswith("x-oss-") or k in wanted)
    path = "/" if request.bucket is None else f"/{request.bucket}/{request.key or ''}"
    # V2 encodes '/' in the resource as well, unlike V4.
    resource = encode(path, "")
    query = canonical_query(request.query, skip)
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
