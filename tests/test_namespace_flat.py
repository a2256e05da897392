"""Flat listings of subtrees in the namespace: cold deep paths, partly listed directories,
walks, and the bounds on what a flat listing costs (request counts from the recording fake)."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator

import pytest

from ossfs.core.errors import NotDirectoryError, NotFoundError
from ossfs.core.nodes import Node, NodeKind
from ossfs.core.object_store import ListPage
from ossfs.fs.flat_walk import FLAT_PAGES_TO_TRY, MAX_SHARDS, SUBTREE_PAGE_KEYS
from ossfs.fs.namespace import Namespace
from tests.support.executors import InlineExecutor
from tests.support.fakes import FakeStore, LeakyStore
from tests.support.waiting import wait_until
from tests.test_namespace import FakeClock, make_ns, walk


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def lookup_as_the_kernel_does(ns: Namespace, path: str) -> Node:
    """Look up every component of ``path`` in turn, as the kernel's LOOKUPs do."""
    at = ""
    for part in path.strip("/").split("/"):
        at += "/" + part
        node = ns.lookup(at)
    return node


def flat(store: FakeStore) -> list[str]:
    """The prefixes listed without a delimiter, in order."""
    return [prefix for prefix, delimiter, _, _ in store.lists if delimiter == ""]


def test_flat_cold_deep_path_costs_one_head_and_one_list(
    executor: concurrent.futures.Executor,
) -> None:
    store, clock = FakeStore(), FakeClock()
    store.put("cold/deep/one.bin", b"12345")
    store.put("cold/deep/two.bin")
    store.put("cold/side/f.txt")
    ns = make_ns(store, clock, executor)

    node = lookup_as_the_kernel_does(ns, "/cold/deep/one.bin")

    assert node.kind is NodeKind.FILE
    assert node.meta is not None and node.meta.size == 5
    assert sorted(store.calls) == [("head", "cold"), ("list_page", "cold/", None)]
    assert flat(store) == ["cold/"]
    store.reset_calls()
    assert [n.name for n in ns.readdir("/cold/deep")] == ["one.bin", "two.bin"]
    assert [n.name for n in ns.readdir("/cold")] == ["deep", "side"]
    for missing in ("/cold/deep/three.bin", "/cold/nope", "/cold/nope/x", "/cold/deep/one.bin/x"):
        with pytest.raises((NotFoundError, NotDirectoryError)):
            ns.lookup(missing)
    assert store.calls == []


def test_flat_partial_page_answers_only_the_names_it_covers(
    executor: concurrent.futures.Executor,
) -> None:
    store, clock = FakeStore(), FakeClock()
    for i in range(SUBTREE_PAGE_KEYS):
        store.put(f"cold/a/f{i:04d}")
    store.put("cold/b/x")
    ns = make_ns(store, clock, executor)
    ns.lookup("/cold")
    store.reset_calls()

    assert ns.lookup("/cold/a/f0005").kind is NodeKind.FILE
    with pytest.raises(NotFoundError):
        ns.lookup("/cold/a/f0005x")  # sorts before the page's last key: ruled out
    assert store.calls == []
    assert ns.lookup("/cold/b/x").kind is NodeKind.FILE  # after the page: probed
    assert store.count("head") == 1


def test_flat_file_and_directory_of_one_name_across_pages_shows_the_directory(
    executor: concurrent.futures.Executor,
) -> None:
    store, clock = FakeStore(), FakeClock()
    store.put("d/x", b"a file")
    for i in range(SUBTREE_PAGE_KEYS - 1):
        store.put(f"d/x-{i:04d}")  # "d/x-..." sorts between "d/x" and "d/x/"
    store.put("d/x/inner")
    ns = make_ns(store, clock, executor)
    ns.lookup("/d")

    assert ns.lookup("/d/x").kind is NodeKind.DIR
    listing = {n.name: n.kind for n in ns.readdir("/d")}
    assert listing["x"] is NodeKind.DIR
    assert len(listing) == SUBTREE_PAGE_KEYS
    assert [n.name for n in ns.readdir("/d/x")] == ["inner"]


