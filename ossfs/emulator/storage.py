"""On-disk object store of the emulator: data files plus one SQLite index.

Each object's bytes live in their own file under ``objects/`` (0-byte objects and symlinks have
none); the index (``index.sqlite3``) holds buckets and every object's metadata, keyed
``(bucket, key)`` in a WITHOUT ROWID table so listing is an ordered index seek. Writes go to a
temp file first and are renamed into place before the index row is committed, so a crash never
leaves a row pointing at half a file. SQLite's BINARY collation compares UTF-8 bytes, which is
the order OSS lists keys in (and Python's ``str`` order).

Thread-safe: one connection guarded by a lock; file data is read outside the lock (an open file
descriptor keeps replaced data readable). This module knows nothing of HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from ossfs.core.crc64 import crc64

log = logging.getLogger(__name__)

INDEX_NAME: Final = "index.sqlite3"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    created_ns INTEGER NOT NULL,
    storage_class TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    crc64 TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    object_type TEXT NOT NULL,
    symlink_target TEXT,
    user_meta TEXT NOT NULL,
    content_md5 TEXT,
    data_name TEXT,
    restore_ready_ns INTEGER,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
"""
_COLUMNS: Final = (
    "bucket, key, size, etag, crc64, mtime_ns, content_type, storage_class, object_type, "
    "symlink_target, user_meta, content_md5, data_name, restore_ready_ns"
)
STORAGE_CLASSES: Final = frozenset({"Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive"})
ARCHIVE_CLASSES: Final = frozenset({"Archive", "ColdArchive", "DeepColdArchive"})
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
_CHUNK: Final = 1 << 20


class StorageError(Exception):
    """Base of the storage errors the HTTP layer maps to OSS error codes."""


class NoSuchBucketError(StorageError):
    pass


class AlreadyExistsError(StorageError):
    """``forbid_overwrite`` was set and the key exists."""


class DigestMismatchError(StorageError):
    """The body's MD5 differs from the Content-MD5 the client sent."""


