"""The write path: gather -> merge with stored chunks -> batched encode -> store writes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch, join_bytes
from cuzarr.config import Options
from cuzarr.decode import encode_fixed, encode_generic, shard_tables
from cuzarr.devices import CpuDevice, Device, select_device
from cuzarr.devices.base import run_in_tile
from cuzarr.errors import ShardIndexError
from cuzarr.io import files
from cuzarr.io.access import access
from cuzarr.io.files import fd_group
from cuzarr.io.host import HostReader, store_prototype
from cuzarr.io.set_range import range_writer
from cuzarr.plan.chain import Chain, FixedChain, ShardChain
from cuzarr.plan.selection import (
    aligned_region,
    covers_whole,
    selection_bounds,
    shift_selection,
)
from cuzarr.plan.shard import (
    EMPTY,
    encode_index,
    index_ranges,
    inner_ids,
    write_order,
)
from cuzarr.read import (
    InnerKeys,
    _blosc_innermost,
    _too_big,
    async_wave_bytes,
    decode_chain,
    region_view,
    waves,
)
from cuzarr.timers import timed
from cuzarr.workers import map_ranges, run_tiles, split_on

__all__ = ["device_writes", "refuse_masked", "refuse_what_zarr_refuses", "write_plain",
           "write_shards"]


def device_writes(chain: Chain) -> bool:
    """True when a write through `chain` can run on any device: its chunks (a shard's inner
    chunks) encode as one batch. Generic chains encode chunk by chunk through zarr on
    the host."""
    inner = chain.inner if isinstance(chain, ShardChain) else chain
    return isinstance(inner, FixedChain)


def _write_device(chain: Chain, value: Any, opts: Options) -> Device:
    """The device a write runs on: the value's (or the setting's), the cpu for generic chains."""
    if not device_writes(chain):
        return CpuDevice()
    return select_device(value, opts.device)


def _new_chunks(shape: tuple[int, ...], dtype: np.dtype, fill: Any, complete: np.ndarray,
                xp: Any) -> Any:
    """Chunk buffers for a write; only chunks the value does not cover start as fill."""
    chunks = xp.empty((len(complete), *shape), dtype=dtype)
    if complete.all():
        return chunks
    if not complete.any():
        chunks[...] = fill
    else:
        chunks[xp.asarray(np.flatnonzero(~complete))] = fill
    return chunks


def _encode(chain: Chain, chunks: Any, keep: np.ndarray, device: Device,
            threads: int) -> list[Any]:
    """Encode chunks[keep]; returns host bytes-like per kept chunk (None = store nothing).
    On any device the encoded slab comes to the host in one copy (encode_fixed)."""
    if not keep.any():
        return []
    if isinstance(chain, FixedChain):
        kept = chunks  # no copy when all are kept
        if not bool(keep.all()):
            kept = chunks[device.xp.asarray(np.flatnonzero(keep))]
        encoded = encode_fixed(chain, kept, device, threads)
        return [encoded.item(i) for i in range(len(encoded))]
    return encode_generic(chain, [chunks[i, ...] for i in np.flatnonzero(keep)], threads)


def _buffers(values: list[Any], buffer: Any) -> list[Any]:
    """Encoded values as Buffers of the class the store is given (`buffer`); a shard's
    parts are joined in one copy."""
    return [buffer.from_bytes(join_bytes(v) if isinstance(v, list)
                              else np.frombuffer(v, dtype=np.uint8)) for v in values]


def _buffer_class(store: Any, prototype: Any) -> Any:
    """The Buffer class writes hand the store: the array's prototype's, as zarr's pipeline
    does (a store may check it), but host Buffers for a LocalStore cuzarr owns the IO of
    and in place of zarr's own GPU buffers (the encoded bytes are in host memory)."""
    from zarr.core.buffer import cpu

    if access(store).root is not None:
        return cpu.Buffer
    return store_prototype(prototype).buffer


