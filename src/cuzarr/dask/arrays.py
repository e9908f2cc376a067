"""Dask arrays read and written block by block, each block one batched cuzarr job.

Blocks are aligned to shards (or whole chunks of unsharded arrays), so no two tasks read
or write the same stored object: a read task decodes what it needs once, and a write task
owns every chunk it writes. A block layout where two tasks would write one chunk or shard
is refused, naming the overlap, unless a distributed lock per shard is asked for.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["from_zarr", "to_zarr"]


def _open(array_or_url: Any, mode: str) -> Any:
    import zarr

    if isinstance(array_or_url, zarr.Array):
        return array_or_url
    return zarr.open_array(array_or_url, mode=mode)


def _unit(array: Any) -> tuple[int, ...]:
    """What one task must own whole: the shard shape, else the chunk shape."""
    return tuple(int(s) for s in (array.shards or array.chunks))


def _block_chunks(array: Any, chunks: Any) -> tuple[tuple[int, ...], ...]:
    """dask's chunks tuple for `chunks` ("shards", or a shape of multiples of the shard or
    chunk shape, -1 for a whole dimension)."""
    unit, shape = _unit(array), tuple(array.shape)
    if isinstance(chunks, str):
        if chunks not in ("shards", "auto"):
            raise ValueError(f"chunks must be 'shards' or a shape, not {chunks!r}")
        block = unit
    else:
        block = tuple(int(c) for c in chunks)
        if len(block) != len(shape):
            raise ValueError(f"chunks {block} has {len(block)} dimensions; the array has "
                             f"{len(shape)}")
        block = tuple(s if c == -1 else c for c, s in zip(block, shape, strict=True))
        for d, (c, u, s) in enumerate(zip(block, unit, shape, strict=True)):
            if c <= 0 or (c % u and c < s):
                raise ValueError(
                    f"chunks {block}: dimension {d} has blocks of {c}, not a multiple of the "
                    f"array's {'shard' if array.shards else 'chunk'} extent {u} there (blocks "
                    "must hold whole shards or chunks, so each is read and written by one task)")
    return tuple(_split(s, max(1, c)) for s, c in zip(shape, block, strict=True))


def _split(length: int, block: int) -> tuple[int, ...]:
    if length == 0:
        return (0,)
    full, rest = divmod(length, block)
    return (block,) * full + ((rest,) if rest else ())


def from_zarr(array_or_url: Any, chunks: Any = "shards", device: str = "auto") -> Any:
    """A dask array of a zarr array (or a URL/path zarr opens): one block per shard (or
    chunk), or per `chunks` (multiples of them); each block is one `read_patches` job on
    whichever worker runs it, with cuzarr's pipeline whatever that worker's zarr config
    says. `device="cuda"` gives cupy blocks (and cupy meta); "auto" is cuda where the
    client can run it."""
    from dask.array import Array
    from dask.highlevelgraph import HighLevelGraph
    from dask.tokenize import tokenize

    from cuzarr.devices import cuda_available, require_cuda

    array = _open(array_or_url, "r")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    if device == "cuda":
        require_cuda()
    blocks = _block_chunks(array, chunks)
    dtype = array.dtype
    name = "cuzarr-from-zarr-" + tokenize(str(array.store_path), array.metadata.to_dict(),
                                          blocks, device)
    offsets = [np.cumsum((0, *b[:-1])).tolist() for b in blocks]
    layer = {}
    for index in itertools.product(*(range(len(b)) for b in blocks)):
        start = tuple(offsets[d][i] for d, i in enumerate(index))
        shape = tuple(blocks[d][i] for d, i in enumerate(index))
        layer[(name, *index)] = (_read_block, array, start, shape, device)
    if device == "cuda":
        import cupy

        meta = cupy.empty((0,) * array.ndim, dtype=dtype)
    else:
        meta = np.empty((0,) * array.ndim, dtype=dtype)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=())
    return Array(graph, name, blocks, meta=meta)


def _read_block(array: Any, start: tuple[int, ...], shape: tuple[int, ...], device: str
                ) -> Any:
    """One block: one read_patches job (its errors name the store key)."""
    from cuzarr.patch_reads import read_patches

    if math.prod(shape) == 0:
        xp = np if device == "cpu" else __import__("cupy")
        return xp.empty(shape, dtype=array.dtype)
    out = None
    if device == "cuda":
        import cupy

        out = cupy.empty((1, *shape), dtype=array.dtype)
    else:
        out = np.empty((1, *shape), dtype=array.dtype)
    return read_patches(array, np.asarray([start], dtype=np.int64), shape, out=out)[0]


def to_zarr(dask_array: Any, array_or_url: Any, *, lock: bool = False, compute: bool = True
            ) -> Any:
    """Write a dask array into an existing zarr array of the same shape and dtype (or a
    URL/path zarr opens), block by block, each block one batched cuzarr write on the
    worker that computed it. Blocks must hold whole shards (chunks for unsharded
    arrays), so no two tasks write one stored object: otherwise ValueError names the first
    overlap, unless `lock=True`, which takes a `distributed.Lock` per shard a block
    touches (rechunking to the shard grid is usually faster). Returns the delayed write
    when `compute=False`."""
    import dask.array as da

    array = _open(array_or_url, "r+")
    if tuple(dask_array.shape) != tuple(array.shape):
        raise ValueError(f"the dask array has shape {tuple(dask_array.shape)}; the zarr "
                         f"array {array.store_path} has {tuple(array.shape)}")
    overlap = _first_overlap(dask_array.chunks, _unit(array), tuple(array.shape))
    if overlap is not None and not lock:
        raise ValueError(
            f"blocks would share stored objects of {array.store_path}: {overlap}. Rechunk to "
            f"multiples of {_unit(array)} (dask_array.rechunk), or pass lock=True")
    key = str(array.store_path)
    writes = da.map_blocks(_write_block, dask_array, array, key, bool(lock),
                           dtype=np.int64, chunks=tuple((1,) * len(c) for c in dask_array.chunks),
                           meta=np.empty((0,) * dask_array.ndim, dtype=np.int64))
    if not compute:
        return writes
    writes.compute()
    return None


def _first_overlap(chunks: Sequence[Sequence[int]], unit: tuple[int, ...],
                   shape: tuple[int, ...]) -> str | None:
    """Where block edges cut a shard (chunk): "dimension d: a block edge at e cuts the
    shard spanning [a, b)", or None."""
    for d, sizes in enumerate(chunks):
        edge = 0
        for size in sizes[:-1]:
            edge += int(size)
            if edge % unit[d] and edge < shape[d]:
                a = edge // unit[d] * unit[d]
                return (f"dimension {d}: a block edge at {edge} cuts the stored extent "
                        f"[{a}, {min(a + unit[d], shape[d])}), which two tasks would write")
    return None


