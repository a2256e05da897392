"""Flat listings of subtrees under way: cold paths and tree walks at flat-listing cost.

Responsibility: what the namespace learns from flat (undelimited) ListObjectsV2 pages of a
directory's subtree, and when to ask for more. A page is split into the listings of the
directories it covers (`ossfs.fs.subtree.split_flat`): complete ones go into the namespace's
listing cache, partly listed ones (the chain of directories leading to the page's last key)
are kept here, with a *cursor* (the continuation token) when the listing has more pages. Then:

- ``readdir`` of a partly listed directory continues the cursor until it is complete, during a
  walk or when the pages so far held mostly its own children (a directory of many files), else
  for `FLAT_PAGES_TO_TRY` pages (a small subtree is then listed whole);
- the `WALK_STEPS`-th sibling in a row that had to be listed by itself starts a flat listing of
  the parent at that sibling (``start-after``), one page at a time;
- once a walk has read `WALK_STEPS` directories from a cursor's pages, its next page is fetched
  in the background, at most one page in flight per cursor.

Bounds: partly listed directories hold at most `MAX_PARTIAL_NODES` nodes (one that outgrows
it is listed by itself); a ``readdir`` continues at most `MAX_FLAT_PAGES_PER_READDIR` pages;
cursors live for the metadata TTL and at most `MAX_CURSORS` are kept.

This module deliberately does not: probe names, list directories with a delimiter, or own the
listing cache and its lock (`ossfs.fs.namespace` does, and hands them in).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, TypeVar, cast

from cachetools import TTLCache

from ossfs.core.names import dir_prefix, parent_path
from ossfs.core.nodes import Node, NodeKind
from ossfs.core.object_store import ListPage, ObjectStore
from ossfs.fs.listing import Listing, Warn
from ossfs.fs.subtree import Partial, split_flat

log = logging.getLogger(__name__)

SUBTREE_PAGE_KEYS: Final = 1000
"""Keys per page of a flat (undelimited) listing of a subtree: a lookup miss's, a walk's."""

MAX_PARTIAL_NODES: Final = 100_000
"""Nodes held in partly listed directories (the chain a flat listing with more pages is in)."""

MAX_CURSORS: Final = 1_000
"""Flat listings with more pages remembered, so that a walk can continue them."""

WALK_STEPS: Final = 2
"""Directories of one subtree read in a row that make a walk: the next flat page is fetched
ahead of it, or (siblings that each needed their own LIST) a flat listing of their parent
starts."""

MAX_FLAT_PAGES_PER_READDIR: Final = 100
"""Flat pages one ``readdir`` continues, during a walk or for a directory of mostly files,
before it lists its directory by itself."""

FLAT_PAGES_TO_TRY: Final = 2
"""Flat pages one ``readdir`` of another partly listed directory continues before it lists the
directory by itself: a small subtree is then listed whole in as many requests as a delimited
listing would take, and a huge one costs at most this many pages more."""

T = TypeVar("T")


class SingleFlight:
    """Concurrent callers of one ``(op, path)`` share one run of its work. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[tuple[str, str], concurrent.futures.Future[object]] = {}

    def run(self, op: str, path: str, work: Callable[[], T]) -> T:
        """Run ``work`` once for concurrent callers with the same ``(op, path)``: a caller
        that finds it running waits for its result (or its exception)."""
        flight = (op, path)
        with self._lock:
            pending = self._inflight.get(flight)
            if pending is None:
                mine: concurrent.futures.Future[object] = concurrent.futures.Future()
                self._inflight[flight] = mine
        if pending is not None:
            return cast(T, pending.result())
        try:
            result = work()
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        else:
            mine.set_result(result)
            return result
        finally:
            with self._lock:
                del self._inflight[flight]

    def busy(self, op: str, path: str) -> bool:
        """Whether ``(op, path)`` is running now."""
        with self._lock:
            return (op, path) in self._inflight


@dataclass(frozen=True, slots=True)
class _Cursor:
    """A flat listing of the subtree of ``path`` (key prefix ``prefix``) with more pages:
    ``token`` continues it after ``through``, the last key listed; ``steps`` counts distinct
    directories under ``path`` read from the cache in a row (a walk when it reaches
    `WALK_STEPS`), ``last`` is the latest of them."""

    path: str
    prefix: str
    token: str
    through: str
    steps: int
    last: str = ""


