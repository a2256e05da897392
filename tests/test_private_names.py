"""No private names of any dependency: ossfs (and scripts/) use oss2, cachetools, mfusepy,
requests, urllib3 and every other runtime dependency through their public names only. The one
exception is `ossfs/fuse/mfusepy_shim.py`, which has its own version checks
(tests/test_mfusepy_shim.py). The scanner is `tests.private_names` (what it finds is said
there); the tests below also plant each kind it finds in a sample and check that clean code
stays clean.
"""

from __future__ import annotations

import re
from typing import Final

import pytest

from tests.private_names import ROOT, scan, watched_modules

SCANNED: Final = ("ossfs", "scripts")
ALLOWED: Final = frozenset({"ossfs/fuse/mfusepy_shim.py"})


def _project_sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for root in SCANNED
        for path in sorted((ROOT / root).rglob("*.py"))
    }


def test_private_names_of_dependencies_only_in_the_shim() -> None:
    findings = [f for f in scan(_project_sources(), watched_modules()) if f.path not in ALLOWED]
    assert [str(f) for f in findings] == []


def test_private_names_the_shim_is_where_they_are() -> None:
    """The allowed file exists and does reach past mfusepy (else drop it from ALLOWED)."""
    findings = scan(_project_sources(), watched_modules())
    assert {f.path for f in findings} == ALLOWED


def test_private_names_watches_every_runtime_dependency() -> None:
    assert {"oss2", "cachetools", "mfusepy", "requests", "urllib3", "crcmod", "fastcrc"} <= (
        watched_modules()
    )


PLANTED = """
import oss2
import oss2._private_mod
import oss2.xml_utils
from cachetools import LRUCache
from mfusepy import FUSE
from oss2 import _hidden
from oss2.xml_utils import _find_tag
import requests.utils as ru


def make_bucket() -> oss2.Bucket:
    return oss2.Bucket(None, "e", "b")


oss2.xml_utils.urlunquote = str                                   # monkeypatch
setattr(oss2.xml_utils, "urlunquote", str)                        # monkeypatch


def direct():
    bucket = oss2.Bucket(None, "e", "b")
    bucket._do("GET")                                             # call result
    getattr(bucket, "_make_url")                                  # reflection
    with oss2.Bucket(None, "e", "b") as b:
        b._x                                                      # with target
    for info in bucket.list_objects_v2().object_list:
        info._y                                                   # loop target
    ru._z                                                         # module attribute
    return [i._w for i in bucket.list_objects_v2().object_list]  # comprehension


def annotated(b: oss2.Bucket) -> None:
    b._make_url("b", "")                                          # parameter annotation
    result: oss2.models.GetObjectResult = get()
    result._v                                                     # variable annotation
    (lambda: b._lam)()                                            # lambda sees the parameter


class Store:
    def __init__(self):
        self._bucket = make_bucket()

    def url(self):
        return self._bucket._make_url("b", "")                    # returned by make_bucket


class Binding(FUSE):
    def _wrapper(self, func):                                     # overrides private
        return super()._wrapper(func)                             # super() private

    def read(self):
        return self._own + self.__critical                        # inherited private


class Cache(LRUCache):
    def demote(self, key):
        return getattr(self, "_LRUCache__order")                  # mangled


def uses_derived():
    Binding()._inherited                                          # instance of derived class
"""

CLEAN = """
import argparse
import os
import oss2
import oss2.exceptions
from cachetools import LRUCache
from mfusepy import FUSE, Operations


class Session(oss2.Session):
    def __init__(self):
        super().__init__()
        self._mine = 1
        self.transport = None

    def do_request(self, req, timeout):
        return self._mine, self._helper(), req.url, self.__class__

    def _helper(self):                                            # not oss2.Session's
        return self._mine


class Ops(Operations):
    def __init__(self):
        self._fs = object()

    def read(self, path):
        return self._fs._anything                                 # its own attribute's


def ours(bucket: oss2.Bucket, other):
    bucket.get_object("k").resp.status
    other._private, os._exit, argparse._SubParsersAction            # not dependencies
    cache = LRUCache(maxsize=1)
    cache.popitem()
    session = Session()
    session.transport = None
    session._mine                                                 # its own
    raise oss2.exceptions.ServerError(500, {}, b"", {})
"""


def test_private_names_scanner_finds_each_planted_kind() -> None:
    watched = frozenset({"oss2", "cachetools", "mfusepy", "requests"})
    found = scan({"planted.py": PLANTED}, watched)
    lines = PLANTED.splitlines()
    marked = {n for n, line in enumerate(lines, 1) if re.search(r"#\s+\S", line)}
    imports = {n for n, line in enumerate(lines, 1) if "_private_mod" in line or "_hidden" in line}
    imports |= {n for n, line in enumerate(lines, 1) if "_find_tag" in line}
    assert {f.line for f in found} == marked | imports, "\n".join(map(str, found))


def test_private_names_scanner_leaves_clean_code_alone() -> None:
    watched = frozenset({"oss2", "cachetools", "mfusepy", "requests"})
    assert [str(f) for f in scan({"clean.py": CLEAN}, watched)] == []


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("import oss2\nimport oss2.xml_utils\noss2.xml_utils.urlunquote = str\n", "monkeypatches"),
        ("from mfusepy import FUSE\nFUSE.read = None\n", "monkeypatches"),
        (
            "from cachetools import LRUCache\nclass C(LRUCache):\n def f(self):\n  self.__order\n",
            "private __order",
        ),
    ],
)
def test_private_names_scanner_says_what_it_found(source: str, what: str) -> None:
    found = scan({"x.py": source}, frozenset({"oss2", "cachetools", "mfusepy"}))
    assert len(found) == 1 and what in found[0].what, found