@timed("store writes")
def _store_writes_sync(store: Any, keys: list[str], values: list[Any], deletes: list[str],
                       threads: int, buffer: Any, durable: bool = False) -> None:
    """Set and delete keys on a store with sync IO (LocalStore: atomic temp-and-rename).
    A value is a byte-like or a list of them (a shard's inner chunks and index): a
    LocalStore whose IO is its own gets them written straight into its files, one writev
    each (`durable`: fsynced, with its folder); any other store a Buffer through its own
    `set_sync`."""
    root = access(store).root
    if root is not None:
        if keys:  # what LocalStore.set_sync checks first
            store._ensure_open_sync()
            store._check_writable()

        def work_set(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                value = values[i]
                files.write_file(root, keys[i], value if isinstance(value, list) else [value],
                                 durable)
    else:
        buffers = _buffers(values, buffer)

        def work_set(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                store.set_sync(keys[i], buffers[i])

    def work_delete(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            store.delete_sync(deletes[i])

    map_ranges(work_set, len(keys), threads, min_items=4)
    map_ranges(work_delete, len(deletes), threads, min_items=16)


@timed("store writes, async")
async def _store_writes_async(store: Any, keys: list[str], values: list[Any],
                              deletes: list[str], buffer: Any) -> None:
    """Set and delete keys concurrently on an async store."""
    buffers = _buffers(values, buffer)
    await asyncio.gather(*(store.set(k, b) for k, b in zip(keys, buffers, strict=True)))
    await asyncio.gather(*(store.delete(k) for k in deletes))


#: builds the writes of entries[lo:hi]: (keys to set, their bytes, keys to delete)
Builder = Callable[[int, int, np.ndarray, ByteBatch, np.ndarray, int],
                   tuple[list[str], list[Any], list[str]]]


async def _drive(store: Any, entries: list[Any], item_nbytes: int, opts: Options,
                 build: Builder, device: Device, what: str, partial: np.ndarray) -> None:
    """Run a write tile by tile (blocking stores) or wave by wave (async stores).

    Each tile reads the stored items it must merge with (`partial`), builds and encodes
    its items, and writes them; tiles overlap on the pool like reads do. A tile that runs
    out of device memory (before it writes anything) is halved and retried.
    """
    keys = [e[0].path for e in entries]
    prototype = entries[0][1].prototype
    buffer = _buffer_class(store, prototype)
    reader = HostReader(store, opts.threads, alloc=device.host_empty, prototype=prototype)
    if reader.blocking and (reader.root is not None or reader.access.sync_writes):
        def tile(lo: int, hi: int, threads: int) -> None:
            part = np.flatnonzero(partial[lo:hi])
            host, present = ByteBatch.empty(), np.zeros(0, dtype=bool)
            if part.size:
                host, present = HostReader(store, threads, alloc=device.host_empty,
                                           prototype=prototype).whole_sync(
                    [keys[lo + i] for i in part])
            with device.tile_scope():
                set_keys, values, deletes = build(lo, hi, part, host, present, threads)
            _store_writes_sync(store, set_keys, values, deletes, threads, buffer,
                               opts.durable_writes)

        per_tile = min(opts.wave_bytes, device.tile_bytes) // max(1, item_nbytes)
        if reader.root is not None:  # a tile holds the files it merges open while it reads
            per_tile = min(per_tile, fd_group(opts.threads))
        tile = split_on(device.out_of_memory, tile, _too_big(keys, what, device))
        await asyncio.to_thread(run_tiles, tile, len(entries), per_tile, opts.threads,
                                device.tiles_in_flight)
        return
    for lo, hi in waves(len(entries), item_nbytes, async_wave_bytes(opts)):
        part = np.flatnonzero(partial[lo:hi])
        host, present = ByteBatch.empty(), np.zeros(0, dtype=bool)
        if part.size:
            host, present = await reader.whole([keys[lo + i] for i in part])
        set_keys, values, deletes = await asyncio.to_thread(
            run_in_tile, device, build, lo, hi, part, host, present, opts.threads
        )
        await _store_writes_async(store, set_keys, values, deletes, buffer)


async def write_plain(
    chain: Chain, store: Any, entries: list[Any], value: Any,
    drop_axes: tuple[int, ...], opts: Options,
) -> None:
    """Write whole chunks: merge partly written ones with what is stored, encode, store.

    Chunks are built, merged, tested for emptiness and encoded on the device; only the
    encoded bytes (and the empty-chunk mask) come to the host.
    """
    device = _write_device(chain, value, opts)
    value = device.from_value(value)
    shape = tuple(entries[0][1].shape)
    dtype = entries[0][1].dtype.to_native_dtype()

    def build(lo: int, hi: int, partial: np.ndarray, host: ByteBatch, present: np.ndarray,
              threads: int) -> tuple[list[str], list[Any], list[str]]:
        wave = entries[lo:hi]
        keys = [e[0].path for e in wave]
        complete = np.array([bool(e[4]) and covers_whole(e[2], shape) for e in wave])
        chunks = _new_chunks(shape, dtype, chain.fill_value, complete, device.xp)
        have = partial[present]
        if have.size:
            decoded = decode_chain(chain, host, device, threads, [keys[i] for i in have])
            if isinstance(decoded, list):
                for row, i in enumerate(have.tolist()):
                    chunks[i, ...] = decoded[row]
            else:
                chunks[device.xp.asarray(have)] = decoded
        device.gather(chunks, value, [e[2] for e in wave], [e[3] for e in wave], drop_axes)
        if chain.write_empty_chunks:
            empty = np.zeros(len(wave), dtype=bool)
        else:
            empty = device.rows_equal_fill(chunks, chain.fill_value)
        encoded = _encode(chain, chunks, ~empty, device, threads)
        kept = np.flatnonzero(~empty).tolist()
        set_keys = [keys[i] for i, v in zip(kept, encoded, strict=True) if v is not None]
        values = [v for v in encoded if v is not None]
        deletes = [keys[i] for i in np.flatnonzero(empty)]
        deletes += [keys[i] for i, v in zip(kept, encoded, strict=True) if v is None]
        return set_keys, values, deletes

    # zarr's pipeline reads what is stored only for chunks it does not mark complete
    partial = np.array([not e[4] for e in entries], dtype=bool)
    await _drive(store, entries, math.prod(shape) * dtype.itemsize, opts, build, device,
                 "chunk", partial)


async def write_shards(
    chain: ShardChain, store: Any, entries: list[Any], value: Any,
    drop_axes: tuple[int, ...], opts: Options,
) -> None:
    """Write shards: re-encode only the touched inner chunks, keep the others' bytes.

    Inner chunks are built and encoded on the device. On a store with a range writer
    (io.set_range) a partial write of a stored shard is written into it in place
    (write_in_place); elsewhere shards are assembled whole on the host from the encoded
    bytes and the stored bytes of untouched inner chunks.
    """
    device = _write_device(chain, value, opts)
    value = device.from_value(value)
    dtype = entries[0][1].dtype.to_native_dtype()
    # a shard is replaced whole only where the value covers all of it: zarr marks a
    # boundary shard complete when the value covers its part inside the array, but the
    # shard may hold data past the array's edge (an array shrunk, then grown again), and
    # zarr's sharding keeps it
    partial = np.array([not (e[4] and covers_whole(e[2], chain.shard_shape))
                        for e in entries], dtype=bool)
    writer = range_writer(store, opts.durable_writes)
    if writer is not None:
        from cuzarr.write_in_place import write_shards_in_place

        await write_shards_in_place(chain, store, writer, entries, value, drop_axes, opts,
                                    device, ~partial)
        return

    def build(lo: int, hi: int, partial: np.ndarray, host: ByteBatch, present: np.ndarray,
              threads: int) -> tuple[list[str], list[Any], list[str]]:
        wave = entries[lo:hi]
        keys = [e[0].path for e in wave]
        return _build_shards(chain, wave, keys, partial, host, present, value, drop_axes,
                             dtype, device, threads)

    await _drive(store, entries, math.prod(chain.shard_shape) * dtype.itemsize, opts, build,
                 device, "shard", partial)


def refuse_masked(value: Any) -> None:
    """A masked array cannot be written: zarr arrays have no mask, and zarr's pipeline
    fails on one, so its mask is not silently dropped here."""
    if isinstance(value, np.ma.MaskedArray):
        raise ValueError("cuzarr: a numpy.ma.MaskedArray cannot be written (zarr arrays have "
                         "no mask); write value.filled(fill_value) instead")


def refuse_what_zarr_refuses(chain: Chain, entries: list[Any], value: Any) -> None:
    """Raise where zarr's own sharding would refuse this write's value: one that
    broadcasts to a whole shard's selection but not to one of its inner chunks' (a (1, 3)
    value into 37 rows). zarr slices the value once per shard, then again per inner chunk,
    and numpy refuses the inner assignment; where the value's shape is not simply the
    selection's, zarr's own indexer is replayed on a stand-in of the value's shape."""
    if not isinstance(chain, ShardChain) or np.ndim(value) == 0:
        return
    shape = tuple(value.shape)
    for entry in entries:
        part = _basic_shape(entry[3], shape)
        if part is None or part != _basic_shape(entry[2], chain.shard_shape):
            _replay_inner_writes(chain, shape, entry[2], entry[3])


def _basic_shape(selection: Any, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape `array[selection]` has, for slices, integers and at most one 1-d integer
    or boolean array (an orthogonal selection of one array axis); else None."""
    if not isinstance(selection, tuple) or len(selection) != len(shape):
        return None
    out, arrays = [], 0
    for sel, n in zip(selection, shape, strict=True):
        if isinstance(sel, slice):
            out.append(len(range(*sel.indices(n))))
        elif isinstance(sel, np.ndarray) and sel.ndim == 1 and sel.dtype.kind in "biu":
            arrays += 1
            out.append(int(np.count_nonzero(sel)) if sel.dtype == bool else sel.size)
        elif not isinstance(sel, (int, np.integer)):
            return None
    return tuple(out) if arrays <= 1 else None


def _replay_inner_writes(chain: ShardChain, value_shape: tuple[int, ...], chunk_sel: Any,
                         out_sel: Any) -> None:
    """zarr's sharded write of one shard, on boolean stand-ins: numpy raises what zarr's
    own assignment would raise."""
    from zarr.codecs.sharding import _drops_only_unit_axes
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.indexing import CoordinateIndexer, get_indexer

    part = np.broadcast_to(np.zeros((), dtype=bool), value_shape)[out_sel]
    indexer = get_indexer(chunk_sel, shape=chain.shard_shape,
                          chunk_grid=ChunkGrid.from_sizes(chain.shard_shape, chain.inner_shape))
    if (isinstance(indexer, CoordinateIndexer) and part.ndim > 1
            and _drops_only_unit_axes(part.shape, indexer.sel_shape)):
        part = part.reshape(indexer.shape)
    scratch = np.empty(chain.inner_shape, dtype=bool)
    for _, inner_sel, inner_out, _ in indexer:
        scratch[inner_sel] = part if inner_sel == () else part[inner_out]


def _existing_tables(chain: ShardChain, host: ByteBatch, keys: list[str],
                     threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(present, starts, sizes), each (S, n_inner), of the inner chunks of whole stored
    shards (the index sliced from each shard's bytes), clipped to each shard as zarr's
    slicing clips them (index_ranges); a Blosc chunk whose entry is shorter than its
    header declares gets its declared length where the shard holds it (_blosc_reach)."""
    n = chain.index_nbytes
    short = np.flatnonzero(host.sizes < n)
    if short.size:
        raise ShardIndexError(keys[int(short[0])], "the shard is shorter than its index")
    starts = host.offsets if chain.index_at_start else host.offsets + host.sizes - n
    index_batch = ByteBatch(host.slab, starts, np.full(len(host), n, dtype=np.int64))
    tables = shard_tables(chain, index_batch, keys, threads)
    present, starts, sizes = index_ranges(tables, host.sizes)
    if _blosc_innermost(chain.inner) and len(host):
        sizes = _blosc_lengths(host, present, starts, sizes)
    return present, starts, sizes


def _blosc_lengths(host: ByteBatch, present: np.ndarray, starts: np.ndarray,
                   sizes: np.ndarray) -> np.ndarray:
    """Entry sizes of Blosc inner chunks, each raised to the length its header declares
    where the entry is shorter and the shard (host item s) holds that many bytes."""
    slab = np.asarray(host.slab)
    ends = host.sizes[:, None]
    readable = present & (starts + 16 <= ends)
    s_idx, j_idx = np.nonzero(readable)
    at = (host.offsets[s_idx] + starts[s_idx, j_idx])[:, None] + np.arange(12, 16)[None, :]
    cbytes = np.ascontiguousarray(slab[at]).view("<u4").reshape(-1).astype(np.int64)
    grow = (cbytes > sizes[s_idx, j_idx]) & (starts[s_idx, j_idx] + cbytes
                                             <= host.sizes[s_idx])
    out = sizes.copy()
    out[s_idx[grow], j_idx[grow]] = cbytes[grow]
    return out


@dataclass
class _Region:
    """The touched inner chunks of one shard: the box of them a write rebuilds."""

    shard: int  # index in the wave
    ids: np.ndarray  # flat inner chunk ids, C order over the box
    counts: tuple[int, ...]  # inner chunks per dimension
    origin: tuple[int, ...]  # the box's first element in the shard
    shape: tuple[int, ...]  # the box's shape in elements
    direct: bool  # the value covers the box as a plain view: no region buffer needed


@dataclass
class StoredShards:
    """The stored shards a write merges with: their index tables, clipped to each shard as
    zarr's slicing clips them (rows), and how to fetch the bytes of some of their inner
    chunks (all of them at hand after a whole read, read by range for a partial write)."""

    row: np.ndarray  # per wave shard: its row in the tables, -1 where nothing is merged
    present: np.ndarray  # (R, n_inner) bool
    starts: np.ndarray  # (R, n_inner) int64
    sizes: np.ndarray  # (R, n_inner) int64
    fetch: Callable[[np.ndarray, np.ndarray], ByteBatch]  # (rows, inner ids) -> their bytes


def stored_from_whole(chain: ShardChain, n_wave: int, keys: list[str], merged: np.ndarray,
                      host: ByteBatch, threads: int) -> StoredShards:
    """StoredShards of whole stored shards: `host` item k is wave shard merged[k]."""
    row = np.full(n_wave, -1, dtype=np.int64)
    row[merged] = np.arange(merged.size)
    present, starts, sizes = _existing_tables(chain, host, [keys[i] for i in merged], threads)

    def fetch(rows: np.ndarray, ids: np.ndarray) -> ByteBatch:
        return ByteBatch(host.slab, host.offsets[rows] + starts[rows, ids], sizes[rows, ids])

    return StoredShards(row, present, starts, sizes, fetch)


@dataclass
class Touched:
    """The rebuilt inner chunks of a wave of shards: item k is inner chunk ids[k] of wave
    shard shard_of[k], sorted by shard, with its new encoding (None: now empty)."""

    shard_of: np.ndarray
    ids: np.ndarray
    data: list[Any]

    def of(self, s: int) -> tuple[np.ndarray, list[Any]]:
        """Wave shard s's touched inner chunk ids and their encodings."""
        a, b = np.searchsorted(self.shard_of, [s, s + 1])
        return self.ids[a:b], self.data[a:b]


def _build_shards(
    chain: ShardChain, wave: list[Any], keys: list[str], partial: np.ndarray, host: ByteBatch,
    present: np.ndarray, value: Any, drop_axes: tuple[int, ...], dtype: np.dtype,
    device: Device, threads: int,
) -> tuple[list[str], list[Any], list[str]]:
    """The whole shards a write stores: its touched inner chunks with the stored others."""
    stored = stored_from_whole(chain, len(wave), keys, partial[present], host, threads)
    touched = encode_touched(chain, wave, keys, stored, value, drop_axes, dtype, device,
                             threads)
    return assemble_shards(chain, keys, range(len(wave)), touched,
                           old_pieces(chain, stored, host))


def encode_touched(
    chain: ShardChain, wave: list[Any], keys: list[str], stored: StoredShards, value: Any,
    drop_axes: tuple[int, ...], dtype: np.dtype, device: Device, threads: int,
) -> Touched:
    """Build every inner chunk a write touches (the value merged with what is stored) and
    encode them in one batch."""
    inner = chain.inner_shape
    xp = device.xp
    scalar = np.ndim(value) == 0

    # 1. Per shard: the box of touched inner chunks, and the stored ones it must merge.
    boxes: list[_Region] = []
    decode_rows: list[tuple[int, int]] = []  # (box, position in its ids)
    fetch_rows: list[int] = []
    fetch_ids: list[np.ndarray] = []
    for s, entry in enumerate(wave):
        bounds = selection_bounds(entry[2], chain.shard_shape)
        if bounds is None:
            continue
        first, stop = aligned_region(bounds, inner)
        counts = tuple(b - a for a, b in zip(first, stop, strict=True))
        shape = tuple(k * c for k, c in zip(counts, inner, strict=True))
        origin = tuple(a * c for a, c in zip(first, inner, strict=True))
        direct = not drop_axes and not scalar and covers_whole(
            shift_selection(entry[2], origin, chain.shard_shape, shape), shape)
        ids = inner_ids(chain.chunks_per_shard, first, stop)
        row = int(stored.row[s])
        if row >= 0 and not direct:  # a value covering the box replaces what is stored
            here = np.flatnonzero(stored.present[row][ids])
            decode_rows += [(len(boxes), j) for j in here.tolist()]
            fetch_rows.append(np.full(here.size, row, dtype=np.int64))
            fetch_ids.append(ids[here])
        boxes.append(_Region(s, ids, counts, origin, shape, direct))

    # 2. One buffer holds every region a write merges into (fill where nothing lands).
    built = [b for b in boxes if not b.direct]
    sizes = np.array([math.prod(b.shape) for b in built], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    slab = xp.empty(int(starts[-1]), dtype=dtype)
    regions = {id(b): slab[starts[k] : starts[k + 1]].reshape(b.shape)
               for k, b in enumerate(built)}
    fill_boxes = [b for b in built
                  if not (wave[b.shard][4] and covers_whole(wave[b.shard][2], chain.shard_shape))]
    if len(fill_boxes) == len(built):
        slab[...] = chain.fill_value
    else:
        for b in fill_boxes:
            regions[id(b)][...] = chain.fill_value

    # 3. Decode every stored inner chunk a partial write touches in one batch; merge them.
    if decode_rows:
        rows, ids = np.concatenate(fetch_rows), np.concatenate(fetch_ids)
        names = InnerKeys(keys, np.array([boxes[k].shard for k, _ in decode_rows]), ids,
                          chain.chunks_per_shard)
        decoded = decode_chain(chain.inner, stored.fetch(rows, ids), device, threads, names)
        pairs = []
        for k, (b, j) in enumerate(decode_rows):
            box = boxes[b]
            blocks = region_view(regions[id(box)], box.counts, inner)
            pairs.append((decoded[k], blocks[np.unravel_index(j, box.counts)]))
        device.copy_views(pairs)

    # 4. The value into each region, then every box cut into one batch of inner chunks.
    if built:
        device.gather([regions[id(b)] for b in built], value,
                      [shift_selection(wave[b.shard][2], b.origin, chain.shard_shape, b.shape)
                       for b in built],
                      [wave[b.shard][3] for b in built], drop_axes)
    counts_of = [len(b.ids) for b in boxes]
    bounds = np.concatenate([[0], np.cumsum(counts_of)]).astype(np.int64)
    chunks = xp.empty((int(bounds[-1]), *inner), dtype=dtype)
    from_value: list[tuple[Any, Any]] = []
    from_regions: list[tuple[Any, Any]] = []
    for k, box in enumerate(boxes):
        split = tuple(x for pair in zip(box.counts, inner, strict=True) for x in pair)
        target = chunks[bounds[k] : bounds[k + 1]].reshape((*box.counts, *inner))
        target = target.transpose(_interleave(len(inner)))  # (k0, c0, k1, c1, ...) view
        if box.direct:
            from_value.append((value[wave[box.shard][3]].reshape(split), target))
        else:
            from_regions.append((regions[id(box)].reshape(split), target))
    device.copy_views(from_value)
    device.copy_views(from_regions)
    shard_of = np.repeat(np.array([b.shard for b in boxes], dtype=np.int64), counts_of)
    ids_of = (np.concatenate([b.ids for b in boxes]) if boxes
              else np.zeros(0, dtype=np.int64))

    # 5. Encode the non-empty touched chunks of every shard in one batch.
    if chain.write_empty_chunks:
        empty = np.zeros(len(chunks), dtype=bool)
    else:
        empty = device.rows_equal_fill(chunks, chain.fill_value)
    encoded = _encode(chain.inner, chunks, ~empty, device, threads)
    new_bytes: list[Any] = [None] * len(chunks)
    for k, i in enumerate(np.flatnonzero(~empty).tolist()):
        new_bytes[i] = encoded[k]
    return Touched(shard_of, ids_of, new_bytes)


def old_pieces(chain: ShardChain, stored: StoredShards, host: ByteBatch
               ) -> Callable[[int], list[Any]]:
    """pieces(s): wave shard s's stored inner chunks (None where absent), from whole reads."""
    def pieces(s: int) -> list[Any]:
        out: list[Any] = [None] * chain.n_inner
        row = int(stored.row[s])
        if row >= 0:
            base = int(host.offsets[row])
            for j in np.flatnonzero(stored.present[row]).tolist():
                off = base + int(stored.starts[row, j])
                out[j] = host.slab[off : off + int(stored.sizes[row, j])]
        return out

    return pieces


def assemble_shards(chain: ShardChain, keys: list[str], shards: Any, touched: Touched,
                    pieces: Callable[[int], list[Any]]) -> tuple[list[str], list[Any], list[str]]:
    """Each wave shard in `shards` laid out whole in zarr's order (its stored inner chunks
    from `pieces`, the touched ones new): (keys to set, their bytes, keys to delete)."""
    order = write_order(chain.codec, chain.chunks_per_shard)
    set_keys: list[str] = []
    values: list[Any] = []
    deletes: list[str] = []
    for s in shards:
        parts = pieces(s)
        ids, data = touched.of(s)
        for j, d in zip(ids.tolist(), data, strict=True):
            parts[j] = d
        blob = _assemble(chain, parts, order, chain.n_inner)
        if blob is None:
            deletes.append(keys[s])
        else:
            set_keys.append(keys[s])
            values.append(blob)
    return set_keys, values, deletes


@timed("assemble")
def _assemble(chain: ShardChain, pieces: list[Any], order: np.ndarray,
              n_inner: int) -> list[Any] | None:
    """Lay out present inner chunks in `order`, build the index; None for an empty shard.
    Returns the shard's parts in file order (written with one writev, or joined)."""
    sizes = np.array([0 if p is None else len(p) for p in pieces], dtype=np.int64)
    present = np.array([p is not None for p in pieces], dtype=bool)
    if not present.any():
        return None
    ordered = order[present[order]]
    lens = sizes[ordered]
    start = chain.index_nbytes if chain.index_at_start else 0
    offsets = np.zeros(len(ordered), dtype=np.int64)
    if len(ordered) > 1:
        np.cumsum(lens[:-1], out=offsets[1:])
    offsets += start
    table = np.full((n_inner, 2), EMPTY, dtype=np.uint64)
    table[ordered, 0] = offsets.astype(np.uint64)
    table[ordered, 1] = lens.astype(np.uint64)
    index = encode_index(chain, table)
    parts = [pieces[j] for j in ordered.tolist()]
    return [index, *parts] if chain.index_at_start else [*parts, index]


def _interleave(nd: int) -> tuple[int, ...]:
    """Axes that turn (k0, k1, ..., c0, c1, ...) into (k0, c0, k1, c1, ...)."""
    return tuple(a for d in range(nd) for a in (d, nd + d))
