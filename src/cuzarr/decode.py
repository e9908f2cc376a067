"""The decode phase (and its mirror, encode): each codec stage once per batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.devices.base import Device
from cuzarr.errors import (
    ChecksumError,
    ChunkDecodeError,
    ShardIndexChecksumError,
    ShardIndexError,
    decode_error_for,
    passes_through,
)
from cuzarr.plan.chain import FixedChain, GenericChain
from cuzarr.plan.shard import decode_indexes
from cuzarr.timers import timed
from cuzarr.workers import StageError, map_ranges

__all__ = ["decode_fixed", "decode_generic", "encode_fixed", "encode_generic", "index_error",
           "named", "shard_tables"]


def named(error: StageError, keys: Any, family: type[ChunkDecodeError] | None = None
          ) -> ChunkDecodeError:
    """Turn a stage's item error into one that names the store key: of the error's own
    family (a checksum mismatch), else `family` (the stage's: what zarr raises for that
    codec), else one that is also an instance of the codec's own exception."""
    key = keys[error.index] if 0 <= error.index < len(keys) else "<unknown>"
    cls: type[ChunkDecodeError] = ChunkDecodeError
    if error.family is not None:
        cls = error.family  # type: ignore[assignment]
    elif family is not None:
        cls = family
    elif error.cause is not None:
        cls = decode_error_for(type(error.cause))
    return cls(key, error.reason)


def decode_fixed(
    chain: FixedChain, batch: ByteBatch, device: Device, threads: int, keys: list[str]
) -> Any:
    """Decode n stored chunks into one (n, *shape) array of the array's dtype."""
    n = len(batch)
    layout = chain.layout
    current = batch
    for depth, stage in enumerate(reversed(chain.stages)):
        last = depth == len(chain.stages) - 1
        try:
            current = device.decode_stage(stage, current, layout.nbytes if last else None, threads)
        except StageError as e:
            raise named(e, keys, stage.error) from e
    if not chain.stages:
        bad = np.flatnonzero(current.sizes != layout.nbytes)
        if bad.size:
            i = int(bad[0])
            raise ChunkDecodeError(
                keys[i], f"stored {int(current.sizes[i])} bytes, expected {layout.nbytes}"
            )
    slab = current.slab if current.is_fixed(layout.nbytes) else _packed(current, layout.nbytes,
                                                                          device)
    return device.arrays_from_slab(layout, slab, n)


def _packed(batch: ByteBatch, nbytes: int, device: Device) -> Any:
    """Items of `nbytes` each laid end to end: one range copy (one launch on the cuda
    device), with no per-byte index (8x the data)."""
    n = len(batch)
    slab = device.xp.empty(n * nbytes, dtype=np.uint8)
    if n:
        device.copy_ranges(batch.slab, slab, batch.offsets,
                           np.arange(n, dtype=np.int64) * nbytes,
                           np.full(n, nbytes, dtype=np.int64))
    return slab


@timed("encode")
def encode_fixed(chain: FixedChain, arrays: Any, device: Device, threads: int) -> ByteBatch:
    """Encode an (n, *shape) batch of chunks into their stored bytes."""
    layout = chain.layout
    n = arrays.shape[0]
    slab = device.slab_from_arrays(layout, arrays)
    current = ByteBatch.fixed(slab, n, layout.nbytes)
    for stage in chain.stages:
        current = device.encode_stage(stage, current, threads)
    return device.to_host(current)


@timed("decode")
def decode_generic(
    chain: GenericChain, batch: ByteBatch, threads: int, keys: list[str]
) -> list[Any]:
    """Decode chunks one by one through zarr's ChunkTransform, on the thread pool."""
    from zarr.core.buffer.cpu import Buffer

    out: list[Any] = [None] * len(batch)
    transform, spec = chain.transform, chain.spec

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            try:
                data = Buffer.from_array_like(np.asarray(batch.item(i)))
                out[i] = transform.decode_chunk(data, spec).as_ndarray_like()
            except Exception as e:
                if passes_through(e):
                    raise
                raise StageError(i, f"{type(e).__name__}: {e}", cause=e) from e

    try:
        map_ranges(work, len(batch), threads, min_items=4)
    except StageError as e:
        raise named(e, keys) from e
    return out


@timed("encode")
def encode_generic(chain: GenericChain, arrays: list[Any], threads: int) -> list[Any]:
    """Encode chunks one by one through zarr's ChunkTransform; None = nothing to store."""
    from zarr.core.buffer.cpu import NDBuffer

    out: list[Any] = [None] * len(arrays)
    transform, spec = chain.transform, chain.spec

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            encoded = transform.encode_chunk(NDBuffer.from_ndarray_like(arrays[i]), spec)
            out[i] = None if encoded is None else encoded.as_numpy_array()

    map_ranges(work, len(arrays), threads, min_items=4)
    return out


def shard_tables(chain: Any, batch: ByteBatch, keys: Any, threads: int) -> np.ndarray:
    """The (S, n_inner, 2) index tables of the shards in `batch` (plan.shard.decode_indexes);
    a shard whose index cannot be decoded raises ShardIndexError naming keys[i]."""
    if not len(batch):
        return np.zeros((0, chain.n_inner, 2), dtype=np.uint64)
    try:
        return decode_indexes(chain, batch, threads)
    except StageError as e:
        raise index_error(e, keys) from e


def index_error(error: StageError, keys: Any) -> ShardIndexError:
    """A shard index's error naming the shard (ShardIndexChecksumError for its crc32c)."""
    key = keys[error.index] if 0 <= error.index < len(keys) else "<unknown>"
    cls = ShardIndexChecksumError if error.family is ChecksumError else ShardIndexError
    return cls(key, error.reason)
