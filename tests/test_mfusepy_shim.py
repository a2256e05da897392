"""`ossfs.fuse.mfusepy_shim`, the one place ossfs reaches past mfusepy's public API: it runs only
on the mfusepy releases it was read against, and its callback wrapper keeps each libfuse thread's
Python thread state once and answers as mfusepy's own.

When a test here fails after an mfusepy upgrade, re-read mfusepy's ``FUSE`` class against the
shim before adding the release to ``CHECKED_VERSIONS``:

- ``FUSE.__init__`` still wraps every callback as ``functools.partial(self._wrapper, method)``
  and picks ``<name>_fuse_3`` methods on libfuse 3 (so the shim's ``_wrapper`` and
  ``readdir_fuse_3`` are the ones called);
- ``_wrapper(func, *args, **kwargs)`` still turns exceptions into negative errnos, runs on the
  libfuse worker thread, and has no public hook that runs before each callback;
- ``read(path, buf, size, offset, fip)`` still copies the reply with ``ctypes.memmove`` and
  still gets no bytearray/memoryview support of its own;
- ``readdir_fuse_3(path, buf, filler, offset, fip, flags)`` still passes only mode and inode (if
  mfusepy now answers READDIRPLUS with complete attributes, drop the shim's override);
- then update ``CHECKED_VERSIONS`` (and ``CHECKED_RANGE`` with pyproject.toml's requirement).
"""

from __future__ import annotations

import ctypes
import errno
import inspect
import mmap
import re
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ossfs.core.errors import UsageError
from ossfs.fuse import fuse_ops, mfusepy_shim
from ossfs.fuse.fuse_ops import FuseOSError
from ossfs.fuse.mfusepy_shim import (  # through ossfs.fuse: libfuse 3 is asked for first
    CHECKED_RANGE,
    CHECKED_VERSIONS,
    FUSE,
    BindingFUSE,
    binding_problems,
    installed_version,
)
from ossfs.read.reader import ReadData, ReadParts

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
RECHECK = "re-read mfusepy's FUSE against ossfs/fuse/mfusepy_shim.py (see this test's docstring)"


def test_mfusepy_shim_installed_release_is_one_it_was_checked_against() -> None:
    version = installed_version()
    assert version in CHECKED_VERSIONS, (
        f"mfusepy {version} is installed; the shim was checked against {CHECKED_VERSIONS}: "
        f"{RECHECK}, then add it to CHECKED_VERSIONS"
    )


def test_mfusepy_shim_range_is_the_one_pyproject_declares() -> None:
    requirements = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    declared = [r for r in requirements if re.match(r"mfusepy\b", r)]
    assert declared == [f"mfusepy{CHECKED_RANGE}"], (
        f"pyproject.toml declares {declared}, the shim was checked for mfusepy{CHECKED_RANGE}: "
        f"{RECHECK}, then update CHECKED_RANGE"
    )


def test_mfusepy_shim_replaced_methods_are_as_checked() -> None:
    assert binding_problems() == [], RECHECK
    init = inspect.getsource(FUSE.__init__)
    # Every callback goes through self._wrapper; libfuse 3 callbacks are looked up by suffix.
    assert "functools.partial(self._wrapper, method)" in init, RECHECK
    assert "name + '_fuse_3'" in init, RECHECK
    for name in ("_wrapper", "read", "readdir_fuse_3"):
        assert name in vars(BindingFUSE), name


def test_mfusepy_shim_names_a_changed_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    def read(  # noqa: PLR0917 (the binding's callback signature, and one more)
        self: FUSE, path: bytes, buf: int, size: int, offset: int, fip: object, x: int
    ) -> int:
        return 0

    monkeypatch.setattr(FUSE, "read", read)
    monkeypatch.delattr(FUSE, "readdir_fuse_3")
    assert binding_problems() == [
        "mfusepy.FUSE.read takes (self, path, buf, size, offset, fip, x), "
        "not (self, path, buf, size, offset, fip)",
        "mfusepy.FUSE.readdir_fuse_3 is gone",
    ]


def test_mfusepy_shim_mount_refuses_a_changed_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuse_ops, "binding_problems", lambda: ["mfusepy.FUSE.read is gone"])

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("mounted anyway")

    monkeypatch.setattr(fuse_ops, "BindingFUSE", never)
    ops = fuse_ops.FuseOperations.__new__(fuse_ops.FuseOperations)
    with pytest.raises(UsageError, match=r"mfusepy .*read is gone.*mfusepy=="):
        fuse_ops.run_fuse(ops, "/nonexistent", fsname="x", options={})


def test_mfusepy_shim_wrapper_pins_each_thread_once_and_answers_as_the_binding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pins: list[int] = []
    marks = threading.local()

    def pin() -> None:
        pins.append(threading.get_ident())
        marks.pinned = True

    monkeypatch.setattr(mfusepy_shim, "_pin_thread_state", pin)
    monkeypatch.setattr(mfusepy_shim, "_thread", marks)
    binding = BindingFUSE.__new__(BindingFUSE)  # no mount: only the wrapper is used

    def ok(value: int) -> int:
        return value

    def missing() -> int:
        raise FuseOSError(errno.ENOENT)

    def run_twice() -> None:
        assert binding._wrapper(ok, 7) == 7
        assert binding._wrapper(missing) == -errno.ENOENT

    run_twice()
    run_twice()
    other = threading.Thread(target=run_twice)
    other.start()
    other.join()
    assert pins == [threading.get_ident(), other.ident]  # once per thread


def test_mfusepy_shim_read_copies_a_reply_in_parts_in_order() -> None:
    mapping = mmap.mmap(-1, 8)
    mapping[:] = b"ABCDEFGH"
    replies: list[ReadData | ReadParts] = [
        [memoryview(mapping)[5:], memoryview(bytearray(b"ijkl")), memoryview(b"MNOP")[:2]],
        memoryview(b"whole reply")[:5],
        bytearray(b"array"),
        [],
    ]

    class Operations:
        def read(
            self, path: str | None, size: int, offset: int, fh: object
        ) -> ReadData | ReadParts:
            return replies.pop(0)

        def fill_dir(self, fh: int, offset: int, flags: int, filler: Any, buf: Any) -> int:
            raise AssertionError("not called")

    class Info:
        contents = None

    binding = BindingFUSE.__new__(BindingFUSE)
    binding.operations = Operations()
    out = ctypes.create_string_buffer(16)
    address = ctypes.cast(out, ctypes.POINTER(ctypes.c_byte))  # as libfuse's callback gets it
    assert binding.read(None, address, 16, 0, Info()) == 9
    assert out.raw[:9] == b"FGHijklMN"
    assert binding.read(None, address, 16, 0, Info()) == 5
    assert out.raw[:5] == b"whole"
    assert binding.read(None, address, 16, 0, Info()) == 5
    assert out.raw[:5] == b"array"
    assert binding.read(None, address, 16, 0, Info()) == 0
