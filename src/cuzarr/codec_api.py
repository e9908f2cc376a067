"""CodecPipeline.decode/encode: bytes already in hand, decoded or encoded in batches."""

from __future__ import annotations

from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.config import Options
from cuzarr.decode import decode_fixed, encode_fixed
from cuzarr.devices import CpuDevice
from cuzarr.plan.chain import FixedChain

__all__ = ["decode_buffers", "encode_arrays"]


def _per_chunk_transform(pipeline: Any) -> Any:
    from zarr.core.chunk_utils import ChunkTransform

    return ChunkTransform(codecs=pipeline.codecs)


def decode_buffers(pipeline: Any, items: list[tuple[Any, Any]], opts: Options) -> list[Any]:
    """Decode (Buffer | None, spec) pairs; chains with a batched path decode in one batch."""
    out: list[Any] = [None] * len(items)
    by_spec: dict[Any, list[int]] = {}
    for i, (buf, spec) in enumerate(items):
        if buf is not None:
            by_spec.setdefault(spec, []).append(i)
    for spec, idx in by_spec.items():
        chain = pipeline._chain(spec, opts)
        if isinstance(chain, FixedChain):
            batch = ByteBatch.from_buffers([items[i][0].as_numpy_array() for i in idx])
            names = [f"<item {i} of a decode batch>" for i in idx]
            arrays = decode_fixed(chain, batch, CpuDevice(), opts.threads, names)
            for row, i in enumerate(idx):
                out[i] = spec.prototype.nd_buffer.from_ndarray_like(arrays[row])
            continue
        transform = _per_chunk_transform(pipeline)
        for i in idx:
            out[i] = transform.decode_chunk(items[i][0], spec)
    return out


def encode_arrays(pipeline: Any, items: list[tuple[Any, Any]], opts: Options) -> list[Any]:
    """Encode (NDBuffer | None, spec) pairs; chains with a batched path encode in one batch."""
    out: list[Any] = [None] * len(items)
    by_spec: dict[Any, list[int]] = {}
    for i, (arr, spec) in enumerate(items):
        if arr is not None:
            by_spec.setdefault(spec, []).append(i)
    for spec, idx in by_spec.items():
        chain = pipeline._chain(spec, opts)
        if isinstance(chain, FixedChain):
            arrays = np.stack([np.asarray(items[i][0].as_ndarray_like()) for i in idx])
            arrays = arrays.astype(chain.layout.dtype, copy=False)
            encoded = encode_fixed(chain, arrays, CpuDevice(), opts.threads)
            for row, i in enumerate(idx):
                out[i] = spec.prototype.buffer.from_bytes(bytes(encoded.item(row)))
            continue
        transform = _per_chunk_transform(pipeline)
        for i in idx:
            out[i] = transform.encode_chunk(items[i][0], spec)
    return out
