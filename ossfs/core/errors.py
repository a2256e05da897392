"""Domain errors. Each class carries the errno the FUSE adapter answers with.

Layers below the CLI raise these (translating library errors with ``raise ... from exc``);
`fuse_ops` maps them to errno in one place, and the CLI maps `UsageError` to exit code 2.
"""

from __future__ import annotations

import errno


class OssfsError(Exception):
    """Base of every ossfs error; ``errno`` is what a FUSE callback answers."""

    errno: int = errno.EIO


class NotFoundError(OssfsError):
    """The key, prefix or bucket does not exist."""

    errno = errno.ENOENT


class AccessDeniedError(OssfsError):
    """Credentials refused, signature mismatch, or access denied by policy."""

    errno = errno.EACCES


class ArchivedError(AccessDeniedError):
    """An Archive/ColdArchive object that has not been restored cannot be read."""


class StaleError(OssfsError):
    """The object changed (new ETag) under an open handle: its bytes must not be mixed."""

    errno = errno.ESTALE


class RemoteIOError(OssfsError):
    """A request failed after its retries, or the server answered something unusable."""

    errno = errno.EIO


class IntegrityError(RemoteIOError):
    """Bytes received do not match what the server promised (length, range or CRC-64)."""


class ReadOnlyError(OssfsError):
    """Every modifying operation on the mount."""

    errno = errno.EROFS


class UsageError(Exception):
    """Bad command line, configuration or environment: the CLI prints it and exits 2."""
