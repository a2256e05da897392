"""Tests of `ossfs.store.failures`: which failures are transient, and what each becomes."""

from __future__ import annotations

import oss2.exceptions
import pytest

from ossfs.core.errors import (
    AccessDeniedError,
    ArchivedError,
    IntegrityError,
    NotFoundError,
    RemoteIOError,
    StaleError,
)
from ossfs.net.http_api import TransferError
from ossfs.store.failures import is_transient, translate_error
from ossfs.store.retry import RetriesExhaustedError
from tests.test_oss_store import BUCKET, ENDPOINT


def server_error(
    cls: type[oss2.exceptions.ServerError], status: int, code: str, message: str = "m"
) -> oss2.exceptions.ServerError:
    return cls(status, {"x-oss-request-id": "RID42"}, b"", {"Code": code, "Message": message})


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (server_error(oss2.exceptions.NoSuchKey, 404, "NoSuchKey"), NotFoundError),
        (server_error(oss2.exceptions.NotFound, 404, ""), NotFoundError),
        (server_error(oss2.exceptions.AccessDenied, 403, "AccessDenied"), AccessDeniedError),
        (
            server_error(oss2.exceptions.SignatureDoesNotMatch, 403, "SignatureDoesNotMatch"),
            AccessDeniedError,
        ),
        (server_error(oss2.exceptions.ServerError, 403, "InvalidAccessKeyId"), AccessDeniedError),
        (server_error(oss2.exceptions.ServerError, 403, ""), AccessDeniedError),
        (server_error(oss2.exceptions.ServerError, 403, "InvalidObjectState"), ArchivedError),
        (server_error(oss2.exceptions.PreconditionFailed, 412, "PreconditionFailed"), StaleError),
        (server_error(oss2.exceptions.ServerError, 416, "InvalidRange"), IntegrityError),
        (server_error(oss2.exceptions.ServerError, 500, "InternalError"), RemoteIOError),
        (server_error(oss2.exceptions.ServerError, 400, "InvalidArgument"), RemoteIOError),
    ],
)
def test_translate_error_maps_oss_codes(
    exc: oss2.exceptions.ServerError, expected: type[Exception]
) -> None:
    err = translate_error(exc, op="get", key="dir/k", bucket=BUCKET, endpoint=ENDPOINT)
    assert type(err) is expected
    assert "'dir/k'" in str(err)
    assert "RID42" in str(err)
    if exc.code:
        assert exc.code in str(err)


def test_translate_error_names_bucket_for_no_such_bucket() -> None:
    exc = server_error(oss2.exceptions.NoSuchBucket, 404, "NoSuchBucket")
    err = translate_error(exc, op="head", key="k", bucket="nope", endpoint=ENDPOINT)
    assert isinstance(err, NotFoundError)
    assert "bucket 'nope' does not exist" in str(err)


def test_translate_error_says_clock_is_off_for_skew() -> None:
    exc = server_error(oss2.exceptions.ServerError, 403, "RequestTimeTooSkewed")
    err = translate_error(exc, op="get", key="k", bucket=BUCKET, endpoint=ENDPOINT)
    assert isinstance(err, AccessDeniedError)
    assert "clock" in str(err)


def test_translate_error_unwraps_exhausted_retries() -> None:
    last = oss2.exceptions.RequestError(ConnectionRefusedError("refused"))
    wrapped = RetriesExhaustedError("get", last, attempts=4, elapsed_s=1.5)
    err = translate_error(wrapped, op="get", key="k", bucket=BUCKET, endpoint=ENDPOINT)
    assert type(err) is RemoteIOError
    assert ENDPOINT in str(err)
    assert "4 attempt" in str(err)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (server_error(oss2.exceptions.ServerError, 500, "InternalError"), True),
        (server_error(oss2.exceptions.ServerError, 503, "SlowDown"), True),
        (server_error(oss2.exceptions.ServerError, 429, "TooManyRequests"), True),
        (oss2.exceptions.RequestError(TransferError(7, "refused")), True),
        (oss2.exceptions.RequestError(TransferError(28, "too slow")), True),
        # Only the user can fix an untrusted certificate: no retries for it.
        (oss2.exceptions.RequestError(TransferError(60, "cert", transient=False)), False),
        (TransferError(18, "transfer closed with outstanding read data remaining"), True),
        (TransferError(56, "Recv failure: Connection reset by peer"), True),
        (ConnectionResetError("reset"), False),  # only the engine's failures are the link's
        (server_error(oss2.exceptions.NoSuchKey, 404, "NoSuchKey"), False),
        (server_error(oss2.exceptions.PreconditionFailed, 412, "PreconditionFailed"), False),
        (server_error(oss2.exceptions.AccessDenied, 403, "AccessDenied"), False),
        (IntegrityError("x"), False),
        (ValueError("x"), False),
    ],
)
def test_is_transient_classifies(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient
