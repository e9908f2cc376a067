"""Fetch whole keys and byte ranges from any zarr store into one host slab.

LocalStore is read with `os.preadv` straight into the slab from the thread pool
(no intermediate bytes objects); stores with synchronous IO are read from the
pool too; async-only stores are read concurrently on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.errors import ChunkDecodeError
from cuzarr.io.prototype import host_prototype
from cuzarr.plan.coalesce import coalesce
from cuzarr.workers import map_ranges

__all__ = ["HostReader", "IndexRead"]


@dataclass(frozen=True)
class IndexRead:
    """The index bytes of every present shard, and each shard's total size when known."""

    batch: ByteBatch  # one item per present shard
    present: np.ndarray  # bool per requested key
    shard_sizes: np.ndarray | None  # int64 per present shard, or None (size unknown)


def _local_root(store: Any) -> str | None:
    from zarr.storage import LocalStore

    if isinstance(store, LocalStore):
        return str(store.root)
    return None


def _supports_sync(store: Any) -> bool:
    from zarr.abc.store import _store_supports_sync_io

    return bool(_store_supports_sync_io(store))


@contextlib.contextmanager
def _opened(root: str, keys: list[str], threads: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Open every key under `root` from the pool: (fds, sizes), -1 for a missing key; all
    are closed on exit, whatever happened in between."""
    n = len(keys)
    fds = np.full(n, -1, dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)

    def open_all(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            try:
                fd = os.open(os.path.join(root, keys[i]), os.O_RDONLY)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            fds[i] = fd
            sizes[i] = os.fstat(fd).st_size

    try:
        map_ranges(open_all, n, threads, min_items=16)
        yield fds, sizes
    finally:
        for fd in fds[fds >= 0]:
            os.close(int(fd))


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Fill `view` from `fd` at `offset`; returns bytes read (short only at end of file)."""
    done = 0
    total = len(view)
    while done < total:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            break
        done += got
    return done


class HostReader:
    """Reads for one store, with a given thread count and async concurrency."""

    def __init__(self, store: Any, threads: int, concurrency: int = 64,
                 alloc: Callable[[int], np.ndarray] | None = None) -> None:
        """alloc(nbytes): makes the host slabs chunk bytes land in (the device's
        `host_empty`: pinned memory for the cuda device); plain numpy memory by default."""
        self.store = store
        self.threads = threads
        self.concurrency = concurrency
        self.alloc = alloc or _empty
        self.root = _local_root(store)
        self.sync = self.root is None and _supports_sync(store)

    # -- whole keys ------------------------------------------------------------------

    @property
    def blocking(self) -> bool:
        """True when this store is read with blocking calls (LocalStore, sync stores)."""
        return self.root is not None or self.sync

    async def whole(self, keys: list[str]) -> tuple[ByteBatch, np.ndarray]:
        """Read each key whole. Returns the present keys' bytes and a presence mask."""
        if self.blocking:
            return await asyncio.to_thread(self.whole_sync, keys)
        return _whole_result(await self._fetch_async(keys, [None] * len(keys)), self.alloc)

    def whole_sync(self, keys: list[str]) -> tuple[ByteBatch, np.ndarray]:
        """`whole` for blocking stores, on the calling thread and the pool."""
        if self.root is not None:
            return self._local_whole(keys)
        return _whole_result(self._fetch_sync(keys, [None] * len(keys)), self.alloc)

    def _local_whole(self, keys: list[str]) -> tuple[ByteBatch, np.ndarray]:
        assert self.root is not None
        with _opened(self.root, keys, self.threads) as (fds, sizes):
            present = fds >= 0
            idx = np.flatnonzero(present)
            item_sizes = sizes[idx]
            offsets = np.zeros(len(idx), dtype=np.int64)
            if len(idx) > 1:
                np.cumsum(item_sizes[:-1], out=offsets[1:])
            slab = self.alloc(int(item_sizes.sum()))
            view = memoryview(slab)

            def read_all(lo: int, hi: int) -> None:
                for j in range(lo, hi):
                    start, size = int(offsets[j]), int(item_sizes[j])
                    got = _pread_into(int(fds[idx[j]]), view[start : start + size], 0)
                    if got != size:
                        raise ChunkDecodeError(keys[idx[j]], "the file shrank while it was read")

            map_ranges(read_all, len(idx), self.threads, min_items=8)
        return ByteBatch(slab, offsets, item_sizes), present

    def windows_sync(
        self, keys: list[str], starts: np.ndarray, length: int, whole: int
    ) -> tuple[ByteBatch, np.ndarray]:
        """Read bytes [starts[i], starts[i] + length) of each LocalStore key, whose size must
        be `whole` (an uncompressed chunk). Returns the present keys' windows, one fixed-size
        slab, and a presence mask."""
        if self.root is None:
            raise TypeError("window reads need a LocalStore")
        with _opened(self.root, keys, self.threads) as (fds, sizes):
            present = fds >= 0
            idx = np.flatnonzero(present)
            bad = idx[sizes[idx] != whole]
            if bad.size:
                i = int(bad[0])
                raise ChunkDecodeError(keys[i], f"stored {int(sizes[i])} bytes, expected {whole}")
            slab = np.empty(len(idx) * length, dtype=np.uint8)
            view = memoryview(slab)

            def read_all(lo: int, hi: int) -> None:
                for j in range(lo, hi):
                    i = int(idx[j])
                    got = _pread_into(int(fds[i]), view[j * length : (j + 1) * length],
                                      int(starts[i]))
                    if got != length:
                        raise ChunkDecodeError(keys[i], "the file shrank while it was read")

            map_ranges(read_all, len(idx), self.threads, min_items=8)
        return ByteBatch.fixed(slab, len(idx), length), present

    # -- shard indexes ---------------------------------------------------------------

    async def index(self, keys: list[str], nbytes: int, at_start: bool) -> IndexRead:
        """Read the `nbytes`-long index at the start or end of each shard."""
        if self.blocking:
            return await asyncio.to_thread(self.index_sync, keys, nbytes, at_start)
        return _index_result(await self._fetch_async(keys, _index_requests(keys, nbytes, at_start)))

    def index_sync(self, keys: list[str], nbytes: int, at_start: bool) -> IndexRead:
        """`index` for blocking stores."""
        if self.root is not None:
            return self._local_index(keys, nbytes, at_start)
        return _index_result(self._fetch_sync(keys, _index_requests(keys, nbytes, at_start)))

    def _local_index(self, keys: list[str], nbytes: int, at_start: bool) -> IndexRead:
        n = len(keys)
        slab = np.empty(n * nbytes, dtype=np.uint8)
        view = memoryview(slab)
        got = np.zeros(n, dtype=np.int64)
        total = np.full(n, -1, dtype=np.int64)
        root = self.root

        def work(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                try:
                    fd = os.open(os.path.join(root, keys[i]), os.O_RDONLY)
                except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    continue
                try:
                    size = os.fstat(fd).st_size
                    total[i] = size
                    start = 0 if at_start else max(0, size - nbytes)
                    want = min(nbytes, size)
                    got[i] = _pread_into(fd, view[i * nbytes : i * nbytes + want], start)
                finally:
                    os.close(fd)

        map_ranges(work, n, self.threads, min_items=16)
        present = total >= 0
        idx = np.flatnonzero(present)
        batch = ByteBatch(slab, idx * nbytes, got[idx])
        return IndexRead(batch, present, total[idx])

    # -- byte ranges -----------------------------------------------------------------

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
        """Read range i = keys[key_index[i]][starts[i] : starts[i] + sizes[i]], coalesced."""
        limits = {"max_gap_bytes": max_gap_bytes, "max_bytes": max_bytes}
        if self.blocking:
            return await asyncio.to_thread(
                lambda: self.ranges_sync(keys, key_index, starts, sizes, **limits)
            )
        plan = coalesce(key_index, starts, sizes, **limits)
        group_keys, requests = _group_requests(keys, plan)
        slab = _fill_groups(group_keys, plan, await self._fetch_async(group_keys, requests),
                            self.alloc)
        return ByteBatch(slab, plan.member_slab_offset, np.asarray(sizes, dtype=np.int64))

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
        """`ranges` for blocking stores."""
        plan = coalesce(key_index, starts, sizes, max_gap_bytes=max_gap_bytes, max_bytes=max_bytes)
        if self.root is not None:
            slab = self.alloc(plan.slab_nbytes)
            self._local_ranges(keys, plan, slab)
        else:
            group_keys, requests = _group_requests(keys, plan)
            slab = _fill_groups(group_keys, plan, self._fetch_sync(group_keys, requests),
                                self.alloc)
        return ByteBatch(slab, plan.member_slab_offset, np.asarray(sizes, dtype=np.int64))

    def _local_ranges(self, keys: list[str], plan: Any, slab: np.ndarray) -> None:
        view = memoryview(slab)
        root = self.root

        def work(lo: int, hi: int) -> None:
            fd, fd_key = -1, -1
            try:
                for g in range(lo, hi):
                    k = int(plan.group_key[g])
                    if k != fd_key:
                        if fd >= 0:
                            os.close(fd)
                            fd = -1
                        try:
                            fd = os.open(os.path.join(root, keys[k]), os.O_RDONLY)
                        except FileNotFoundError:
                            raise ChunkDecodeError(
                                keys[k], "the shard disappeared while it was read"
                            ) from None
                        fd_key = k
                    off, size = int(plan.group_slab_offset[g]), int(plan.group_size[g])
                    got = _pread_into(fd, view[off : off + size], int(plan.group_start[g]))
                    if got != size:
                        raise ChunkDecodeError(
                            keys[k], "an inner chunk's byte range lies past the end of the shard"
                        )
            finally:
                if fd >= 0:
                    os.close(fd)

        map_ranges(work, len(plan.group_key), self.threads, min_items=4)

    # -- any other store -------------------------------------------------------------

    def _fetch_sync(self, keys: list[str], requests: list[Any]) -> list[Any]:
        """Fetch (key, byte_range) pairs from a sync store on the pool; bytes or None each."""
        prototype = host_prototype()
        store = self.store
        out: list[Any] = [None] * len(keys)

        def work(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                buf = store.get_sync(keys[i], prototype=prototype, byte_range=requests[i])
                out[i] = None if buf is None else buf.as_numpy_array()

        map_ranges(work, len(keys), self.threads, min_items=16)
        return out

    async def _fetch_async(self, keys: list[str], requests: list[Any]) -> list[Any]:
        """Fetch (key, byte_range) pairs concurrently from an async store."""
        prototype = host_prototype()
        store = self.store
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(i: int) -> Any:
            async with semaphore:
                buf = await store.get(keys[i], prototype=prototype, byte_range=requests[i])
            return None if buf is None else buf.as_numpy_array()

        return list(await asyncio.gather(*(one(i) for i in range(len(keys)))))


def _empty(nbytes: int) -> np.ndarray:
    return np.empty(nbytes, dtype=np.uint8)


def _whole_result(buffers: list[Any], alloc: Callable[[int], np.ndarray]
                  ) -> tuple[ByteBatch, np.ndarray]:
    present = np.fromiter((b is not None for b in buffers), dtype=bool, count=len(buffers))
    return ByteBatch.from_buffers([b for b in buffers if b is not None], alloc=alloc), present


def _index_requests(keys: list[str], nbytes: int, at_start: bool) -> list[Any]:
    from zarr.abc.store import RangeByteRequest, SuffixByteRequest

    request = RangeByteRequest(0, nbytes) if at_start else SuffixByteRequest(nbytes)
    return [request] * len(keys)


def _index_result(buffers: list[Any]) -> IndexRead:
    present = np.fromiter((b is not None for b in buffers), dtype=bool, count=len(buffers))
    return IndexRead(ByteBatch.from_buffers([b for b in buffers if b is not None]), present, None)


def _group_requests(keys: list[str], plan: Any) -> tuple[list[str], list[Any]]:
    from zarr.abc.store import RangeByteRequest

    group_keys = [keys[int(k)] for k in plan.group_key]
    requests = [
        RangeByteRequest(int(s), int(s + z))
        for s, z in zip(plan.group_start, plan.group_size, strict=True)
    ]
    return group_keys, requests


def _fill_groups(group_keys: list[str], plan: Any, buffers: list[Any],
                 alloc: Callable[[int], np.ndarray]) -> np.ndarray:
    """Copy fetched coalesced groups into their places in one slab."""
    slab = alloc(plan.slab_nbytes)
    for g, buf in enumerate(buffers):
        if buf is None:
            raise ChunkDecodeError(group_keys[g], "the shard disappeared while it was read")
        data = np.frombuffer(buf, dtype=np.uint8)
        if data.size != plan.group_size[g]:
            raise ChunkDecodeError(
                group_keys[g], "an inner chunk's byte range lies past the end of the shard"
            )
        off = int(plan.group_slab_offset[g])
        slab[off : off + data.size] = data
    return slab
