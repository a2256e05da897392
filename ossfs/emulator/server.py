"""`EmulatorServer`: wires storage, faults, the request log and the HTTP listeners together.

Start it in-process (tests, benchmarks, `ossfs demo`) or through `ossfs emulator`. The OSS
listener serves the OSS dialect (plus the admin API); an optional second listener serves a
read-only, anonymous S3 dialect for peer tools. Fixture helpers write straight to storage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

from ossfs.emulator.config import Context, EmulatorConfig, valid_bucket_name
from ossfs.emulator.faults import Faults
from ossfs.emulator.handler import OssHandler
from ossfs.emulator.httpbase import EmulatorHTTPServer
from ossfs.emulator.requestlog import RequestLog
from ossfs.emulator.s3 import S3Handler
from ossfs.emulator.storage import BlobWriter, NoSuchBucketError, Storage

log = logging.getLogger(__name__)


class EmulatorServer:
    """A local OSS-compatible server. ``faults`` and ``log`` are thread-safe and live."""

    def __init__(self, config: EmulatorConfig, faults: Faults | None = None) -> None:
        self.config = config
        self.faults = faults or Faults()
        self.log = RequestLog()
        self._storage: Storage | None = None
        self._servers: list[EmulatorHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.endpoint = ""
        self.s3_endpoint: str | None = None

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            raise RuntimeError("the emulator is not started")
        return self._storage

    def start(self) -> None:
        """Open storage, create the configured buckets and listen; returns once listening."""
        if self._storage is not None:
            raise RuntimeError("the emulator is already started")
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self._storage = Storage(cfg.data_dir)
        for name in cfg.buckets:
            self._storage.create_bucket(name)
        ctx = Context(
            config=cfg,
            storage=self._storage,
            faults=self.faults,
            log=self.log,
            credentials={c.access_key_id: c for c in cfg.credentials},
        )
        oss = EmulatorHTTPServer((cfg.host, cfg.port), OssHandler, ctx)
        self._servers.append(oss)
        self.endpoint = f"http://{cfg.host}:{oss.server_address[1]}"
        if cfg.s3_port is not None:
            s3 = EmulatorHTTPServer((cfg.host, cfg.s3_port), S3Handler, ctx)
            self._servers.append(s3)
            self.s3_endpoint = f"http://{cfg.host}:{s3.server_address[1]}"
        for srv in self._servers:
            t = threading.Thread(
                target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            t.start()
            self._threads.append(t)
        log.info("emulator listening on %s (S3: %s)", self.endpoint, self.s3_endpoint)

    def stop(self) -> None:
        """Stop listening and close storage (idempotent)."""
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._storage is not None:
            self._storage.close()
            self._storage = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- fixture helpers (no HTTP) ---------------------------------------------------------------

    def create_bucket(self, name: str) -> None:
        if not valid_bucket_name(name):
            raise ValueError(f"invalid bucket name {name!r}")
        self.storage.create_bucket(name)

    def put_object(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        storage_class: str = "Standard",
        content_type: str | None = None,
        user_meta: Mapping[str, str] | None = None,
    ) -> str:
        """Store ``data``; return the ETag (upper-case hex, no quotes)."""
        return self.put_object_from_chunks(
            bucket,
            key,
            [data],
            storage_class=storage_class,
            content_type=content_type,
            user_meta=user_meta,
        )

    def put_object_from_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        *,
        storage_class: str = "Standard",
        content_type: str | None = None,
        user_meta: Mapping[str, str] | None = None,
    ) -> str:
        """Store a copy of the local file ``path``; return the ETag."""
        with open(path, "rb") as f:
            return self.put_object_from_chunks(
                bucket,
                key,
                iter(lambda: f.read(1 << 20), b""),
                storage_class=storage_class,
                content_type=content_type,
                user_meta=user_meta,
            )

    def put_object_from_chunks(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        storage_class: str = "Standard",
        content_type: str | None = None,
        user_meta: Mapping[str, str] | None = None,
    ) -> str:
        """Store the concatenation of ``chunks`` (streamed to disk); return the ETag."""
        blob = self.storage.new_blob()
        try:
            for chunk in chunks:
                blob.write(chunk)
        except BaseException:
            blob.discard()
            raise
        return self._commit(
            bucket,
            key,
            blob,
            storage_class=storage_class,
            content_type=content_type,
            user_meta=user_meta,
        )

    def _commit(
        self,
        bucket: str,
        key: str,
        blob: BlobWriter,
        *,
        storage_class: str,
        content_type: str | None,
        user_meta: Mapping[str, str] | None,
    ) -> str:
        rec = self.storage.commit(
            bucket,
            key,
            blob,
            content_type=content_type,
            storage_class=storage_class,
            user_meta=user_meta,
        )
        return rec.etag

    def put_empty_objects(self, bucket: str, keys: list[str]) -> None:
        """Many 0-byte objects in one transaction (big-listing fixtures)."""
        self.storage.put_empty_many(bucket, keys)

    def put_symlink(self, bucket: str, key: str, target: str) -> None:
        self.storage.put_symlink(bucket, key, target)

    def delete_object(self, bucket: str, key: str) -> None:
        try:
            self.storage.delete(bucket, key)
        except NoSuchBucketError:
            raise KeyError(bucket) from None
