"""Fetch whole keys and byte ranges from any zarr store into one host slab.

A LocalStore whose IO is LocalStore's own is read straight from its files (io.files);
any other store through its own methods, with the array's buffer prototype: sync stores
(`get_sync`) from the thread pool, async-only stores concurrently on the event loop (see
io.access for when each may be used). Fetched buffers are copied into the slab one by
one and released as they go, and a range the store returns short (an index entry that
reaches past the end of its shard) is clipped, as zarr's own slicing does; nothing is
allocated from sizes a store has not delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.io import files
from cuzarr.io.access import access
from cuzarr.io.files import IndexRead, ShardFiles
from cuzarr.plan.coalesce import coalesce
from cuzarr.timers import timed
from cuzarr.workers import map_ranges

__all__ = ["HostReader", "IndexRead", "ShardsVanished", "store_prototype"]


def _empty(nbytes: int) -> np.ndarray:
    return np.empty(nbytes, dtype=np.uint8)


def store_prototype(prototype: Any) -> Any:
    """The prototype a store's own methods are called with: the array's (zarr's configured
    buffer class, which a store may check), except zarr's own GPU buffers, for which the
    host prototype serves: cuzarr stages stored bytes in host memory and uploads a tile in
    one copy, and a GPU buffer per chunk would go to the device and back first."""
    from zarr.core.buffer import cpu, default_buffer_prototype, gpu

    if prototype is None:
        prototype = default_buffer_prototype()
    return cpu.buffer_prototype if prototype.buffer is gpu.Buffer else prototype


class HostReader:
    """Reads for one store, with a given thread count and async concurrency."""

    def __init__(self, store: Any, threads: int, concurrency: int = 64,
                 alloc: Callable[[int], np.ndarray] | None = None,
                 prototype: Any = None) -> None:
        """alloc(nbytes): makes the host slabs chunk bytes land in (the device's
        `host_empty`: pinned memory for the cuda device); plain numpy memory by default.
        prototype: the array's buffer prototype (store_prototype says which one the
        store's own methods are called with; zarr's configured default when None)."""
        self.store = store
        self.threads = threads
        self.concurrency = concurrency
        self.alloc = alloc or _empty
        self.prototype = store_prototype(prototype)
        self.access = access(store)
        self.root = self.access.root
        self.sync = self.root is None and self.access.sync_reads

    @property
    def blocking(self) -> bool:
        """True when this store is read with blocking calls (LocalStore, sync stores)."""
        return self.root is not None or self.sync

    # -- whole keys ------------------------------------------------------------------

    @timed("io, async")
    async def whole(self, keys: list[str]) -> tuple[ByteBatch, np.ndarray]:
        """Read each key whole. Returns the present keys' bytes and a presence mask."""
        if self.blocking:
            return await asyncio.to_thread(self.whole_sync, keys)
        return _pack(await self._fetch_async(keys, [None] * len(keys)), self.alloc)

    def whole_sync(self, keys: list[str], size_hint: int | None = None
                   ) -> tuple[ByteBatch, np.ndarray]:
        """`whole` for blocking stores, on the calling thread and the pool. `size_hint`:
        the bytes a value is expected to hold at most, where known (files.read_whole)."""
        if self.root is not None:
            return files.read_whole(self.root, keys, self.threads, self.alloc, size_hint)
        return _pack(self._fetch_sync(keys, [None] * len(keys)), self.alloc)

    def windows_sync(
        self, keys: list[str], starts: np.ndarray, length: int, whole: int
    ) -> tuple[ByteBatch, np.ndarray]:
        """Read bytes [starts[i], starts[i] + length) of each LocalStore key, whose size must
        be `whole` (an uncompressed chunk). Returns the present keys' windows, one fixed-size
        slab, and a presence mask."""
        if self.root is None:
            raise TypeError("window reads need a LocalStore read through its files")
        return files.read_windows(self.root, keys, starts, length, whole, self.threads)

    # -- shards ------------------------------------------------------------------------

    def open_shards(self, keys: list[str], lock: bool = True) -> ShardFiles:
        """The shard files of `keys`, open until closed (LocalStore read through its files):
        each shard's index and inner chunks are then read from one version of it (`lock`:
        hold the shards' locks shared meanwhile; see ShardFiles)."""
        if self.root is None:
            raise TypeError("shard files are opened on a LocalStore read through its files")
        return ShardFiles(self.root, keys, self.threads, lock)

    @timed("io, async")
    async def index(self, keys: list[str], nbytes: int, at_start: bool) -> IndexRead:
        """Read the `nbytes`-long index at the start or end of each shard (any store but
        one read through its files: there, `open_shards`)."""
        if self.blocking:
            return await asyncio.to_thread(self.index_sync, keys, nbytes, at_start)
        return _index_result(await self._fetch_async(keys, _index_requests(keys, nbytes,
                                                                           at_start)))

    def index_sync(self, keys: list[str], nbytes: int, at_start: bool) -> IndexRead:
        """`index` for blocking stores."""
        if self.root is not None:
            with self.open_shards(keys) as shards:
                return shards.index(nbytes, at_start, self.threads)
        return _index_result(self._fetch_sync(keys, _index_requests(keys, nbytes, at_start)))

    # -- byte ranges -----------------------------------------------------------------

    @timed("io, async")
    async def ranges(
        self,
        keys: list[str],
        key_index: np.ndarray,
        starts: np.ndarray,
        sizes: np.ndarray,
        *,
        max_gap_bytes: int,
        max_bytes: int,
    ) -> ByteBatch:
        """Read range i = keys[key_index[i]][starts[i] : starts[i] + sizes[i]], coalesced;
        a range the store returns short is clipped (its item holds what the store had)."""
        if self.blocking:
            return await asyncio.to_thread(
                lambda: self.ranges_sync(keys, key_index, starts, sizes,
                                         max_gap_bytes=max_gap_bytes, max_bytes=max_bytes))
        plan = coalesce(key_index, starts, sizes, max_gap_bytes=max_gap_bytes,
                        max_bytes=max_bytes)
        group_keys, requests = _group_requests(keys, plan)
        return _fill_groups(group_keys, plan, sizes, await self._fetch_async(group_keys,
                                                                             requests),
                            self.alloc)

    def ranges_sync(
        self,
        keys: list[str],
        key_index: np.ndarray,
        starts: np.ndarray,
        sizes: np.ndarray,
        *,
        max_gap_bytes: int,
        max_bytes: int,
    ) -> ByteBatch:
        """`ranges` for blocking stores read through their own methods."""
        if self.root is not None:
            raise TypeError("a LocalStore read through its files reads ranges through "
                            "open_shards")
        plan = coalesce(key_index, starts, sizes, max_gap_bytes=max_gap_bytes, max_bytes=max_bytes)
        group_keys, requests = _group_requests(keys, plan)
        return _fill_groups(group_keys, plan, sizes, self._fetch_sync(group_keys, requests),
                            self.alloc)

    # -- any other store -------------------------------------------------------------

    @timed("io")
    def _fetch_sync(self, keys: list[str], requests: list[Any]) -> list[Any]:
        """Fetch (key, byte_range) pairs from a sync store on the pool; host uint8 arrays or
        None each (a request of None for a zero-length range is not sent)."""
        prototype = self.prototype
        store = self.store
        out: list[Any] = [None] * len(keys)

        def work(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                if requests[i] is _NOTHING:
                    out[i] = _EMPTY
                    continue
                buf = store.get_sync(keys[i], prototype=prototype, byte_range=requests[i])
                out[i] = None if buf is None else _host(buf)

        map_ranges(work, len(keys), self.threads, min_items=16)
        return out

    async def _fetch_async(self, keys: list[str], requests: list[Any]) -> list[Any]:
        """Fetch (key, byte_range) pairs concurrently from an async store."""
        prototype = self.prototype
        store = self.store
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(i: int) -> Any:
            if requests[i] is _NOTHING:
                return _EMPTY
            async with semaphore:
                buf = await store.get(keys[i], prototype=prototype, byte_range=requests[i])
            return None if buf is None else _host(buf)

        return list(await asyncio.gather(*(one(i) for i in range(len(keys)))))


#: a request not sent (a zero-length range), and what it yields
_NOTHING = object()
_EMPTY = np.zeros(0, dtype=np.uint8)


def _host(buf: Any) -> np.ndarray:
    """A store's Buffer as a host uint8 array (no copy for host buffers)."""
    return np.asarray(buf.as_numpy_array()).reshape(-1).view(np.uint8)


def _pack(buffers: list[Any], alloc: Callable[[int], np.ndarray]
          ) -> tuple[ByteBatch, np.ndarray]:
    """Fetched values (None: missing) into one slab, each released once copied, so that
    a wave holds its fetched bytes about once, not twice."""
    present = np.fromiter((b is not None for b in buffers), dtype=bool, count=len(buffers))
    idx = np.flatnonzero(present).tolist()
    sizes = np.array([buffers[i].size for i in idx], dtype=np.int64)
    offsets = np.zeros(len(idx), dtype=np.int64)
    if len(idx) > 1:
        np.cumsum(sizes[:-1], out=offsets[1:])
    slab = alloc(int(sizes.sum()))
    for j, i in enumerate(idx):
        start = int(offsets[j])
        slab[start : start + int(sizes[j])] = buffers[i]
        buffers[i] = None
    return ByteBatch(slab, offsets, sizes), present


def _index_requests(keys: list[str], nbytes: int, at_start: bool) -> list[Any]:
    from zarr.abc.store import RangeByteRequest, SuffixByteRequest

    request = RangeByteRequest(0, nbytes) if at_start else SuffixByteRequest(nbytes)
    return [request] * len(keys)


def _index_result(buffers: list[Any]) -> IndexRead:
    batch, present = _pack(buffers, _empty)
    return IndexRead(batch, present, None)


def _group_requests(keys: list[str], plan: Any) -> tuple[list[str], list[Any]]:
    from zarr.abc.store import RangeByteRequest

    group_keys = [keys[int(k)] for k in plan.group_key]
    requests = [
        RangeByteRequest(int(s), int(s + z)) if z > 0 else _NOTHING
        for s, z in zip(plan.group_start.tolist(), plan.group_size.tolist(), strict=True)
    ]
    return group_keys, requests


class ShardsVanished(Exception):
    """Some shards whose index was read were gone when their ranges were (deleted
    meanwhile): `which` are their positions in the keys of the ranges read."""

    def __init__(self, which: list[int]) -> None:
        super().__init__(f"{len(which)} shards vanished while they were read")
        self.which = which

    def without(self, index: IndexRead) -> IndexRead:
        """`index` with these shards missing (zarr's sharding, when a chunk read finds
        its shard gone, returns the fill value)."""
        present = index.present.copy()
        present[np.flatnonzero(index.present)[self.which]] = False
        keep = np.setdiff1d(np.arange(len(index.batch)), self.which)
        sizes = None if index.shard_sizes is None else index.shard_sizes[keep]
        return IndexRead(index.batch.take(keep), present, sizes)


def _fill_groups(group_keys: list[str], plan: Any, sizes: np.ndarray, buffers: list[Any],
                 alloc: Callable[[int], np.ndarray]) -> ByteBatch:
    """Fetched coalesced groups into one slab, sized by what the store returned: a group
    that came back short clips the ranges in it (zarr slices the same way); groups whose
    shard was gone raise ShardsVanished."""
    gone = sorted({int(plan.group_key[g]) for g, buf in enumerate(buffers) if buf is None})
    if gone:
        raise ShardsVanished(gone)
    got = np.fromiter((b.size for b in buffers), dtype=np.int64, count=len(buffers))
    got = np.minimum(got, plan.group_size)
    group_at = np.zeros(len(got), dtype=np.int64)
    if len(got) > 1:
        np.cumsum(got[:-1], out=group_at[1:])
    group = plan.member_group
    within = plan.member_slab_offset - plan.group_slab_offset[group]
    sizes = np.asarray(sizes, dtype=np.int64)
    clipped = np.clip(got[group] - within, 0, sizes)
    slab = alloc(int(got.sum()))
    for g in range(len(buffers)):
        start, size = int(group_at[g]), int(got[g])
        slab[start : start + size] = buffers[g][:size]
        buffers[g] = None
    return ByteBatch(slab, group_at[group] + np.minimum(within, got[group]), clipped)
