"""The write sequence of the kill test (test_partial_write_kills), shared by the test and
the writer processes it kills: step k is a box and the values written into it, the same
in both from the step number alone."""

from __future__ import annotations

from typing import Any

import numpy as np

SHAPE = (96, 96)
SHARD = (96, 96)  # one shard
INNER = (12, 12)  # 64 inner chunks


def step(k: int) -> tuple[tuple[slice, ...], np.ndarray]:
    """Box and values of write k: a few inner chunks, not always aligned to them, with data
    of varying compressibility (so that encodings change size: slots are reused, chunks
    appended, shards compacted), now and then the fill value (chunks deleted)."""
    rng = np.random.default_rng(k)
    rows, cols = (int(rng.integers(1, 3 * c)) for c in INNER)
    r0, c0 = int(rng.integers(0, SHAPE[0] - rows + 1)), int(rng.integers(0, SHAPE[1] - cols + 1))
    box = (slice(r0, r0 + rows), slice(c0, c0 + cols))
    kind = rng.random()
    if kind < 0.15:
        values = np.zeros((rows, cols), dtype="uint32")
    else:
        spread = int(rng.choice([2, 50, 1 << 20]))
        values = (rng.integers(0, spread, (rows, cols)) + k).astype("uint32")
    return box, values


def state_after(state: np.ndarray, k: int) -> np.ndarray:
    """The array after write k, from the array before it."""
    box, values = step(k)
    out = state.copy()
    out[box] = values
    return out


def create(path: str) -> Any:
    """The array the kill test writes: zstd inner chunks, index at the end, crc32c."""
    import zarr
    from zarr.codecs import ZstdCodec

    return zarr.create_array(path, shape=SHAPE, chunks=INNER, shards=SHARD, dtype="uint32",
                             compressors=ZstdCodec(level=1), fill_value=0,
                             overwrite=True)
