"""Directory listings derived from a flat listing of a subtree.

Responsibility: a flat ListObjectsV2 (no delimiter) of a directory's prefix returns its keys in
key order, however deep. Up to the last key returned, every key under the prefix was listed,
so the delimited listing of every directory in that subtree can be computed without asking:
`split_flat` does that, directory by directory, with the same `ListingBuilder` a delimited
listing goes through (names, skipped keys, clashes and markers come out the same). A directory
whose keys all sort at or before the last key is complete; the one directory chain leading to
the last key, when the listing has more pages, is a `Partial`: its children so far, and which
names it already rules in or out.

This module deliberately does not: send requests, cache, or decide when a flat listing is worth
it (`ossfs.fs.namespace` does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ossfs.core.names import join_path, name_problem
from ossfs.core.nodes import Node, NodeKind
from ossfs.core.object_store import ListPage, ObjectMeta
from ossfs.fs.listing import CLASH, Listing, ListingBuilder, Warn


def key_order(key: str) -> bytes:
    """The order OSS lists keys in: their UTF-8 bytes (undecodable bytes kept as they were)."""
    return key.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Partial:
    """What a flat listing that stopped at key ``through`` says about the directory ``prefix``:
    ``children`` are its children listed so far (every key under ``prefix`` up to and including
    ``through`` was listed; none after it yet)."""

    prefix: str
    children: dict[str, Node]
    through: str

    def covers(self, name: str) -> bool:
        """True when every key of the child ``name`` (the object ``prefix+name`` and everything
        under ``prefix+name/``) sorts before ``through``, so its absence from ``children`` means
        that nothing by that name exists."""
        sub = key_order(self.prefix + name + "/")
        through = key_order(self.through)
        return through > sub and not through.startswith(sub)


@dataclass(frozen=True, slots=True)
class FlatSplit:
    """The directories of one subtree a flat listing describes: ``complete`` listings by mount
    path, and ``partial`` ones (the chain of directories leading to the last key listed, when
    the listing has more pages)."""

    complete: dict[str, Listing]
    partial: dict[str, Partial]


def split_flat(
    path: str,
    prefix: str,
    objects: Iterable[ObjectMeta],
    *,
    before: str | None,
    through: str | None,
    earlier: Callable[[str], Partial | None],
    warn: Warn,
) -> FlatSplit:
    """Split one page of a flat listing of the directory ``path`` (key prefix ``prefix``,
    ending in ``/``) into per-directory listings.

    ``objects`` are every key under ``prefix`` after ``before`` (None: from the start) up to
    and including ``through``, the page's last key, in key order; ``through`` is None when the
    listing is finished (no more pages). A directory whose keys began before this page (its
    prefix starts ``before``) is completed from ``earlier(its path)``, the `Partial` an earlier
    page left, which must have gone ``through`` exactly ``before``; without one it gets no
    listing. Keys outside ``prefix`` are skipped (warned). Directories under a component that
    cannot be a name get no listing (no path reaches them); the name itself is warned about
    where its parent's listing is built, as a delimited listing would.
    """
    # directory key -> (its mount path, "" when no path reaches it; its objects; its subdirectories)
    dirs: dict[str, tuple[str, list[ObjectMeta], dict[str, None]]] = {prefix: (path, [], {})}
    outside: list[ObjectMeta] = []
    if before is not None and before.startswith(prefix):
        # The directories ``before`` is in continue on this page, whether or not it has keys
        # of theirs: with none, they end where it starts.
        dir_key, dir_path = prefix, path
        for part in before[len(prefix) :].split("/")[:-1]:
            dir_path = join_path(dir_path, part) if dir_path and not name_problem(part) else ""
            dir_key = f"{dir_key}{part}/"
            dirs.setdefault(dir_key, (dir_path, [], {}))
    for meta in objects:
        if not meta.key.startswith(prefix):
            outside.append(meta)  # the top directory's builder warns about it
            continue
        dir_key, dir_path = prefix, path
        for part in meta.key[len(prefix) :].split("/")[:-1]:
            sub = f"{dir_key}{part}/"
            dirs[dir_key][2][sub] = None
            dir_path = join_path(dir_path, part) if dir_path and not name_problem(part) else ""
            dir_key = sub
            dirs.setdefault(sub, (dir_path, [], {}))
        dirs[dir_key][1].append(meta)
    complete: dict[str, Listing] = {}
    partial: dict[str, Partial] = {}
    for dir_key, (dir_path, objs, subs) in dirs.items():
        if not dir_path:
            continue
        builder = ListingBuilder(dir_path, dir_key, warn)
        page_objects = tuple(outside) if dir_key == prefix else ()
        builder.add_page(
            ListPage(objects=page_objects + tuple(objs), prefixes=tuple(subs), next_token=None)
        )
        children = builder.finish().children
        if before is not None and key_order(before).startswith(key_order(dir_key)):
            old = earlier(dir_path)
            if old is None or old.through != before or old.prefix != dir_key:
                continue
            children = _merged(dir_key, old.children, children, warn)
        if through is not None and key_order(through).startswith(key_order(dir_key)):
            partial[dir_path] = Partial(dir_key, children, through)
        else:
            complete[dir_path] = Listing(children)
    return FlatSplit(complete, partial)


def _merged(prefix: str, old: dict[str, Node], new: dict[str, Node], warn: Warn) -> dict[str, Node]:
    """One directory's children from two consecutive pages, in name order. A file listed on the
    earlier page and a directory of the same name on the later one: the directory wins."""
    merged = dict(old)
    for name, node in new.items():
        known = merged.get(name)
        if known is not None and known.kind is not NodeKind.DIR and node.kind is NodeKind.DIR:
            warn(prefix + name, CLASH, False)
        merged[name] = node
    return {name: merged[name] for name in sorted(merged)}
