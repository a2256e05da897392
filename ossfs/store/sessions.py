"""oss2 set up to build and sign requests that `ossfs.net` carries, through oss2's public API.

Responsibility: oss2's session interface over an `ossfs.net.http_api.Transport`
(`TransportSession`); a session that sends nothing and answers every request with an empty
success that carries the request as oss2 built and signed it (`SigningSession`), so that
oss2's public ``Bucket`` methods sign requests another sender carries (`signed_get`,
`signed_list`, `signed_request`, `bucket_url`); the oss2 ``Bucket`` of an `OssConfig` (its
auth: anonymous, V1, V4 with a region, STS; no CRC of bodies), and the `V1Signer` that signs
its GETs without oss2 where the auth allows (`v1_signer`). The bounds of each request (connect
timeout, stall rule, the retry budget's deadline) are the HTTP engine's (`engine_settings`,
`ossfs.core.deadline`), not oss2's timeout argument.

`curl_transport` builds the transport that carries them. It deliberately does not interpret
answers, retry or count (the store does).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from typing import Final

import oss2
import oss2.exceptions
import oss2.http

from ossfs.core.errors import UsageError
from ossfs.net.curl_setup import EngineSettings
from ossfs.net.curl_transport import CurlTransport
from ossfs.net.environ import default_ca_bundle
from ossfs.net.http_api import HttpRequest, HttpResponse, TransferError, Transport
from ossfs.store.config import OssConfig
from ossfs.store.credentials import Credentials
from ossfs.store.v1_signature import V1Signer

__all__ = [
    "SigningSession",
    "TransportSession",
    "bucket_url",
    "curl_transport",
    "engine_settings",
    "make_auth",
    "make_bucket",
    "signed_get",
    "signed_list",
    "signed_request",
    "v1_signer",
]


class TransportSession(oss2.Session):  # type: ignore[misc]
    """oss2's session interface over an `ossfs.net.http_api.Transport`.

    oss2 builds and signs the request (`_http_request`); a request that got no answer raises
    oss2's RequestError (carrying the engine's `TransferError`), as oss2's own session does.
    oss2's ``timeout`` argument is not used: the engine bounds every request.
    """

    transport: Transport  # set by the store once it is built (it needs the bucket's URL)

    def __init__(self) -> None:
        # oss2's Session builds a requests.Session (no connection) that this one never uses.
        super().__init__()

    def do_request(self, req: oss2.http.Request, timeout: object) -> HttpResponse:
        request = _http_request(req)
        try:
            return self.transport.send(request)
        except TransferError as exc:
            raise oss2.exceptions.RequestError(exc) from exc


# A body every oss2 result class built for the requests signed here accepts: a listing's
# parser needs IsTruncated; GetObject's result reads no body.
_EMPTY_LISTING: Final = b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"


class _Signed:
    """`SigningSession`'s answer to oss2: an empty success carrying the request it was sent."""

    status: Final = 200
    request_id: Final = ""

    def __init__(self, request: oss2.http.Request) -> None:
        self.request = request
        self.headers: dict[str, str] = {}

    def read(self, amt: int | None = None) -> bytes:
        return _EMPTY_LISTING


class SigningSession(oss2.Session):  # type: ignore[misc]
    """oss2's session interface that sends nothing: every request is answered with an empty
    success whose result object (``.resp``, public in oss2's result classes) carries the
    request as oss2 built and signed it, for requests another sender carries. Thread-safe: it
    keeps no state."""

    def __init__(self) -> None:
        # oss2's Session builds a requests.Session (no connection) that this one never uses.
        super().__init__()

    def do_request(self, req: oss2.http.Request, timeout: object) -> _Signed:
        return _Signed(req)


def _signed(result: object) -> oss2.http.Request:
    """The request behind an oss2 result of a bucket over a `SigningSession`."""
    answer = getattr(result, "resp", None)
    if not isinstance(answer, _Signed):
        raise TypeError("the bucket is not over a SigningSession")
    return answer.request


def signed_get(bucket: oss2.Bucket, key: str, headers: dict[str, str]) -> oss2.http.Request:
    """GetObject of ``key`` with ``headers`` as oss2 builds and signs it (``bucket`` over a
    `SigningSession`). Raises oss2's ClientError for an empty key."""
    return _signed(bucket.get_object(key, headers=headers))


def signed_list(
    bucket: oss2.Bucket,
    *,
    prefix: str,
    delimiter: str,
    token: str,
    max_keys: int,
    start_after: str = "",
) -> oss2.http.Request:
    """ListObjectsV2 (names URL-encoded) as oss2 builds and signs it (``bucket`` over a
    `SigningSession`)."""
    return _signed(
        bucket.list_objects_v2(
            prefix=prefix,
            delimiter=delimiter,
            continuation_token=token,
            start_after=start_after,
            max_keys=max_keys,
            encoding_type="url",
        )
    )


