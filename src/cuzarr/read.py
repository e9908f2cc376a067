"""The read path: plan -> io -> decode -> scatter, for plain chunks and for shards."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.codecs import blosc_native
from cuzarr.codecs.bytes_to_bytes import BloscStage, ZstdStage
from cuzarr.config import Options
from cuzarr.decode import decode_fixed, decode_generic, named, shard_tables
from cuzarr.devices import select_device
from cuzarr.devices.base import run_in_tile
from cuzarr.errors import DeviceMemoryError
from cuzarr.io import locks
from cuzarr.io.files import fd_group
from cuzarr.io.host import HostReader, ShardsVanished
from cuzarr.io.set_range import MemoryRangeWriter, range_writer
from cuzarr.plan.chain import Chain, FixedChain, ShardChain
from cuzarr.plan.coalesce import coalesce
from cuzarr.plan.patches import Fanout, ShardFanout
from cuzarr.plan.selection import aligned_region, selection_bounds, shift_selection
from cuzarr.plan.shard import index_ranges, inner_ids
from cuzarr.scatter import scatter
from cuzarr.timers import timed
from cuzarr.workers import StageError, map_ranges, run_tiles, split_on

__all__ = ["InnerKeys", "decode_chain", "read_plain", "read_shards", "region_view", "waves"]


def async_wave_bytes(opts: Options) -> int:
    """Decoded bytes per wave on a store without blocking IO: half of `wave_bytes`, since a
    wave holds its fetched (stored) bytes beside its decoded ones, so that the two together
    stay within the setting."""
    return max(1, opts.wave_bytes // 2)


def waves(n: int, bytes_per_item: int, budget: int) -> list[tuple[int, int]]:
    """Split n items into waves whose decoded bytes stay within `budget` (>= 1 item each)."""
    per_wave = max(1, budget // max(1, bytes_per_item))
    return [(lo, min(n, lo + per_wave)) for lo in range(0, n, per_wave)]


@timed("decode")
def decode_chain(chain: Chain, batch: ByteBatch, device: Any, threads: int, keys: Any) -> Any:
    """Decode a batch of stored chunks with a (non-shard) chain: an array or a list of arrays."""
    if isinstance(chain, FixedChain):
        return decode_fixed(chain, device.to_device(batch), device, threads, keys)
    if isinstance(chain, ShardChain):
        raise TypeError("shards are decoded by read_shards")
    return decode_generic(chain, batch, threads, keys)


#: reads decoding at most this much run on the calling (event loop) thread: the hop to a
#: worker thread costs ~0.15 ms, a tenth of a 256x256 patch read, and work this small
#: blocks the loop for well under a millisecond
INLINE_BYTES = 1 << 20


async def read_plain(
    chain: Chain, store: Any, entries: list[Any], out: Any, drop_axes: tuple[int, ...],
    opts: Options, fanout: Fanout | None = None,
) -> np.ndarray:
    """Read whole chunks and scatter them; returns which chunks were present.

    With a `fanout`, each entry is a distinct chunk (its selection the union of what is
    needed of it) and the fanout's pairs say where its parts go: read_patches."""
    device = select_device(out, opts.device)
    keys = [e[0].path for e in entries]
    per_chunk = math.prod(entries[0][1].shape) * out.dtype.itemsize
    present_all = np.zeros(len(entries), dtype=bool)

    def finish(host: ByteBatch, present: np.ndarray, lo: int, hi: int, threads: int,
               used: Chain = chain, window_starts: np.ndarray | None = None,
               partial: np.ndarray | None = None) -> None:
        """Decode, then scatter; a windowed read passes its own chain and each chunk's
        first row (selections shift into the window), a partial decode the [start, stop)
        bytes of each chunk it needs decoded."""
        present_all[lo:hi] = present
        rows = np.full(hi - lo, -1, dtype=np.int64)
        idx = np.flatnonzero(present)
        rows[idx] = np.arange(idx.size)
        present_keys = [keys[lo + i] for i in idx]
        if partial is not None:
            decoded = _decode_partial(used, host, partial[idx], threads, present_keys)
        else:
            decoded = decode_chain(used, host, device, threads, present_keys)
        decoded = device.for_output(decoded, out)
        if fanout is None:
            chunk_sels = [e[2] for e in entries[lo:hi]]
            out_sels = [e[3] for e in entries[lo:hi]]
            chunk_of = np.arange(hi - lo)
        else:
            a, b = fanout.within(lo, hi)
            chunk_sels, out_sels = fanout.chunk_sels[a:b], fanout.out_sels[a:b]
            chunk_of = fanout.source[a:b] - lo
            rows = rows[chunk_of]
        if window_starts is not None:
            assert isinstance(chain, FixedChain) and isinstance(used, FixedChain)
            zeros = (0,) * (len(used.layout.shape) - 1)
            chunk_sels = [
                shift_selection(tuple(sel), (int(start), *zeros), chain.layout.shape,
                                used.layout.shape)
                for sel, start in zip(chunk_sels, window_starts[chunk_of].tolist(), strict=True)
            ]
        if not device.scatter(out, decoded, rows, chunk_sels, out_sels, drop_axes,
                              chain.fill_value):
            scatter(out, decoded, rows, chunk_sels, out_sels, drop_axes, chain.fill_value,
                    threads)

    def partial(lo: int, hi: int) -> np.ndarray | None:
        if not _partial_decodable(chain, device, opts):
            return None
        return _partial_bytes(chain, entries[lo:hi])  # type: ignore[arg-type]

    prototype = entries[0][1].prototype
    reader = HostReader(store, opts.threads, alloc=device.host_empty, prototype=prototype)
    if reader.blocking:
        direct = device.local_reader(store) if isinstance(chain, FixedChain) else None
        windows = reader.root is not None and device.name == "cpu" and _raw_c_order(chain)

        def tile(lo: int, hi: int, threads: int) -> None:
            if windows and _read_row_windows(chain, store, entries, keys, lo, hi, threads,
                                             finish):
                return
            with device.tile_scope():
                if direct is not None:
                    host, present = direct.whole(keys[lo:hi])
                else:
                    host, present = HostReader(store, threads, alloc=device.host_empty,
                                               prototype=prototype).whole_sync(
                                                   keys[lo:hi], per_chunk)
                finish(host, present, lo, hi, threads, partial=partial(lo, hi))

        per_tile = min(opts.wave_bytes, device.tile_bytes) // max(1, per_chunk)
        if reader.root is not None:  # a tile holds its chunk files open while it reads
            per_tile = min(per_tile, fd_group(opts.threads))
        tile = split_on(device.out_of_memory, tile, _too_big(keys, "chunk", device))
        await _run_tiles(len(entries) * per_chunk <= INLINE_BYTES, tile, len(entries), per_tile,
                         opts.threads, device.tiles_in_flight)
        return present_all
    async def wave(lo: int, hi: int) -> None:
        """One wave; its slab is released when it returns, before the next is fetched."""
        host, present = await reader.whole(keys[lo:hi])
        await asyncio.to_thread(run_in_tile, device, finish, host, present, lo, hi, opts.threads,
                                chain, None, partial(lo, hi))

    for lo, hi in waves(len(entries), per_chunk, async_wave_bytes(opts)):
        await wave(lo, hi)
    return present_all


async def _run_tiles(inline: bool, fn: Any, n: int, per_tile: int, threads: int,
                     in_flight: int | None) -> None:
    """`run_tiles` on a worker thread; a small read (INLINE_BYTES) runs on this (event loop)
    thread alone, every phase included: its work is a few hundred microseconds, and each
    hop to a pool thread (~50-100 us with the wake-up) would cost more than it saves."""
    if inline:
        run_tiles(fn, n, per_tile, 1, in_flight)
    else:
        await asyncio.to_thread(run_tiles, fn, n, per_tile, threads, in_flight)


#: decode only part of each chunk when the parts add up to at most this share of the tile's
#: chunks (a part costs about its share of a whole decode, so any real saving is worth it)
_PARTIAL_MAX_SHARE = 0.95
#: blosc chunks at least this large decode part of themselves: smaller ones are a block or
#: a few (c-blosc's blocks are 32-256 KiB), and checking their block tables costs more
_BLOSC_PARTIAL_MIN_BYTES = 1 << 20


def _partial_decodable(chain: Chain, device: Any, opts: Options) -> bool:
    """C-ordered chunks in native byte order whose one bytes stage can decode part of a
    chunk, read on the cpu device: blosc just the blocks the rows a read needs lie in
    (c-blosc's getitem, after our parser checked the frame's geometry), and, where the
    `zstd_prefix_reads` setting opts in, zstd up to the end of those rows (a prefix: zstd
    cannot check a prefix against the frame's declared size, so damage to a block header
    inside it can shift the rows it returns)."""
    if device.name != "cpu" or not isinstance(chain, FixedChain) or len(chain.stages) != 1:
        return False
    layout, stage = chain.layout, chain.stages[0]
    partial_stage = (isinstance(stage, ZstdStage) and opts.zstd_prefix_reads) or (
        isinstance(stage, BloscStage) and blosc_native.GETITEM is not None
        and layout.nbytes >= _BLOSC_PARTIAL_MIN_BYTES)
    return (partial_stage and len(layout.shape) > 0
            and layout.to_logical == tuple(range(len(layout.shape)))
            and layout.stored_dtype == layout.dtype)


