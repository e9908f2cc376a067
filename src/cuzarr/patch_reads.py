"""`read_patches`: n boxes of one shape from a zarr array as one pipeline job.

`arr[box]` once per patch pays zarr's per-call overhead n times and decodes a chunk that
two patches share twice. Here every chunk (or inner chunk of a shard) that any patch
touches is fetched once and decoded once, partial decodes cover the union of what its
patches need, and its parts are copied into every patch (plan.patches).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from cuzarr.plan.keys import chunk_keys
from cuzarr.plan.patches import (
    Fanout,
    PatchPairs,
    ShardFanout,
    boxes,
    check_patches,
    patch_pairs,
    shard_order,
)

__all__ = ["read_patches", "read_patches_async"]


def read_patches(arrays: Any, starts: Any, shape: Sequence[int] | Sequence[Sequence[int]],
                 out: Any = None) -> Any:
    """Read `len(starts)` boxes of `shape` from a zarr array into one `(n, *shape)` array.

    `starts` is an (n, ndim) integer array of each patch's first corner; a patch that
    does not lie inside the array raises IndexError naming it. The result is numpy, or
    cupy where zarr's GPU buffers are on (`zarr.config.enable_gpu()`); `out` (of that
    shape and the array's dtype) is filled instead of a new array. Missing chunks read
    as the fill value, as in zarr.

    `arrays` may be a tuple of arrays read at the same starts (inputs and targets, say):
    an array with fewer dimensions is read at the leading coordinates of each start, and
    `shape` is then one shape (cut to each array's dimensions) or one shape per array;
    `out` one array per array or None. The result is a tuple.
    """
    from zarr.core.sync import sync

    return sync(read_patches_async(arrays, starts, shape, out))


async def read_patches_async(arrays: Any, starts: Any,
                             shape: Sequence[int] | Sequence[Sequence[int]],
                             out: Any = None) -> Any:
    """`read_patches` in zarr's event loop (several arrays read concurrently)."""
    if not isinstance(arrays, (tuple, list)):
        return await _read_one(_async_array(arrays), starts, _ints(shape), out)
    shapes = _shapes(shape, len(arrays))
    outs = [None] * len(arrays) if out is None else list(out)
    if len(outs) != len(arrays):
        raise ValueError(f"out has {len(outs)} arrays for {len(arrays)} zarr arrays")
    raw = np.asarray(starts)
    jobs = []
    for array, box, target in zip(arrays, shapes, outs, strict=True):
        found = _async_array(array)
        ndim = len(found.shape)
        if raw.ndim == 2 and raw.shape[1] < ndim:
            raise ValueError(f"starts have {raw.shape[1]} coordinates; an array has {ndim}")
        jobs.append(_read_one(found, raw[:, :ndim] if raw.ndim == 2 else raw, box[:ndim],
                              target))
    return tuple(await asyncio.gather(*jobs))


def _ints(shape: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in shape)


def _shapes(shape: Any, n: int) -> list[tuple[int, ...]]:
    """One shape per array: `shape` itself when it is a shape, else its items."""
    items = list(shape)
    if all(isinstance(s, (int, np.integer)) for s in items):
        return [_ints(items)] * n
    if len(items) != n:
        raise ValueError(f"{len(items)} patch shapes for {n} arrays")
    return [_ints(s) for s in items]


def _async_array(array: Any) -> Any:
    from zarr import Array
    from zarr.core.array import AsyncArray

    if isinstance(array, Array):
        return array._async_array
    if isinstance(array, AsyncArray):
        return array
    raise TypeError(f"read_patches reads zarr arrays, not {type(array).__name__}")


async def _read_one(array: Any, starts: Any, shape: tuple[int, ...], out: Any) -> Any:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import default_buffer_prototype

    found, box = check_patches(starts, shape, tuple(array.shape))
    n = len(found)
    metadata = array.metadata
    dtype = metadata.dtype.to_native_dtype()
    config = array.config
    if metadata.zarr_format == 2:
        config = replace(config, order=metadata.order)
    prototype = default_buffer_prototype()
    out_buffer = _output(prototype, out, (n, *box), dtype, config.order)
    result = out_buffer.as_ndarray_like()
    if n == 0 or math.prod(box) == 0:
        return result
    grid = array._chunk_grid
    if not grid.is_regular or not box:  # rectilinear grids, 0-d arrays: one read per patch
        for i, corner in enumerate(found.tolist()):
            selection = tuple(slice(a, a + s) for a, s in zip(corner, box, strict=True))
            result[i] = await array.getitem(selection, prototype=prototype)
        return result
    spec = ArraySpec(shape=tuple(grid.chunk_shape), dtype=metadata.dtype,
                     fill_value=metadata.fill_value, config=config, prototype=prototype)
    pipeline = _pipeline(array)
    from cuzarr.config import options
    from cuzarr.plan.chain import ShardChain

    chain = pipeline._chain(spec, options())
    if isinstance(chain, ShardChain):
        chunks, fanout, pairs = _shard_job(array, spec, chain, found, box, tuple(grid.grid_shape))
    else:
        chunks, fanout, pairs = _chunk_job(array, spec, found, box)
    present = await pipeline.read_fanout(chunks, fanout, pairs, out_buffer)
    if config.read_missing_chunks is False and not present.all():
        from zarr.errors import ChunkNotFoundError

        missing = [chunks[i][0].path for i in np.flatnonzero(~present)]
        raise ChunkNotFoundError(
            f"{len(missing)} chunk(s) not found in store '{array.store_path}': "
            f"{', '.join(repr(k) for k in missing)}. Set the 'array.read_missing_chunks' "
            "config to True to fill missing chunks with the fill value.")
    return result


def _output(prototype: Any, out: Any, shape: tuple[int, ...], dtype: np.dtype, order: str
            ) -> Any:
    if out is None:
        return prototype.nd_buffer.empty(shape=shape, dtype=dtype, order=order)
    if tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}; the patches need {shape}")
    if out.dtype != dtype:
        raise ValueError(f"out has dtype {out.dtype}; the array's is {dtype}")
    from zarr.core.buffer import cpu, gpu

    # the buffer class follows `out` (numpy or cupy), whatever zarr's GPU setting says
    kind = cpu.NDBuffer if isinstance(out, np.ndarray) else gpu.NDBuffer
    return kind.from_ndarray_like(out)


