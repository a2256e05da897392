"""Pure functions between mount paths, object keys and file names.

A *path* is a mount-relative absolute POSIX path (``"/"``, ``"/a"``, ``"/a/b.txt"``), as FUSE
passes it. A *key* is a full object key: the mount's root prefix (empty, or ending in ``/``)
followed by the path without its leading ``/``. A directory's *prefix* is its key plus ``/``
(the root prefix itself for the root).

This module does no I/O, keeps no state and knows nothing about caching, OSS or FUSE; the
`ossfs.fs.namespace` module builds on it.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ossfs.core.errors import NotFoundError

NAME_MAX_BYTES: Final = 255
"""The longest file name, in UTF-8 bytes, that Linux accepts (``NAME_MAX``)."""

ROOT_INODE: Final = 1
"""The root directory's inode number (FUSE's ``FUSE_ROOT_ID``)."""

_FIRST_FREE_INODE: Final = 2

LOG_KEY_CHARS: Final = 200
"""Keys longer than this are shortened in log lines (a key may be 10,000 characters)."""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a file name, or None when it can.

    Rejected: the empty name, ``.``, ``..``, names containing ``/`` or NUL, names that are not
    encodable as UTF-8 (lone surrogates, i.e. keys that were not valid text), and names over
    `NAME_MAX_BYTES` bytes in UTF-8. Never raises.
    """
    if not name:
        return "empty name"
    if name in (".", ".."):
        return f"reserved name {name!r}"
    if "/" in name:
        return "name contains '/'"
    if "\x00" in name:
        return "name contains NUL"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "name is not valid UTF-8 text"
    if size > NAME_MAX_BYTES:
        return f"name is {size} bytes long (more than {NAME_MAX_BYTES})"
    return None


def key_for_log(key: str, limit: int = LOG_KEY_CHARS) -> str:
    """``key`` shortened for a log line: unchanged up to ``limit`` characters, else its head
    and tail around a note of its full length. Log it with ``%r`` so that control characters,
    NUL and lone surrogates come out escaped (a key cannot forge log lines). Never raises.
    """
    limit = max(limit, 1)
    if len(key) <= limit:
        return key
    tail = limit // 5
    head = limit - tail
    return f"{key[:head]}...[{len(key)} characters]...{key[len(key) - tail :]}"


def validate_root_prefix(root_prefix: str) -> str:
    """Return ``root_prefix`` if it is empty or ends with ``/``; else raise `ValueError`."""
    if root_prefix and not root_prefix.endswith("/"):
        raise ValueError(f"root prefix {root_prefix!r} must be empty or end with '/'")
    return root_prefix


def split_path(path: str) -> tuple[str, ...]:
    """The components of ``path``: ``()`` for ``"/"``, ``("a", "b")`` for ``"/a/b"``.

    Raises `ValueError` if ``path`` is not absolute (a caller bug), and `NotFoundError` if a
    component cannot be a file name (no object can ever appear under such a path).
    """
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} is not absolute")
    if path == "/":
        return ()
    parts = tuple(path[1:].split("/"))
    for part in parts:
        problem = name_problem(part)
        if problem is not None:
            raise NotFoundError(f"{path!r}: {problem}")
    return parts


def join_path(parent: str, name: str) -> str:
    """The path of ``name`` inside the directory ``parent`` (both already valid)."""
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


def parent_path(path: str) -> str:
    """The directory containing ``path``; ``"/"`` for the root itself."""
    cut = path.rfind("/")
    return "/" if cut <= 0 else path[:cut]


def path_to_key(root_prefix: str, path: str) -> str:
    """The object key of ``path`` as a file: ``root_prefix + "a/b"`` for ``"/a/b"``.

    For ``"/"`` this is the root prefix itself. The path is not validated.
    """
    return root_prefix + path[1:]


def dir_prefix(root_prefix: str, path: str) -> str:
    """The listing prefix of ``path`` as a directory: ends in ``/`` unless it is an empty root."""
    return root_prefix if path == "/" else f"{root_prefix}{path[1:]}/"


def inode_for_key(key: str) -> int:
    """A stable inode number for a non-root node, derived from its key alone.

    The same key gives the same number in every process and on every mount: a 63-bit BLAKE2b
    of the key without any trailing ``/`` (so a name keeps its inode whether it is listed as a
    file or a directory), moved off 0 and `ROOT_INODE`. Distinct keys collide with negligible
    probability (about n**2 / 2**64).
    """
    data = key.rstrip("/").encode("utf-8", "surrogatepass")
    number = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> 1
    return number + _FIRST_FREE_INODE if number < _FIRST_FREE_INODE else number


def relative_link_target(link_key: str, target_key: str) -> str:
    """``target_key`` as a path relative to the directory holding ``link_key``.

    Both are full keys. Components are compared literally (no ``.``/``..`` folding), so the
    result resolves, from the link's directory, to exactly the target key:
    link ``d/l`` -> target ``d/sub/t`` gives ``sub/t``; link ``d/l`` -> ``x/t`` gives ``../x/t``.
    A trailing ``/`` on the target is kept; a target that is the link's own directory gives
    ``"."``. A target outside the mount's root prefix still gets its relative path (with enough
    ``..`` to leave the mount): the kernel resolves it outside ossfs, and ossfs never serves a
    key outside its root, so this cannot expose objects through the mount.
    """
    link_dir = link_key.split("/")[:-1]
    target = target_key.split("/")
    common = 0
    # Keep at least the last target component, so "d/" -> "d/x" does not consume "x".
    limit = min(len(link_dir), len(target) - 1)
    while common < limit and link_dir[common] == target[common]:
        common += 1
    parts = [".."] * (len(link_dir) - common) + target[common:]
    text = "/".join(parts)
    return text if text else "."
