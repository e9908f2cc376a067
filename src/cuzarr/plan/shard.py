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

__all__ = ["EMPTY", "decode_indexes", "encode_index", "inner_ids", "write_order"]

EMPTY = np.uint64(2**64 - 1)


def decode_indexes(chain: ShardChain, batch: ByteBatch, threads: int) -> np.ndarray:
    """The (offset, nbytes) table of every shard in `batch`: shape (S, n_inner, 2), uint64.

    Raises StageError(i) for shard i when its index is truncated, fails its
    checksum, or points outside the shard.
    """
    n = len(batch)
    raw_nbytes = chain.n_inner * 16
    short = np.flatnonzero(batch.sizes < chain.index_nbytes)
    if short.size:
        i = int(short[0])
        raise StageError(
            i, f"shard index truncated: {int(batch.sizes[i])} bytes, expected {chain.index_nbytes}"
        )
    if chain.index_stages is None:
        tables = np.empty((n, chain.n_inner, 2), dtype=np.uint64)
        for i in range(n):
            try:
                index = chain.codec._decode_shard_index_sync(
                    _host_buffer(batch.item(i)), chain.chunks_per_shard
                )
            except Exception as e:
                raise StageError(i, f"shard index: {e}") from e
            tables[i] = index.offsets_and_lengths.reshape(-1, 2)
        return tables
    current = batch
    for stage in reversed(chain.index_stages):
        current = stage.decode(current, None, threads)
    bad = np.flatnonzero(current.sizes != raw_nbytes)
    if bad.size:
        raise StageError(int(bad[0]), "shard index has the wrong size")
    rows = current.offsets[:, None] + np.arange(raw_nbytes)[None, :]
    raw = np.ascontiguousarray(np.asarray(current.slab)[rows.ravel()])
    return raw.view("<u8").reshape(n, chain.n_inner, 2).astype(np.uint64, copy=False)


def validate_tables(tables: np.ndarray, shard_sizes: np.ndarray | None) -> None:
    """Reject index entries that overflow or point past the shard (when its size is known)."""
    offsets, lengths = tables[..., 0], tables[..., 1]
    present = offsets != EMPTY
    half_empty = (offsets == EMPTY) != (lengths == EMPTY)
    bad = half_empty.any(axis=1)
    with np.errstate(over="ignore"):
        ends = offsets + lengths
    overflow = present & (ends < offsets)
    bad |= overflow.any(axis=1)
    if shard_sizes is not None:
        past = present & (ends > shard_sizes[:, None].astype(np.uint64))
        bad |= past.any(axis=1)
    hit = np.flatnonzero(bad)
    if hit.size:
        raise StageError(int(hit[0]), "shard index points outside the shard")


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