def _partial_bytes(chain: FixedChain, entries: list[Any]) -> np.ndarray | None:
    """(n, 2) [start, stop) bytes of each chunk that hold the leading-axis rows its selection
    touches; None when decoding only those would not save enough."""
    layout = chain.layout
    rows_total = layout.shape[0]
    # chunks zarr marks complete need every row: only the others' selections are looked at
    # (a whole-array read of 4096 small chunks would otherwise pay ~10 us a chunk)
    partial = [i for i, entry in enumerate(entries) if not entry[4]]
    budget = _PARTIAL_MAX_SHARE * rows_total * len(entries)
    if rows_total * (len(entries) - len(partial)) > budget:
        return None
    spans = np.zeros((len(entries), 2), dtype=np.int64)
    spans[:, 1] = rows_total
    for i in partial:
        bounds = selection_bounds(tuple(entries[i][2]), layout.shape)
        spans[i] = (0, 0) if bounds is None else bounds[0]
    return _partial_of(chain, spans)


def _partial_of(chain: FixedChain, spans: np.ndarray) -> np.ndarray | None:
    """Bytes to decode, (n, 2) [start, stop), of chunks whose selections touch rows
    [spans[i, 0], spans[i, 1]) (zstd starts at 0: it decodes front to back); None when
    they add up to more than _PARTIAL_MAX_SHARE of the chunks."""
    rows_total = chain.layout.shape[0]
    spans = spans.copy()
    if isinstance(chain.stages[0], ZstdStage):
        spans[:, 0] = 0
    if int((spans[:, 1] - spans[:, 0]).sum()) > _PARTIAL_MAX_SHARE * rows_total * len(spans):
        return None
    return spans * (chain.layout.nbytes // rows_total)


@timed("decode")
def _decode_partial(chain: FixedChain, host: ByteBatch, windows: np.ndarray, threads: int,
                    keys: list[str]) -> Any:
    """The (n, *shape) chunks of a partial decode: only bytes windows[i, 0]:windows[i, 1] of
    chunk i are decoded (the rest of each chunk is left undefined: the read never looks)."""
    stage, nbytes = chain.stages[0], chain.layout.nbytes
    try:
        if isinstance(stage, ZstdStage):
            decoded = stage.decode_prefixes(host, nbytes, windows[:, 1], threads)
        else:
            assert isinstance(stage, BloscStage)
            decoded = stage.decode_windows(host, nbytes, windows, threads)
    except StageError as e:
        raise named(e, keys, stage.error) from e
    return chain.layout.arrays_from_slab(decoded.slab, len(host))


def _raw_c_order(chain: Chain) -> bool:
    """Uncompressed chunks stored in C order: any run of leading-axis rows is one byte range."""
    if not isinstance(chain, FixedChain) or chain.stages:
        return False
    layout = chain.layout
    return len(layout.shape) > 0 and layout.to_logical == tuple(range(len(layout.shape)))


#: read row windows only when they skip at least this share of each chunk
_WINDOW_MAX_SHARE = 0.5


@timed("io into output")
def _read_row_windows(
    chain: FixedChain, store: Any, entries: list[Any], keys: list[str], lo: int, hi: int,
    threads: int, finish: Any,
) -> bool:
    """Partial reads of uncompressed chunks: only the leading-axis rows the selections touch.

    Every chunk of the tile reads a window of the same row count (the largest any selection
    needs, so the batch stays one (n, rows, ...) array), and `finish` shifts its selections
    into the window. Returns False, reading nothing, where windows would not save enough.
    """
    layout = chain.layout
    rows_total = layout.shape[0]
    bounds = [selection_bounds(tuple(e[2]), layout.shape) for e in entries[lo:hi]]
    if any(b is None for b in bounds):
        return False
    firsts = np.array([b[0][0] for b in bounds], dtype=np.int64)  # type: ignore[index]
    lasts = np.array([b[0][1] for b in bounds], dtype=np.int64)  # type: ignore[index]
    length = int((lasts - firsts).max())
    if length > rows_total * _WINDOW_MAX_SHARE:
        return False
    starts = np.minimum(firsts, rows_total - length)
    row_bytes = layout.nbytes // rows_total
    window = (length, *layout.shape[1:])
    host, present = HostReader(store, threads).windows_sync(
        keys[lo:hi], starts * row_bytes, length * row_bytes, layout.nbytes
    )
    windowed = replace(chain, layout=replace(layout, shape=window, stored_shape=window))
    finish(host, present, lo, hi, threads, windowed, starts)
    return True


def _small_shard_read(chain: ShardChain, entries: list[Any], out: Any) -> bool:
    """True when the inner chunks a shard read touches decode to at most INLINE_BYTES."""
    if out.nbytes > INLINE_BYTES or len(entries) > 16:
        return False
    inner_nbytes = math.prod(chain.inner_shape) * out.dtype.itemsize
    total = 0
    for entry in entries:
        bounds = selection_bounds(tuple(entry[2]), chain.shard_shape)
        if bounds is None:
            continue
        first, stop = aligned_region(bounds, chain.inner_shape)
        total += math.prod(b - a for a, b in zip(first, stop, strict=True)) * inner_nbytes
    return total <= INLINE_BYTES


def _too_big(keys: list[str], what: str, device: Any) -> Any:
    def error(index: int, cause: BaseException) -> BaseException:
        return DeviceMemoryError(
            f"{what} {keys[index]!r} does not fit in free {device.name} memory on its own "
            f"({type(cause).__name__}: {cause})"
        )

    return error


def region_view(region: np.ndarray, counts: tuple[int, ...], inner: tuple[int, ...]) -> np.ndarray:
    """View a region made of a grid of inner chunks as (k0, k1, ..., c0, c1, ...)."""
    nd = len(inner)
    split = region.reshape(tuple(x for pair in zip(counts, inner, strict=True) for x in pair))
    return split.transpose((*range(0, 2 * nd, 2), *range(1, 2 * nd, 2)))


class InnerKeys:
    """Names inner chunks for error messages without building a string per chunk."""

    def __init__(self, keys: list[str], shard: np.ndarray, ids: np.ndarray,
                 cps: tuple[int, ...]) -> None:
        self.keys, self.shard, self.ids, self.cps = keys, shard, ids, cps

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> str:
        coords = np.unravel_index(int(self.ids[i]), self.cps) if self.cps else ()
        inner = tuple(int(c) for c in coords)
        return f"{self.keys[int(self.shard[i])]} (inner chunk {inner})"


async def read_shards(
    chain: ShardChain, store: Any, entries: list[Any], out: Any, drop_axes: tuple[int, ...],
    opts: Options, fanout: ShardFanout | None = None,
) -> np.ndarray:
    """Read the touched inner chunks of every shard in one batch; returns shard presence.

    With a `fanout`, each entry is a distinct shard, and the fanout names the inner
    chunks to read of each and where their parts go (read_patches)."""
    device = select_device(out, opts.device)
    keys = [e[0].path for e in entries]
    shard_nbytes = math.prod(chain.shard_shape) * out.dtype.itemsize
    present_all = np.zeros(len(entries), dtype=bool)
    if fanout is None:
        job = _ShardRead(chain, entries, keys, out, drop_axes, opts, device)
    else:
        job = _FanoutShardRead(chain, entries, keys, out, drop_axes, opts, device, fanout)
    prototype = entries[0][1].prototype
    reader = HostReader(store, opts.threads, alloc=device.host_empty, prototype=prototype)
    if reader.blocking:
        def tile(lo: int, hi: int, threads: int) -> None:
            with device.tile_scope():
                tile_reader = HostReader(store, threads, alloc=device.host_empty,
                                         prototype=prototype)
                present_all[lo:hi] = job.run_sync(tile_reader, lo, hi, threads)

        tile = split_on(device.out_of_memory, tile, _too_big(keys, "shard", device))
        per_tile = min(opts.wave_bytes, device.tile_bytes) // max(1, shard_nbytes)
        if reader.root is not None:  # a tile holds its shard files open while it reads
            per_tile = min(per_tile, fd_group(opts.threads))
        await _run_tiles(_small_shard_read(chain, entries, out), tile, len(entries), per_tile,
                         opts.threads, device.tiles_in_flight)
        return present_all
    for lo, hi in waves(len(entries), shard_nbytes, async_wave_bytes(opts)):
        present_all[lo:hi] = await job.run_async(reader, lo, hi)
    return present_all


def coalesce_limits(entries: list[Any]) -> dict[str, int]:
    """The array's limits for coalescing shard byte ranges (its config; zarr's global ones
    by default), as keyword arguments of plan.coalesce."""
    config = entries[0][1].config
    return {"max_gap_bytes": int(config.sharding_coalesce_max_gap_bytes),
            "max_bytes": int(config.sharding_coalesce_max_bytes)}


def _value_locks(store: Any, keys: list[str]) -> list[str]:
    """The lock names a read of these shards holds shared on a store whose values cuzarr
    patches in place and reads in several calls (a MemoryStore: index, then ranges), so
    that it never pairs an old index with a new value; none elsewhere (a LocalStore's
    ShardFiles hold theirs)."""
    writer = range_writer(store)
    if not isinstance(writer, MemoryRangeWriter):
        return []
    return [writer.lock_name(k) for k in keys]


@dataclass
class _ShardPlan:
    """The inner chunks to read for a range of shards, as numpy arrays."""

    # per shard to place: (entry index, first inner chunk, stop inner chunk, decoded rows)
    shards: list[tuple[int, tuple[int, ...], tuple[int, ...], np.ndarray]]
    shard_of: np.ndarray  # per range: index into the present shards
    starts: np.ndarray
    sizes: np.ndarray
    ids: np.ndarray  # per range: flat inner chunk id
    spans: np.ndarray  # per range: (n, 2) [first, stop) leading-axis rows its selection needs
    shard_sizes: np.ndarray | None  # per present shard, when known
    whole: np.ndarray  # per range: its shard is read whole (every inner chunk touched)


@dataclass
class _ShardRead:
    """One read over shards: plan -> ranges -> decode -> place, for any range of shards."""

    chain: ShardChain
    entries: list[Any]
    keys: list[str]
    out: Any
    drop_axes: tuple[int, ...]
    opts: Options
    device: Any

    @property
    def _limits(self) -> dict[str, int]:
        return coalesce_limits(self.entries)

    def run_sync(self, reader: HostReader, lo: int, hi: int, threads: int) -> np.ndarray:
        keys = self.keys[lo:hi]
        chain = self.chain
        if reader.root is not None:
            with reader.open_shards(keys) as shards:
                index = shards.index(chain.index_nbytes, chain.index_at_start, threads)
                plan, present_keys = self._plan(index, lo, hi, threads)
                batch = self._read_open(reader, shards, plan, present_keys, threads)
        else:
            with locks.shared(_value_locks(reader.store, keys)):
                index = reader.index_sync(keys, chain.index_nbytes, chain.index_at_start)
                while True:
                    plan, present_keys = self._plan(index, lo, hi, threads)
                    try:
                        batch = self._fetch_sync(reader, plan, present_keys)
                        break
                    except ShardsVanished as gone:
                        index = gone.without(index)
        self._decode_and_place(batch, plan, present_keys, index.present, lo, threads)
        return index.present

    def _fetch_sync(self, reader: HostReader, plan: _ShardPlan,
                    present_keys: list[str]) -> ByteBatch:
        """The planned ranges through a store's own sync methods."""
        if not plan.starts.size:
            return ByteBatch.empty()
        limits = self._limits

        def read(shard_of: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> ByteBatch:
            return reader.ranges_sync(present_keys, shard_of, starts, sizes, **limits)

        return read_reaching(self.chain.inner, read, plan, limits)

    async def _fetch_async(self, reader: HostReader, plan: _ShardPlan,
                           present_keys: list[str]) -> ByteBatch:
        """The planned ranges through a store's own async methods."""
        if not plan.starts.size:
            return ByteBatch.empty()
        batch = await reader.ranges(present_keys, plan.shard_of, plan.starts, plan.sizes,
                                    **self._limits)
        extra = _blosc_reach(self.chain.inner, batch, plan, self._limits)
        if extra is None:
            return batch
        return _extended(batch, extra, await reader.ranges(
            present_keys, plan.shard_of[extra[0]], plan.starts[extra[0]], extra[1],
            **self._limits))

    def _read_open(self, reader: HostReader, shards: Any, plan: _ShardPlan,
                   present_keys: list[str], threads: int) -> ByteBatch:
        """The planned ranges from the open shard files (kvikio straight into device
        memory where the device reads that way, the files' own descriptors otherwise)."""
        if not plan.starts.size:
            return ByteBatch.empty()
        direct = None
        if isinstance(self.chain.inner, FixedChain):
            direct = self.device.local_reader(reader.store)
        if direct is not None:
            paths = [shards.path(int(i)) for i in np.flatnonzero(shards.present)]
            return direct.ranges(present_keys, plan.shard_of, plan.starts, plan.sizes,
                                 paths=paths, **self._limits)

        def read(shard_of: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> ByteBatch:
            return shards.ranges(shard_of, starts, sizes, threads=threads, alloc=reader.alloc,
                                 **self._limits)

        return read_reaching(self.chain.inner, read, plan, self._limits)

    async def run_async(self, reader: HostReader, lo: int, hi: int) -> np.ndarray:
        threads = self.opts.threads
        keys = self.keys[lo:hi]
        index = await reader.index(keys, self.chain.index_nbytes, self.chain.index_at_start)
        while True:
            plan, present_keys = self._plan(index, lo, hi, threads)
            try:
                batch = await self._fetch_async(reader, plan, present_keys)
                break
            except ShardsVanished as gone:  # read as missing, as zarr does
                index = gone.without(index)
        await asyncio.to_thread(
            run_in_tile, self.device, self._decode_and_place, batch, plan, present_keys,
            index.present, lo, threads,
        )
        return index.present

    def _plan(self, index: Any, lo: int, hi: int, threads: int) -> tuple[_ShardPlan, list[str]]:
        chain = self.chain
        present_idx = np.flatnonzero(index.present)
        present_keys = [self.keys[lo + i] for i in present_idx]
        tables = shard_tables(chain, index.batch, present_keys, threads)
        has_all, starts_all, sizes_all = index_ranges(tables, index.shard_sizes)
        inner = chain.inner_shape
        shards = []
        shard_of, starts, sizes, ids_all, spans, whole = [], [], [], [], [], []
        n_present = 0
        for s, i in enumerate(present_idx.tolist()):
            bounds = selection_bounds(self.entries[lo + i][2], chain.shard_shape)
            if bounds is None:
                continue
            first, stop = aligned_region(bounds, inner)
            ids = inner_ids(chain.chunks_per_shard, first, stop)
            has = has_all[s][ids]
            count = int(has.sum())
            rows = np.full(ids.size, -1, dtype=np.int64)
            rows[has] = n_present + np.arange(count)
            n_present += count
            shards.append((lo + i, first, stop, rows))
            shard_of.append(np.full(count, s, dtype=np.int64))
            starts.append(starts_all[s][ids[has]])
            sizes.append(sizes_all[s][ids[has]])
            ids_all.append(ids[has])
            whole.append(np.full(count, ids.size == chain.n_inner))
            if inner:
                origin = np.unravel_index(ids[has], chain.chunks_per_shard)[0] * inner[0]
                spans.append(np.clip(np.stack([bounds[0][0] - origin, bounds[0][1] - origin],
                                              axis=1), 0, inner[0]))

        def cat(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

        plan = _ShardPlan(shards, cat(shard_of), cat(starts), cat(sizes), cat(ids_all),
                          np.concatenate(spans) if spans else np.zeros((0, 2), np.int64),
                          index.shard_sizes,
                          np.concatenate(whole) if whole else np.zeros(0, dtype=bool))
        reach_whole(chain.inner, plan)
        return plan, present_keys

    def _decode_and_place(
        self, batch: ByteBatch, plan: _ShardPlan, present_keys: list[str],
        present: np.ndarray, lo: int, threads: int,
    ) -> None:
        chain, out, entries, drop_axes = self.chain, self.out, self.entries, self.drop_axes
        names = InnerKeys(present_keys, plan.shard_of, plan.ids, chain.chunks_per_shard)
        partial = self._partial(plan)
        if partial is not None:
            decoded = _decode_partial(chain.inner, batch, partial, threads, names)
        else:
            decoded = decode_chain(chain.inner, batch, self.device, threads, names)
        decoded = self.device.for_output(decoded, out)
        fill = chain.fill_value
        missing = lo + np.flatnonzero(~present)
        if missing.size:
            scatter(out, None, np.full(missing.size, -1, dtype=np.int64),
                    [None] * missing.size, [entries[i][3] for i in missing], drop_axes, fill)

        @timed("scatter")
        def place(a: int, b: int) -> None:
            for entry_index, first, stop, rows in plan.shards[a:b]:
                _place_shard(chain, entries[entry_index], first, stop, rows, decoded, out,
                             drop_axes, self.device.xp)

        map_ranges(place, len(plan.shards), threads)

    def _partial(self, plan: _ShardPlan) -> np.ndarray | None:
        """[start, stop) bytes of each inner chunk to decode, when only some of their rows
        are needed and that saves enough; else None."""
        inner = self.chain.inner
        if not len(plan.spans) or not _partial_decodable(inner, self.device, self.opts):
            return None
        assert isinstance(inner, FixedChain)
        return _partial_of(inner, plan.spans)



@dataclass
class _FanoutPlan(_ShardPlan):
    """A fanout's plan: its inner chunks [first, first + len(rows)) and their decoded rows."""

    first: int = 0
    rows: np.ndarray | None = None


@dataclass
class _FanoutShardRead(_ShardRead):
    """A read of the inner chunks a fanout names (each once), copied to all its pairs."""

    fanout: ShardFanout | None = None

    def _plan(self, index: Any, lo: int, hi: int, threads: int) -> tuple[_ShardPlan, list[str]]:
        chain, fanout = self.chain, self.fanout
        assert fanout is not None
        present_idx = np.flatnonzero(index.present)
        present_keys = [self.keys[lo + i] for i in present_idx]
        tables = shard_tables(chain, index.batch, present_keys, threads)
        has_all, starts_all, sizes_all = index_ranges(tables, index.shard_sizes)
        a, b = fanout.inner_within(lo, hi)
        position = np.full(hi - lo, -1, dtype=np.int64)
        position[present_idx] = np.arange(present_idx.size)
        shard = position[fanout.inner_shard[a:b] - lo]  # index among present shards, or -1
        ids = fanout.inner_id[a:b]
        has = shard >= 0
        has[has] = has_all[shard[has], ids[has]]
        rows = np.full(b - a, -1, dtype=np.int64)
        rows[has] = np.arange(int(has.sum()))
        shard_of, ids_read = shard[has], ids[has]
        per_shard = np.bincount(shard[shard >= 0], minlength=present_idx.size)
        plan = _FanoutPlan(
            [], shard_of, starts_all[shard_of, ids_read], sizes_all[shard_of, ids_read],
            ids_read, fanout.rows[a:b][has], index.shard_sizes,
            per_shard[shard_of] == chain.n_inner, first=a, rows=rows)
        reach_whole(chain.inner, plan)
        return plan, present_keys

    def _decode_and_place(
        self, batch: ByteBatch, plan: _ShardPlan, present_keys: list[str],
        present: np.ndarray, lo: int, threads: int,
    ) -> None:
        assert isinstance(plan, _FanoutPlan) and plan.rows is not None
        fanout, chain, out = self.fanout, self.chain, self.out
        assert fanout is not None
        names = InnerKeys(present_keys, plan.shard_of, plan.ids, chain.chunks_per_shard)
        partial = self._partial(plan)
        if partial is not None:
            decoded = _decode_partial(chain.inner, batch, partial, threads, names)
        else:
            decoded = decode_chain(chain.inner, batch, self.device, threads, names)
        decoded = self.device.for_output(decoded, out)
        a, b = fanout.within(plan.first, plan.first + len(plan.rows))
        rows = plan.rows[fanout.source[a:b] - plan.first]
        chunk_sels, out_sels = fanout.chunk_sels[a:b], fanout.out_sels[a:b]
        if not self.device.scatter(out, decoded, rows, chunk_sels, out_sels, self.drop_axes,
                                   chain.fill_value):
            scatter(out, decoded, rows, chunk_sels, out_sels, self.drop_axes, chain.fill_value,
                    threads)

_BLOSC_HEADER = 16


def _blosc_innermost(chain: Chain) -> bool:
    """True when stored inner chunks are Blosc chunks (blosc is the last encode stage)."""
    return (isinstance(chain, FixedChain) and bool(chain.stages)
            and isinstance(chain.stages[-1], BloscStage))


def _blosc_reach(chain: Chain, batch: ByteBatch, plan: _ShardPlan, limits: dict[str, int]
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """Blosc inner chunks whose index entry is shorter than the length their own header
    declares: (which ranges, that length), for those whose declared bytes lie in the
    buffer zarr would have handed numcodecs; None when there are none. numcodecs reads a
    Blosc chunk for as many bytes as its header says, from wherever that buffer continues:
    the whole shard where a read touches every inner chunk (zarr reads it whole), else the
    coalesced group of ranges the chunk was fetched in (zarr's get_ranges slices one
    buffer per group; cuzarr's groups are zarr's, plan.coalesce). Past that buffer c-blosc
    reads memory (an error, mostly), and cuzarr refuses the chunk. Host batches only (a
    device batch keeps its ranges, and such a chunk is an error there)."""
    if not _blosc_innermost(chain) or not isinstance(batch.slab, np.ndarray) or not len(batch):
        return None
    sizes = batch.sizes
    whole = np.flatnonzero(sizes >= _BLOSC_HEADER)
    cbytes = np.zeros(len(sizes), dtype=np.int64)
    at = batch.offsets[whole, None] + np.arange(12, 16)[None, :]
    cbytes[whole] = np.ascontiguousarray(batch.slab[at]).view("<u4").reshape(-1)
    need = cbytes > sizes
    if not need.any():
        return None
    groups = coalesce(plan.shard_of, plan.starts, plan.sizes, **limits)
    group_end = (groups.group_start + groups.group_size)[groups.member_group]
    if plan.shard_sizes is not None:
        shard_end = plan.shard_sizes[plan.shard_of]
    else:  # unknown: the store returns what the shard holds
        shard_end = np.full(len(sizes), np.iinfo(np.int64).max)
    need &= plan.starts + cbytes <= np.where(plan.whole, shard_end, group_end)
    idx = np.flatnonzero(need)
    return (idx, cbytes[idx]) if idx.size else None


def reach_whole(chain: Chain, plan: _ShardPlan) -> None:
    """A Blosc chunk says its own length: in a shard read whole, an entry shorter than its
    header is read far enough to see it (see _blosc_reach). Changes plan.sizes."""
    if not (_blosc_innermost(chain) and plan.whole.any()):
        return
    sizes = np.maximum(plan.sizes, _BLOSC_HEADER)
    if plan.shard_sizes is not None:
        sizes = np.minimum(sizes, plan.shard_sizes[plan.shard_of] - plan.starts)
    plan.sizes = np.where(plan.whole, sizes, plan.sizes)


def read_reaching(chain: Chain, read: Any, plan: _ShardPlan, limits: dict[str, int]
                  ) -> ByteBatch:
    """read(shard_of, starts, sizes) of the plan's ranges, Blosc chunks whose header
    declares more than their entry read again that far (_blosc_reach)."""
    batch = read(plan.shard_of, plan.starts, plan.sizes)
    extra = _blosc_reach(chain, batch, plan, limits)
    if extra is None:
        return batch
    return _extended(batch, extra, read(plan.shard_of[extra[0]], plan.starts[extra[0]],
                                        extra[1]))


def _extended(batch: ByteBatch, extra: tuple[np.ndarray, np.ndarray],
              reread: ByteBatch) -> ByteBatch:
    """`batch` with items extra[0] replaced by the longer reads in `reread`."""
    idx, _ = extra
    slab = np.concatenate([np.asarray(batch.slab), np.asarray(reread.packed().slab)])
    offsets, sizes = batch.offsets.copy(), batch.sizes.copy()
    offsets[idx] = batch.slab.size + reread.packed().offsets
    sizes[idx] = reread.sizes
    return ByteBatch(slab, offsets, sizes)


def _place_shard(
    chain: ShardChain, entry: Any, first: tuple[int, ...], stop: tuple[int, ...],
    rows: np.ndarray, decoded: Any, out: Any, drop_axes: tuple[int, ...], xp: Any = np,
) -> None:
    """Copy one shard's decoded inner chunks (fill where missing) to its part of `out`."""
    inner = chain.inner_shape
    counts = tuple(b - a for a, b in zip(first, stop, strict=True))
    region_shape = tuple(k * c for k, c in zip(counts, inner, strict=True))
    origin = tuple(a * c for a, c in zip(first, inner, strict=True))
    local = shift_selection(entry[2], origin, chain.shard_shape, region_shape)
    target = _direct_target(out, entry[3], local, region_shape, drop_axes)
    if target is None and _copy_intersections(
        chain, entry, first, counts, rows, decoded, out, drop_axes
    ):
        return
    xp = np if isinstance(out, np.ndarray) else xp
    region = target if target is not None else xp.empty(region_shape, dtype=out.dtype)
    _place(region_view(region, counts, inner), counts, decoded, rows, chain.fill_value)
    if target is None:
        value = region[local]
        if drop_axes:
            value = value.squeeze(axis=drop_axes)
        out[entry[3]] = value


def _unit_slices(selection: Any, shape: tuple[int, ...]) -> list[tuple[int, int]] | None:
    """[start, stop) per dimension when `selection` is all step-1 slices, else None."""
    if not isinstance(selection, tuple) or len(selection) != len(shape):
        return None
    bounds = []
    for sel, n in zip(selection, shape, strict=True):
        if not isinstance(sel, slice):
            return None
        start, stop, step = sel.indices(n)
        if step != 1:
            return None
        bounds.append((start, stop))
    return bounds


def _copy_intersections(
    chain: ShardChain, entry: Any, first: tuple[int, ...], counts: tuple[int, ...],
    rows: np.ndarray, decoded: Any, out: Any, drop_axes: tuple[int, ...],
) -> bool:
    """Box selections: copy each inner chunk's overlap with the box straight into `out`.

    A small box in a few big inner chunks (a training loader's random patch)
    then costs one copy of the box, not a copy of every touched inner chunk.
    Returns False (nothing done) for any other selection.
    """
    if drop_axes:
        return False
    box = _unit_slices(entry[2], chain.shard_shape)
    dest = _unit_slices(entry[3], out.shape)
    if box is None or dest is None:
        return False
    inner = chain.inner_shape
    for j, row in enumerate(rows.tolist()):
        coords = np.unravel_index(j, counts) if counts else ()
        src, dst = [], []
        for d, c in enumerate(coords):
            lo = (first[d] + int(c)) * inner[d]
            a, b = max(box[d][0], lo), min(box[d][1], lo + inner[d])
            if a >= b:
                break
            src.append(slice(a - lo, b - lo))
            start = dest[d][0] + a - box[d][0]
            dst.append(slice(start, start + b - a))
        else:
            out[tuple(dst)] = chain.fill_value if row < 0 else decoded[row][tuple(src)]
    return True


def _direct_target(
    out: Any, out_selection: Any, local: tuple[Any, ...], region_shape: tuple[int, ...],
    drop_axes: tuple[int, ...],
) -> np.ndarray | None:
    """The view of `out` a whole region lands in, when it can be written there directly."""
    if drop_axes or not isinstance(out_selection, tuple):
        return None
    if not all(isinstance(s, slice) for s in out_selection):
        return None
    if not all(isinstance(s, slice) and s.indices(n) == (0, n, 1)
               for s, n in zip(local, region_shape, strict=True)):
        return None
    target = out[(*out_selection, Ellipsis)]  # a view, also of a 0-d out
    return target if target.shape == region_shape else None


def _place(blocks: np.ndarray, counts: tuple[int, ...], decoded: Any, rows: np.ndarray,
           fill: Any) -> None:
    """Write decoded inner chunks (rows >= 0) and fill (rows < 0) into a region's blocks."""
    if isinstance(decoded, np.ndarray) and rows.size and bool((rows >= 0).all()):
        first = int(rows[0])
        if bool(np.array_equal(rows, np.arange(first, first + rows.size))):
            source = decoded[first : first + rows.size]
        else:
            source = decoded[rows]
        blocks[...] = source.reshape(blocks.shape)
        return
    for j, row in enumerate(rows.tolist()):
        coords = tuple(int(c) for c in np.unravel_index(j, counts)) if counts else ()
        blocks[coords] = fill if row < 0 else decoded[row]
