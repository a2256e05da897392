"""Failures of OSS requests: which are worth another request, and what each becomes for ossfs.

Responsibility: classify a failure as transient (`is_transient`: 5xx, 429, SlowDown, connection
and body errors, a short body), describe it for a log line (`describe`: OSS error code, HTTP
status, request id), and translate it into an `ossfs.core.errors` class (`translate_error`)
whose message names the operation, the key or bucket and what to do; plus the store's own
failures that oss2 has no class for (`ShortBodyError`, `UnsendableKeyError`,
`MalformedResponseError`).

It deliberately does not retry (`ossfs.store.retry` does), count or log (the store does).
"""

from __future__ import annotations

from typing import Final

import oss2.exceptions

from ossfs.core.errors import (
    AccessDeniedError,
    ArchivedError,
    IntegrityError,
    NotFoundError,
    OssfsError,
    RemoteIOError,
    StaleError,
)
from ossfs.net.http_api import TransferError
from ossfs.store.retry import RetriesExhaustedError

__all__ = [
    "MalformedResponseError",
    "ShortBodyError",
    "UnsendableKeyError",
    "check_sendable",
    "describe",
    "is_transient",
    "translate_error",
]

_AUTH_CODES: Final = frozenset(
    {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidSecurityToken"}
)
_TRANSIENT_CODES: Final = frozenset({"SlowDown", "RequestTimeout", "ServiceUnavailable"})


class ShortBodyError(Exception):
    """The body ended cleanly before Content-Length; a resumed request may get the rest."""


class UnsendableKeyError(Exception):
    """The key cannot be put in a request (not UTF-8); nothing was sent."""


class MalformedResponseError(Exception):
    """oss2 could not parse what the server sent (XML, dates, headers)."""


def _status_and_code(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, oss2.exceptions.OssError):
        return int(exc.status), str(exc.code or "")
    return 0, ""


def is_transient(exc: BaseException) -> bool:
    """True for failures worth another request: 5xx, 429, SlowDown, connection and body errors."""
    if isinstance(exc, ShortBodyError):
        return True
    if isinstance(exc, oss2.exceptions.RequestError):
        # No answer: worth another try unless the engine says only the user can fix it (an
        # untrusted certificate, an unreadable CA bundle).
        cause = exc.exception
        return not isinstance(cause, TransferError) or cause.transient
    if isinstance(exc, oss2.exceptions.ServerError):
        status, code = _status_and_code(exc)
        return status >= 500 or status == 429 or code in _TRANSIENT_CODES
    # Raised while a body is read (before a response arrives, the session wraps them in
    # oss2's RequestError).
    return isinstance(exc, TransferError) and exc.transient


def describe(exc: BaseException) -> str:
    """``exc`` in one line: OSS's error code, HTTP status, request id and message, else the
    exception's class and text."""
    if isinstance(exc, oss2.exceptions.RequestError):
        return f"RequestError: {exc.exception}"
    if isinstance(exc, oss2.exceptions.ServerError):
        status, code = _status_and_code(exc)
        code = code or {404: "NotFound", 403: "Forbidden"}.get(status, "UnknownError")
        message = str(exc.message or "").strip()
        text = f"{code} (HTTP {status}, request id {exc.request_id or '-'})"
        return f"{text}: {message}" if message else text
    if isinstance(exc, oss2.exceptions.OssError):
        return f"{type(exc).__name__}: {exc.body}"
    return f"{type(exc).__name__}: {exc}"


def translate_error(
    exc: BaseException, *, op: str, key: str | None, bucket: str, endpoint: str
) -> OssfsError:
    """Map an oss2/requests failure (possibly wrapped in `RetriesExhaustedError`) to ossfs.

    The message names the operation, the key (or bucket), the OSS error code and request id.
    `OssfsError` instances pass through unchanged.
    """
    suffix = ""
    if isinstance(exc, RetriesExhaustedError):
        suffix = f" (gave up after {exc.attempts} attempt(s) in {exc.elapsed_s:.1f}s)"
        exc = exc.last
    if isinstance(exc, OssfsError):
        return exc
    what = f"{op} {key!r} in bucket {bucket!r}" if key is not None else f"{op} bucket {bucket!r}"
    detail = describe(exc) + suffix
    status, code = _status_and_code(exc)
    if isinstance(exc, oss2.exceptions.NoSuchBucket) or code == "NoSuchBucket":
        return NotFoundError(f"bucket {bucket!r} does not exist at {endpoint}: {detail}")
    if isinstance(exc, oss2.exceptions.NotFound) or status == 404:
        return NotFoundError(f"{what}: not found: {detail}")
    if code == "InvalidObjectState":
        return ArchivedError(
            f"{what}: the object is archived and not restored (restore it first): {detail}"
        )
    if code == "RequestTimeTooSkewed":
        return AccessDeniedError(
            f"{what}: this machine's clock is off by more than 15 minutes from OSS's; "
            f"fix the clock (NTP): {detail}"
        )
    if code in _AUTH_CODES or status in (401, 403):
        return AccessDeniedError(f"{what}: access denied: {detail}")
    if isinstance(exc, oss2.exceptions.PreconditionFailed) or status == 412:
        return StaleError(f"{what}: the object changed (ETag no longer matches): {detail}")
    if status == 416:
        return IntegrityError(f"{what}: range not satisfiable: {detail}")
    if isinstance(exc, oss2.exceptions.RequestError):
        return RemoteIOError(f"{what}: cannot reach OSS endpoint {endpoint}: {detail}")
    if isinstance(exc, ShortBodyError):
        return IntegrityError(f"{what}: {exc}{suffix}")
    if isinstance(exc, MalformedResponseError):
        return RemoteIOError(f"{what}: unusable response from {endpoint}: {exc}{suffix}")
    if isinstance(exc, UnsendableKeyError):
        return NotFoundError(f"{what}: {exc}")
    return RemoteIOError(f"{what}: {detail}")


def check_sendable(key: str) -> None:
    """Raises `UnsendableKeyError` for a key (or prefix) oss2 cannot send: one that is not
    valid UTF-8 text (lone surrogates, from a listing of keys that are not UTF-8)."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsendableKeyError(
            "the key is not valid UTF-8 text, and oss2 can only request UTF-8 keys"
        ) from None
