"""Directory listings assembled from ListObjectsV2 pages: names, nodes and clashes.

Responsibility: turn the pages of one delimited listing (objects and common prefixes under a
directory's prefix) into a complete `Listing` of that directory's children: each key's child
name (skipping keys that cannot be names, reported through a warning callback), files, symlinks
and directories as `Node` values, a directory winning over a file of the same name.

This module deliberately does not: send requests, cache anything, or log by itself (the caller's
``warn`` callback decides, once per key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ossfs.core.names import inode_for_key, join_path, name_problem
from ossfs.core.nodes import Node, NodeKind
from ossfs.core.object_store import ListPage, ObjectMeta

CLASH: Final = "%r is both an object and a directory: showing the directory"
"""The warning for a name that is both a file and a directory (``%r`` is the key)."""

Warn = Callable[[str, str, bool], None]
"""``warn(key, message, skipped)``: log ``message % (key,)`` once per ``(message, key)``;
``skipped`` when the key is not shown because it cannot be a name."""


@dataclass(frozen=True, slots=True)
class Listing:
    """A complete listing of one directory: its children by name, in name order."""

    children: dict[str, Node]


def make_node(path: str, name: str, kind: NodeKind, meta: ObjectMeta | None, key: str) -> Node:
    """The node of ``key`` at ``path`` (its inode derived from the key)."""
    return Node(path=path, name=name, kind=kind, inode=inode_for_key(key), meta=meta, key=key)


class ListingBuilder:
    """Collects the pages of one directory's delimited listing into a `Listing`.

    ``path`` is the directory's mount path, ``prefix`` its key prefix (``""`` or ending in
    ``/``). Not thread-safe: one builder per listing.
    """

    def __init__(self, path: str, prefix: str, warn: Warn) -> None:
        self._path = path
        self._prefix = prefix
        self._warn = warn
        self._files: dict[str, Node] = {}
        self._dirs: dict[str, Node] = {}

    def add_page(self, page: ListPage) -> None:
        """Add one page's objects and common prefixes (the directory's own marker is skipped)."""
        prefix = self._prefix
        for meta in page.objects:
            if meta.key == prefix:
                continue  # the directory's own marker object is not a child
            name = self._child_name(meta.key)
            if name is not None:
                kind = NodeKind.SYMLINK if meta.is_symlink else NodeKind.FILE
                self._files[name] = make_node(
                    join_path(self._path, name), name, kind, meta, meta.key
                )
        for common in page.prefixes:
            name = self._child_name(common[:-1] if common.endswith("/") else common)
            if name is not None:
                self._dirs[name] = make_node(
                    join_path(self._path, name), name, NodeKind.DIR, None, common
                )

    def finish(self) -> Listing:
        """The listing of every page added: directories win clashes (each warned once)."""
        for name in self._files.keys() & self._dirs.keys():
            self._warn(self._prefix + name, CLASH, False)
        merged = self._files | self._dirs
        return Listing({name: merged[name] for name in sorted(merged)})

    def _child_name(self, key: str) -> str | None:
        """The child name ``key`` gives under the prefix, or None (warned) if it has none."""
        if not key.startswith(self._prefix):
            message = "%r: the server listed it outside the directory asked for: skipped"
            self._warn(key, message, True)
            return None
        name = key[len(self._prefix) :]
        problem = name_problem(name)
        if problem is not None:
            self._warn(key, "%r cannot be shown: " + problem.replace("%", "%%"), True)
            return None
        return name