def _pipeline(array: Any) -> Any:
    """The array's cuzarr pipeline, or one made of its codecs where zarr's is configured."""
    from cuzarr.pipeline import PhasedCodecPipeline

    pipeline = array.codec_pipeline
    if isinstance(pipeline, PhasedCodecPipeline):
        return pipeline
    return PhasedCodecPipeline.from_codecs(tuple(pipeline))


def _chunk_job(array: Any, spec: Any, starts: np.ndarray, box: tuple[int, ...]
               ) -> tuple[list[Any], Fanout, list[Any]]:
    """Entries of the distinct chunks (selection: the union of what patches need), the
    fanout, and the same read as one entry per (patch, chunk) part."""
    chunk_shape = tuple(spec.shape)
    pairs = patch_pairs(starts, box, chunk_shape)
    paths = _paths(array, pairs.chunk_coords)
    lo, hi = pairs.union()
    full = np.asarray(chunk_shape, dtype=np.int64)
    complete = ((lo == 0) & (hi == full)).all(axis=1).tolist()
    chunks = [(path, spec, sel, None, whole) for path, sel, whole in
              zip(paths, boxes(lo, hi), complete, strict=True)]
    fanout = Fanout.of(pairs)
    return chunks, fanout, _pair_entries(paths, spec, pairs.chunk, fanout)


def _shard_job(array: Any, spec: Any, chain: Any, starts: np.ndarray, box: tuple[int, ...],
               grid_shape: tuple[int, ...]) -> tuple[list[Any], ShardFanout, list[Any]]:
    """As `_chunk_job`, with pairs over the inner chunks, grouped shard by shard."""
    inner, shard_shape = tuple(chain.inner_shape), tuple(chain.shard_shape)
    pairs = patch_pairs(starts, box, inner, shard_order(shard_shape, inner, grid_shape))
    cps = np.asarray(chain.chunks_per_shard, dtype=np.int64)
    inner_arr = np.asarray(inner, dtype=np.int64)
    coords = pairs.chunk_coords
    shard_coords = coords // cps
    new = np.r_[True, (shard_coords[1:] != shard_coords[:-1]).any(axis=1)]
    inner_shard = np.cumsum(new) - 1
    inner_id = np.ravel_multi_index(tuple((coords % cps).T), tuple(chain.chunks_per_shard))
    lo, hi = pairs.union()
    origin = (coords % cps) * inner_arr  # each inner chunk's corner in its shard
    first = np.flatnonzero(new)
    shard_lo = np.minimum.reduceat(origin + lo, first, axis=0)
    shard_hi = np.maximum.reduceat(origin + hi, first, axis=0)
    paths = _paths(array, shard_coords[first])
    chunks = [(path, spec, sel, None, False)
              for path, sel in zip(paths, boxes(shard_lo, shard_hi), strict=True)]
    rows = np.stack([lo[:, 0], hi[:, 0]], axis=1) if lo.shape[1] else np.zeros((len(lo), 2))
    fanout = ShardFanout(pairs.chunk, pairs.chunk_selections(), pairs.out_selections(),
                         inner_shard=inner_shard.astype(np.int64),
                         inner_id=np.asarray(inner_id, dtype=np.int64),
                         rows=rows.astype(np.int64))
    shifted = PatchPairs(coords, pairs.chunk, pairs.patch, pairs.lo + origin[pairs.chunk],
                         pairs.hi + origin[pairs.chunk], pairs.at)
    by_shard = Fanout.of(shifted)
    return chunks, fanout, _pair_entries(paths, spec, inner_shard[pairs.chunk], by_shard)


def _paths(array: Any, coords: np.ndarray) -> list[Any]:
    """The StorePath of each chunk. Built as `root / key` builds them, without its
    normalize_path per key (a tenth of a 64-patch read of small chunks): chunk keys
    zarr encodes are already normal, and so is the array's own path."""
    from zarr.storage._common import StorePath

    root = array.store_path
    store, prefix = root.store, f"{root.path}/" if root.path else ""
    paths = []
    for key in chunk_keys(array.metadata, coords):
        path = object.__new__(StorePath)
        path.store, path.path = store, prefix + key
        paths.append(path)
    return paths





def _pair_entries(paths: list[Any], spec: Any, chunk_of_pair: np.ndarray, fanout: Fanout
                  ) -> list[Any]:
    """One zarr batch entry per part: the read for pipelines without a fanout."""
    return [(paths[c], spec, sel, out, False) for c, sel, out in
            zip(chunk_of_pair.tolist(), fanout.chunk_sels, fanout.out_sels, strict=True)]
