"""Parsing of ``oss://BUCKET[/PREFIX]`` locations."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ossfs.core.errors import UsageError

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class OssLocation:
    """A bucket and a key prefix that is empty or ends with ``/``."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"oss://{self.bucket}/{self.prefix}"


def is_valid_bucket_name(name: str) -> bool:
    """OSS rules: 3-63 characters of ``[a-z0-9-]``, not starting or ending with ``-``."""
    return _BUCKET_RE.fullmatch(name) is not None


def validate_bucket_name(name: str) -> str:
    """Return ``name`` if it is a valid OSS bucket name, else raise `UsageError`."""
    if not is_valid_bucket_name(name):
        raise UsageError(
            f"invalid bucket name {name!r}: use 3-63 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def parse_oss_url(text: str) -> OssLocation:
    """Parse ``oss://BUCKET[/PREFIX]``; the prefix gets a trailing ``/``; raise `UsageError`."""
    if not text.startswith("oss://"):
        raise UsageError(f"invalid location {text!r}: expected oss://BUCKET[/PREFIX]")
    rest = text[len("oss://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UsageError(f"invalid location {text!r}: the bucket name is missing (oss://BUCKET)")
    validate_bucket_name(bucket)
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise UsageError(f"invalid location {text!r}: the prefix may not contain '.' or '..'")
    clean = "/".join(parts)
    return OssLocation(bucket=bucket, prefix=clean + "/" if clean else "")
