"""Shard indexes (decode and encode, vectorized over shards) and inner-chunk geometry.

The sharding codec here is a planner of byte ranges: it never does IO itself.
"""

from __future__ import annotations

from typing import Any

import google_crc32c
import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.plan.chain import ShardChain
from cuzarr.workers import StageError

__all__ = ["EMPTY", "SIZE_BOUND", "decode_indexes", "encode_index", "index_ranges", "inner_ids",
           "stored_entries", "write_order"]

EMPTY = np.uint64(2**64 - 1)


def decode_indexes(chain: ShardChain, batch: ByteBatch, threads: int) -> np.ndarray:
    """The (offset, nbytes) table of every shard in `batch`: shape (S, n_inner, 2), uint64.

    Raises StageError(i) for shard i when its index is truncated or fails its checksum.
    """
    n = len(batch)
    raw_nbytes = chain.n_inner * 16
    short = np.flatnonzero(batch.sizes < chain.index_nbytes)
    if short.size:
        i = int(short[0])
        raise StageError(
            i, f"truncated: {int(batch.sizes[i])} bytes, expected {chain.index_nbytes}"
        )
    if chain.index_stages is None:
        tables = np.empty((n, chain.n_inner, 2), dtype=np.uint64)
        for i in range(n):
            try:
                index = chain.codec._decode_shard_index_sync(
                    _host_buffer(batch.item(i)), chain.chunks_per_shard
                )
            except Exception as e:
                raise StageError(i, f"{type(e).__name__}: {e}", cause=e) from e
            tables[i] = index.offsets_and_lengths.reshape(-1, 2)
        return tables
    current = batch
    for stage in reversed(chain.index_stages):
        current = stage.decode(current, None, threads)
    bad = np.flatnonzero(current.sizes != raw_nbytes)
    if bad.size:
        raise StageError(int(bad[0]), "it has the wrong size")
    rows = current.offsets[:, None] + np.arange(raw_nbytes)[None, :]
    raw = np.ascontiguousarray(np.asarray(current.slab)[rows.ravel()])
    return raw.view("<u8").reshape(n, chain.n_inner, 2).astype(np.uint64, copy=False)


#: no shard is this large: where a shard's size is unknown (a store read through its own
#: methods) its ranges are clipped here, so offset arithmetic cannot overflow; the store
#: then returns only what the shard holds
SIZE_BOUND = 1 << 62


def index_ranges(tables: np.ndarray, shard_sizes: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(present, starts, sizes), each (S, n_inner), of the inner chunks the index tables
    point at, clipped to each shard as zarr's slicing clips them: an entry that reaches
    past the end of its shard gets the bytes up to the end, one that starts past it none,
    and so does one whose end wraps past 2**64 (zarr's uint64 sum wraps too, and its slice
    is then empty); the codec then says what is wrong. Only (2**64-1, 2**64-1) is an empty
    entry.
    """
    offsets, lengths = tables[..., 0], tables[..., 1]
    present = stored_entries(tables)
    if shard_sizes is None:
        limit = np.full((len(tables), 1), SIZE_BOUND, dtype=np.uint64)
    else:
        limit = np.minimum(shard_sizes, SIZE_BOUND).astype(np.uint64)[:, None]
    with np.errstate(over="ignore"):
        ends = offsets + lengths
    # an end that wraps past 2**64 comes before its start, in zarr's uint64 arithmetic too:
    # the slice is empty
    ends = np.where(ends < offsets, offsets, ends)
    starts = np.minimum(offsets, limit)
    ends = np.minimum(ends, limit)
    return present, starts.astype(np.int64), (ends - starts).astype(np.int64)


def stored_entries(tables: np.ndarray) -> np.ndarray:
    """Which entries of index tables (..., 2) point at a stored inner chunk: all but
    (2**64-1, 2**64-1)."""
    return ~((tables[..., 0] == EMPTY) & (tables[..., 1] == EMPTY))


def encode_index(chain: ShardChain, table: np.ndarray) -> bytes:
    """Encode one shard's (n_inner, 2) table with the shard's index codecs."""
    raw = np.ascontiguousarray(table, dtype="<u8").reshape(-1)
    if chain.index_stages is not None:
        data = raw.tobytes()
        for _ in chain.index_stages:
            data += int(google_crc32c.value(data)).to_bytes(4, "little")
        return data
    from zarr.codecs.sharding import _ShardIndex

    index = _ShardIndex(chain.chunks_per_shard, raw.reshape(*chain.chunks_per_shard, 2))
    return chain.codec._encode_shard_index_sync(index).to_bytes()


def inner_ids(
    chunks_per_shard: tuple[int, ...], first: tuple[int, ...], stop: tuple[int, ...]
) -> np.ndarray:
    """Flat (C-order) ids of the inner chunks in the grid box [first, stop)."""
    axes = [np.arange(a, b) for a, b in zip(first, stop, strict=True)]
    if not axes:
        return np.zeros(1, dtype=np.int64)
    grids = np.meshgrid(*axes, indexing="ij")
    return np.ravel_multi_index(tuple(g.ravel() for g in grids), chunks_per_shard).astype(np.int64)


_ORDERS: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}


def write_order(codec: Any, chunks_per_shard: tuple[int, ...]) -> np.ndarray:
    """Flat ids of the inner chunks in the order zarr lays them out in a shard (cached)."""
    key = (codec.subchunk_write_order, chunks_per_shard)
    order = _ORDERS.get(key)
    if order is None:
        if not chunks_per_shard:
            order = np.zeros(1, dtype=np.int64)
        else:
            coords = list(codec._subchunk_order_iter(chunks_per_shard, key[0]))
            arr = np.asarray(coords, dtype=np.int64).reshape(-1, len(chunks_per_shard))
            order = np.ravel_multi_index(tuple(arr.T), chunks_per_shard).astype(np.int64)
        _ORDERS[key] = order
    return order


def _host_buffer(view: Any) -> Any:
    from zarr.core.buffer.cpu import Buffer

    return Buffer.from_array_like(np.asarray(view))
