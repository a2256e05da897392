"""The objects a mount is made of, built from its `MountConfig` and wired together: the block
buffers, the store, the filesystem with its caches and read-ahead, the memory-pressure monitor,
and the probe that checks the bucket before mounting.

It builds and connects; it does not mount, daemonize or log the mount's start (`mounting`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import logging.handlers
import os
import time
from typing import Final, Protocol

from ossfs.app.malloc import trim_malloc
from ossfs.app.memory_budget import OWN_PEAK_BYTES, memory_settings
from ossfs.app.memory_limit import usage_reader
from ossfs.app.mount_config import MountConfig
from ossfs.core.errors import AccessDeniedError, NotFoundError, OssfsError, UsageError
from ossfs.core.object_store import ObjectStore
from ossfs.fs.filesystem import Filesystem, FsConfig
from ossfs.fs.namespace import Namespace
from ossfs.net.environ import environ_ca_bundle, environ_proxies
from ossfs.obs.stats import MountStats, StoreCounters, rss_bytes
from ossfs.read.block_cache import BlockCache
from ossfs.read.buffers import BufferPool
from ossfs.read.disk.cache_dir import CacheDirError, prepare_directory
from ossfs.read.disk.disk_cache import DiskCache
from ossfs.read.disk.tiered_store import TieredStore, mark_read_ahead_thread
from ossfs.read.handle_prefetch import PrefetchConfig
from ossfs.read.prefetch import Prefetcher
from ossfs.read.pressure import PressureConfig, PressureMonitor
from ossfs.read.sibling_prefetch import SiblingPrefetchConfig, SiblingPrefetcher, WholeFetcher
from ossfs.store.config import OssConfig
from ossfs.store.oss_store import OssStore
from ossfs.store.retry import RetryPolicy

log = logging.getLogger(__name__)


_PREFETCH_WORKERS: Final = 16
_POOL_BLOCKS: Final = 32
# While memory is short the cache still keeps this many blocks: the ones readers are in (a
# reader served 128 KiB at a time from a 1 MiB block would otherwise fetch it 8 times).
_FLOOR_BLOCKS: Final = 16
# Directory read-ahead GETs in flight at most: with 20 ms to a first byte (remote), 16 capped
# small files at ~630 files/s whatever the readers did; up to 48 gave ~900-1,000 (8 readers).
# How many are used follows the readers' pace (`sibling_prefetch.ReadAheadPace`): on a fast
# link two dozen or so. Memory still bounds it (each counts as one block of the in-flight budget).
_SIBLING_WORKERS: Final = 48
# Fetched blocks waiting for the disk cache's writer, at most: 1/16 of the memory budget, at
# most 32 MiB (the writer keeps up with a fast link: writes go to the page cache), taken from
# the budget. A block that finds it full is not written (the next read of it is a GET again).
_DISK_QUEUE_SHARE: Final = 16
_DISK_QUEUE_MAX_BYTES: Final = 32 << 20


class MountStore(ObjectStore, StoreCounters, Protocol):
    """What a mount needs of its store (`OssStore`): the `ObjectStore`, its counters for the
    stats, and for read-ahead the link's latency and a runner of whole-object GETs."""

    def first_byte_s(self) -> float | None:
        """The recent time to a GET's first byte; None while not known."""
        ...

    def whole_fetcher(self, *, max_idle: int) -> WholeFetcher | None:
        """A new runner of directory read-ahead's GETs (its user closes it), or None: they run
        on worker threads."""
        ...


