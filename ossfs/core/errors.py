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


class NotDirectoryError(OssfsError):
    """A path component that must be a directory is a file or a symlink (``ENOTDIR``)."""

    errno = errno.ENOTDIR


class NotSymlinkError(OssfsError):
    """``readlink`` of something that is not a symlink (``EINVAL``, as readlink(2) answers)."""

    errno = errno.EINVAL


class IsADirectoryError_(OssfsError):
    """open() of a directory for reading as a file."""

    errno = errno.EISDIR


class NoAttributeError(OssfsError):
    """getxattr of a name the object does not have."""

    errno = errno.ENODATA


class UnsupportedAttributeError(OssfsError):
    """getxattr of a name outside the ``user.`` namespace (``security.*``, ``system.*`` such as
    POSIX ACLs, ``trusted.*``): the filesystem has no such attributes at all.

    ``ENOTSUP`` (the kernel's EOPNOTSUPP), what the kernel answers for a namespace a filesystem
    has no handler for: tools take it as "not supported on this filesystem" and stop asking
    (``ls -l`` asks for ``security.selinux`` and ``system.posix_acl_access`` on every file until
    one answer says so, each a round trip through FUSE), where ``ENODATA`` would mean "not on
    this file".
    """

    errno = errno.ENOTSUP
