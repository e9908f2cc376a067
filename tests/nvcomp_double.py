"""A test double of the `nvidia.nvcomp` calls cuzarr makes, built from the real module's
documented signatures (nvCOMP 6 Python API): `as_arrays(buffer, offsets, sizes)`,
`Codec(algorithm=..., bitstream_kind=BitstreamKind.RAW)`, `Codec.decode(BatchArray,
out=BatchArray)` returning a BatchArray whose `buffer_sizes` are the decoded sizes, and
`Codec.get_required_decompression_alignment()`. It decodes and encodes with host libraries
and holds cuzarr to nvCOMP's rules: buffer addresses aligned as required, outputs that fit,
no buffer above the algorithm's largest chunk when compressing. Encoding writes what
nvCOMP's RAW bitstreams are: zstd frames without a content size, raw deflate (no zlib or
gzip wrapper), raw LZ4 blocks (no size prefix).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import zstandard

import strict_xp

# required decompression alignment per algorithm (nvCOMP's documented minimums)
ALIGNMENT = {"Zstd": 8, "Gzip": 8, "Deflate": 4, "LZ4": 4}
# the largest buffer nvCOMP compresses as one chunk (nvcomp*CompressionMaxAllowedChunkSize)
MAX_CHUNK = {"Zstd": 1 << 24, "Deflate": 1 << 16, "LZ4": 1 << 24}


class BitstreamKind:
    NVCOMP_NATIVE = "native"
    RAW = "raw"
    WITH_UNCOMPRESSED_SIZE = "with-size"


#: set by the strict stand-in: buffers must be device arrays (nvCOMP's batched codecs
#: read and write device memory only)
DEVICE_ONLY = False


def _memory(buffer: Any) -> np.ndarray:
    """The buffer's memory as numpy: a strict device array's own memory; a host array
    only while DEVICE_ONLY is off (numpy standing in for cupy)."""
    if strict_xp.is_device(buffer):
        return strict_xp.backing(buffer)
    if DEVICE_ONLY:
        raise TypeError(f"nvCOMP takes device buffers, not {type(buffer)}")
    return np.asarray(buffer)


def _address(array: Any) -> int:
    interface = getattr(array, "__cuda_array_interface__", None) or array.__array_interface__
    return int(interface["data"][0])


@dataclass
class BatchArray:
    views: list[np.ndarray]
    buffer_sizes: list[int]


def as_arrays(buffer: Any, offsets: list[int], sizes: list[int], cuda_stream: int = 0
              ) -> BatchArray:
    flat = _memory(buffer).reshape(-1).view(np.uint8)
    if any(o < 0 or o + s > flat.size for o, s in zip(offsets, sizes, strict=True)):
        raise ValueError("as_arrays: an entry lies outside the buffer")
    views = [flat[o : o + s] for o, s in zip(offsets, sizes, strict=True)]
    return BatchArray(views, list(sizes))


def _inflate(data: bytes, wbits: int, capacity: int) -> bytes:
    d = zlib.decompressobj(wbits=wbits)
    out = d.decompress(data, capacity)
    if d.unconsumed_tail:
        raise ValueError("decoded data does not fit its output buffer")
    return out


def _decode_one(algorithm: str, data: bytes, capacity: int) -> bytes:
    if algorithm == "Zstd":
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=capacity)
    if algorithm == "Deflate":
        return _inflate(data, -15, capacity)
    if algorithm == "Gzip":
        return _inflate(data, 31, capacity)
    if algorithm == "LZ4":  # a raw LZ4 block; numcodecs' frame is a 4-byte size + the block
        from numcodecs import LZ4

        return bytes(LZ4().decode(int(capacity).to_bytes(4, "little") + data))
    raise NotImplementedError(f"the double has no {algorithm}")


def _encode_one(algorithm: str, data: bytes) -> bytes:
    if algorithm == "Zstd":  # nvCOMP's RAW zstd frames carry no content size: mimic that
        return zstandard.ZstdCompressor(write_content_size=False).compress(data)
    if algorithm == "Deflate":
        packer = zlib.compressobj(level=1, wbits=-15)
        return packer.compress(data) + packer.flush()
    if algorithm == "LZ4":
        from numcodecs import LZ4

        return bytes(LZ4().encode(data))[4:]
    raise NotImplementedError(f"the double does not compress {algorithm}")


class Codec:
    """Records each call, so tests can count batches and launches."""

    calls: ClassVar[list[tuple[str, int]]] = []

    def __init__(self, algorithm: str = "", bitstream_kind: str = BitstreamKind.NVCOMP_NATIVE,
                 **kwargs: Any) -> None:
        if bitstream_kind != BitstreamKind.RAW:
            raise ValueError("cuzarr must ask for RAW bitstreams")
        self.algorithm = algorithm

    def get_required_decompression_alignment(self) -> int:
        return ALIGNMENT[self.algorithm]

    def get_max_comp_buffer_size(self, size: int) -> int:
        if self.algorithm == "Zstd":
            return len(zstandard.ZstdCompressor().compress(b"")) + size + size // 128 + 64
        if self.algorithm == "Deflate":  # zlib's deflateBound for a raw stream
            return size + (size >> 12) + (size >> 14) + (size >> 25) + 7
        if self.algorithm == "LZ4":  # LZ4_compressBound
            return size + size // 255 + 16
        raise NotImplementedError(f"the double does not compress {self.algorithm}")

    def encode(self, srcs: BatchArray, out: BatchArray | None = None,
               compression_config: Any = None) -> BatchArray:
        if out is None or len(out.views) != len(srcs.views):
            raise ValueError("cuzarr passes a preallocated output batch of the same length")
        align = ALIGNMENT[self.algorithm]
        Codec.calls.append((f"{self.algorithm}-encode", len(srcs.views)))
        sizes = []
        for src, dst in zip(srcs.views, out.views, strict=True):
            if _address(src) % align or _address(dst) % align:
                raise ValueError(f"{self.algorithm}: buffers must be {align}-byte aligned")
            if src.size > MAX_CHUNK[self.algorithm]:
                raise ValueError(f"{self.algorithm}: {src.size} bytes is above the largest "
                                 f"chunk nvCOMP compresses ({MAX_CHUNK[self.algorithm]})")
            frame = _encode_one(self.algorithm, src.tobytes())
            if len(frame) > dst.size:
                raise ValueError("compressed data does not fit its output buffer")
            dst[: len(frame)] = np.frombuffer(frame, dtype=np.uint8)
            sizes.append(len(frame))
        return BatchArray(out.views, sizes)

    def decode(self, srcs: BatchArray, data_type: str = "", out: BatchArray | None = None,
               decompression_config: Any = None) -> BatchArray:
        if out is None or len(out.views) != len(srcs.views):
            raise ValueError("cuzarr passes a preallocated output batch of the same length")
        align = ALIGNMENT[self.algorithm]
        Codec.calls.append((self.algorithm, len(srcs.views)))
        sizes = []
        for src, dst in zip(srcs.views, out.views, strict=True):
            if _address(src) % align or _address(dst) % align:
                raise ValueError(f"{self.algorithm}: buffers must be {align}-byte aligned")
            decoded = _decode_one(self.algorithm, src.tobytes(), dst.size)
            dst[: len(decoded)] = np.frombuffer(decoded, dtype=np.uint8)
            sizes.append(len(decoded))
        return BatchArray(out.views, sizes)
