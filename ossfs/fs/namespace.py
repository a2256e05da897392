"""The namespace: mount paths to nodes, with the listing, stat and negative caches.

Responsibility: turn a mount path into a `Node` (file, directory or symlink, with its
`ObjectMeta`), list directories, read symlink targets, and remember all of it for
``metadata_ttl_s`` seconds so that ``ls -l``, ``find`` and ``du`` cost one LIST per 1000
entries and no HEAD at all.

- A directory is an implicit prefix (``a/`` because ``a/x`` exists) or a ``a/`` marker object;
  a file and a directory with the same name: the directory wins (the clash is logged once).
- Keys that cannot be file names (empty components, ``.``, ``..``, over 255 bytes, NUL, not
  valid text) are skipped with one WARNING per key.
- A name not covered by a fresh listing of its parent is probed with a HEAD of the key and a
  flat (undelimited) LIST page of ``key/``, sent concurrently; misses go to a bounded LRU
  negative cache. The page's keys become the listings of the directories it covers
  (`ossfs.fs.flat_walk`), so a deep path costs one probe, and walks continue such listings.
- A directory listed by itself (delimited) with subdirectories starts flat listings of its
  subtree in the background (`FlatListings.start_shards`), which its subdirectories' listings
  wait for instead of sending their own.

This module deliberately does not: import oss2 or fusepy, build stat dicts or map errors to
errno (`ossfs.fs.filesystem` and `ossfs.fuse.fuse_ops` do), read object bytes, or notice remote
changes before the TTL runs out (callers use `Namespace.invalidate` when they learn that an
object changed).
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from cachetools import LRUCache, TTLCache

from ossfs.core.errors import NotDirectoryError, NotFoundError, NotSymlinkError
from ossfs.core.names import (
    ROOT_INODE,
    dir_prefix,
    join_path,
    key_for_log,
    name_problem,
    parent_path,
    path_to_key,
    relative_link_target,
    split_path,
    validate_root_prefix,
)
from ossfs.core.nodes import Node, NodeKind
from ossfs.core.object_store import ObjectMeta, ObjectStore
from ossfs.fs.flat_walk import SUBTREE_PAGE_KEYS, FlatListings, SingleFlight
from ossfs.fs.listing import CLASH, Listing, ListingBuilder, make_node

log = logging.getLogger(__name__)

LIST_PAGE_KEYS: Final = 1000
"""Keys per ListObjectsV2 page for ``readdir`` (the OSS maximum)."""

MAX_LISTED_NODES: Final = 1_000_000
"""The listing cache holds at most this many nodes over all cached directories."""

MAX_STAT_ENTRIES: Final = 100_000
"""Nodes learned by probing (not by listing) kept in the stat cache."""

MAX_SYMLINK_TARGETS: Final = 100_000
"""Symlink targets kept in the symlink cache."""

MAX_WARNED_KEYS: Final = 100_000
"""Keys remembered as already warned about, so each skipped key is logged once."""

DEFAULT_LOOKUP_WORKERS: Final = 8
"""Threads of the executor created when none is given (one HEAD per concurrent lookup)."""


@dataclass(frozen=True, slots=True)
class NamespaceStats:
    """Counters since the namespace was created.

    ``list_pages`` and ``heads`` count requests sent (probe LISTs included); ``probes`` counts
    HEAD+LIST lookups; ``hits`` lookups answered from a cached node; ``negative_hits`` lookups
    answered "not found" from the negative cache or a fresh complete listing, with no request;
    ``skipped_names`` distinct keys skipped because they cannot be file names;
    ``symlink_reads`` symlink-target requests.
    """

    list_pages: int
    heads: int
    probes: int
    hits: int
    negative_hits: int
    skipped_names: int
    symlink_reads: int


@dataclass(frozen=True, slots=True)
class _SymlinkTarget:
    etag: str
    target_key: str


class _Absent:
    """Marker: the path is known not to exist."""


_ABSENT: Final = _Absent()


class Namespace:
    """Paths to nodes over an `ObjectStore`, with TTL-bounded caches.

    Thread-safe: every public method may be called from many threads at once. One lock guards
    the caches and counters and is never held during a request; concurrent misses for the
    same listing or the same probe join one in-flight request.

    ``metadata_ttl_s`` bounds how long any cached answer (listings, probed nodes, negative
    answers, symlink targets) is used: ``0`` caches nothing, ``math.inf`` forever (until
    `invalidate` or eviction). Memory is bounded: the listing cache holds at most
    `MAX_LISTED_NODES` nodes (a larger directory is listed but not cached), the negative cache
    ``negative_cache_entries`` paths (least recently used evicted first; 0 disables it).

    Store errors other than "not found" (AccessDeniedError, RemoteIOError, ...) propagate
    unchanged and are not cached.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        root_prefix: str = "",
        metadata_ttl_s: float = 60.0,
        negative_cache_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        lookup_executor: concurrent.futures.Executor | None = None,
    ) -> None:
        """Raise `ValueError` for a root prefix that is not empty or ``/``-terminated, a
        negative or NaN TTL, or a negative ``negative_cache_entries``."""
        if math.isnan(metadata_ttl_s) or metadata_ttl_s < 0:
            raise ValueError(f"metadata_ttl_s must be >= 0, got {metadata_ttl_s!r}")
        if negative_cache_entries < 0:
            raise ValueError(f"negative_cache_entries must be >= 0, got {negative_cache_entries}")
        self._store = store
        self._root_prefix = validate_root_prefix(root_prefix)
        self._caching = metadata_ttl_s > 0
        ttl = metadata_ttl_s if self._caching else 1.0
        self._root = Node(
            path="/", name="", kind=NodeKind.DIR, inode=ROOT_INODE, meta=None, key=root_prefix
        )
        self._lock = threading.Lock()
        self._listings: TTLCache[str, Listing] = TTLCache(
            maxsize=MAX_LISTED_NODES,
            ttl=ttl,
            timer=clock,
            getsizeof=lambda listing: len(listing.children) + 1,
        )
        self._nodes: TTLCache[str, Node] = TTLCache(maxsize=MAX_STAT_ENTRIES, ttl=ttl, timer=clock)
        self._negative: TTLCache[str, bool] | None = (
            TTLCache(maxsize=negative_cache_entries, ttl=ttl, timer=clock)
            if self._caching and negative_cache_entries > 0
            else None
        )
        self._symlinks: TTLCache[str, _SymlinkTarget] = TTLCache(
            maxsize=MAX_SYMLINK_TARGETS, ttl=ttl, timer=clock
        )
        self._warned: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=MAX_WARNED_KEYS)
        self._flights = SingleFlight()
        self._own_executor: concurrent.futures.ThreadPoolExecutor | None = None
        if lookup_executor is None:
            self._own_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=DEFAULT_LOOKUP_WORKERS, thread_name_prefix="ossfs-lookup"
            )
            lookup_executor = self._own_executor
        self._executor = lookup_executor
        self._flat = FlatListings(
            store,
            root_prefix=self._root_prefix,
            lock=self._lock,
            listings=self._listings,
            caching=self._caching,
            ttl_s=ttl,
            clock=clock,
            executor=lookup_executor,
            flights=self._flights,
            count_list=self._count_list,
            warn=self._warn,
        )
        self._list_pages = 0
        self._heads = 0
        self._probes = 0
        self._hits = 0
        self._negative_hits = 0
        self._skipped = 0
        self._symlink_reads = 0

    @property
    def root_prefix(self) -> str:
        """The key prefix the mount shows as ``/`` (empty or ending in ``/``)."""
        return self._root_prefix

    def close(self) -> None:
        """Shut down the lookup executor if this namespace created it. Idempotent."""
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=True)

    # -- public API -----------------------------------------------------------------------------
    def lookup(self, path: str) -> Node:
        """The node at ``path``.

        Raises `NotFoundError` if nothing is there (or a component cannot be a name),
        `NotDirectoryError` if a cached ancestor is known to be a file or symlink, `ValueError`
        for a relative path, and store errors other than "not found" as they are.
        """
        parts = split_path(path)
        if not parts:
            return self._root
        node = self._lookup_cached(path, parts)
        if node is not None:
            return node

        def probe_unless_cached() -> Node:
            # A concurrent probe or listing may have finished since the check above.
            return self._lookup_cached(path, parts) or self._probe(path, parts[-1])

        return self._flights.run("probe", path, probe_unless_cached)

    def readdir(self, path: str) -> list[Node]:
        """The children of the directory ``path`` in name order (no ``.`` or ``..``).

        Raises what `lookup` raises, and `NotDirectoryError` if ``path`` is not a directory.
        """
        node = self.lookup(path)
        if node.kind is not NodeKind.DIR:
            raise NotDirectoryError(path)
        listing = self._cached_listing(path)
        if listing is None:

            def list_unless_cached() -> Listing:
                # A concurrent listing may have finished since the check above.
                return (
                    self._cached_listing(path) or self._flat.list_dir(node) or self._list_dir(node)
                )

            listing = self._flights.run("list", path, list_unless_cached)
        else:
            self._flat.walk_step(node)
        return list(listing.children.values())

    def listed_children(self, path: str) -> Mapping[str, Node] | None:
        """The fresh cached listing of the directory ``path``: its children by name, in name
        order (do not modify it), or None if none is cached. Never sends a request; the same
        mapping object is returned until the listing is replaced."""
        listing = self._cached_listing(path)
        return listing.children if listing is not None else None

    def readlink(self, path: str) -> str:
        """The target of the symlink at ``path``, relative to the link's directory.

        See `ossfs.core.names.relative_link_target` (targets outside the root prefix get a relative
        path too). Raises what `lookup` raises, and `NotSymlinkError` for a non-symlink.
        """
        node = self.lookup(path)
        if node.kind is not NodeKind.SYMLINK or node.meta is None:
            raise NotSymlinkError(path)
        etag = node.meta.etag
        with self._lock:
            cached = self._symlinks.get(node.key) if self._caching else None
        if cached is not None and cached.etag == etag:
            return self._link_text(node, cached.target_key)
        target_key = self._store.symlink_target(node.key)
        with self._lock:
            self._symlink_reads += 1
            if self._caching:
                self._symlinks[node.key] = _SymlinkTarget(etag, target_key)
        return self._link_text(node, target_key)

    def _link_text(self, node: Node, target_key: str) -> str:
        """The link's relative target; a link to itself (ELOOP) if the target is no path.

        A target key with a component that cannot be a name (``..``, ``.``, empty, NUL, too
        long) names no object any mount shows, and its literal ``..`` components would lead
        the kernel out of the mount to any local file (``../../etc/passwd``). Such a link is
        shown pointing at itself, so it resolves nowhere, and is warned about once.
        """
        parts = target_key.removesuffix("/").split("/")
        problem = next((p for p in map(name_problem, parts) if p is not None), None)
        if problem is None:
            return relative_link_target(node.key, target_key)
        self._warn_once(
            node.key,
            "symlink %r: its target "
            + repr(key_for_log(target_key)).replace("%", "%%")
            + " cannot be a path ("
            + problem.replace("%", "%%")
            + "): shown as a link to itself",
            skipped=False,
        )
        return node.name

    def invalidate(self, path: str) -> None:
        """Forget what is cached about ``path``: its node, negative entry, symlink target, its
        own listing and its parent's listing (which describes it). Other entries stay."""
        key = path_to_key(self._root_prefix, path)
        with self._lock:
            self._nodes.pop(path, None)
            if self._negative is not None:
                self._negative.pop(path, None)
            self._symlinks.pop(key, None)
            self._listings.pop(path, None)
            self._flat.forget_locked(path)
            if path != "/":
                self._listings.pop(parent_path(path), None)
                self._flat.forget_locked(parent_path(path))

    def stats(self) -> NamespaceStats:
        """A snapshot of the counters."""
        with self._lock:
            return NamespaceStats(
                list_pages=self._list_pages,
                heads=self._heads,
                probes=self._probes,
                hits=self._hits,
                negative_hits=self._negative_hits,
                skipped_names=self._skipped,
                symlink_reads=self._symlink_reads,
            )

    # -- caches ---------------------------------------------------------------------------------
    def _lookup_cached(self, path: str, parts: tuple[str, ...]) -> Node | None:
        """The cached node at ``path``, None if unknown; raise if the caches rule it out."""
        cached = self._cached(path)
        if isinstance(cached, Node):
            return cached
        if cached is _ABSENT:
            raise NotFoundError(path)
        self._check_cached_ancestors(path, parts)
        return None

    def _cached_listing(self, path: str) -> Listing | None:
        if not self._caching:
            return None
        with self._lock:
            return self._listings.get(path)

    def _cached(self, path: str, *, count: bool = True) -> Node | _Absent | None:
        """What the caches know about ``path`` (never the root): a node, absent, or None.

        A fresh listing of the parent is complete, so it answers both ways; it is consulted
        first because it is never older than a probe of a name it covers.
        """
        if not self._caching:
            return None
        parent = parent_path(path)
        name = path[len(parent) :].lstrip("/")
        with self._lock:
            listing = self._listings.get(parent)
            if listing is not None:
                node = listing.children.get(name)
                if node is None:
                    self._negative_hits += count
                    return _ABSENT
                self._hits += count
                return node
            node, known = self._flat.child_locked(parent, name)
            if node is not None:
                self._hits += count
                return node
            if known:
                self._negative_hits += count
                return _ABSENT
            node = self._nodes.get(path)
            if node is not None:
                self._hits += count
                return node
            if self._negative is not None and self._negative.get(path):
                self._negative_hits += count
                return _ABSENT
        return None

    def _check_cached_ancestors(self, path: str, parts: tuple[str, ...]) -> None:
        """Raise if a cached ancestor of ``path`` is absent or not a directory. No requests.

        Only a miss needs this: if ``path`` exists, every ancestor is a non-empty prefix and
        therefore a directory (directories win clashes), so no ancestor lookup is sent.
        """
        ancestor = "/"
        for part in parts[:-1]:
            ancestor = join_path(ancestor, part)
            state = self._cached(ancestor, count=False)
            if state is _ABSENT:
                raise NotFoundError(path)
            if isinstance(state, Node) and state.kind is not NodeKind.DIR:
                raise NotDirectoryError(path)

    # -- requests -------------------------------------------------------------------------------
    def _probe(self, path: str, name: str) -> Node:
        """HEAD ``key`` and list ``key/`` flat (one page) concurrently; cache and return the
        node or raise. The page's keys describe the directories under ``path`` too: they are
        cached as their listings (`FlatListings.absorb`), so deeper lookups need no request."""
        key = path_to_key(self._root_prefix, path)
        prefix = dir_prefix(self._root_prefix, path)
        with self._lock:
            self._probes += 1
            self._list_pages += 1
            self._heads += 1
        head = self._executor.submit(self._head_or_none, key)
        try:
            page = self._store.list_page(prefix, delimiter="", max_keys=SUBTREE_PAGE_KEYS)
        finally:
            # The HEAD's outcome is needed below, and waiting keeps it from outliving the call.
            meta_or_error = _outcome(head)
        node: Node | None = None
        if page.objects or page.prefixes:
            marker = next((o for o in page.objects if o.key == prefix), None)
            node = make_node(path, name, NodeKind.DIR, marker, prefix)
            if isinstance(meta_or_error, ObjectMeta):
                self._warn_once(key, CLASH, skipped=False)
            self._flat.absorb(path, prefix, page, before=None)
        elif isinstance(meta_or_error, BaseException):
            raise meta_or_error
        elif meta_or_error is not None:
            kind = NodeKind.SYMLINK if meta_or_error.is_symlink else NodeKind.FILE
            node = make_node(path, name, kind, meta_or_error, key)
        with self._lock:
            if self._caching:
                if node is not None:
                    self._nodes[path] = node
                elif self._negative is not None:
                    self._negative[path] = True
        log.debug("probe %r: %s", key, "missing" if node is None else node.kind.value)
        if node is None:
            raise NotFoundError(path)
        return node

    def _head_or_none(self, key: str) -> ObjectMeta | None:
        try:
            return self._store.head(key)
        except NotFoundError:
            return None

    def _list_dir(self, node: Node) -> Listing:
        """List ``node`` page by page into a complete `Listing`; cache it if it fits."""
        prefix = node.key
        builder = ListingBuilder(node.path, prefix, self._warn)
        token: str | None = None
        while True:
            with self._lock:
                self._list_pages += 1
            page = self._store.list_page(
                prefix, delimiter="/", token=token, max_keys=LIST_PAGE_KEYS
            )
            builder.add_page(page)
            token = page.next_token
            if token is None:
                break
        listing = builder.finish()
        log.debug("listed %r: %d entries", prefix, len(listing.children))
        with self._lock:
            if self._caching:
                try:
                    self._listings[node.path] = listing
                except ValueError:
                    log.debug("%r: %d entries, too many to cache", prefix, len(listing.children))
        self._flat.start_shards(node, listing)
        return listing

    def _count_list(self) -> None:
        with self._lock:
            self._list_pages += 1

    def _warn(self, key: str, message: str, skipped: bool) -> None:
        self._warn_once(key, message, skipped=skipped)

    def _warn_once(self, key: str, message: str, *, skipped: bool) -> None:
        """Log ``message % (key,)`` at WARNING the first time it is called for ``(message,
        key)``; ``skipped`` counts the key in `NamespaceStats.skipped_names`."""
        with self._lock:
            if (message, key) in self._warned:
                return
            self._warned[(message, key)] = True
            if skipped:
                self._skipped += 1
        log.warning(message, key_for_log(key))


def _outcome(future: concurrent.futures.Future[ObjectMeta | None]) -> ObjectMeta | Exception | None:
    """The future's result, or the exception it raised (returned, not raised)."""
    try:
        return future.result()
    except Exception as exc:
        return exc
