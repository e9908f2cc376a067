"""The read path: plan -> io -> decode -> scatter, for plain chunks and for shards."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.config import Options
from cuzarr.decode import decode_fixed, decode_generic, named
from cuzarr.devices import select_device
from cuzarr.io.host import HostReader
from cuzarr.plan.chain import Chain, FixedChain, ShardChain
from cuzarr.plan.selection import aligned_region, selection_bounds, shift_selection
from cuzarr.plan.shard import EMPTY, decode_indexes, inner_ids, validate_tables
from cuzarr.scatter import scatter
from cuzarr.workers import StageError, map_ranges

__all__ = ["decode_chain", "read_plain", "read_shards", "region_view", "waves"]


def waves(n: int, bytes_per_item: int, budget: int) -> list[tuple[int, int]]:
    """Split n items into waves whose decoded bytes stay within `budget` (>= 1 item each)."""
    per_wave = max(1, budget // max(1, bytes_per_item))
    return [(lo, min(n, lo + per_wave)) for lo in range(0, n, per_wave)]


def decode_chain(chain: Chain, batch: ByteBatch, device: Any, threads: int, keys: Any) -> Any:
    """Decode a batch of stored chunks with a (non-shard) chain: an array or a list of arrays."""
    if isinstance(chain, FixedChain):
        return decode_fixed(chain, device.to_device(batch), device, threads, keys)
    if isinstance(chain, ShardChain):
        raise TypeError("shards are decoded by read_shards")
    return decode_generic(chain, batch, threads, keys)


async def read_plain(
    chain: Chain, store: Any, entries: list[Any], out: Any, drop_axes: tuple[int, ...],
    opts: Options,
) -> np.ndarray:
    """Read whole chunks and scatter them; returns which chunks were present."""
    device = select_device(out, opts.device)
    reader = HostReader(store, opts.threads)
    keys = [e[0].path for e in entries]
    per_chunk = math.prod(entries[0][1].shape) * out.dtype.itemsize
    present_all = np.zeros(len(entries), dtype=bool)
    for lo, hi in waves(len(entries), per_chunk, opts.wave_bytes):
        wave_keys = keys[lo:hi]
        host, present = await reader.whole(wave_keys)
        present_all[lo:hi] = present

        def decode_and_scatter(
            host: ByteBatch = host, present: np.ndarray = present, lo: int = lo, hi: int = hi,
            wave_keys: list[str] = wave_keys,
        ) -> None:
            rows = np.full(hi - lo, -1, dtype=np.int64)
            idx = np.flatnonzero(present)
            rows[idx] = np.arange(idx.size)
            decoded = decode_chain(chain, host, device, opts.threads, [wave_keys[i] for i in idx])
            scatter(
                out, decoded, rows,
                [e[2] for e in entries[lo:hi]], [e[3] for e in entries[lo:hi]],
                drop_axes, chain.fill_value, opts.threads,
            )

        await asyncio.to_thread(decode_and_scatter)
    return present_all


def region_view(region: np.ndarray, counts: tuple[int, ...], inner: tuple[int, ...]) -> np.ndarray:
    """View a region made of a grid of inner chunks as (k0, k1, ..., c0, c1, ...)."""
    nd = len(inner)
    split = region.reshape(tuple(x for pair in zip(counts, inner, strict=True) for x in pair))
    return split.transpose(*range(0, 2 * nd, 2), *range(1, 2 * nd, 2))


class _InnerKeys:
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
    opts: Options,
) -> np.ndarray:
    """Read the touched inner chunks of every shard in one batch; returns shard presence."""
    device = select_device(out, opts.device)
    reader = HostReader(store, opts.threads)
    keys = [e[0].path for e in entries]
    shard_nbytes = math.prod(chain.shard_shape) * out.dtype.itemsize
    present_all = np.zeros(len(entries), dtype=bool)
    for lo, hi in waves(len(entries), shard_nbytes, opts.wave_bytes):
        present_all[lo:hi] = await _read_shard_wave(
            chain, reader, keys[lo:hi], entries[lo:hi], out, drop_axes, opts, device
        )
    return present_all


async def _read_shard_wave(
    chain: ShardChain, reader: HostReader, keys: list[str], entries: list[Any], out: Any,
    drop_axes: tuple[int, ...], opts: Options, device: Any,
) -> np.ndarray:
    index = await reader.index(keys, chain.index_nbytes, chain.index_at_start)
    present_idx = np.flatnonzero(index.present)
    present_keys = [keys[i] for i in present_idx]
    try:
        tables = decode_indexes(chain, index.batch, opts.threads)
        validate_tables(tables, index.shard_sizes)
    except StageError as e:
        raise named(e, present_keys) from e

    inner = chain.inner_shape
    plans: list[tuple[int, tuple[int, ...], tuple[int, ...], np.ndarray, np.ndarray]] = []
    req_shard, req_start, req_size, req_ids = [], [], [], []
    n_present = 0
    for s, i in enumerate(present_idx.tolist()):
        bounds = selection_bounds(entries[i][2], chain.shard_shape)
        if bounds is None:
            continue
        first, stop = aligned_region(bounds, inner)
        ids = inner_ids(chain.chunks_per_shard, first, stop)
        table = tables[s][ids]
        has = table[:, 0] != EMPTY
        rows = np.full(ids.size, -1, dtype=np.int64)
        rows[has] = n_present + np.arange(int(has.sum()))
        n_present += int(has.sum())
        plans.append((i, first, stop, rows, ids))
        req_shard.append(np.full(int(has.sum()), s, dtype=np.int64))
        req_start.append(table[has, 0].astype(np.int64))
        req_size.append(table[has, 1].astype(np.int64))
        req_ids.append(ids[has])

    if n_present:
        shard_of = np.concatenate(req_shard)
        batch = await reader.ranges(
            present_keys, shard_of, np.concatenate(req_start), np.concatenate(req_size),
            max_gap_bytes=opts.coalesce_max_gap_bytes, max_bytes=opts.coalesce_max_bytes,
        )
        names = _InnerKeys(present_keys, shard_of, np.concatenate(req_ids), chain.chunks_per_shard)
    else:
        batch, names = ByteBatch.empty(), _InnerKeys(present_keys, np.zeros(0), np.zeros(0), ())

    def decode_and_scatter() -> None:
        decoded = decode_chain(chain.inner, batch, device, opts.threads, names)
        fill = chain.fill_value
        missing = np.flatnonzero(~index.present)
        if missing.size:
            scatter(out, None, np.full(missing.size, -1, dtype=np.int64),
                    [None] * missing.size, [entries[i][3] for i in missing], drop_axes, fill)
        def place_shards(lo: int, hi: int) -> None:
            for plan in plans[lo:hi]:
                _place_shard(plan)

        def _place_shard(plan: Any) -> None:
            i, first, stop, rows, _ = plan
            counts = tuple(b - a for a, b in zip(first, stop, strict=True))
            region_shape = tuple(k * c for k, c in zip(counts, inner, strict=True))
            region = np.empty(region_shape, dtype=out.dtype)
            blocks = region_view(region, counts, inner)
            flat = blocks.reshape(-1, *inner) if blocks.flags.c_contiguous else None
            _place(blocks, flat, counts, decoded, rows, fill)
            origin = tuple(a * c for a, c in zip(first, inner, strict=True))
            local = shift_selection(entries[i][2], origin, chain.shard_shape, region_shape)
            value = region[local]
            if drop_axes:
                value = value.squeeze(axis=drop_axes)
            out[entries[i][3]] = value

        map_ranges(place_shards, len(plans), opts.threads)

    await asyncio.to_thread(decode_and_scatter)
    return index.present


def _place(blocks: np.ndarray, flat: np.ndarray | None, counts: tuple[int, ...], decoded: Any,
           rows: np.ndarray, fill: Any) -> None:
    """Write decoded inner chunks (rows >= 0) and fill (rows < 0) into a region's blocks."""
    has = rows >= 0
    if isinstance(decoded, np.ndarray) and bool(has.all()):
        blocks[...] = decoded[rows].reshape(blocks.shape)
        return
    grid = blocks.reshape(-1, *blocks.shape[len(counts):]) if flat is not None else None
    for j, row in enumerate(rows.tolist()):
        coords = np.unravel_index(j, counts) if counts else ()
        target = grid[j] if grid is not None else blocks[tuple(int(c) for c in coords)]
        if row < 0:
            target[...] = fill
        else:
            target[...] = decoded[row]
