"""The namespace's vocabulary: what a path is (`NodeKind`) and one entry (`Node`).

Shared by the filesystem core, the namespace that builds nodes and the directory read-ahead
that reads a listing's files; it holds values only, no lookups.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ossfs.core.object_store import ObjectMeta


class NodeKind(enum.Enum):
    """What a path is."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


@dataclass(frozen=True, slots=True)
class Node:
    """One entry of the namespace.

    ``meta`` is the object for FILE and SYMLINK; for a DIR it is the ``dir/`` marker object
    when a probe found one, else None (implicit directories, directories known only from
    their parent's listing, and the root). ``key`` is the object key for files and symlinks,
    the prefix ending in ``/`` for directories (the root prefix for the root). ``inode`` is
    stable across mounts (see `ossfs.core.names.inode_for_key`); the root's is 1.
    """

    path: str
    name: str
    kind: NodeKind
    inode: int
    meta: ObjectMeta | None
    key: str
