"""Partial shard writes in place: a write of some inner chunks of a stored shard reads the
shard's index and only the inner chunks it merges, encodes the touched ones, and writes
them (and the new index) as byte ranges into the shard, all or none (io.journal), instead
of writing the whole shard again. For stores with a range writer (io.set_range).

Each tile holds its shards' locks exclusively (io.locks) from the index read to the last
range, so threads of this process writing different inner chunks of one shard lose
nothing, and this process's readers never see a write half done. Where the layout rules
(plan.placement) say so, a shard is written whole instead; shards the write covers whole,
and new shards, are set whole through the store as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.config import Options
from cuzarr.decode import shard_tables
from cuzarr.devices import Device
from cuzarr.io import files, locks
from cuzarr.io.access import access
from cuzarr.io.files import fd_group
from cuzarr.io.host import HostReader
from cuzarr.io.set_range import RangeWriter
from cuzarr.plan.chain import ShardChain
from cuzarr.plan.placement import Placement, place
from cuzarr.plan.shard import encode_index, index_ranges, write_order
from cuzarr.read import _ShardPlan, _too_big, coalesce_limits, reach_whole, read_reaching
from cuzarr.workers import map_ranges, run_tiles, split_on
from cuzarr.write import (
    StoredShards,
    Touched,
    _buffer_class,
    _store_writes_sync,
    assemble_shards,
    encode_touched,
    old_pieces,
    stored_from_whole,
)

__all__ = ["write_shards_in_place"]


class _Stored:
    """The stored shards of one tile that a write merges with, read by range."""

    def __init__(self, merged: np.ndarray, sizes: np.ndarray, tables: np.ndarray,
                 stored: StoredShards, identities: np.ndarray | None) -> None:
        self.merged = merged  # wave shards merged with, in row order
        self.sizes = sizes  # their sizes in bytes
        self.tables = tables  # their raw (n_inner, 2) index tables
        self.stored = stored
        self.identities = identities  # their files' (device, inode), where they are files

    def identity(self, row: int) -> tuple[int, int] | None:
        if self.identities is None:
            return None
        device, inode = self.identities[row].tolist()
        return int(device), int(inode)


def _fetcher(chain: ShardChain, read: Callable[[np.ndarray, np.ndarray, np.ndarray], ByteBatch],
             starts_t: np.ndarray, sizes_t: np.ndarray, shard_sizes: np.ndarray,
             limits: dict[str, int]) -> Callable[[np.ndarray, np.ndarray], ByteBatch]:
    """fetch(rows, ids) by range. A Blosc chunk is read as zarr's write (which reads the
    shard whole) hands it to numcodecs: as far as its own header says, within the shard."""

    def fetch(rows: np.ndarray, ids: np.ndarray) -> ByteBatch:
        plan = _ShardPlan([], rows, starts_t[rows, ids], sizes_t[rows, ids], ids,
                          np.zeros((0, 2), np.int64), shard_sizes,
                          np.ones(rows.size, dtype=bool))
        reach_whole(chain.inner, plan)
        return read_reaching(chain.inner, read, plan, limits)

    return fetch


@contextlib.contextmanager
def _read_stored(chain: ShardChain, reader: HostReader, writer: RangeWriter, keys: list[str],
                 candidates: np.ndarray, limits: dict[str, int], threads: int
                 ) -> Iterator[_Stored]:
    """The index tables of the stored shards among `candidates` (wave shards a write does
    not cover whole), and a fetch of their inner chunks by range (their files held open
    meanwhile on a LocalStore). Called with the shards' locks held."""
    names = [keys[i] for i in candidates]
    if reader.root is not None:
        with reader.open_shards(names, lock=False) as shards:  # replays killed writes first
            merged = candidates[shards.present]
            index = shards.index(chain.index_nbytes, chain.index_at_start, threads)
            sizes = index.shard_sizes
            tables = shard_tables(chain, index.batch, [keys[i] for i in merged], threads)

            def read(rows: np.ndarray, starts: np.ndarray, sizes_: np.ndarray) -> ByteBatch:
                return shards.ranges(rows, starts, sizes_, threads=threads, alloc=reader.alloc,
                                     **limits)

            yield _stored(chain, len(keys), merged, sizes, tables, read, limits,
                          shards.identities[shards.present])
        return
    sizes_all = np.full(len(names), -1, dtype=np.int64)

    def size_of(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            got = writer.size(names[i])
            sizes_all[i] = -1 if got is None else got

    map_ranges(size_of, len(names), threads, min_items=16)
    here = sizes_all >= 0
    merged, sizes = candidates[here], sizes_all[here]
    present_keys = [keys[i] for i in merged]
    index = reader.index_sync(present_keys, chain.index_nbytes, chain.index_at_start)
    if not index.present.all():
        raise FileNotFoundError(f"shard {present_keys[int(np.argmin(index.present))]!r} "
                                "vanished while it was being written")
    tables = shard_tables(chain, index.batch, present_keys, threads)

    def read_store(rows: np.ndarray, starts: np.ndarray, sizes_: np.ndarray) -> ByteBatch:
        return reader.ranges_sync(present_keys, rows, starts, sizes_, **limits)

    yield _stored(chain, len(keys), merged, sizes, tables, read_store, limits, None)


def _stored(chain: ShardChain, n_wave: int, merged: np.ndarray, sizes: np.ndarray,
            tables: np.ndarray, read: Any, limits: dict[str, int],
            identities: np.ndarray | None) -> _Stored:
    row = np.full(n_wave, -1, dtype=np.int64)
    row[merged] = np.arange(merged.size)
    present, starts, lengths = index_ranges(tables, sizes)
    stored = StoredShards(row, present, starts, lengths,
                          _fetcher(chain, read, starts, lengths, sizes, limits))
    return _Stored(merged, sizes, tables, stored, identities)


def _placements(chain: ShardChain, stored: _Stored, touched: Touched, opts: Options
                ) -> list[Placement]:
    """Each merged shard's placement (plan.placement's rules; "rewrite" for all of them
    where the shard_writes setting says so)."""
    if opts.shard_writes == "rewrite":
        return [Placement("rewrite", [], None, 0) for _ in stored.merged]
    order = write_order(chain.codec, chain.chunks_per_shard)

    def index_bytes(table: np.ndarray) -> bytes:
        return encode_index(chain, table)

    out = []
    for k, s in enumerate(stored.merged.tolist()):
        ids, data = touched.of(s)
        out.append(place(stored.tables[k], int(stored.sizes[k]), chain.index_nbytes,
                         chain.index_at_start, ids, data, order, index_bytes,
                         opts.shard_dead_fraction))
    return out


async def write_shards_in_place(
    chain: ShardChain, store: Any, writer: RangeWriter, entries: list[Any], value: Any,
    drop_axes: tuple[int, ...], opts: Options, device: Device, covered: np.ndarray,
) -> None:
    """Write shards on a store with a range writer: partial writes of stored shards in
    place, the rest whole (`covered`: the shards the value covers whole)."""
    store._check_writable()  # as the store's own set does, before anything is written
    keys = [e[0].path for e in entries]
    names = [writer.lock_name(k) for k in keys]
    prototype = entries[0][1].prototype
    buffer = _buffer_class(store, prototype)
    dtype = entries[0][1].dtype.to_native_dtype()
    limits = coalesce_limits(entries)

    def tile(lo: int, hi: int, threads: int) -> None:
        wave, wkeys = entries[lo:hi], keys[lo:hi]
        reader = HostReader(store, threads, alloc=device.host_empty, prototype=prototype)
        with locks.exclusive(names[lo:hi]):
            candidates = np.flatnonzero(~covered[lo:hi])
            if reader.root is not None:  # a shard replaced whole loses its journal first
                files.recover_journals([os.path.join(reader.root, wkeys[i]) for i in
                                        np.flatnonzero(covered[lo:hi]).tolist()], threads,
                                       held=True)
            with _read_stored(chain, reader, writer, wkeys, candidates, limits,
                              threads) as stored, device.tile_scope():
                touched = encode_touched(chain, wave, wkeys, stored.stored, value, drop_axes,
                                         dtype, device, threads)
            plans = _placements(chain, stored, touched, opts)
            _finish(chain, store, writer, reader, wkeys, stored, touched, plans, threads,
                    buffer, opts.durable_writes)

    per_tile = min(opts.wave_bytes, device.tile_bytes) // max(
        1, math.prod(chain.shard_shape) * dtype.itemsize)
    if access(store).root is not None:  # a tile holds its shard files open
        per_tile = min(per_tile, fd_group(opts.threads))
    tile = split_on(device.out_of_memory, tile, _too_big(keys, "shard", device))
    await asyncio.to_thread(run_tiles, tile, len(entries), per_tile, opts.threads,
                            device.tiles_in_flight)


