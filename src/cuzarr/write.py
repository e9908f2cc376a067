"""The write path: gather -> merge with stored chunks -> batched encode -> store writes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.config import Options
from cuzarr.decode import encode_fixed, encode_generic, named
from cuzarr.devices import select_device
from cuzarr.io.host import HostReader
from cuzarr.plan.chain import Chain, FixedChain, ShardChain
from cuzarr.plan.selection import (
    aligned_region,
    covers_whole,
    selection_bounds,
    shift_selection,
)
from cuzarr.plan.shard import EMPTY, decode_indexes, encode_index, inner_ids, write_order
from cuzarr.read import TILE_BYTES, InnerKeys, decode_chain, region_view, waves
from cuzarr.scatter import gather_into, rows_equal_fill
from cuzarr.workers import StageError, map_ranges, run_tiles

__all__ = ["write_plain", "write_shards"]


def _new_chunks(
    shape: tuple[int, ...], dtype: np.dtype, fill: Any, complete: np.ndarray
) -> np.ndarray:
    """Chunk buffers for a write; only chunks the value does not cover start as fill."""
    chunks = np.empty((len(complete), *shape), dtype=dtype)
    if complete.all():
        return chunks
    if not complete.any():
        chunks[...] = fill
    else:
        chunks[~complete] = fill
    return chunks


def _encode(chain: Chain, chunks: np.ndarray, keep: np.ndarray, device: Any,
            threads: int) -> list[Any]:
    """Encode chunks[keep]; returns host bytes-like per kept chunk (None = store nothing)."""
    if isinstance(chain, FixedChain):
        kept = chunks if bool(keep.all()) else chunks[keep]  # no copy when all are kept
        encoded = encode_fixed(chain, kept, device, threads)
        return [encoded.item(i) for i in range(len(encoded))]
    return encode_generic(chain, [chunks[i] for i in np.flatnonzero(keep)], threads)


def _buffers(values: list[Any]) -> list[Any]:
    from zarr.core.buffer.cpu import Buffer

    return [Buffer.from_array_like(np.frombuffer(v, dtype=np.uint8)) for v in values]


def _store_writes_sync(store: Any, keys: list[str], values: list[Any], deletes: list[str],
                       threads: int) -> None:
    """Set and delete keys on a store with sync IO (LocalStore: atomic temp-and-rename)."""
    buffers = _buffers(values)

    def work_set(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            store.set_sync(keys[i], buffers[i])

    def work_delete(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            store.delete_sync(deletes[i])

    map_ranges(work_set, len(keys), threads, min_items=4)
    map_ranges(work_delete, len(deletes), threads, min_items=16)


async def _store_writes_async(store: Any, keys: list[str], values: list[Any],
                              deletes: list[str]) -> None:
    """Set and delete keys concurrently on an async store."""
    buffers = _buffers(values)
    await asyncio.gather(*(store.set(k, b) for k, b in zip(keys, buffers, strict=True)))
    await asyncio.gather(*(store.delete(k) for k in deletes))


#: builds the writes of entries[lo:hi]: (keys to set, their bytes, keys to delete)
Builder = Callable[[int, int, np.ndarray, ByteBatch, np.ndarray, int],
                   tuple[list[str], list[Any], list[str]]]


async def _drive(store: Any, entries: list[Any], item_nbytes: int, opts: Options,
                 build: Builder) -> None:
    """Run a write tile by tile (blocking stores) or wave by wave (async stores).

    Each tile reads the stored items it must merge with, builds and encodes its
    items, and writes them; tiles overlap on the pool like reads do.
    """
    keys = [e[0].path for e in entries]
    partial = np.array([not e[4] for e in entries], dtype=bool)
    reader = HostReader(store, opts.threads)
    if reader.blocking:
        def tile(lo: int, hi: int, threads: int) -> None:
            part = np.flatnonzero(partial[lo:hi])
            host, present = ByteBatch.empty(), np.zeros(0, dtype=bool)
            if part.size:
                host, present = HostReader(store, threads).whole_sync([keys[lo + i] for i in part])
            set_keys, values, deletes = build(lo, hi, part, host, present, threads)
            _store_writes_sync(store, set_keys, values, deletes, threads)

        per_tile = min(opts.wave_bytes, TILE_BYTES) // max(1, item_nbytes)
        await asyncio.to_thread(run_tiles, tile, len(entries), per_tile, opts.threads)
        return
    for lo, hi in waves(len(entries), item_nbytes, opts.wave_bytes):
        part = np.flatnonzero(partial[lo:hi])
        host, present = ByteBatch.empty(), np.zeros(0, dtype=bool)
        if part.size:
            host, present = await reader.whole([keys[lo + i] for i in part])
        set_keys, values, deletes = await asyncio.to_thread(
            build, lo, hi, part, host, present, opts.threads
        )
        await _store_writes_async(store, set_keys, values, deletes)


async def write_plain(
    chain: Chain, store: Any, entries: list[Any], value: np.ndarray,
    drop_axes: tuple[int, ...], opts: Options,
) -> None:
    """Write whole chunks: merge partly written ones with what is stored, encode, store."""
    device = select_device(value, opts.device)
    shape = tuple(entries[0][1].shape)
    dtype = entries[0][1].dtype.to_native_dtype()

    def build(lo: int, hi: int, partial: np.ndarray, host: ByteBatch, present: np.ndarray,
              threads: int) -> tuple[list[str], list[Any], list[str]]:
        wave = entries[lo:hi]
        keys = [e[0].path for e in wave]
        complete = np.array([bool(e[4]) and covers_whole(e[2], shape) for e in wave])
        chunks = _new_chunks(shape, dtype, chain.fill_value, complete)
        have = partial[present]
        if have.size:
            decoded = device.for_output(
                decode_chain(chain, host, device, threads, [keys[i] for i in have]), value
            )
            for row, i in enumerate(have.tolist()):
                chunks[i, ...] = decoded[row]
        gather_into(chunks, value, [e[2] for e in wave], [e[3] for e in wave], drop_axes)
        if chain.write_empty_chunks:
            empty = np.zeros(len(wave), dtype=bool)
        else:
            empty = rows_equal_fill(chunks, chain.fill_value)
        encoded = _encode(chain, chunks, ~empty, device, threads)
        kept = np.flatnonzero(~empty).tolist()
        set_keys = [keys[i] for i, v in zip(kept, encoded, strict=True) if v is not None]
        values = [v for v in encoded if v is not None]
        deletes = [keys[i] for i in np.flatnonzero(empty)]
        deletes += [keys[i] for i, v in zip(kept, encoded, strict=True) if v is None]
        return set_keys, values, deletes

    await _drive(store, entries, math.prod(shape) * dtype.itemsize, opts, build)


async def write_shards(
    chain: ShardChain, store: Any, entries: list[Any], value: np.ndarray,
    drop_axes: tuple[int, ...], opts: Options,
) -> None:
    """Write shards: re-encode only the touched inner chunks, keep the others' bytes."""
    device = select_device(value, opts.device)
    dtype = entries[0][1].dtype.to_native_dtype()

    def build(lo: int, hi: int, partial: np.ndarray, host: ByteBatch, present: np.ndarray,
              threads: int) -> tuple[list[str], list[Any], list[str]]:
        wave = entries[lo:hi]
        keys = [e[0].path for e in wave]
        return _build_shards(chain, wave, keys, partial, host, present, value, drop_axes,
                             dtype, device, threads)

    await _drive(store, entries, math.prod(chain.shard_shape) * dtype.itemsize, opts, build)


