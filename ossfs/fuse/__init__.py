"""The FUSE adapter (`fuse_ops`) over mfusepy (`mfusepy_shim`: what its public API lacks).

Importing the package asks mfusepy for libfuse 3 when both libfuse 2 and 3 are installed (it
loads libfuse 2 first otherwise), unless ``FUSE_LIBRARY_PATH`` or ``FUSE_LIBRARY_NAME`` says which:
mfusepy picks its library when it is first imported, which every module of this package does.
libfuse 3 lets the kernel send reads of up to 1 MiB (libfuse 2: 128 KiB).
"""

from __future__ import annotations

import os
from ctypes.util import find_library


def _prefer_libfuse3() -> None:
    if "FUSE_LIBRARY_PATH" in os.environ or "FUSE_LIBRARY_NAME" in os.environ:
        return
    if find_library("fuse3"):
        os.environ["FUSE_LIBRARY_NAME"] = "fuse3"


_prefer_libfuse3()
