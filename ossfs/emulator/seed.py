"""Import a local directory tree into a bucket (``ossfs emulator --seed DIR``).

Keys are the files' paths relative to the root, with ``/`` separators. Symlinks and special
files are skipped; directories produce no marker objects.
"""

from __future__ import annotations

import logging
import mimetypes
import os
from pathlib import Path

from ossfs.emulator.server import EmulatorServer

log = logging.getLogger(__name__)


def seed_directory(server: EmulatorServer, bucket: str, root: Path, *, prefix: str = "") -> int:
    """Copy every regular file under ``root`` to ``bucket``; return how many were stored."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                log.debug("seed: skipping %s (not a regular file)", path)
                continue
            key = prefix + path.relative_to(root).as_posix()
            content_type, _ = mimetypes.guess_type(name)
            server.put_object_from_file(bucket, key, path, content_type=content_type)
            count += 1
    return count