def _existing_tables(chain: ShardChain, host: ByteBatch, keys: list[str],
                     threads: int) -> np.ndarray:
    """Index tables of whole stored shards (index sliced from each shard's bytes)."""
    n = chain.index_nbytes
    short = np.flatnonzero(host.sizes < n)
    if short.size:
        raise named(StageError(int(short[0]), "shard shorter than its index"), keys)
    starts = host.offsets if chain.index_at_start else host.offsets + host.sizes - n
    index_batch = ByteBatch(host.slab, starts, np.full(len(host), n, dtype=np.int64))
    try:
        tables = decode_indexes(chain, index_batch, threads)
        from cuzarr.plan.shard import validate_tables

        validate_tables(tables, host.sizes)
    except StageError as e:
        raise named(e, keys) from e
    return tables


def _build_shards(
    chain: ShardChain, wave: list[Any], keys: list[str], partial: np.ndarray, host: ByteBatch,
    present: np.ndarray, value: np.ndarray, drop_axes: tuple[int, ...], dtype: np.dtype,
    device: Any, threads: int,
) -> tuple[list[str], list[Any], list[str]]:
    inner = chain.inner_shape
    n_inner = chain.n_inner
    have = partial[present]
    existing_row = np.full(len(wave), -1, dtype=np.int64)
    existing_row[have] = np.arange(have.size)
    tables = _existing_tables(chain, host, [keys[i] for i in have], threads)

    # 1. Per shard: the touched inner chunks, merged with stored data where needed.
    touched_ids: list[np.ndarray] = []
    # per shard: (region array, inner-chunk counts, region origin), or None if untouched
    regions: list[tuple[np.ndarray, tuple[int, ...], tuple[int, ...]] | None] = []
    decode_rows: list[tuple[int, int]] = []  # (shard in the wave, position in its touched ids)
    decode_ranges: list[tuple[int, int]] = []
    for s, entry in enumerate(wave):
        bounds = selection_bounds(entry[2], chain.shard_shape)
        if bounds is None:
            touched_ids.append(np.zeros(0, dtype=np.int64))
            regions.append(None)
            continue
        first, stop = aligned_region(bounds, inner)
        ids = inner_ids(chain.chunks_per_shard, first, stop)
        counts = tuple(b - a for a, b in zip(first, stop, strict=True))
        region = np.empty(tuple(k * c for k, c in zip(counts, inner, strict=True)), dtype=dtype)
        if not (entry[4] and covers_whole(entry[2], chain.shard_shape)):
            region[...] = chain.fill_value
        row = int(existing_row[s])
        if row >= 0:
            table = tables[row][ids]
            has = np.flatnonzero(table[:, 0] != EMPTY)
            base = int(host.offsets[row])
            for j in has.tolist():
                decode_rows.append((s, j))
                decode_ranges.append((base + int(table[j, 0]), int(table[j, 1])))
        touched_ids.append(ids)
        regions.append((region, counts, tuple(a * c for a, c in zip(first, inner, strict=True))))

    # 2. Decode every stored inner chunk that a partial write touches, in one batch.
    if decode_ranges:
        starts = np.array([r[0] for r in decode_ranges], dtype=np.int64)
        sizes = np.array([r[1] for r in decode_ranges], dtype=np.int64)
        names = InnerKeys(keys, np.array([s for s, _ in decode_rows]),
                          np.array([touched_ids[s][j] for s, j in decode_rows]),
                          chain.chunks_per_shard)
        decoded = device.for_output(
            decode_chain(chain.inner, ByteBatch(host.slab, starts, sizes), device, threads,
                         names),
            value,
        )
        for k, (s, j) in enumerate(decode_rows):
            region, counts, _ = regions[s]  # type: ignore[misc]  # set for touched shards
            blocks = region_view(region, counts, inner)
            blocks[np.unravel_index(j, counts)] = decoded[k]

    # 3. Write the value into each region, cut straight into one batch of inner chunks.
    sizes = [0 if r is None else len(touched_ids[s]) for s, r in enumerate(regions)]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    chunks = np.empty((int(bounds[-1]), *inner), dtype=dtype)
    scalar = np.ndim(value) == 0
    for s, entry in enumerate(wave):
        placed = regions[s]
        if placed is None:
            continue
        region, counts, origin = placed
        target = chunks[bounds[s] : bounds[s + 1]].reshape(*counts, *inner)
        target = target.transpose(_interleave(len(inner)))  # (k0, c0, k1, c1, ...) view
        local = shift_selection(entry[2], origin, chain.shard_shape, region.shape)
        if covers_whole(local, region.shape) and not drop_axes and not scalar:
            target[...] = value[entry[3]].reshape(target.shape)
            continue
        gather_into(region[None], value, [local], [entry[3]], drop_axes)
        target[...] = region.reshape(target.shape)
    shard_of = np.repeat(np.arange(len(wave), dtype=np.int64), sizes)
    ids_of = np.concatenate(touched_ids) if touched_ids else np.zeros(0, dtype=np.int64)

    # 4. Encode the non-empty touched chunks of every shard in one batch.
    if chain.write_empty_chunks:
        empty = np.zeros(len(chunks), dtype=bool)
    else:
        empty = rows_equal_fill(chunks, chain.fill_value)
    encoded = _encode(chain.inner, chunks, ~empty, device, threads)
    new_bytes: list[Any] = [None] * len(chunks)
    for k, i in enumerate(np.flatnonzero(~empty).tolist()):
        new_bytes[i] = encoded[k]

    # 5. Assemble each shard in zarr's inner-chunk order.
    order = write_order(chain.codec, chain.chunks_per_shard)
    set_keys: list[str] = []
    values: list[Any] = []
    deletes: list[str] = []
    starts_of = np.searchsorted(shard_of, np.arange(len(wave) + 1))
    for s in range(len(wave)):
        pieces: list[Any] = [None] * n_inner
        row = int(existing_row[s])
        if row >= 0:
            table = tables[row]
            base = int(host.offsets[row])
            for j in np.flatnonzero(table[:, 0] != EMPTY).tolist():
                off = base + int(table[j, 0])
                pieces[j] = host.slab[off : off + int(table[j, 1])]
        for k in range(int(starts_of[s]), int(starts_of[s + 1])):
            pieces[int(ids_of[k])] = new_bytes[k]
        blob = _assemble(chain, pieces, order, n_inner)
        if blob is None:
            deletes.append(keys[s])
        else:
            set_keys.append(keys[s])
            values.append(blob)
    return set_keys, values, deletes


def _assemble(chain: ShardChain, pieces: list[Any], order: np.ndarray,
              n_inner: int) -> np.ndarray | None:
    """Lay out present inner chunks in `order`, build the index; None for an empty shard."""
    sizes = np.array([0 if p is None else len(p) for p in pieces], dtype=np.int64)
    present = np.array([p is not None and len(p) > 0 for p in pieces], dtype=bool)
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
    index = np.frombuffer(encode_index(chain, table), dtype=np.uint8)
    data_nbytes = int(lens.sum())
    blob = np.empty(data_nbytes + index.size, dtype=np.uint8)
    for j, off in zip(ordered.tolist(), offsets.tolist(), strict=True):
        piece = np.frombuffer(pieces[j], dtype=np.uint8) if not isinstance(
            pieces[j], np.ndarray) else pieces[j]
        blob[off : off + piece.size] = piece
    if chain.index_at_start:
        blob[: index.size] = index
    else:
        blob[data_nbytes:] = index
    return blob


def _interleave(nd: int) -> tuple[int, ...]:
    """Axes that turn (k0, k1, ..., c0, c1, ...) into (k0, c0, k1, c1, ...)."""
    return tuple(a for d in range(nd) for a in (d, nd + d))
