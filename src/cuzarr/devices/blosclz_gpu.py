"""blosclz streams of Blosc1 chunks decoded by our kernel (cuda_kernels/blosclz.cu):
every stream of the batch in one launch, then one device-to-host copy of the statuses
to check that each stream decoded to exactly its size, as c-blosc requires."""

from __future__ import annotations

from typing import Any

import numpy as np

from cuzarr.kernels import launch, reference
from cuzarr.workers import StageError

__all__ = ["decode_streams"]

_WHY = {
    reference.BLOSCLZ_TRUNCATED: "the stream ends inside a token (truncated or corrupt)",
    reference.BLOSCLZ_OVERFLOW: "the stream decodes to more than its block holds",
    reference.BLOSCLZ_BAD_DISTANCE: "a match reaches before the start of its block",
}


def decode_streams(device: Any, src: Any, dst: Any, src_at: np.ndarray, cbytes: np.ndarray,
                   dst_at: np.ndarray, sizes: np.ndarray, chunk: np.ndarray) -> None:
    """Stream i, src[src_at[i] : +cbytes[i]], into dst[dst_at[i] : +sizes[i]]; a stream that
    does not decode to exactly sizes[i] bytes raises StageError(chunk[i])."""
    if len(sizes) == 0:
        return
    status = device._to_numpy(launch.blosclz_decompress(device.launcher, device.xp, src, dst,
                                                        src_at, cbytes, dst_at, sizes))
    bad = np.flatnonzero(status != sizes)
    if bad.size:
        i = int(bad[0])
        code = int(status[i])
        why = _WHY.get(code, f"decoded {code} bytes, expected {int(sizes[i])}")
        raise StageError(int(chunk[i]), f"blosc blosclz stream: {why}")