class FlatListings:
    """The flat listings of one namespace's subtrees: their partly listed directories and
    cursors, and the requests that continue or start them.

    ``lock`` and ``listings`` are the namespace's: its lock guards the listing cache and this
    object's state, and is never held during a request. Methods ending in ``_locked`` expect it
    held; the others take it. ``caching`` False (a TTL of 0) keeps nothing. ``count_list`` is
    called (without the lock) before each LIST sent. Store errors propagate unchanged.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        root_prefix: str,
        lock: threading.Lock,
        listings: TTLCache[str, Listing],
        caching: bool,
        ttl_s: float,
        clock: Callable[[], float],
        executor: concurrent.futures.Executor,
        flights: SingleFlight,
        count_list: Callable[[], None],
        warn: Warn,
    ) -> None:
        self._store = store
        self._root_prefix = root_prefix
        self._lock = lock
        self._listings = listings
        self._caching = caching
        self._executor = executor
        self._flights = flights
        self._count_list = count_list
        self._warn = warn
        self._partials: TTLCache[str, Partial] = TTLCache(
            maxsize=MAX_PARTIAL_NODES,
            ttl=ttl_s,
            timer=clock,
            getsizeof=lambda partial: len(partial.children) + 1,
        )
        self._cursors: TTLCache[str, _Cursor] = TTLCache(
            maxsize=MAX_CURSORS, ttl=ttl_s, timer=clock
        )
        self._sibling_run: tuple[str, int] = ("", 0)

    # -- answers from memory (the namespace's lock held) -----------------------------------------
    def child_locked(self, parent: str, name: str) -> tuple[Node | None, bool]:
        """What the partly listed directory ``parent`` says of its child ``name``: ``(node,
        True)`` it exists, ``(None, True)`` it does not, ``(None, False)`` unknown."""
        partial = self._partials.get(parent)
        if partial is None:
            return None, False
        node = partial.children.get(name)
        covered = partial.covers(name)
        # A directory is sure; a file is unless a directory of its name may follow.
        if node is not None and (covered or node.kind is NodeKind.DIR):
            return node, True
        return None, node is None and covered

    def forget_locked(self, path: str) -> None:
        """Drop what is partly known about the directory ``path``."""
        self._partials.pop(path, None)

    # -- pages ----------------------------------------------------------------------------------
    def absorb(
        self, path: str, prefix: str, page: ListPage, *, before: str | None, steps: int = 0
    ) -> None:
        """Cache what one page of a flat listing of ``path``'s subtree (keys after ``before``,
        None from the start) says: complete listings, partly listed directories, and a cursor
        when more pages follow."""
        if not self._caching:
            return
        # The last key of the subtree listed: a key outside ``prefix`` (a misbehaving server; it
        # is skipped) must not make the listing look further along than it is.
        inside = (o.key for o in reversed(page.objects) if o.key.startswith(prefix))
        through = next(inside, None) if page.next_token is not None else None

        def earlier(dir_path: str) -> Partial | None:
            with self._lock:
                return self._partials.get(dir_path)

        split = split_flat(
            path,
            prefix,
            page.objects,
            before=before,
            through=through,
            earlier=earlier,
            warn=self._warn,
        )
        with self._lock:
            for dir_path, listing in split.complete.items():
                self._partials.pop(dir_path, None)
                with contextlib.suppress(ValueError):  # too large to cache: listed again
                    self._listings[dir_path] = listing
            for dir_path, partial in split.partial.items():
                try:
                    self._partials[dir_path] = partial
                except ValueError:
                    self._partials.pop(dir_path, None)
            if through is None or page.next_token is None:
                self._cursors.pop(path, None)
            else:
                self._cursors[path] = _Cursor(path, prefix, page.next_token, through, steps)
        log.debug(
            "flat page of %r: %d keys, %d directories complete, %d partial",
            prefix,
            len(page.objects),
            len(split.complete),
            len(split.partial),
        )

    def list_dir(self, node: Node) -> Listing | None:
        """``node``'s complete listing from a flat listing: one in progress that has reached
        it, or one of its parent that a walk of siblings listed one by one starts; None when
        neither applies (the caller lists ``node`` by itself)."""
        listing = self._continue(node)
        if listing is None and self._start_walk(node):
            with self._lock:
                listing = self._listings.get(node.path)
            listing = listing or self._continue(node)
        return listing

    def walk_step(self, node: Node) -> None:
        """``node`` was listed from the cache: if a flat listing with more pages covers it (below
        its top), count a walk step, and once it is a walk fetch that listing's next page ahead
        of it. Listing one directory again and again is no walk."""
        if not self._caching or node.path == "/":
            return
        with self._lock:
            cursor = self._cursor_over_locked(parent_path(node.path))
            if cursor is None or cursor.last == node.path:
                return
            cursor = replace(cursor, steps=cursor.steps + 1, last=node.path)
            self._cursors[cursor.path] = cursor
        if cursor.steps >= WALK_STEPS and not self._flights.busy("cursor", cursor.path):
            self._executor.submit(self._advance_quietly, cursor)

    # -- internals ------------------------------------------------------------------------------
    def _cursor_over_locked(self, path: str) -> _Cursor | None:
        """The cursor of the nearest subtree containing ``path`` (itself included)."""
        at = path
        while True:
            cursor = self._cursors.get(at)
            if cursor is not None or at == "/":
                return cursor
            at = parent_path(at)

    def _continue(self, node: Node) -> Listing | None:
        """Continue the flat listing ``node`` is partly listed by, page by page, until ``node``
        is complete; None if it is not partly listed, or once it took too many pages: up to
        `MAX_FLAT_PAGES_PER_READDIR` during a walk or when the pages so far held mostly
        ``node``'s own children, else `FLAT_PAGES_TO_TRY`."""
        for pages in range(MAX_FLAT_PAGES_PER_READDIR):
            with self._lock:
                partial = self._partials.get(node.path) if self._caching else None
                cursor = self._cursor_over_locked(node.path)
            if partial is None or cursor is None or cursor.through != partial.through:
                return None
            walking = cursor.steps >= WALK_STEPS
            dense = len(partial.children) * 2 >= SUBTREE_PAGE_KEYS
            if not (walking or dense) and pages >= FLAT_PAGES_TO_TRY:
                return None  # a big subtree: a listing of its own costs fewer requests
            self._advance(cursor)
            with self._lock:
                listing = self._listings.get(node.path)
            if listing is not None:
                return listing
        return None

    def _advance(self, cursor: _Cursor) -> None:
        """Fetch and absorb ``cursor``'s next page, unless another caller already has."""

        def next_page() -> None:
            with self._lock:
                current = self._cursors.get(cursor.path)
            if current is None or current.through != cursor.through:
                return
            self._count_list()
            page = self._store.list_page(
                cursor.prefix, delimiter="", token=cursor.token, max_keys=SUBTREE_PAGE_KEYS
            )
            # A walk stays one: the next page is read ahead at its next step.
            self.absorb(
                cursor.path, cursor.prefix, page, before=cursor.through, steps=current.steps
            )

        self._flights.run("cursor", cursor.path, next_page)

    def _advance_quietly(self, cursor: _Cursor) -> None:
        """`_advance` ahead of a walk: a failure is left to the walk's own listing to meet."""
        try:
            self._advance(cursor)
        except Exception as exc:
            log.debug("flat page of %r ahead of a walk: %s", cursor.prefix, exc)

    def _start_walk(self, node: Node) -> bool:
        """Start a flat listing of ``node``'s parent from ``node`` on (one page) when ``node``
        is the `WALK_STEPS`-th sibling in a row listed by itself; True if it did."""
        if node.path == "/" or not self._caching:
            return False
        parent = parent_path(node.path)
        with self._lock:
            last, run = self._sibling_run
            run = run + 1 if last == parent else 1
            self._sibling_run = (parent, run)
            known = parent in self._listings
        if run < WALK_STEPS or not known:
            return False
        prefix = dir_prefix(self._root_prefix, parent)
        start_after = node.key.removesuffix("/")
        self._count_list()
        page = self._store.list_page(
            prefix, delimiter="", start_after=start_after, max_keys=SUBTREE_PAGE_KEYS
        )
        self.absorb(parent, prefix, page, before=start_after, steps=WALK_STEPS)
        return True