class BucketNotEmptyError(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One object's metadata. ``etag`` is upper-case hex without quotes; ``crc64`` is uint64."""

    bucket: str
    key: str
    size: int
    etag: str
    crc64: int
    mtime_ns: int
    content_type: str
    storage_class: str = "Standard"
    object_type: str = "Normal"
    symlink_target: str | None = None
    user_meta: tuple[tuple[str, str], ...] = field(default=())
    content_md5: str | None = None
    data_name: str | None = None
    restore_ready_ns: int | None = None

    @property
    def mtime_s(self) -> int:
        return self.mtime_ns // 1_000_000_000

    @property
    def is_symlink(self) -> bool:
        return self.object_type == "Symlink"

    @property
    def is_archive(self) -> bool:
        return self.storage_class in ARCHIVE_CLASSES


@dataclass(frozen=True, slots=True)
class BucketRecord:
    name: str
    created_ns: int
    storage_class: str


def _row_to_record(row: tuple[object, ...]) -> ObjectRecord:
    (bucket, key, size, etag, crc, mtime_ns, ctype, sclass, otype, target, meta, md5, data, rr) = (
        row
    )
    meta_pairs = tuple((str(k), str(v)) for k, v in json.loads(str(meta)))
    return ObjectRecord(
        bucket=str(bucket),
        key=str(key),
        size=int(str(size)),
        etag=str(etag),
        crc64=int(str(crc)),
        mtime_ns=int(str(mtime_ns)),
        content_type=str(ctype),
        storage_class=str(sclass),
        object_type=str(otype),
        symlink_target=None if target is None else str(target),
        user_meta=meta_pairs,
        content_md5=None if md5 is None else str(md5),
        data_name=None if data is None else str(data),
        restore_ready_ns=None if rr is None else int(str(rr)),
    )


def _record_values(rec: ObjectRecord) -> tuple[object, ...]:
    return (
        rec.bucket,
        rec.key,
        rec.size,
        rec.etag,
        str(rec.crc64),  # uint64 does not fit SQLite's signed INTEGER
        rec.mtime_ns,
        rec.content_type,
        rec.storage_class,
        rec.object_type,
        rec.symlink_target,
        json.dumps([list(p) for p in rec.user_meta]),
        rec.content_md5,
        rec.data_name,
        rec.restore_ready_ns,
    )


class BlobWriter:
    """A temp file being filled with an object's bytes; tracks size, MD5 and CRC-64 as it goes.

    Not thread-safe (one writer per request). Hand it to `Storage.commit` or call `discard`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in finish/discard
        self._md5 = hashlib.md5()
        self.crc64 = 0
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self._md5.update(data)
        self.crc64 = crc64(data, self.crc64)
        self.size += len(data)

    @property
    def md5(self) -> bytes:
        return self._md5.digest()

    def finish(self) -> None:
        if not self._file.closed:
            self._file.close()

    def discard(self) -> None:
        self.finish()
        self.path.unlink(missing_ok=True)


class Storage:
    """Buckets and objects under ``data_dir``; survives restarts. Thread-safe."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._objects_dir = data_dir / "objects"
        self._tmp_dir = data_dir / "tmp"
        self._objects_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self._tmp_dir, ignore_errors=True)  # leftovers of interrupted PUTs
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            data_dir / INDEX_NAME, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- buckets ---------------------------------------------------------------------------------

    def create_bucket(self, name: str, storage_class: str = "Standard") -> bool:
        """Create ``name`` unless it exists; return whether it was created."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO buckets VALUES (?, ?, ?)",
                (name, time.time_ns(), storage_class),
            )
            return cur.rowcount == 1

    def bucket(self, name: str) -> BucketRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT name, created_ns, storage_class FROM buckets WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else BucketRecord(str(row[0]), int(row[1]), str(row[2]))

    def buckets(self) -> list[BucketRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, created_ns, storage_class FROM buckets ORDER BY name"
            ).fetchall()
        return [BucketRecord(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    def delete_bucket(self, name: str) -> None:
        """Raise `NoSuchBucketError` or `BucketNotEmptyError`."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM buckets WHERE name = ?", (name,)).fetchone() is None:
                raise NoSuchBucketError(name)
            if self._db.execute(
                "SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (name,)
            ).fetchone():
                raise BucketNotEmptyError(name)
            self._db.execute("DELETE FROM buckets WHERE name = ?", (name,))

    def object_count(self, bucket: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM objects WHERE bucket = ?", (bucket,))
            return int(row.fetchone()[0])

    # -- objects ---------------------------------------------------------------------------------

    def new_blob(self) -> BlobWriter:
        return BlobWriter(self._tmp_dir / f"{uuid.uuid4().hex}.part")

    def _data_path(self, data_name: str) -> Path:
        return self._objects_dir / data_name[:2] / data_name

    def commit(
        self,
        bucket: str,
        key: str,
        blob: BlobWriter,
        *,
        content_type: str | None = None,
        storage_class: str = "Standard",
        user_meta: Mapping[str, str] | None = None,
        expected_md5: bytes | None = None,
        forbid_overwrite: bool = False,
        mtime_ns: int | None = None,
    ) -> ObjectRecord:
        """Make the blob the object ``bucket/key``; the blob is consumed (even on error).

        Raise `NoSuchBucketError`, `DigestMismatchError`, `AlreadyExistsError`.
        """
        blob.finish()
        try:
            if expected_md5 is not None and expected_md5 != blob.md5:
                raise DigestMismatchError(key)
            data_name: str | None = None
            if blob.size:
                data_name = uuid.uuid4().hex
                dest = self._data_path(data_name)
                dest.parent.mkdir(exist_ok=True)
                os.replace(blob.path, dest)
            rec = ObjectRecord(
                bucket=bucket,
                key=key,
                size=blob.size,
                etag=blob.md5.hex().upper(),
                crc64=blob.crc64,
                mtime_ns=time.time_ns() if mtime_ns is None else mtime_ns,
                content_type=content_type or DEFAULT_CONTENT_TYPE,
                storage_class=storage_class,
                user_meta=tuple(sorted((k.lower(), v) for k, v in (user_meta or {}).items())),
                content_md5=base64.b64encode(blob.md5).decode(),
                data_name=data_name,
            )
            try:
                self._insert([rec], forbid_overwrite=forbid_overwrite)
            except StorageError:
                if data_name is not None:
                    self._data_path(data_name).unlink(missing_ok=True)
                raise
            return rec
        finally:
            blob.path.unlink(missing_ok=True)

    def put_bytes(self, bucket: str, key: str, data: bytes, **kwargs: object) -> ObjectRecord:
        """Convenience over `new_blob` + `commit` (same keyword arguments as `commit`)."""
        blob = self.new_blob()
        try:
            blob.write(data)
        except BaseException:
            blob.discard()
            raise
        return self.commit(bucket, key, blob, **kwargs)  # type: ignore[arg-type]

    def put_empty_many(self, bucket: str, keys: Iterable[str]) -> int:
        """Create many 0-byte objects in one transaction (fast fixture for big listings)."""
        empty_md5 = hashlib.md5(b"").digest()
        now = time.time_ns()
        recs = [
            ObjectRecord(
                bucket=bucket,
                key=k,
                size=0,
                etag=empty_md5.hex().upper(),
                crc64=0,
                mtime_ns=now,
                content_type=DEFAULT_CONTENT_TYPE,
                content_md5=base64.b64encode(empty_md5).decode(),
            )
            for k in keys
        ]
        self._insert(recs, forbid_overwrite=False)
        return len(recs)

    def put_symlink(
        self,
        bucket: str,
        key: str,
        target: str,
        *,
        content_type: str | None = None,
        storage_class: str = "Standard",
        user_meta: Mapping[str, str] | None = None,
        forbid_overwrite: bool = False,
    ) -> ObjectRecord:
        """Create or replace a symlink object; its ETag is the MD5 of the target name."""
        digest = hashlib.md5(target.encode()).digest()
        rec = ObjectRecord(
            bucket=bucket,
            key=key,
            size=0,
            etag=digest.hex().upper(),
            crc64=0,
            mtime_ns=time.time_ns(),
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            storage_class=storage_class,
            object_type="Symlink",
            symlink_target=target,
            user_meta=tuple(sorted((k.lower(), v) for k, v in (user_meta or {}).items())),
        )
        self._insert([rec], forbid_overwrite=forbid_overwrite)
        return rec

    def _insert(self, recs: list[ObjectRecord], *, forbid_overwrite: bool) -> None:
        garbage: list[str] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                buckets = {r.bucket for r in recs}
                for b in buckets:
                    if (
                        self._db.execute("SELECT 1 FROM buckets WHERE name = ?", (b,)).fetchone()
                        is None
                    ):
                        raise NoSuchBucketError(b)
                for rec in recs:
                    old = self._db.execute(
                        "SELECT data_name FROM objects WHERE bucket = ? AND key = ?",
                        (rec.bucket, rec.key),
                    ).fetchone()
                    if old is not None:
                        if forbid_overwrite:
                            raise AlreadyExistsError(rec.key)
                        if old[0] is not None:
                            garbage.append(str(old[0]))
                    self._db.execute(
                        f"INSERT OR REPLACE INTO objects ({_COLUMNS}) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        _record_values(rec),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            # Under the lock, so `open_object` never sees a row whose file is already gone.
            for name in garbage:
                self._data_path(name).unlink(missing_ok=True)

    def get(self, bucket: str, key: str) -> ObjectRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
        return None if row is None else _row_to_record(row)

    def open_object(self, bucket: str, key: str) -> tuple[ObjectRecord, BinaryIO | None] | None:
        """Look up ``key`` and open its data (None for 0-byte objects) atomically.

        The caller owns the returned file. Returns None when the key does not exist.
        """
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
            if row is None:
                return None
            rec = _row_to_record(row)
            if rec.data_name is None:
                return rec, None
            return rec, open(self._data_path(rec.data_name), "rb")

    def delete(self, bucket: str, key: str) -> bool:
        """Delete ``key``; return whether it existed. Raise `NoSuchBucketError`."""
        with self._lock:
            if (
                self._db.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone()
                is None
            ):
                raise NoSuchBucketError(bucket)
            row = self._db.execute(
                "SELECT data_name FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
            if row is None:
                return False
            self._db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
            if row[0] is not None:
                self._data_path(str(row[0])).unlink(missing_ok=True)
            return True

    def set_restore(self, bucket: str, key: str, ready_ns: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE objects SET restore_ready_ns = ? WHERE bucket = ? AND key = ?",
                (ready_ns, bucket, key),
            )

    def scan(self, bucket: str, start: str, *, inclusive: bool, limit: int) -> list[ObjectRecord]:
        """Up to ``limit`` objects with key ``>= start`` (or ``> start``), in key order."""
        op = ">=" if inclusive else ">"
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM objects WHERE bucket = ? AND key {op} ? "
                "ORDER BY key LIMIT ?",
                (bucket, start, limit),
            ).fetchall()
        return [_row_to_record(r) for r in rows]
