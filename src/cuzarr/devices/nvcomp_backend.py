"""The nvCOMP calls the cuda device makes, behind one small class.

`NvcompBackend` takes the `nvidia.nvcomp` module as a parameter: on a GPU the real one;
in CI a test double with the same call signatures that decodes with host libraries
(tests/nvcomp_double.py). Everything around these calls (carving slabs, alignment,
header validation, size checks) therefore runs in CI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MAX_CHUNK", "NvcompBackend"]

#: the largest buffer nvCOMP's batched compressors take as one chunk, per algorithm
#: (nvcompZstd/Deflate/LZ4CompressionMaxAllowedChunkSize); larger buffers are
#: compressed on the host, since a RAW bitstream cannot be cut into several chunks
MAX_CHUNK = {"Zstd": 1 << 24, "Deflate": 1 << 16, "LZ4": 1 << 24}


class NvcompBackend:
    """Batched nvCOMP decode/encode of slab-carved buffers, one Codec per thread and algorithm
    (nvCOMP Codecs are thread-local)."""

    def __init__(self, nvcomp: Any, stream: Callable[[], int] = lambda: 0) -> None:
        """stream: the CUDA stream (as an int) our kernels and copies run on; nvCOMP work
        is queued on the same one, so it sees their results without a device sync."""
        self.nvcomp = nvcomp
        self.stream = stream
        self._local = threading.local()

    def codec(self, algorithm: str) -> Any:
        codecs = getattr(self._local, "codecs", None)
        if codecs is None:
            codecs = self._local.codecs = {}
        stream = int(self.stream())
        codec = codecs.get((algorithm, stream))
        if codec is None:
            codec = codecs[(algorithm, stream)] = self.nvcomp.Codec(
                algorithm=algorithm, bitstream_kind=self.nvcomp.BitstreamKind.RAW,
                cuda_stream=stream,
            )
        return codec

    def alignment(self, algorithm: str) -> int:
        """Bytes every input and output buffer address must be a multiple of."""
        return int(self.codec(algorithm).get_required_decompression_alignment())

    def decode(self, algorithm: str, slab: Any, offsets: np.ndarray, sizes: np.ndarray,
               out: Any, out_offsets: np.ndarray, capacity: np.ndarray) -> np.ndarray:
        """Decode every slab[offsets[i] : +sizes[i]] into out[out_offsets[i] : +capacity[i]]
        in one call; returns the decoded sizes (reading them back synchronizes)."""
        nv, stream = self.nvcomp, int(self.stream())
        srcs = nv.as_arrays(slab, [int(o) for o in offsets], [int(s) for s in sizes], stream)
        dsts = nv.as_arrays(out, [int(o) for o in out_offsets], [int(c) for c in capacity],
                            stream)
        return _sizes(self.codec(algorithm).decode(srcs, out=dsts))

    def max_chunk(self, algorithm: str) -> int:
        """The largest buffer one encode call may compress with `algorithm`."""
        return MAX_CHUNK[algorithm]

    def max_compressed_size(self, algorithm: str, size: int) -> int:
        """The output capacity one item of `size` bytes may need."""
        return int(self.codec(algorithm).get_max_comp_buffer_size(int(size)))

    def encode(self, algorithm: str, slab: Any, offsets: np.ndarray, sizes: np.ndarray,
               out: Any, out_offsets: np.ndarray, capacity: np.ndarray) -> np.ndarray:
        """Encode every slab item into out[out_offsets[i] : +capacity[i]] in one call;
        returns the compressed sizes."""
        nv, stream = self.nvcomp, int(self.stream())
        srcs = nv.as_arrays(slab, [int(o) for o in offsets], [int(s) for s in sizes], stream)
        dsts = nv.as_arrays(out, [int(o) for o in out_offsets], [int(c) for c in capacity],
                            stream)
        return _sizes(self.codec(algorithm).encode(srcs, out=dsts))


def _sizes(batch: Any) -> np.ndarray:
    """The byte sizes of a result BatchArray (a property or a method, whichever this
    nvCOMP version has), read back to the host."""
    sizes = batch.buffer_sizes
    if callable(sizes):
        sizes = sizes()
    return np.asarray([int(s) for s in sizes], dtype=np.int64)
