"""Which endpoint URL to talk to and which region to sign for, like ossutil decides it.

Responsibility: validate region IDs and endpoint URLs, derive the public or internal endpoint of
a region (``https://oss-REGION.aliyuncs.com``, ``https://oss-REGION-internal.aliyuncs.com``), and
pick the endpoint in this order: ``--endpoint``, ``$OSS_ENDPOINT``, ``--region``, then what a
credentials file says (its ``endpoint``, else its ``region``). A region, from ``--region`` or
else from the credentials file, selects V4 signing.

It deliberately does no I/O: the CLI passes in the arguments, the environment mapping and what it
read from a credentials file. Errors a user can cause are one-line `UsageError`s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ossfs.core.errors import UsageError

__all__ = [
    "ENDPOINT_ENV",
    "Endpoint",
    "check_region",
    "normalize_endpoint",
    "region_endpoint",
    "resolve_endpoint",
]

ENDPOINT_ENV: Final = "OSS_ENDPOINT"
_REGION_RE: Final = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_MAX_REGION_CHARS: Final = 64


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The endpoint URL (scheme, host, optional port; no trailing ``/``), the region to sign
    for (None: V1 signing) and where the URL came from, for messages."""

    url: str
    region: str | None
    source: str


def check_region(region: str, *, what: str) -> str:
    """Return ``region`` if it is a region ID such as ``cn-hangzhou``; else raise `UsageError`.

    ``what`` names where the value came from (``--region``) in the message.
    """
    if region.startswith("oss-"):
        raise UsageError(
            f"invalid {what} {region!r}: that is an endpoint host name; "
            f"use the region ID, e.g. {region.removeprefix('oss-').removesuffix('-internal')!r}"
        )
    if len(region) > _MAX_REGION_CHARS or not _REGION_RE.fullmatch(region):
        raise UsageError(
            f"invalid {what} {region!r}: use a region ID such as cn-hangzhou "
            "(lowercase letters, digits and single '-')"
        )
    return region


def region_endpoint(region: str, *, internal: bool = False) -> str:
    """The HTTPS endpoint of ``region``: public, or the VPC-internal one for ``internal``."""
    return f"https://oss-{region}{'-internal' if internal else ''}.aliyuncs.com"


def normalize_endpoint(text: str, *, what: str) -> str:
    """``text`` as a URL: ``https://`` added when no scheme is given, no trailing ``/``.

    Raises `UsageError` for an empty value or a scheme other than http/https.
    """
    endpoint = text.strip()
    if not endpoint:
        raise UsageError(
            f"{what} is empty: give an endpoint URL such as https://oss-cn-hangzhou.aliyuncs.com"
        )
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    scheme, _, rest = endpoint.partition("://")
    if scheme not in ("http", "https"):
        raise UsageError(f"invalid {what} {endpoint!r}: use http:// or https://")
    if not rest.strip("/"):
        raise UsageError(f"invalid {what} {endpoint!r}: it has no host name")
    return endpoint.rstrip("/")


def resolve_endpoint(
    env: Mapping[str, str],
    *,
    endpoint: str | None = None,
    region: str | None = None,
    internal: bool = False,
    file_endpoint: str | None = None,
    file_region: str | None = None,
    file_name: str = "the credentials file",
) -> Endpoint:
    """Pick the endpoint and signing region (see the module docstring for the order).

    ``endpoint``, ``region`` and ``internal`` are the command-line values; ``file_endpoint``
    and ``file_region`` what the credentials file named ``file_name`` says. ``internal`` applies
    only to an endpoint derived from a region. Raises `UsageError` for an invalid region or
    endpoint, ``internal`` with an endpoint given as such, or when no endpoint can be determined.
    """
    if region is not None:
        check_region(region, what="--region")
    if file_region is not None:
        check_region(file_region, what=f"region in {file_name}")
    sign_region = region if region is not None else file_region
    env_endpoint = env.get(ENDPOINT_ENV, "").strip()
    derived = False
    if endpoint is not None:
        url, source = normalize_endpoint(endpoint, what="--endpoint"), "--endpoint"
    elif env_endpoint:
        url, source = normalize_endpoint(env_endpoint, what=f"${ENDPOINT_ENV}"), f"${ENDPOINT_ENV}"
    elif region is not None:
        url, source, derived = region_endpoint(region, internal=internal), "--region", True
    elif file_endpoint is not None:
        source = f"the endpoint in {file_name}"
        url = normalize_endpoint(file_endpoint, what=source)
    elif file_region is not None:
        source, derived = f"the region in {file_name}", True
        url = region_endpoint(file_region, internal=internal)
    else:
        raise UsageError(
            "no endpoint: pass --endpoint URL or --region REGION (e.g. cn-hangzhou), "
            f"or set ${ENDPOINT_ENV}"
        )
    if internal and not derived:
        raise UsageError(
            f"--internal only applies to an endpoint derived from a region, but the endpoint "
            f"{url} comes from {source}; drop --internal or give the -internal endpoint there"
        )
    return Endpoint(url, sign_region, source)
