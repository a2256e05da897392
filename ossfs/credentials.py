"""Where credentials come from: the environment (never argv), or anonymous access."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ossfs.errors import UsageError


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __repr__(self) -> str:  # never show secrets, even in a debugger or a log line
        return f"Credentials(access_key_id={self.access_key_id!r}, access_key_secret=***)"


def credentials_from_env(env: Mapping[str, str], *, anonymous: bool) -> Credentials | None:
    """Credentials from ``OSS_ACCESS_KEY_ID``/``OSS_ACCESS_KEY_SECRET``/``OSS_SESSION_TOKEN``.

    Returns None for ``anonymous``; raises `UsageError` naming what is missing otherwise.
    """
    if anonymous:
        return None
    key_id = env.get("OSS_ACCESS_KEY_ID", "").strip()
    secret = env.get("OSS_ACCESS_KEY_SECRET", "").strip()
    token = env.get("OSS_SESSION_TOKEN", "").strip() or None
    if not key_id or not secret:
        missing = [
            n
            for n, v in (("OSS_ACCESS_KEY_ID", key_id), ("OSS_ACCESS_KEY_SECRET", secret))
            if not v
        ]
        raise UsageError(
            f"no credentials: {' and '.join(missing)} not set in the environment; "
            "export them, or pass --anonymous for a public bucket"
        )
    return Credentials(key_id, secret, token)


def endpoint_from(arg: str | None, env: Mapping[str, str]) -> str:
    """The endpoint from ``--endpoint`` or ``OSS_ENDPOINT``; `UsageError` if neither is set."""
    endpoint = (arg or env.get("OSS_ENDPOINT", "")).strip()
    if not endpoint:
        raise UsageError("no endpoint: pass --endpoint URL or set OSS_ENDPOINT")
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    scheme = endpoint.split("://", 1)[0]
    if scheme not in ("http", "https"):
        raise UsageError(f"invalid endpoint {endpoint!r}: use http:// or https://")
    return endpoint.rstrip("/")
