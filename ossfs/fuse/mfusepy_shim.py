"""The one place ossfs reaches past mfusepy's public API, checked against the releases it names.

mfusepy's public API is `Operations` (callbacks with decoded paths and Python values) and
``FUSE(operations, mountpoint, **options)``. Three things the mount needs are not in it, so
`BindingFUSE` subclasses mfusepy's ``FUSE`` (whose docstring says it "should not be subclassed
under normal use") and replaces three of its methods:

- ``_wrapper``, which every libfuse callback goes through: it first keeps the calling worker
  thread's Python thread state (`_pin_thread_state`), about 10 us of every callback.
- ``read``: mfusepy's passes the reply to ``ctypes.memmove``, which only takes bytes, so a cached
  block (a bytearray or an mmap) or a view into one would cost one more copy of every byte served.
- ``readdir_fuse_3``: mfusepy's passes only each entry's mode and inode; this one hands libfuse's
  filler to the operations (``fill_dir``), which answer READDIRPLUS with complete attributes.

`CHECKED_VERSIONS` are the mfusepy releases this was read against and `CHECKED_RANGE` the range
the project declares; ``tests/test_mfusepy_shim.py`` fails on any other and says what to re-read.
`binding_problems` checks the replaced methods still have the signatures relied on; the mount
refuses to start when they do not (`run_fuse`), rather than failing every read.

Nothing else here: the callbacks themselves and the errno mapping are `ossfs.fuse.fuse_ops`'s.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.metadata
import inspect
import threading
from collections.abc import Callable
from typing import Any, Final, Protocol

from mfusepy import FUSE, FuseOSError

from ossfs.read.reader import ReadData, ReadParts, read_length

__all__ = [
    "CHECKED_RANGE",
    "CHECKED_VERSIONS",
    "FUSE",
    "BindingFUSE",
    "Filler",
    "binding_problems",
    "installed_version",
]

CHECKED_VERSIONS: Final = ("3.1.1",)
"""mfusepy releases whose ``FUSE`` this module was read against (``_wrapper``, ``read``,
``readdir_fuse_3`` and how ``FUSE.__init__`` wires callbacks through ``_wrapper``)."""

CHECKED_RANGE: Final = ">=3.1.1,<4"
"""The mfusepy requirement pyproject.toml declares; widening it means re-reading this module."""

Filler = Callable[[Any, bytes, Any, int, int], int]
"""libfuse 3's ``fuse_fill_dir_t``: (buffer, name, ``struct stat *``, next offset, flags); nonzero:
the buffer is full."""

# The parameters of the replaced methods, as CHECKED_VERSIONS define them.
_SIGNATURES: Final = {
    "_wrapper": ["self", "func", "args", "kwargs"],
    "read": ["self", "path", "buf", "size", "offset", "fip"],
    "readdir_fuse_3": ["self", "path", "buf", "filler", "offset", "fip", "flags"],
}


class BindingOperations(Protocol):
    """What `BindingFUSE` calls on its operations besides mfusepy's own callbacks."""

    def read(
        self, path: str | None, size: int, offset: int, fh: object
    ) -> ReadData | ReadParts: ...

    def fill_dir(self, fh: int, offset: int, flags: int, filler: Filler, buf: Any) -> int: ...


def installed_version() -> str:
    """The installed mfusepy's version (from its package metadata)."""
    return importlib.metadata.version("mfusepy")


def binding_problems() -> list[str]:
    """What of mfusepy's ``FUSE`` that `BindingFUSE` replaces is missing or changed: one line
    each, empty when it is as in `CHECKED_VERSIONS`."""
    problems = []
    for name, expected in _SIGNATURES.items():
        method = getattr(FUSE, name, None)
        if method is None:
            problems.append(f"mfusepy.FUSE.{name} is gone")
            continue
        got = list(inspect.signature(method).parameters)
        if got != expected:
            problems.append(
                f"mfusepy.FUSE.{name} takes ({', '.join(got)}), not ({', '.join(expected)})"
            )
    return problems


_thread = threading.local()


def _pin_thread_state() -> None:
    """Keep this (libfuse worker) thread's Python thread state after the callback returns.

    ctypes gives a thread Python has not seen a new thread state for each callback and deletes
    it when the callback returns, with its frame stack (an mmap/munmap pair, TLB flushes on every
    CPU): about 10 us of each callback's 50-80 us round trip on loopback. One more
    PyGILState_Ensure, never released, keeps it for the life of the thread (libfuse 3 keeps its
    at most 10 workers until unmount).
    """
    ctypes.pythonapi.PyGILState_Ensure()
    _thread.pinned = True


class BindingFUSE(FUSE):  # type: ignore[misc]
    """mfusepy's FUSE with its own callback wrapper and two callbacks of its own.

    - every callback first keeps the calling thread's Python thread state (`_pin_thread_state`).
    - read also takes a bytearray or memoryview reply: mfusepy's own passes the reply to
      ``ctypes.memmove``, which only takes bytes, so a cached block (a bytearray) or a view into
      one would need one more copy of every byte served.
    - libfuse 3 directory reads are answered page by page with complete attributes
      (``operations.fill_dir``); mfusepy's own passes only mode and inode.
    """

    operations: BindingOperations

    def _wrapper(self, func: Callable[..., int], *args: Any, **kwargs: Any) -> int:
        if not getattr(_thread, "pinned", False):
            _pin_thread_state()
        result: int = super()._wrapper(func, *args, **kwargs)
        return result

    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        # Our read never looks at the path: no need to decode it (mfusepy's does).
        data = self.operations.read(None, size, offset, fip.contents)
        count = read_length(data)
        if count > size:  # pragma: no cover - ObjectReader never returns more than asked
            raise FuseOSError(errno.EIO)
        if not isinstance(data, list):
            _copy_to(buf, data)
            return count
        at: int = ctypes.cast(buf, ctypes.c_void_p).value or 0  # libfuse's reply buffer
        for part in data:
            _copy_to(at, part)
            at += len(part)
        return count

    def readdir_fuse_3(  # noqa: PLR0917 (the binding's callback signature)
        self, path: bytes | None, buf: Any, filler: Filler, offset: int, fip: Any, flags: int
    ) -> int:
        return self.operations.fill_dir(int(fip.contents.fh), offset, flags, filler, buf)


def _copy_to(address: Any, data: ReadData) -> None:
    """Copy ``data`` to memory at ``address`` (an int or a ctypes pointer; ctypes lets the GIL
    go for the copy)."""
    count = len(data)
    if count == 0:
        return
    if isinstance(data, memoryview) and data.readonly:
        data = data.tobytes()  # a view of bytes: ctypes can only address it as bytes
    if isinstance(data, bytes):
        ctypes.memmove(address, data, count)
    else:
        ctypes.memmove(address, (ctypes.c_char * count).from_buffer(data), count)