def test_flat_listing_is_trusted_for_the_ttl_only(executor: concurrent.futures.Executor) -> None:
    store, clock = FakeStore(), FakeClock()
    store.put("cold/deep/one.bin")
    ns = make_ns(store, clock, executor, metadata_ttl_s=10)
    lookup_as_the_kernel_does(ns, "/cold/deep/one.bin")
    store.put("cold/deep/new.bin")  # out of band
    store.delete("cold/deep/one.bin")

    with pytest.raises(NotFoundError):
        ns.lookup("/cold/deep/new.bin")
    assert ns.lookup("/cold/deep/one.bin").kind is NodeKind.FILE
    clock.now += 11
    assert ns.lookup("/cold/deep/new.bin").kind is NodeKind.FILE
    with pytest.raises(NotFoundError):
        ns.lookup("/cold/deep/one.bin")


def test_flat_listing_with_ttl_0_caches_nothing(executor: concurrent.futures.Executor) -> None:
    store, clock = FakeStore(), FakeClock()
    store.put("cold/deep/one.bin")
    ns = make_ns(store, clock, executor, metadata_ttl_s=0)
    lookup_as_the_kernel_does(ns, "/cold/deep/one.bin")
    store.delete("cold/deep/one.bin")
    with pytest.raises(NotFoundError):
        ns.lookup("/cold/deep/one.bin")


def test_flat_marker_and_implied_directories_list_as_a_delimited_listing_would(
    executor: concurrent.futures.Executor,
) -> None:
    store, clock = FakeStore(), FakeClock()
    keys = ["t/marked/", "t/marked/a", "t/empty/", "t/implied/b", "t/a//b", "t/same", "t/same/c"]
    for key in keys:
        store.put(key)
    flat_ns = make_ns(store, clock, executor)
    flat_ns.lookup("/t")
    store.reset_calls()
    from_flat = {p: [(n.name, n.kind, n.key) for n in flat_ns.readdir(p)] for p in DIRS}
    assert store.calls == []  # every directory came from the probe's flat page

    delimited_ns = make_ns(store, clock, executor)
    delimited_ns.readdir("/")  # /t known from its parent: each directory listed by itself
    from_delimited = {p: [(n.name, n.kind, n.key) for n in delimited_ns.readdir(p)] for p in DIRS}
    assert from_flat == from_delimited
    assert len(store.calls) > 1


DIRS = ("/t", "/t/marked", "/t/empty", "/t/implied", "/t/a", "/t/same")


def test_flat_walk_lists_a_tree_in_a_few_pages(executor: concurrent.futures.Executor) -> None:
    store, clock = FakeStore(), FakeClock()
    put_walk_tree(store)
    ns = make_ns(store, clock, executor)
    ns.readdir("/")  # /walk known from the root's listing
    store.reset_calls()

    pending, files = ["/walk"], 0
    while pending:
        for node in ns.readdir(pending.pop(0)):
            if node.kind is NodeKind.DIR:
                pending.append(node.path)
            else:
                files += 1

    assert files == 2000
    # /walk by itself, then its subtree flat in MAX_SHARDS pages side by side, one from each
    # of MAX_SHARDS evenly spaced subdirectories on: every directory under /walk is listed by
    # one of them
    assert store.lists[0] == ("walk/", "/", None, "")
    assert store.count("list_page") == 1 + MAX_SHARDS
    starts = sorted(a for _, d, _, a in store.lists if d == "")
    assert starts == [f"walk/d{i * 100 // MAX_SHARDS:03d}" for i in range(MAX_SHARDS)]


def test_flat_walk_of_a_probed_tree_continues_its_flat_listing(
    executor: concurrent.futures.Executor,
) -> None:
    store, clock = FakeStore(), FakeClock()
    put_walk_tree(store)
    ns = make_ns(store, clock, executor)

    found = walk_from(ns, "/walk")

    assert len(found) == 2100
    # the probe's flat page (d000..d049), then the next flat page: as many as a flat listing
    assert store.count("list_page") == 2
    assert flat(store) == ["walk/", "walk/"]
    assert store.count("head") == 1


def put_walk_tree(store: FakeStore, top: str = "walk", dirs: int = 100) -> None:
    """``dirs`` directories of 20 files under ``top``."""
    for d in range(dirs):
        for f in range(20):
            store.put(f"{top}/d{d:03d}/f{f:02d}")


