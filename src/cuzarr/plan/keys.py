"""Store keys of many chunks at once, built column by column rather than chunk by chunk.

A 64-patch read of 2 KiB chunks touches ~500 chunks; zarr's `encode_chunk_key` per chunk
cost a tenth of the whole read. For zarr's own two encodings (v3 "default" and v2) the
keys are joined from per-dimension tables of decimal strings with numpy's object loops;
any other encoding (a subclass, a registered one) is asked chunk by chunk, as zarr asks it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["chunk_keys"]


def chunk_keys(metadata: Any, coords: np.ndarray) -> list[str]:
    """The key zarr's `metadata.encode_chunk_key` gives each row of `coords` (u, ndim)."""
    coords = np.asarray(coords, dtype=np.int64)
    if coords.ndim != 2 or len(coords) == 0:
        return [metadata.encode_chunk_key(tuple(c)) for c in coords.tolist()]
    prefix_sep = _plain_encoding(metadata)
    if prefix_sep is None or coords.shape[1] == 0 or (coords < 0).any():
        return [metadata.encode_chunk_key(tuple(c)) for c in coords.tolist()]
    prefix, sep = prefix_sep
    keys: Any = None
    for d in range(coords.shape[1]):
        column = coords[:, d]
        table = np.array([str(i) for i in range(int(column.max()) + 1)], dtype=object)
        part = table[column]
        keys = part if keys is None else keys + sep + part
    if prefix:
        keys = prefix + keys
    return keys.tolist()


def _plain_encoding(metadata: Any) -> tuple[str, str] | None:
    """(prefix, separator) of zarr's own encodings, exactly those classes; else None."""
    from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding, V2ChunkKeyEncoding
    from zarr.core.metadata.v2 import ArrayV2Metadata
    from zarr.core.metadata.v3 import ArrayV3Metadata

    if type(metadata) is ArrayV2Metadata:
        return "", metadata.dimension_separator
    if type(metadata) is ArrayV3Metadata:
        encoding = metadata.chunk_key_encoding
        if type(encoding) is DefaultChunkKeyEncoding:
            return "c" + encoding.separator, encoding.separator
        if type(encoding) is V2ChunkKeyEncoding:
            return "", encoding.separator
    return None
