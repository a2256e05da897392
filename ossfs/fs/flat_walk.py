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
  in the background, at most one page in flight per cursor;
- a directory listed by itself (with a delimiter) that has at least two subdirectories starts
  flat listings of its subtree in the background, one page each: up to `MAX_SHARDS` *shards*
  that begin (``start-after``) at evenly spaced subdirectories, so that they run side by side;
  a ``readdir`` of a subdirectory waits for the shard whose range holds it instead of sending
  its own LIST, and a shard continues past its first page only as a walk's read-ahead or a
  ``readdir`` of a directory it partly listed (as any cursor does), never past the next
  shard's start.

Bounds: partly listed directories hold at most `MAX_PARTIAL_NODES` nodes (one that outgrows
it is listed by itself); a ``readdir`` continues at most `MAX_FLAT_PAGES_PER_READDIR` pages;
cursors live for the metadata TTL and at most `MAX_CURSORS` are kept; listing one directory
starts at most `MAX_SHARDS` pages of shards.

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
from ossfs.fs.subtree import Partial, key_order, split_flat

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

MAX_SHARDS: Final = 3
"""Flat listings (one page each) a directory listed by itself starts in the background over its
subtree, each from one of its subdirectories on. Shards overlap when the subtree is small (a
page runs on into the next shard's range): 3 shards listed 2,680 keys of a 2,000-key tree where
4 listed 3,500, and on the emulator (which builds pages one at a time) the walk was faster."""

