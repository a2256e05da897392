"""`OssConfig`: how the store reaches one bucket, validated once.

It deliberately reads nothing (no environment, no files): the app layer fills it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ossfs.core.errors import UsageError
from ossfs.net.curl_setup import DEFAULT_LOW_SPEED_LIMIT, DEFAULT_LOW_SPEED_TIME_S
from ossfs.store.retry import DEFAULT_RETRY_POLICY, RetryPolicy

__all__ = ["OssConfig"]


@dataclass(frozen=True, slots=True)
class OssConfig:
    """How to reach one bucket. No access key and no secret means anonymous access.

    ``security_token`` selects STS credentials; ``region`` selects V4 signing (else V1).
    ``pool_size``: idle HTTP connections kept for the threads that call the store; it should
    be at least the number of threads that call the store at once. ``ca_bundle``: the PEM file
    TLS trusts (None: certifi's, as requests, and so oss2, would). The stall rule: a transfer
    averaging fewer than ``low_speed_limit_bytes`` per second over ``low_speed_time_s``
    seconds is abandoned (and retried on a fresh connection); the retry budget bounds each
    operation, retries included.
    """

    endpoint: str
    bucket: str
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    region: str | None = None
    connect_timeout_s: float = 10.0
    low_speed_limit_bytes: int = DEFAULT_LOW_SPEED_LIMIT
    low_speed_time_s: int = DEFAULT_LOW_SPEED_TIME_S
    pool_size: int = 32
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        if not self.endpoint.strip():
            raise UsageError("OSS endpoint is empty")
        if not self.bucket.strip():
            raise UsageError("OSS bucket name is empty")
        if (self.access_key_id is None) != (self.access_key_secret is None):
            raise UsageError("give both an access key id and its secret, or neither (anonymous)")
        if self.security_token is not None and self.access_key_id is None:
            raise UsageError("an STS security token needs an access key id and secret")
        if self.connect_timeout_s <= 0:
            raise UsageError("the connect timeout must be > 0 seconds")
        if self.low_speed_limit_bytes < 1:
            raise UsageError("the low speed limit must be at least 1 byte per second")
        if self.low_speed_time_s < 1:
            raise UsageError("the low speed time must be at least 1 second")
        if self.pool_size < 1:
            raise UsageError(f"pool_size must be >= 1, got {self.pool_size}")

    @property
    def anonymous(self) -> bool:
        return self.access_key_id is None

    @property
    def signature_version(self) -> str:
        return "v4" if self.region else "v1"
