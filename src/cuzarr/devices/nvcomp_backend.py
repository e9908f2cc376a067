"""The nvCOMP calls the cuda device makes, behind one small class.

`NvcompBackend` takes the `nvidia.nvcomp` module as a parameter: on a GPU the real one;
in CI a test double with the same call signatures that decodes with host libraries
(tests/nvcomp_double.py). Everything around these calls (carving slabs, alignment,
header validation, size checks) therefore runs in CI.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

__all__ = ["NvcompBackend"]


class NvcompBackend:
    """Batched nvCOMP decode/encode of slab-carved buffers, one Codec per thread and algorithm
    (nvCOMP Codecs are thread-local)."""

    def __init__(self, nvcomp: Any) -> None:
        self.nvcomp = nvcomp
        self._local = threading.local()

    def codec(self, algorithm: str) -> Any:
        codecs = getattr(self._local, "codecs", None)
        if codecs is None:
            codecs = self._local.codecs = {}
        codec = codecs.get(algorithm)
        if codec is None:
            codec = codecs[algorithm] = self.nvcomp.Codec(
                algorithm=algorithm, bitstream_kind=self.nvcomp.BitstreamKind.RAW
            )
        return codec

    def alignment(self, algorithm: str) -> int:
        """Bytes every input and output buffer address must be a multiple of."""
        return int(self.codec(algorithm).get_required_decompression_alignment())

    def decode(self, algorithm: str, slab: Any, offsets: np.ndarray, sizes: np.ndarray,
               out: Any, out_offsets: np.ndarray, capacity: np.ndarray) -> np.ndarray:
        """Decode every slab[offsets[i] : +sizes[i]] into out[out_offsets[i] : +capacity[i]]
        in one call; returns the decoded sizes (reading them back synchronizes)."""
        nv = self.nvcomp
        srcs = nv.as_arrays(slab, [int(o) for o in offsets], [int(s) for s in sizes])
        dsts = nv.as_arrays(out, [int(o) for o in out_offsets], [int(c) for c in capacity])
        result = self.codec(algorithm).decode(srcs, out=dsts)
        return np.asarray(result.buffer_sizes, dtype=np.int64)
