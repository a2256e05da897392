"""Tests of the pure path/key/name functions."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ossfs.core.errors import NotFoundError
from ossfs.core.names import (
    NAME_MAX_BYTES,
    ROOT_INODE,
    dir_prefix,
    inode_for_key,
    join_path,
    name_problem,
    parent_path,
    path_to_key,
    relative_link_target,
    split_path,
    validate_root_prefix,
)


@pytest.mark.parametrize("name", ["a", "a.txt", "..a", "...", " ", "é" * 127, "x" * 255, "a\nb"])
def test_name_problem_accepts_file_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "a\x00b", "x" * 256, "é" * 128, "bad\udcff"],
)
def test_name_problem_rejects_non_names(name: str) -> None:
    assert name_problem(name) is not None


def test_name_problem_counts_utf8_bytes_not_characters() -> None:
    assert name_problem("€" * (NAME_MAX_BYTES // 3)) is None
    assert name_problem("€" * (NAME_MAX_BYTES // 3 + 1)) is not None


def test_split_path_components() -> None:
    assert split_path("/") == ()
    assert split_path("/a") == ("a",)
    assert split_path("/a/b.txt") == ("a", "b.txt")


@pytest.mark.parametrize("path", ["/a//b", "/a/./b", "/a/../b", "/a/", "/" + "x" * 256])
def test_split_path_invalid_component_is_not_found(path: str) -> None:
    with pytest.raises(NotFoundError):
        split_path(path)


def test_split_path_relative_is_value_error() -> None:
    with pytest.raises(ValueError, match="not absolute"):
        split_path("a/b")


def test_validate_root_prefix_requires_trailing_slash() -> None:
    assert validate_root_prefix("") == ""
    assert validate_root_prefix("data/2024/") == "data/2024/"
    with pytest.raises(ValueError, match="end with"):
        validate_root_prefix("data")


def test_path_helpers_map_paths_to_keys() -> None:
    assert join_path("/", "a") == "/a"
    assert join_path("/a", "b") == "/a/b"
    assert parent_path("/a") == "/"
    assert parent_path("/a/b") == "/a"
    assert parent_path("/") == "/"
    assert path_to_key("p/", "/a/b") == "p/a/b"
    assert path_to_key("", "/a") == "a"
    assert dir_prefix("p/", "/") == "p/"
    assert dir_prefix("", "/") == ""
    assert dir_prefix("p/", "/a") == "p/a/"


def test_inode_for_key_is_stable_and_avoids_reserved_numbers() -> None:
    # A fixed value guards against accidental changes that would renumber every mount.
    assert inode_for_key("a/b") == inode_for_key("a/b")
    assert inode_for_key("a/b") == inode_for_key("a/b/")
    assert inode_for_key("a/b") != inode_for_key("a/c")
    assert inode_for_key("a/b") == 0x6F5E92AC5E547D0


@given(st.text(max_size=40))
def test_inode_for_key_is_63_bit_and_not_root(key: str) -> None:
    number = inode_for_key(key)
    assert ROOT_INODE < number < 2**63


@pytest.mark.parametrize(
    ("link", "target", "expected"),
    [
        ("d/l", "d/sub/t", "sub/t"),
        ("d/l", "x/t", "../x/t"),
        ("d/l", "d/t", "t"),
        ("l", "t", "t"),
        ("l", "a/b/t", "a/b/t"),
        ("a/b/l", "t", "../../t"),
        ("d/l", "d/sub/", "sub/"),
        ("d/l", "d/", "."),
        ("d/l", "d", "../d"),
        ("p/d/l", "q/t", "../../q/t"),
    ],
)
def test_relative_link_target_examples(link: str, target: str, expected: str) -> None:
    assert relative_link_target(link, target) == expected


_COMPONENT = st.sampled_from(["a", "b", "c", "ab"])


@given(
    st.lists(_COMPONENT, min_size=1, max_size=5),
    st.lists(_COMPONENT, min_size=1, max_size=5),
)
def test_relative_link_target_resolves_to_the_target(link: list[str], target: list[str]) -> None:
    link_key = "/".join(link)
    target_key = "/".join(target)
    relative = relative_link_target(link_key, target_key)
    assert not relative.startswith("/")
    link_dir = posixpath.dirname("/" + link_key)
    assert posixpath.normpath(posixpath.join(link_dir, relative)) == "/" + target_key