def _write_block(block: Any, array: Any, key: str, lock: bool,
                 block_info: dict[Any, Any] | None = None) -> Any:
    """Write one block with cuzarr's pipeline (whatever the worker's zarr config says)."""
    assert block_info is not None
    location = block_info[0]["array-location"]
    box = tuple(slice(a, b) for a, b in location)
    target = _with_cuzarr(array)
    if not lock:
        target[box] = block
    else:
        from distributed import Lock

        unit = _unit(array)
        names = sorted({f"cuzarr:{key}:{coords}" for coords in itertools.product(
            *(range(a // u, -(-b // u)) for (a, b), u in zip(location, unit, strict=True)))})
        held = [Lock(n) for n in names]
        for held_lock in held:  # one order for every task: no deadlock
            held_lock.acquire()
        try:
            target[box] = block
        finally:
            for held_lock in reversed(held):
                held_lock.release()
    return np.zeros((1,) * block.ndim, dtype=np.int64)


def _with_cuzarr(array: Any) -> Any:
    """The same zarr array with cuzarr's pipeline (a shallow copy: nothing is reopened)."""
    import zarr

    from cuzarr.pipeline import PhasedCodecPipeline

    inner = array._async_array
    if isinstance(inner.codec_pipeline, PhasedCodecPipeline):
        return array
    swapped = copy.copy(inner)
    object.__setattr__(swapped, "codec_pipeline",
                       PhasedCodecPipeline.from_codecs(tuple(inner.codec_pipeline)))
    return zarr.Array(swapped)
