"""The nvCOMP calls the cuda device makes, behind one small class.

`NvcompBackend` takes the `nvidia.nvcomp` module as a parameter: on a GPU the real one;
in CI a test double held to the real module's signatures that decodes with host
libraries (tests/nvcomp_double.py). Everything around these calls (carving slabs,
alignment, header validation, size checks, what a refusal or an allocation failure
becomes) therefore runs in CI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MAX_CHUNK", "NvcompBackend", "NvcompOutOfMemory", "NvcompRefused",
           "cupy_allocator"]

#: the largest buffer nvCOMP 6.0's batched compressors take as one chunk, per algorithm
#: (nvcomp{Zstd,Deflate,LZ4}CompressionMaxAllowedChunkSize in its headers); larger buffers
#: are compressed on the host, since a RAW bitstream cannot be cut into several chunks
MAX_CHUNK = {"Zstd": (1 << 31) - 1, "Deflate": 1 << 31, "LZ4": 1 << 24}

#: what nvCOMP's (and the CUDA runtime's) messages say when an allocation failed
_ALLOCATION_WORDS = ("out of memory", "cudaerrormemoryallocation", "memory allocation",
                     "failed to allocate", "outofmemory")


class NvcompOutOfMemory(MemoryError):
    """nvCOMP could not allocate its scratch memory: the tile is split and retried, like
    an out-of-memory error of cupy's pool."""


class NvcompRefused(Exception):
    """nvCOMP refused a batch (a stream it cannot decode, an output too small, a buffer it
    does not take); the device finds out on the host which item, if any, is damaged."""


def _classified(error: Exception) -> Exception:
    message = str(error).lower()
    if isinstance(error, MemoryError) or any(w in message for w in _ALLOCATION_WORDS):
        return NvcompOutOfMemory(f"nvCOMP: {error}")
    return NvcompRefused(f"{type(error).__name__}: {error}")


def cupy_allocator(cupy: Any) -> Callable[[int, Any], Any]:
    """An allocator for `nvcomp.set_device_allocator`: nvCOMP's scratch comes from cupy's
    pool (which frees cached blocks and retries before it gives up), so it shares memory
    with our slabs, and its failure is cupy's OutOfMemoryError, which splits the tile."""

    def allocate(nbytes: int, stream: Any) -> Any:
        return cupy.cuda.alloc(int(nbytes))

    return allocate


class NvcompBackend:
    """Batched nvCOMP decode/encode of slab-carved buffers, one Codec per thread, stream
    and algorithm (nvCOMP Codecs are not shared between threads)."""

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
        """Bytes every decode input and output buffer address must be a multiple of."""
        return int(self.codec(algorithm).get_required_decompression_alignment())

    def compression_alignment(self, algorithm: str) -> int:
        """Bytes every encode input and output buffer address must be a multiple of."""
        return int(self.codec(algorithm).get_required_compression_alignment())

    def _batches(self, slab: Any, offsets: np.ndarray, sizes: np.ndarray, out: Any,
                 out_offsets: np.ndarray, capacity: np.ndarray) -> tuple[Any, Any]:
        nv, stream = self.nvcomp, int(self.stream())
        srcs = nv.as_arrays(slab, [int(o) for o in offsets], [int(s) for s in sizes], stream)
        dsts = nv.as_arrays(out, [int(o) for o in out_offsets], [int(c) for c in capacity],
                            stream)
        return srcs, dsts

    def decode(self, algorithm: str, slab: Any, offsets: np.ndarray, sizes: np.ndarray,
               out: Any, out_offsets: np.ndarray, capacity: np.ndarray) -> np.ndarray:
        """Decode every slab[offsets[i] : +sizes[i]] into out[out_offsets[i] : +capacity[i]]
        in one call; returns the decoded sizes (reading them back synchronizes).

        The decompression config is built from the capacities we already know, so nvCOMP
        neither synchronizes to read headers nor walks RAW LZ4/Deflate streams once more
        to size them. Capacities must be positive. Raises NvcompRefused when nvCOMP
        refuses the batch, NvcompOutOfMemory when it cannot allocate."""
        codec = self.codec(algorithm)
        try:
            srcs, dsts = self._batches(slab, offsets, sizes, out, out_offsets, capacity)
            config = codec.decompression_config(
                codec.compression_config([int(c) for c in capacity]))
            return _sizes(codec.decode(srcs, out=dsts, decompression_config=config))
        except (ValueError, RuntimeError, MemoryError) as e:
            raise _classified(e) from e

    def max_chunk(self, algorithm: str) -> int:
        """The largest buffer one encode call may compress with `algorithm`."""
        return MAX_CHUNK[algorithm]

    def max_compressed_size(self, algorithm: str, sample: Any) -> int:
        """The output capacity an item as large as `sample` (a device buffer) may need:
        nvCOMP asks for the uncompressed array itself, not its size."""
        stream = int(self.stream())
        return int(self.codec(algorithm).get_max_comp_buffer_size(
            self.nvcomp.as_array(sample, stream)))

    def encode(self, algorithm: str, slab: Any, offsets: np.ndarray, sizes: np.ndarray,
               out: Any, out_offsets: np.ndarray, capacity: np.ndarray) -> np.ndarray:
        """Encode every slab item into out[out_offsets[i] : +capacity[i]] in one call;
        returns the compressed sizes. Raises NvcompRefused or NvcompOutOfMemory."""
        codec = self.codec(algorithm)
        try:
            srcs, dsts = self._batches(slab, offsets, sizes, out, out_offsets, capacity)
            config = codec.compression_config([int(s) for s in sizes])
            return _sizes(codec.encode(srcs, out=dsts, compression_config=config))
        except (ValueError, RuntimeError, MemoryError) as e:
            raise _classified(e) from e


def _sizes(batch: Any) -> np.ndarray:
    """The byte sizes of a result BatchArray (its `buffer_sizes` property; reading it waits
    for the work that produced the batch), on the host."""
    return np.asarray([int(s) for s in batch.buffer_sizes], dtype=np.int64)