def walk_from(ns: Namespace, top: str) -> dict[str, NodeKind]:
    found: dict[str, NodeKind] = {}
    pending = [top]
    while pending:
        for node in ns.readdir(pending.pop(0)):
            found[node.path] = node.kind
            if node.kind is NodeKind.DIR:
                pending.append(node.path)
    return found


def test_flat_listing_of_one_directory_in_a_huge_tree_does_not_list_the_tree(
    executor: concurrent.futures.Executor,
) -> None:
    store, clock = FakeStore(), FakeClock()
    for s in range(10):
        for i in range(3000):
            store.put(f"huge/s{s}/f{i:04d}")
    ns = make_ns(store, clock, executor)

    assert len(ns.readdir("/huge")) == 10

    # the probe's flat page, FLAT_PAGES_TO_TRY more, then /huge by itself
    assert store.count("list_page") == 2 + FLAT_PAGES_TO_TRY
    assert [d for _, d, _, _ in store.lists] == ["", *[""] * FLAT_PAGES_TO_TRY, "/"]
    store.reset_calls()
    assert len(ns.readdir("/huge/s5")) == 3000
    assert store.count("list_page") == 3  # s5 by itself


def test_flat_walk_property_still_finds_every_key(executor: concurrent.futures.Executor) -> None:
    store, clock = FakeStore(), FakeClock()
    for key in ("a/b/c", "a/b/d/", "a/e", "f", "a//x", "a/../y"):
        store.put(key)
    ns = make_ns(store, clock, executor)
    assert walk(ns) == {
        "/a": NodeKind.DIR,
        "/a/b": NodeKind.DIR,
        "/a/b/c": NodeKind.FILE,
        "/a/b/d": NodeKind.DIR,
        "/a/e": NodeKind.FILE,
        "/f": NodeKind.FILE,
    }


def test_flat_walk_reads_the_next_page_ahead(executor: concurrent.futures.Executor) -> None:
    store, clock = FakeStore(), FakeClock()
    put_walk_tree(store, "wide", 200)
    ns = make_ns(store, clock, executor)
    ns.lookup("/wide")  # flat page 1: d000..d049
    assert len(ns.readdir("/wide")) == 200  # 2 more flat pages (to d149), then by itself
    flat_pages = len(flat(store))

    ns.readdir("/wide/d000")
    ns.readdir("/wide/d001")  # from the cache: a walk; the page after d149 is fetched ahead

    wait_until(lambda: len(flat(store)) == flat_pages + 1, 10, "the page read ahead")
    store.reset_calls()
    for d in range(200):
        assert len(ns.readdir(f"/wide/d{d:03d}")) == 20
    assert store.calls == []


def test_flat_listing_one_directory_again_and_again_reads_nothing_ahead() -> None:
    store, clock = FakeStore(), FakeClock()
    put_walk_tree(store, "wide", 200)
    ns = make_ns(store, clock, InlineExecutor())  # a page read ahead would be read at once
    ns.lookup("/wide")
    ns.readdir("/wide")
    store.reset_calls()

    for _ in range(5):
        ns.readdir("/wide")  # the top of the flat listing: no step
        ns.readdir("/wide/d000")  # the same directory: one step

    assert store.calls == []


def test_flat_page_with_a_key_outside_its_subtree_never_completes_a_directory(
    executor: concurrent.futures.Executor,
) -> None:
    store = LeakyStore(flat_only=True)
    for i in range(1500):
        store.put(f"p/d/f{i:04d}")
    ns = make_ns(store, FakeClock(), executor, root_prefix="p/")

    assert len(ns.readdir("/d")) == 1500  # the probe's flat page holds 1000 of them