MIN_SHARD_SUBDIRS: Final = 2
"""Subdirectories a directory listed by itself must have for its subtree to be listed ahead."""

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
    `WALK_STEPS`), ``last`` is the latest of them. A shard (``ident`` other than ``path``)
    holds the keys after ``start`` up to and including ``end`` (None: to the subtree's end);
    past ``end`` the next shard has them."""

    path: str
    prefix: str
    token: str
    through: str
    steps: int
    last: str = ""
    ident: str = ""
    start: str = ""
    end: str | None = None

    def holds(self, key: str) -> bool:
        """Whether the directory key ``key`` (under ``prefix``) is in this listing's range."""
        return self.ident == self.path or _in_range(key, self.start, self.end)


@dataclass(frozen=True, slots=True)
class _Shard:
    """A shard's first page in flight: keys under ``prefix`` after ``start`` (up to ``end``)."""

    prefix: str
    start: str
    end: str | None
    done: concurrent.futures.Future[None]

    def holds(self, key: str) -> bool:
        return key.startswith(self.prefix) and _in_range(key, self.start, self.end)


def _in_range(key: str, start: str, end: str | None) -> bool:
    """Whether ``key`` lists after ``start`` and at or before ``end`` (None: no end): the range
    of a shard, whose listing begins with ``start-after=start``."""
    order = key_order(key)
    return order > key_order(start) and (end is None or order <= key_order(end))


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
        self._shards: list[_Shard] = []

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
        self,
        path: str,
        prefix: str,
        page: ListPage,
        *,
        before: str | None,
        steps: int = 0,
        shard: _Cursor | None = None,
    ) -> None:
        """Cache what one page of a flat listing of ``path``'s subtree (keys after ``before``,
        None from the start) says: complete listings, partly listed directories, and a cursor
        when more pages follow (``shard``: the shard's, its range and identity taken from it;
        none once the page went past the shard's end)."""
        if not self._caching:
            return
        # The last key of the subtree listed: a key outside ``prefix`` (a misbehaving server; it
        # is skipped) must not make the listing look further along than it is.
        inside = (o.key for o in reversed(page.objects) if o.key.startswith(prefix))
        through = next(inside, None) if page.next_token is not None else None
        ident = path if shard is None else shard.ident
        # Past its end the rest is the next shard's: this one needs no cursor.
        finished = through is None or (
            shard is not None
            and shard.end is not None
            and key_order(through) > key_order(shard.end)
        )

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
            if finished or through is None or page.next_token is None:
                self._cursors.pop(ident, None)
            else:
                cursor = _Cursor(path, prefix, page.next_token, through, steps, ident=ident)
                if shard is not None:
                    cursor = replace(cursor, start=shard.start, end=shard.end)
                self._cursors[ident] = cursor
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
        self._wait_for_shard(node)
        with self._lock:
            listing = self._listings.get(node.path)
        listing = listing or self._continue(node)
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
            cursor = self._cursor_over_locked(parent_path(node.path), node.key)
            # A directory the listing has not reached was not listed by it: no step of its walk.
            if (
                cursor is None
                or cursor.last == node.path
                or key_order(node.key) > key_order(cursor.through)
            ):
                return
            cursor = replace(cursor, steps=cursor.steps + 1, last=node.path)
            self._cursors[cursor.ident] = cursor
        if cursor.steps >= WALK_STEPS and not self._flights.busy("cursor", cursor.ident):
            self._executor.submit(self._advance_quietly, cursor)

    def start_shards(self, node: Node, listing: Listing) -> None:
        """``node`` was just listed by itself as ``listing``: with `MIN_SHARD_SUBDIRS` or more
        subdirectories not listed yet, start flat listings of its subtree in the background, one
        page each, from up to `MAX_SHARDS` of them spread evenly (the first one included); none
        while a flat listing of ``node``'s subtree has more pages."""
        if not self._caching:
            return
        with self._lock:
            if node.path in self._cursors:
                return  # a flat listing of this subtree is under way: walks continue it
            # Subdirectories already listed (by a flat listing) are not listed again.
            subdirs = sorted(
                (
                    child.key
                    for child in listing.children.values()
                    if child.kind is NodeKind.DIR and child.path not in self._listings
                ),
                key=key_order,
            )
        if len(subdirs) < MIN_SHARD_SUBDIRS:
            return
        count = min(MAX_SHARDS, len(subdirs))
        starts = [subdirs[i * len(subdirs) // count].removesuffix("/") for i in range(count)]
        ends: list[str | None] = [*starts[1:], None]
        shards = [
            _Shard(node.key, start, end, concurrent.futures.Future())
            for start, end in zip(starts, ends, strict=True)
        ]
        with self._lock:
            self._shards.extend(shards)
        for i, shard in enumerate(shards):
            ident = f"{node.path}\0{i}"
            try:
                self._executor.submit(self._first_shard_page, node.path, ident, shard)
            except RuntimeError:  # the executor is shut down: the mount is going away
                self._shard_done(shard)

    # -- internals ------------------------------------------------------------------------------
    def _first_shard_page(self, path: str, ident: str, shard: _Shard) -> None:
        """List and absorb one shard's first page; a failure is left to the readdirs that
        meet the directories it would have listed (they list them themselves)."""
        try:
            self._count_list()
            page = self._store.list_page(
                shard.prefix, delimiter="", start_after=shard.start, max_keys=SUBTREE_PAGE_KEYS
            )
            cursor = _Cursor(path, shard.prefix, "", "", 0, ident=ident, start=shard.start)
            self.absorb(
                path, shard.prefix, page, before=shard.start, shard=replace(cursor, end=shard.end)
            )
        except Exception as exc:
            log.debug("flat shard of %r after %r: %s", shard.prefix, shard.start, exc)
        finally:
            self._shard_done(shard)

    def _shard_done(self, shard: _Shard) -> None:
        with self._lock:
            self._shards.remove(shard)
        shard.done.set_result(None)

    def _wait_for_shard(self, node: Node) -> None:
        """Wait until no shard's first page that holds ``node`` is in flight."""
        with self._lock:
            pending = [shard for shard in self._shards if shard.holds(node.key)]
        for shard in pending:
            shard.done.result()

    def _cursor_over_locked(self, path: str, key: str) -> _Cursor | None:
        """The cursor of the nearest subtree containing ``path`` (itself included) whose range
        holds ``key``, the key of the directory asked about."""
        at = path
        while True:
            cursor = self._cursors.get(at)
            if cursor is not None:
                return cursor
            for i in range(MAX_SHARDS):
                cursor = self._cursors.get(f"{at}\0{i}")
                if cursor is not None and cursor.holds(key):
                    return cursor
            if at == "/":
                return None
            at = parent_path(at)

    def _continue(self, node: Node) -> Listing | None:
        """Continue the flat listing ``node`` is partly listed by, page by page, until ``node``
        is complete; None if it is not partly listed, or once it took too many pages: up to
        `MAX_FLAT_PAGES_PER_READDIR` during a walk or when the pages so far held mostly
        ``node``'s own children, else `FLAT_PAGES_TO_TRY` (none for a shard's listing)."""
        for pages in range(MAX_FLAT_PAGES_PER_READDIR):
            with self._lock:
                partial = self._partials.get(node.path) if self._caching else None
                cursor = self._cursor_over_locked(node.path, node.key)
            if partial is None or cursor is None or cursor.through != partial.through:
                return None
            walking = cursor.steps >= WALK_STEPS
            dense = len(partial.children) * 2 >= SUBTREE_PAGE_KEYS
            # A shard's pages are worth trying only for a walk: an `ls` of a directory it
            # partly listed costs one delimited listing, as it would without shards.
            to_try = FLAT_PAGES_TO_TRY if cursor.ident == cursor.path else 0
            if not (walking or dense) and pages >= to_try:
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
                current = self._cursors.get(cursor.ident)
            if current is None or current.through != cursor.through:
                return
            self._count_list()
            page = self._store.list_page(
                cursor.prefix, delimiter="", token=cursor.token, max_keys=SUBTREE_PAGE_KEYS
            )
            # A walk stays one: the next page is read ahead at its next step.
            self.absorb(
                cursor.path,
                cursor.prefix,
                page,
                before=cursor.through,
                steps=current.steps,
                shard=current if current.ident != current.path else None,
            )

        self._flights.run("cursor", cursor.ident, next_page)

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