def block_buffers(config: MountConfig) -> BufferPool:
    """The mount's pool of free block buffers: a small part of what the cache leaves of the
    memory budget (at most 32 blocks), so buffers go round instead of being allocated anew."""
    spare_blocks = (config.max_memory_bytes - config.cache_size_bytes) // config.block_size_bytes
    return BufferPool(config.block_size_bytes, max(0, min(_POOL_BLOCKS, spare_blocks // 4)))


def build_store(config: MountConfig, buffers: BufferPool | None = None) -> OssStore:
    creds = config.credentials
    return OssStore(
        OssConfig(
            endpoint=config.endpoint,
            bucket=config.location.bucket,
            access_key_id=creds.access_key_id if creds else None,
            access_key_secret=creds.access_key_secret if creds else None,
            security_token=creds.security_token if creds else None,
            region=config.region,
            pool_size=config.workers,
            connect_timeout_s=config.connect_timeout_s,
            low_speed_limit_bytes=config.low_speed_limit_bytes,
            low_speed_time_s=config.stall_window_s,
            retry=RetryPolicy(
                max_attempts=config.retry_attempts,
                total_budget_s=config.retry_budget_s,
                base_delay_s=min(0.05, config.retry_budget_s),
                max_delay_s=min(2.0, config.retry_budget_s),
            ),
            ca_bundle=environ_ca_bundle(os.environ),
        ),
        proxies=environ_proxies,
        take_buffer=buffers.take if buffers is not None else None,
    )


def probe(store: ObjectStore, config: MountConfig) -> None:
    """One cheap request; failures become one-line `UsageError`s saying what to do."""
    where = f"oss://{config.location.bucket} at {config.endpoint}"
    try:
        store.probe()
    except NotFoundError as exc:
        raise UsageError(f"bucket {where} not found ({exc}); check the name and endpoint") from None
    except AccessDeniedError as exc:
        raise UsageError(
            f"access to {where} denied ({exc}); check the credentials from "
            f"{config.credentials_source} (or --anonymous for a public bucket)"
        ) from None
    except OssfsError as exc:
        raise UsageError(
            f"cannot reach {where} ({exc}); check --endpoint and the network"
        ) from None


def prepare_cache_dir(config: MountConfig) -> None:
    """Create ``--cache-dir`` (mode 700) if missing and check it can be written: a
    `UsageError` before anything is mounted if not."""
    if config.cache_dir is not None:
        try:
            prepare_directory(config.cache_dir)
        except CacheDirError as exc:
            raise UsageError(str(exc)) from None


def disk_queue_bytes(config: MountConfig) -> int:
    """The disk cache writer's queue (0 without ``--cache-dir``), part of the memory budget."""
    if config.cache_dir is None:
        return 0
    share = min(_DISK_QUEUE_MAX_BYTES, config.max_memory_bytes // _DISK_QUEUE_SHARE)
    return max(2 * config.block_size_bytes, share)


def build_disk_cache(config: MountConfig, buffers: BufferPool | None) -> DiskCache | None:
    """The mount's disk cache (``--cache-dir``; None without), not started."""
    if config.cache_dir is None:
        return None
    return DiskCache(
        config.cache_dir,
        bucket=config.location.bucket,
        block_size=config.block_size_bytes,
        capacity_bytes=config.cache_dir_size_bytes,
        queue_bytes=disk_queue_bytes(config),
        take_buffer=buffers.take if buffers is not None else None,
        give_buffer=buffers.give if buffers is not None else None,
    )


def build_filesystem(
    config: MountConfig,
    store: MountStore,
    buffers: BufferPool | None = None,
    *,
    disk: DiskCache | None = None,
) -> tuple[Filesystem, MountStats, PressureMonitor | None]:
    """The filesystem over ``store``, the gatherer of its live counters, and the monitor that
    shrinks its block memory as the memory limit nears (None without a known limit; not
    started). ``buffers``: the pool the store reads into (the cache gives evicted blocks back
    to it). ``disk``: the disk cache under the block cache (reads of blocks look there first).

    One account holds every block buffer (`BlockCache`): cached blocks (read-ahead that has
    arrived and is not read yet included) and blocks being fetched by reads and read-ahead, all
    within the budget less the free buffers the pool may keep."""
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="lookup")
    namespace = Namespace(
        store,
        root_prefix=config.location.prefix,
        metadata_ttl_s=config.metadata_ttl_s,
        lookup_executor=executor,
    )
    # Read-ahead GETs of every open file share these workers (and the store's connection pool).
    # Their fetched blocks wait for room in the disk writers' queue (`TieredStore`).
    prefetch_executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=min(_PREFETCH_WORKERS, config.workers),
        thread_name_prefix="prefetch",
        initializer=mark_read_ahead_thread,
    )
    pooled = buffers.max_bytes if buffers is not None else 0
    # Blocks queued for the disk writer are held beside the cache: their room comes off it.
    pooled += disk_queue_bytes(config) if disk is not None else 0
    cache = BlockCache(
        config.cache_size_bytes,
        buffers,
        total_bytes=max(config.cache_size_bytes, config.max_memory_bytes - pooled),
        on_discard_object=disk.discard_version if disk is not None else None,
    )
    reads: ObjectStore = store
    tiered = None
    if disk is not None:
        reads = tiered = TieredStore(store, disk)
        # Blocks that found the disk writers' queue full are written later from the cache.
        disk.set_recall(
            lambda key, etag, index: cache.peek((key, etag, index)),
            lambda key, etag, index: cache.fetching((key, etag, index)),
        )
    # Read-ahead (in flight, or arrived and not yet read) gets what the cache and the free
    # buffers leave of the budget; with nothing left (or with --no-prefetch) reads degrade to
    # one synchronous GET of their own blocks. Small files read ahead in directory order take
    # up to a quarter of it in flight (one block each).
    inflight_bytes = max(0, config.max_memory_bytes - config.cache_size_bytes - pooled)
    sibling_gets = min(
        _SIBLING_WORKERS, config.workers * 3 // 4, inflight_bytes // 4 // config.block_size_bytes
    )
    # Sequential read-ahead's budget counts its blocks until they are read, and those that
    # arrived are in the cache: besides what is left for GETs in flight it gets a quarter of
    # the cache (one handle's largest window). Should more of it be in flight than the cache
    # leaves room for, the cache's account evicts its least recently used blocks.
    readahead_bytes = (
        inflight_bytes - sibling_gets * config.block_size_bytes + config.cache_size_bytes // 4
    )
    prefetcher = (
        Prefetcher(
            prefetch_executor,
            PrefetchConfig(max_inflight_bytes=readahead_bytes),
            first_byte_s=store.first_byte_s,
        )
        if config.prefetch
        else None
    )
    siblings = None
    if config.prefetch and sibling_gets > 0:
        # Its GETs run on one thread (the HTTP engine's loop); a store without one (a scripted
        # transport) runs them on worker threads.
        fetcher = store.whole_fetcher(max_idle=sibling_gets)
        if tiered is not None:
            fetcher = tiered.wrap_fetcher(fetcher)
        log.debug(
            "directory read-ahead: up to %d GETs in flight, %s",
            sibling_gets,
            "on one thread (libcurl's multi interface)" if fetcher else "on worker threads",
        )
        siblings = SiblingPrefetcher(
            reads,
            cache,
            namespace.listed_children,
            concurrent.futures.ThreadPoolExecutor(
                max_workers=sibling_gets,
                thread_name_prefix="siblings",
                initializer=mark_read_ahead_thread,
            ),
            block_size_bytes=config.block_size_bytes,
            config=SiblingPrefetchConfig(max_inflight_gets=sibling_gets),
            fetcher=fetcher,
        )
    fs = Filesystem(
        namespace,
        reads,
        cache,
        FsConfig(
            uid=config.uid,
            gid=config.gid,
            file_mode=config.file_mode,
            dir_mode=config.dir_mode,
            block_size_bytes=config.block_size_bytes,
        ),
        mount_time_ns=time.time_ns(),
        prefetcher=prefetcher,
        sibling_prefetcher=siblings,
    )
    pressure = build_pressure(config, cache, buffers, prefetcher, siblings)
    stats = MountStats(
        mount=str(config.location),
        store=store,
        cache=cache,
        cache_capacity_bytes=config.cache_size_bytes,
        namespace=namespace,
        prefetcher=prefetcher,
        sibling_prefetcher=siblings,
        open_handles=fs.open_handles,
        memory=memory_settings(config.memory_limit, config.max_memory_bytes),
        pressure=pressure,
        disk_cache=disk,
    )
    return fs, stats, pressure


def build_pressure(
    config: MountConfig,
    cache: BlockCache,
    buffers: BufferPool | None,
    prefetcher: Prefetcher | None,
    siblings: SiblingPrefetcher | None,
) -> PressureMonitor | None:
    """The monitor of the memory limit's usage that scales the cache, the free buffers and
    both read-aheads together (None without a known limit)."""
    limit = config.memory_limit
    if limit is None:
        return None
    pool_buffers = buffers.max_bytes // buffers.buffer_bytes if buffers is not None else 0
    floor = _FLOOR_BLOCKS * config.block_size_bytes

    def scale_block_memory(scale: float) -> None:
        if buffers is not None:  # first: what the cache evicts next is unmapped, not kept
            buffers.limit(int(pool_buffers * scale))
        cache.resize(scale, floor_bytes=floor)
        if prefetcher is not None:
            prefetcher.set_scale(scale)
        if siblings is not None:
            siblings.set_scale(scale)

    def block_bytes() -> int:
        free = buffers.free_bytes if buffers is not None else 0
        return cache.used_bytes + cache.reserved_bytes + free

    return PressureMonitor(
        usage_reader(limit),
        block_bytes,
        PressureConfig(
            limit.limit_bytes, config.max_memory_bytes, own_reserve_bytes=OWN_PEAK_BYTES
        ),
        scale_block_memory,
        on_shrink=trim_malloc,
        own_bytes=rss_bytes,
    )