class GatedFlatStore(FakeStore):
    """Flat pages (no delimiter) wait for ``gate``; ``broken`` records a barrier that broke."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)
        self.gate = threading.Event()
        self.gate.set()
        self.broken = False

    def listed(self, page: ListPage, *, delimiter: str, start_after: str) -> ListPage:
        if delimiter == "" and start_after:
            try:
                self.barrier.wait()
            except threading.BrokenBarrierError:
                self.broken = True
            self.gate.wait(10)
        return page


def test_flat_shards_of_a_listed_directory_are_sent_side_by_side() -> None:
    store = GatedFlatStore(MAX_SHARDS)  # each shard's page waits until all of them are sent
    put_walk_tree(store)
    with concurrent.futures.ThreadPoolExecutor(max_workers=MAX_SHARDS) as pool:
        ns = make_ns(store, FakeClock(), pool)
        ns.readdir("/")
        store.reset_calls()

        found = walk_from(ns, "/walk")

    assert sum(kind is NodeKind.FILE for kind in found.values()) == 2000
    assert not store.broken
    assert store.count("list_page") == 1 + MAX_SHARDS


def test_flat_readdir_of_a_subdirectory_waits_for_the_shard_that_lists_it() -> None:
    store = GatedFlatStore(1)
    put_walk_tree(store)
    store.gate.clear()
    with concurrent.futures.ThreadPoolExecutor(max_workers=MAX_SHARDS) as pool:
        ns = make_ns(store, FakeClock(), pool)
        ns.readdir("/")
        ns.readdir("/walk")  # its shards' pages are held at the gate
        got: list[int] = []
        reader = threading.Thread(target=lambda: got.append(len(ns.readdir("/walk/d030"))))
        reader.start()
        reader.join(1)  # a reader that sent its own LIST would be done by now
        assert reader.is_alive()
        store.gate.set()
        reader.join(10)

    assert got == [20]
    assert [p for p, d, _, _ in store.lists if d == "/"] == ["", "walk/"]  # no LIST of d030


def test_flat_listing_one_directory_starts_a_bounded_number_of_pages() -> None:
    store, clock = FakeStore(), FakeClock()
    for s in range(10):
        for i in range(3000):
            store.put(f"big/s{s}/f{i:04d}")
    ns = make_ns(store, clock, InlineExecutor())  # the shards' pages are sent at once
    ns.readdir("/")
    store.reset_calls()

    assert len(ns.readdir("/big")) == 10
    ns.readdir("/big")

    # the listing by itself, then one page from each of MAX_SHARDS subdirectories: no more
    assert store.lists[0] == ("big/", "/", None, "")
    assert [(d, t) for _, d, t, _ in store.lists[1:]] == [("", None)] * MAX_SHARDS
    store.reset_calls()
    assert len(ns.readdir("/big/s0")) == 3000  # partly listed by a shard: continues it
    # (3 pages: the third ends on s0's last key, which only the next page shows to be last)
    assert [(d, t) for _, d, t, _ in store.lists] == [
        ("", "big/s0/f0999"),
        ("", "big/s0/f1999"),
        ("", "big/s0/f2999"),
    ]


def test_flat_walk_reads_ahead_only_the_listing_that_listed_what_it_reads() -> None:
    store, clock = FakeStore(), FakeClock()
    for u in range(4):
        for i in range(1500):
            store.put(f"u{u}/f{i:04d}")
    put_walk_tree(store)
    ns = make_ns(store, clock, InlineExecutor())  # a page read ahead would be read at once
    ns.readdir("/")  # the root's last shard (from u3 on, its range takes in walk/) stops in u3
    store.reset_calls()

    found = walk_from(ns, "/walk")

    assert sum(kind is NodeKind.FILE for kind in found.values()) == 2000
    # /walk and its own shards; the root's shard has not reached walk/: no page of it ahead
    assert [p for p, _, _, _ in store.lists] == ["walk/"] * (1 + MAX_SHARDS)


def test_flat_ls_of_a_directory_a_shard_partly_listed_lists_it_by_itself() -> None:
    store, clock = FakeStore(), FakeClock()
    for s in range(4):
        for t in range(10):
            for i in range(200):
                store.put(f"data/s{s}/t{t}/f{i:03d}")
    ns = make_ns(store, clock, InlineExecutor())
    ns.readdir("/")
    ns.readdir("/data")  # its shards' first pages stop in s0..s3, after t0..t4
    store.reset_calls()

    assert len(ns.readdir("/data/s1")) == 10

    # mostly subdirectories, no walk: one delimited listing, as without shards (then its own
    # shards' first pages, from its subdirectories not listed yet), no page of /data's shard
    assert store.lists[0] == ("data/s1/", "/", None, "")
    assert [(p, t, a) for p, _, t, a in store.lists[1:]] == [
        ("data/s1/", None, f"data/s1/t{4 + i * 6 // MAX_SHARDS}") for i in range(MAX_SHARDS)
    ]