def _finish(chain: ShardChain, store: Any, writer: RangeWriter, reader: HostReader,
            keys: list[str], stored: _Stored, touched: Touched, plans: list[Placement],
            threads: int, buffer: Any, durable: bool) -> None:
    """Store one tile's shards: ranges into the shards placed in place (into the very
    files their indexes were read from), the others whole."""
    merged = stored.merged.tolist()
    kinds = {s: p.kind for s, p in zip(merged, plans, strict=True)}
    patched = [(keys[s], p.ranges, stored.identity(row))
               for row, (s, p) in enumerate(zip(merged, plans, strict=True))
               if p.kind == "ranges"]
    deletes = [keys[s] for s in merged if kinds[s] == "delete"]
    def none_stored(s: int) -> list[Any]:
        return [None] * chain.n_inner

    fresh = [s for s in range(len(keys)) if s not in kinds and len(touched.of(s)[0])]
    set_keys, values, gone = assemble_shards(chain, keys, fresh, touched,
                                             none_stored)
    deletes += gone
    rewrite = np.array([s for s in merged if kinds[s] == "rewrite"], dtype=np.int64)
    if rewrite.size:  # read whole, laid out whole: compaction, or an unusual layout
        host, present = reader.whole_sync([keys[s] for s in rewrite])
        whole = stored_from_whole(chain, len(keys), keys, rewrite[present], host, threads)
        for more in (assemble_shards(chain, keys, rewrite[present].tolist(), touched,
                                     old_pieces(chain, whole, host)),
                     assemble_shards(chain, keys, rewrite[~present].tolist(), touched,
                                     none_stored)):
            set_keys += more[0]
            values += more[1]
            deletes += more[2]
    _store_writes_sync(store, set_keys, values, deletes, threads, buffer, durable)

    def work(lo: int, hi: int) -> None:
        for key, ranges, identity in patched[lo:hi]:
            writer.write_ranges(key, ranges, identity)

    map_ranges(work, len(patched), threads, min_items=4)