def bucket_url(bucket: oss2.Bucket) -> str:
    """The URL of the bucket's root as oss2 builds it (where a listing goes; ``bucket`` over a
    `SigningSession`): what the endpoint, proxy included, is decided from."""
    return str(signed_list(bucket, prefix="", delimiter="", token="", max_keys=1).url)


def _http_request(req: oss2.http.Request) -> HttpRequest:
    """oss2's request as it goes on the wire: its ``None`` header values mean "do not send
    this default", and the query is encoded from its params as requests would (an empty value
    as ``name=``, None dropped), so what is signed is what is sent."""
    headers = {name: value for name, value in req.headers.items() if value is not None}
    url = str(req.url)
    if req.params:
        pairs = [(k, v) for k, v in req.params.items() if v is not None]
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(pairs)
    body = req.data or b""
    if not isinstance(body, bytes):
        raise TypeError("only in-memory request bodies are sent")
    return HttpRequest(req.method, url, headers, body)


def signed_request(bucket: oss2.Bucket, key: str, headers: dict[str, str]) -> HttpRequest:
    """A GET of ``key`` with ``headers`` as oss2 builds and signs it, as it goes on the wire;
    ``bucket`` must be one made over a `SigningSession`."""
    return _http_request(signed_get(bucket, key, headers))


def make_bucket(config: OssConfig, auth: object, session: oss2.Session | None) -> oss2.Bucket:
    """oss2's bucket of ``config`` over ``session``, no CRC of bodies. Raises oss2's
    ClientError for an endpoint or bucket name it refuses."""
    return oss2.Bucket(
        auth,
        config.endpoint,
        config.bucket,
        session=session,
        connect_timeout=config.connect_timeout_s,  # unused: the engine bounds each request
        # oss2 would CRC every ranged body for nothing; the layers above check CRCs.
        enable_crc=False,
        region=config.region,
    )


def make_auth(config: OssConfig) -> object:
    """oss2's auth of ``config``: anonymous without keys, STS with a token (V4 with a region,
    else V1), else V4 with a region, else V1."""
    if config.access_key_id is None or config.access_key_secret is None:
        return oss2.AnonymousAuth()
    if config.security_token is not None:
        version = oss2.AUTH_VERSION_4 if config.region else oss2.AUTH_VERSION_1
        return oss2.StsAuth(
            config.access_key_id,
            config.access_key_secret,
            config.security_token,
            auth_version=version,
        )
    if config.region:
        return oss2.AuthV4(config.access_key_id, config.access_key_secret)
    return oss2.Auth(config.access_key_id, config.access_key_secret)


def v1_signer(config: OssConfig, bucket_url: str) -> V1Signer | None:
    """`V1Signer` of ``config``'s GETs (V1, STS with V1, anonymous: the same bytes as oss2's,
    a fraction of the CPU), or None for V4, which oss2 signs. ``bucket_url``: `bucket_url`'s."""
    if config.region:
        return None
    credentials = None
    if config.access_key_id is not None and config.access_key_secret is not None:
        credentials = Credentials(
            config.access_key_id, config.access_key_secret, config.security_token
        )
    return V1Signer(
        bucket=config.bucket,
        root_target=urllib.parse.urlsplit(bucket_url).path or "/",
        credentials=credentials,
    )


def engine_settings(
    config: OssConfig, bucket_url: str, proxies: Callable[[str], Mapping[str, str]] | None
) -> EngineSettings:
    """The HTTP engine's settings of ``config`` (its connect timeout, stall rule and CA bundle,
    certifi's if None), with the proxy ``proxies(bucket_url)`` names for the bucket's URL
    scheme (none if None). Raises `UsageError` for a proxy that cannot be used."""
    proxy = ""
    if proxies is not None:
        named = proxies(bucket_url)
        scheme = urllib.parse.urlsplit(bucket_url).scheme
        proxy = named.get(scheme) or named.get("all") or ""
    try:
        return EngineSettings(
            connect_timeout_s=config.connect_timeout_s,
            low_speed_limit_bytes=config.low_speed_limit_bytes,
            low_speed_time_s=config.low_speed_time_s,
            ca_bundle=config.ca_bundle or default_ca_bundle(),
            proxy=proxy,
        )
    except ValueError as exc:
        raise UsageError(f"{exc} (from HTTP_PROXY/HTTPS_PROXY/ALL_PROXY, or unset them)") from exc


def curl_transport(config: OssConfig, settings: EngineSettings) -> CurlTransport:
    """The transport of ``config`` (its pool size) with ``settings``."""
    return CurlTransport(settings, max_idle=config.pool_size)
