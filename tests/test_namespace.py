"""Tests of the namespace: listings, stat/negative caches, probes, symlinks, request counts."""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ossfs.core.errors import AccessDeniedError, NotDirectoryError, NotFoundError, NotSymlinkError
from ossfs.core.names import inode_for_key
from ossfs.core.nodes import Node, NodeKind
from ossfs.core.object_store import ObjectMeta
from ossfs.fs.namespace import Namespace
from tests.support.fakes import FakeStore, LeakyStore
from tests.support.waiting import wait_until


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def make_ns(
    store: FakeStore,
    clock: FakeClock,
    executor: concurrent.futures.Executor,
    *,
    root_prefix: str = "",
    metadata_ttl_s: float = 60.0,
    negative_cache_entries: int = 10_000,
) -> Namespace:
    return Namespace(
        store,
        root_prefix=root_prefix,
        metadata_ttl_s=metadata_ttl_s,
        negative_cache_entries=negative_cache_entries,
        clock=clock,
        lookup_executor=executor,
    )


def kinds(nodes: list[Node]) -> dict[str, NodeKind]:
    return {n.name: n.kind for n in nodes}


def test_namespace_root_is_a_directory_without_requests(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    ns = make_ns(store, clock, executor, root_prefix="data/2024/")
    root = ns.lookup("/")
    assert (root.path, root.name, root.kind, root.inode, root.meta, root.key) == (
        "/",
        "",
        NodeKind.DIR,
        1,
        None,
        "data/2024/",
    )
    assert store.calls == []


def test_namespace_readdir_shows_files_markers_and_implicit_dirs(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("f.txt", b"hello")
    store.put("marker/")
    store.put("implicit/x")
    store.put("both/", b"")
    store.put("both/y")
    store.put_symlink("link", "f.txt")
    ns = make_ns(store, clock, executor)

    nodes = ns.readdir("/")

    assert [n.name for n in nodes] == ["both", "f.txt", "implicit", "link", "marker"]
    assert kinds(nodes) == {
        "both": NodeKind.DIR,
        "f.txt": NodeKind.FILE,
        "implicit": NodeKind.DIR,
        "link": NodeKind.SYMLINK,
        "marker": NodeKind.DIR,
    }
    by_name = {n.name: n for n in nodes}
    assert by_name["f.txt"].meta is not None
    assert by_name["f.txt"].meta.size == 5
    assert by_name["f.txt"].key == "f.txt"
    assert by_name["f.txt"].path == "/f.txt"
    assert by_name["marker"].key == "marker/"
    assert by_name["implicit"].meta is None
    assert by_name["f.txt"].inode == inode_for_key("f.txt")
    # one delimited LIST answers; flat pages of the subtree follow in the background
    assert store.lists[0] == ("", "/", None, "")
    wait_until(lambda: len(store.lists) == 4, 10, "the subtree's flat pages")
    assert sorted(a for _, d, _, a in store.lists if d == "") == ["both", "implicit", "marker"]


def test_namespace_readdir_excludes_the_directorys_own_marker(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("d/")
    store.put("d/a")
    ns = make_ns(store, clock, executor)

    assert [n.path for n in ns.readdir("/d")] == ["/d/a"]
    assert store.count("list_page") == 1  # the probe of /d lists it flat: whole
    assert ns.stats().skipped_names == 0  # the own marker is not a child, not a bad name


def test_namespace_ls_l_of_5000_entries_is_5_lists_and_no_head(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    for i in range(5000):
        store.put(f"big/f{i:05d}", b"x" * (i % 7))
    ns = make_ns(store, clock, executor)
    ns.readdir("/")  # /big is known from its parent's listing, as in `ls -l big` after `ls`
    store.reset_calls()

    nodes = ns.readdir("/big")
    for node in nodes:
        assert ns.lookup(node.path) == node
    with pytest.raises(NotFoundError):
        ns.lookup("/big/not-there")

    assert len(nodes) == 5000
    assert nodes[7].meta is not None
    assert nodes[7].meta.size == 0
    assert store.count("list_page") == 5
    assert store.count("head") == 0
    assert len(store.calls) == 5
    stats = ns.stats()
    assert stats.hits == 5001  # readdir's own lookup of /big, then every entry
    assert stats.negative_hits == 1


def test_namespace_fresh_listing_answers_negative_lookups_without_requests(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("a")
    ns = make_ns(store, clock, executor)
    ns.readdir("/")
    store.reset_calls()

    for name in ("/missing", "/a.pyc", "/__init__.py"):
        with pytest.raises(NotFoundError):
            ns.lookup(name)
    with pytest.raises(NotFoundError):
        ns.lookup("/missing/deeper")

    assert store.calls == []
    assert ns.stats().negative_hits == 3


def test_namespace_lookup_probes_file_with_head_and_list(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    meta = store.put("d/f.txt", b"abc")
    ns = make_ns(store, clock, executor)

    node = ns.lookup("/d/f.txt")

    assert (node.kind, node.meta, node.key, node.name) == (NodeKind.FILE, meta, "d/f.txt", "f.txt")
    assert sorted(store.calls, key=repr) == [("head", "d/f.txt"), ("list_page", "d/f.txt/", None)]
    store.reset_calls()
    assert ns.lookup("/d/f.txt") == node
    assert store.calls == []
    stats = ns.stats()
    assert (stats.probes, stats.heads, stats.list_pages, stats.hits) == (1, 1, 1, 1)


def test_namespace_lookup_probes_directory_and_marker(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    marker = store.put("m/")
    store.put("m/x")
    store.put("i/x")
    ns = make_ns(store, clock, executor)

    with_marker = ns.lookup("/m")
    implicit = ns.lookup("/i")

    assert (with_marker.kind, with_marker.meta, with_marker.key) == (NodeKind.DIR, marker, "m/")
    assert (implicit.kind, implicit.meta, implicit.key) == (NodeKind.DIR, None, "i/")
    assert store.count("head") == 2
    assert store.count("list_page") == 2


def test_namespace_lookup_probes_symlink(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put_symlink("l", "t")
    ns = make_ns(store, clock, executor)

    node = ns.lookup("/l")

    assert node.kind is NodeKind.SYMLINK
    assert node.meta is not None
    assert node.meta.is_symlink
    assert store.count("head") == 1


def test_namespace_directory_wins_a_clash_and_logs_it_once(
    store: FakeStore,
    clock: FakeClock,
    executor: concurrent.futures.Executor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store.put("x", b"file")
    store.put("x/inner")
    ns = make_ns(store, clock, executor, metadata_ttl_s=10.0)
    caplog.set_level(logging.WARNING, logger="ossfs.fs.namespace")

    probed = ns.lookup("/x")
    listed = ns.readdir("/")
    clock.now += 11
    relisted = ns.readdir("/")

    assert probed.kind is NodeKind.DIR
    assert kinds(listed) == {"x": NodeKind.DIR}
    assert kinds(relisted) == {"x": NodeKind.DIR}
    assert [n.path for n in ns.readdir("/x")] == ["/x/inner"]
    clashes = [r for r in caplog.records if "both an object and a directory" in r.getMessage()]
    assert len(clashes) == 1
    assert ns.stats().skipped_names == 0


def test_namespace_lookup_miss_is_negatively_cached_until_ttl(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    ns = make_ns(store, clock, executor, metadata_ttl_s=5.0)

    with pytest.raises(NotFoundError):
        ns.lookup("/nope")
    with pytest.raises(NotFoundError):
        ns.lookup("/nope")
    assert (store.count("head"), store.count("list_page")) == (1, 1)

    store.put("nope")
    clock.now += 4.9
    with pytest.raises(NotFoundError):
        ns.lookup("/nope")
    assert store.count("head") == 1
    clock.now += 0.2
    assert ns.lookup("/nope").kind is NodeKind.FILE
    assert (store.count("head"), store.count("list_page")) == (2, 2)
    assert ns.stats().negative_hits == 2


def test_namespace_negative_cache_is_lru_bounded(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    ns = make_ns(store, clock, executor, negative_cache_entries=2)
    for name in ("/a", "/b", "/a", "/c"):  # /a used again, so /b is the least recently used
        with pytest.raises(NotFoundError):
            ns.lookup(name)
    assert store.count("head") == 3
    store.reset_calls()

    with pytest.raises(NotFoundError):
        ns.lookup("/a")
    with pytest.raises(NotFoundError):
        ns.lookup("/c")
    assert store.calls == []
    with pytest.raises(NotFoundError):
        ns.lookup("/b")
    assert store.count("head") == 1


def test_namespace_positive_entries_expire_after_ttl(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("a", b"1")
    ns = make_ns(store, clock, executor, metadata_ttl_s=60.0)
    first = ns.lookup("/a")
    ns.readdir("/")
    new = store.put("a", b"22")
    clock.now += 59

    assert ns.lookup("/a") == first
    assert ns.readdir("/")[0] == first
    assert (store.count("head"), store.count("list_page")) == (1, 2)

    clock.now += 2
    assert ns.lookup("/a").meta == new
    assert (store.count("head"), store.count("list_page")) == (2, 3)
    assert ns.readdir("/")[0].meta == new
    assert store.count("list_page") == 4


def test_namespace_ttl_zero_caches_nothing(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("a")
    store.put_symlink("l", "a")
    ns = make_ns(store, clock, executor, metadata_ttl_s=0)

    for _ in range(3):
        ns.readdir("/")
        ns.lookup("/a")
        ns.readlink("/l")
        with pytest.raises(NotFoundError):
            ns.lookup("/missing")

    assert store.count("list_page") == 3 + 3 + 3 + 3  # listings, probes of /a, /l, /missing
    assert store.count("head") == 9
    assert store.count("symlink_target") == 3
    assert ns.stats().hits == 0
    assert ns.stats().negative_hits == 0


def test_namespace_ttl_infinite_caches_until_invalidated(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("a", b"1")
    ns = make_ns(store, clock, executor, metadata_ttl_s=math.inf)
    ns.readdir("/")
    new = store.put("a", b"22")
    clock.now += 1e12

    assert ns.lookup("/a").meta is not None
    assert ns.lookup("/a").meta != new
    assert store.count("list_page") == 1

    ns.invalidate("/a")
    assert ns.lookup("/a").meta == new
    assert (store.count("list_page"), store.count("head")) == (2, 1)


def test_namespace_invalidate_forgets_negative_entry(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    ns = make_ns(store, clock, executor)
    with pytest.raises(NotFoundError):
        ns.lookup("/n")
    store.put("n")
    ns.invalidate("/n")

    assert ns.lookup("/n").kind is NodeKind.FILE
    assert store.count("head") == 2


def test_namespace_skips_unrepresentable_names_with_one_warning_each(
    store: FakeStore,
    clock: FakeClock,
    executor: concurrent.futures.Executor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store.put("ok")
    store.put("a//b")  # empty component inside "a"
    store.put("/lead")  # empty component at the root
    store.put("./x")
    store.put("../x")
    store.put("y" * 256)
    store.put("nul\x00name")
    store.put("bad\udcff")  # a key that was not valid UTF-8
    ns = make_ns(store, clock, executor, metadata_ttl_s=1.0)
    caplog.set_level(logging.WARNING, logger="ossfs.fs.namespace")

    first = ns.readdir("/")
    inside = ns.readdir("/a")
    clock.now += 2
    again = ns.readdir("/")
    ns.invalidate("/a")
    ns.readdir("/a")

    assert [n.name for n in first] == ["a", "ok"]
    assert [n.name for n in again] == ["a", "ok"]
    assert inside == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 7
    assert ns.stats().skipped_names == 7
    assert store.count("list_page") == 4  # 2 root listings, probe of /a (flat: whole), 1 of /a


def test_namespace_prefix_mount_hides_keys_outside_the_prefix(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("data/2024/a.csv", b"1")
    store.put("data/2024/sub/b.csv")
    store.put("data/2024/")
    store.put("data/2023/old.csv")
    store.put("data/2024x")
    store.put("top")
    ns = make_ns(store, clock, executor, root_prefix="data/2024/")

    nodes = ns.readdir("/")
    sub = ns.lookup("/sub")
    with pytest.raises(NotFoundError):
        ns.lookup("/top")

    assert [(n.name, n.key) for n in nodes] == [
        ("a.csv", "data/2024/a.csv"),
        ("sub", "data/2024/sub/"),
    ]
    assert sub.key == "data/2024/sub/"
    assert store.calls == [("list_page", "data/2024/", None)]


def test_namespace_prefix_mount_probes_keys_under_the_prefix(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("p/a/b")
    ns = make_ns(store, clock, executor, root_prefix="p/")

    node = ns.lookup("/a/b")

    assert (node.key, node.kind) == ("p/a/b", NodeKind.FILE)
    assert sorted(store.calls, key=repr) == [("head", "p/a/b"), ("list_page", "p/a/b/", None)]


def test_namespace_file_in_the_middle_of_a_path(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("f", b"data")
    ns = make_ns(store, clock, executor)

    with pytest.raises(NotFoundError):
        ns.lookup("/f/x")  # nothing cached yet: the probe finds nothing under f/x
    assert store.count("head") == 1
    ns.lookup("/f")
    store.reset_calls()
    with pytest.raises(NotDirectoryError):
        ns.lookup("/f/y")
    with pytest.raises(NotDirectoryError):
        ns.lookup("/f/y/z")
    with pytest.raises(NotDirectoryError):
        ns.readdir("/f")
    assert store.calls == []


def test_namespace_deep_path_exists_without_ancestor_lookups(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("a", b"clash")  # a file "a" and objects under "a/": "a" is a directory
    store.put("a/b/c", b"!")
    ns = make_ns(store, clock, executor)

    node = ns.lookup("/a/b/c")

    assert node.kind is NodeKind.FILE
    assert (store.count("head"), store.count("list_page")) == (1, 1)
    assert ns.lookup("/a").kind is NodeKind.DIR
    assert ns.lookup("/a/b").kind is NodeKind.DIR


def test_namespace_lookup_of_unknown_parent_known_absent_sends_nothing(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    ns = make_ns(store, clock, executor)
    with pytest.raises(NotFoundError):
        ns.lookup("/gone")
    store.reset_calls()

    with pytest.raises(NotFoundError):
        ns.lookup("/gone/child")
    assert store.calls == []


def test_namespace_readdir_of_missing_directory_raises(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    ns = make_ns(store, clock, executor)
    with pytest.raises(NotFoundError):
        ns.readdir("/nothing")
    assert (store.count("head"), store.count("list_page")) == (1, 1)


def test_namespace_readlink_is_relative_to_the_links_directory(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("d/sub/t")
    store.put_symlink("d/l", "d/sub/t")
    store.put_symlink("d/up", "x/t")
    store.put_symlink("top", "d/sub/t")
    ns = make_ns(store, clock, executor)

    assert ns.readlink("/d/l") == "sub/t"
    assert ns.readlink("/d/up") == "../x/t"
    assert ns.readlink("/top") == "d/sub/t"
    assert ns.readlink("/d/l") == "sub/t"
    assert store.count("symlink_target") == 3
    assert ns.stats().symlink_reads == 3


def test_namespace_readlink_with_prefix_mount(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put_symlink("p/d/l", "p/t")
    store.put_symlink("p/out", "q/secret")
    ns = make_ns(store, clock, executor, root_prefix="p/")

    assert ns.readlink("/d/l") == "../t"
    # Outside the root prefix: a relative path that leaves the mount, never a key served by it.
    assert ns.readlink("/out") == "../q/secret"


def test_namespace_readlink_target_refetched_when_the_link_changes(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put_symlink("l", "a")
    ns = make_ns(store, clock, executor, metadata_ttl_s=10.0)
    assert ns.readlink("/l") == "a"
    store.put_symlink("l", "b")
    assert ns.readlink("/l") == "a"
    clock.now += 11

    assert ns.readlink("/l") == "b"
    assert store.count("symlink_target") == 2


def test_namespace_readlink_of_a_file_raises(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("f")
    ns = make_ns(store, clock, executor)
    with pytest.raises(NotSymlinkError):
        ns.readlink("/f")
    assert store.count("symlink_target") == 0


def test_namespace_inodes_are_stable_across_instances(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("d/f")
    first = make_ns(store, clock, executor)
    second = make_ns(store, clock, executor)

    listed = {n.path: n.inode for n in first.readdir("/")} | {
        n.path: n.inode for n in first.readdir("/d")
    }
    probed = {p: second.lookup(p).inode for p in ("/d", "/d/f")}

    assert listed == probed
    assert len(set(listed.values()) | {1}) == 3


def test_namespace_store_errors_propagate_and_are_not_cached(
    clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    class DenyingStore(FakeStore):
        def head(self, key: str) -> ObjectMeta:
            with self._lock:
                self.calls.append(("head", key))
            raise AccessDeniedError(key)

    store = DenyingStore()
    ns = make_ns(store, clock, executor)
    for _ in range(2):
        with pytest.raises(AccessDeniedError):
            ns.lookup("/f")
    assert (store.count("head"), store.count("list_page")) == (2, 2)


def test_namespace_concurrent_lookups_share_one_probe_and_listing(
    store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    for i in range(50):
        store.put(f"d/f{i}")
    ns = make_ns(store, clock, executor)
    barrier = threading.Barrier(8)

    def work() -> list[str]:
        barrier.wait()
        ns.lookup("/d")
        return [n.name for n in ns.readdir("/d")]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = [f.result() for f in [pool.submit(work) for _ in range(8)]]

    assert all(r == results[0] for r in results)
    assert len(results[0]) == 50
    assert store.count("head") == 1
    assert store.count("list_page") == 1  # one probe, its flat page lists /d whole


def test_namespace_default_executor_is_created_and_closed(store: FakeStore) -> None:
    store.put("a")
    ns = Namespace(store)
    try:
        assert ns.lookup("/a").kind is NodeKind.FILE
    finally:
        ns.close()
    assert store.count("head") == 1


def test_namespace_rejects_bad_configuration(store: FakeStore) -> None:
    with pytest.raises(ValueError, match="root prefix"):
        Namespace(store, root_prefix="data")
    with pytest.raises(ValueError, match="metadata_ttl_s"):
        Namespace(store, metadata_ttl_s=-1)
    with pytest.raises(ValueError, match="negative_cache_entries"):
        Namespace(store, negative_cache_entries=-1)


def test_namespace_never_trusts_entries_outside_the_listed_prefix(
    clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store = LeakyStore()
    store.put("p/a")
    ns = make_ns(store, clock, executor, root_prefix="p/")

    assert [n.name for n in ns.readdir("/")] == ["a"]
    assert ns.stats().skipped_names == 2


# -- property: walking the namespace finds exactly the representable keys -----------------------

_NAME = st.sampled_from(["a", "b", "ab", ".", "..", ""])
_KEY = st.lists(_NAME, min_size=1, max_size=4).map("/".join).filter(bool)


def expected_tree(keys: set[str], root_prefix: str) -> dict[str, NodeKind]:
    """A model of the namespace: every representable key's path and its implied directories."""
    tree: dict[str, NodeKind] = {}
    for full in keys:
        if not full.startswith(root_prefix):
            continue
        parts = full[len(root_prefix) :].split("/")
        path = ""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last and part == "" and i > 0:
                break  # a "dir/" marker: its directory is already recorded
            if part in ("", ".", ".."):
                break
            path = f"{path}/{part}"
            if last:
                tree.setdefault(path, NodeKind.FILE)
            else:
                tree[path] = NodeKind.DIR
    return tree


def walk(ns: Namespace) -> dict[str, NodeKind]:
    found: dict[str, NodeKind] = {}
    pending = ["/"]
    while pending:
        for node in ns.readdir(pending.pop()):
            assert node.path not in found
            found[node.path] = node.kind
            if node.kind is NodeKind.DIR:
                pending.append(node.path)
    return found


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.sets(_KEY, max_size=12),
    root_prefix=st.sampled_from(["", "a/"]),
)
def test_namespace_walk_finds_exactly_the_representable_keys(
    keys: set[str], root_prefix: str, executor: concurrent.futures.Executor
) -> None:
    store = FakeStore()
    for key in keys:
        store.put(key)
    ns = make_ns(store, FakeClock(), executor, root_prefix=root_prefix, metadata_ttl_s=math.inf)

    found = walk(ns)

    expected = expected_tree(keys, root_prefix)
    assert found == expected
    dirs = sum(1 for kind in expected.values() if kind is NodeKind.DIR)
    assert store.count("list_page") <= dirs + 1  # a walk may list subtrees flat
    assert store.count("head") == 0
    store.reset_calls()
    for path, kind in expected.items():
        assert ns.lookup(path).kind is kind
    assert store.calls == []


@pytest.mark.parametrize("path", ["/bad\udcff", "/a/..", "/" + "n" * 256, "/a//b"])
def test_namespace_lookup_of_impossible_name_sends_nothing(
    path: str, store: FakeStore, clock: FakeClock, executor: concurrent.futures.Executor
) -> None:
    store.put("bad\udcff")
    ns = make_ns(store, clock, executor)
    with pytest.raises(NotFoundError):
        ns.lookup(path)
    assert store.calls == []
