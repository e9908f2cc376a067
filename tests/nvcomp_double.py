"""A test double of the `nvidia.nvcomp` calls cuzarr makes, held to the real module.

Its names, parameters, defaults and argument types are those of nvidia-nvcomp-cu13 6.0
(tests/test_stand_ins_match_real.py compares them with the installed module's pybind
signatures), and it refuses what the real one refuses:

- arguments of the wrong type raise TypeError, as pybind's "incompatible function
  arguments" does (`get_max_comp_buffer_size` takes an `Array`, not an int);
- buffer addresses must be aligned as `get_required_(de)compression_alignment` say;
- an output too small, or a stream that does not decode, raises from `decode` (ValueError
  "output too small", RuntimeError "Could not perform decompression"), as the real one;
- no buffer above the algorithm's largest chunk when compressing (nvCOMP 6.0's headers);
- `decode` without a `decompression_config` counts a stream synchronization (`syncs`),
  and, for RAW LZ4/Deflate, a size-query pass over every stream (`size_passes`);
- device allocations go through the allocator given to `set_device_allocator`: a
  `MemoryError` from it is what the real one raises as RuntimeError (`fail_allocations`
  makes the next scratch allocation fail the way nvCOMP's own allocator does).

It decodes and encodes with host libraries. Encoding writes what nvCOMP's RAW bitstreams
are: zstd frames without a content size, raw deflate, raw LZ4 blocks (no size prefix).
"""

from __future__ import annotations

import enum
import functools
import inspect
import typing
import zlib
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import zstandard

import strict_xp

#: the double's own data for the tests (switches, counters), which nvCOMP lacks;
#: tests/test_stand_ins_match_real.py lets these, and only these, differ from nvCOMP
__test_only__ = ("DEVICE_ONLY", "fail_allocations", "Codec.calls", "Codec.syncs",
                 "Codec.size_passes")

# nvcomp*Required{Decompression,Compression}Alignment, nvCOMP 6.0's headers
_DECOMPRESSION_ALIGNMENT = {"Zstd": 8, "Gzip": 8, "Deflate": 4, "LZ4": 4}
_COMPRESSION_ALIGNMENT = {"Zstd": 4, "Gzip": 8, "Deflate": 8, "LZ4": 4}
# nvcomp*CompressionMaxAllowedChunkSize, nvCOMP 6.0's headers
_MAX_CHUNK = {"Zstd": (1 << 31) - 1, "Deflate": 1 << 31, "LZ4": 1 << 24}

#: set by the strict stand-in: buffers must be device arrays (nvCOMP's batched codecs
#: read and write device memory only)
DEVICE_ONLY = False


def _typed(function: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse arguments whose type is not the annotated one, as pybind11 does."""
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            hint = hints.get(name)
            if hint is None or hint is Any or name == "self":
                continue
            default = signature.parameters[name].default
            if value is None and default is None:
                continue
            if not _matches(value, hint):
                raise TypeError(f"{function.__qualname__}(): incompatible function arguments: "
                                f"{name} must be {hint}, not {type(value).__name__}")
        return function(*args, **kwargs)

    return checked


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_matches(value, h) for h in typing.get_args(hint) if h is not type(None))
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if hint is int:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _memory(buffer: Any) -> np.ndarray:
    """The buffer's memory as numpy: a strict device array's own memory; a host array
    only while DEVICE_ONLY is off (numpy standing in for cupy)."""
    if strict_xp.is_device(buffer):
        return strict_xp.backing(buffer)
    if DEVICE_ONLY:
        raise TypeError(f"nvCOMP takes device buffers, not {type(buffer)}")
    if not hasattr(buffer, "__array_interface__") and not hasattr(buffer, "__dlpack__"):
        raise TypeError(f"{type(buffer).__name__} exposes no __cuda_array_interface__, "
                        "__array_interface__ or __dlpack__")
    return np.asarray(buffer)


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


class BitstreamKind(enum.Enum):
    NVCOMP_NATIVE = 0
    RAW = 1
    WITH_UNCOMPRESSED_SIZE = 2


def _built(cls: type, **fields: Any) -> Any:
    """An instance of a class pybind11 gives no constructor ("No constructor defined!"):
    only nvCOMP's own calls make them."""
    obj = object.__new__(cls)
    for name, value in fields.items():
        setattr(obj, name, value)
    return obj


class CudaStream:
    """What nvCOMP hands an allocator: the stream (as `ptr`) the allocation is for."""

    @property
    def ptr(self) -> int:
        return self._ptr


class Array:
    """One buffer (a view of device memory)."""

    def __init__(self, src_object: object, cuda_stream: int = 0) -> None:
        self._view = _memory(src_object).reshape(-1).view(np.uint8)

    @property
    def buffer_size(self) -> int:
        return int(self._view.size)


class BatchArray:
    """A batch of buffers; `buffer_sizes` is a property (a list of ints), as the real one."""

    _views: list[np.ndarray]
    _sizes: list[int]

    @property
    def buffer_sizes(self) -> list[int]:
        return list(self._sizes)

    def __len__(self) -> int:
        return len(self._views)

    def __getitem__(self, index: int) -> Array:
        return Array(self._views[index][: self._sizes[index]])


class CompressConfig:
    _sizes: list[int]


class DecompressConfig:
    _sizes: list[int]


def _batch(views: list[np.ndarray], sizes: list[int]) -> BatchArray:
    return _built(BatchArray, _views=views, _sizes=sizes)


@_typed
def as_array(source: object, cuda_stream: int = 0) -> Array:
    return Array(source, cuda_stream)


@_typed
def as_arrays(buffer: object, offsets: list[int], sizes: list[int], cuda_stream: int = 0
              ) -> BatchArray:
    flat = _memory(buffer).reshape(-1).view(np.uint8)
    if len(offsets) != len(sizes):
        raise ValueError("as_arrays: offsets and sizes differ in length")
    if any(o < 0 or s < 0 or o + s > flat.size for o, s in zip(offsets, sizes, strict=True)):
        raise ValueError("as_arrays: an entry lies outside the buffer")
    views = [flat[o : o + s] for o, s in zip(offsets, sizes, strict=True)]
    return _batch(views, list(sizes))


_allocator: Callable[[int, CudaStream], Any] | None = None
#: scratch allocations still to succeed before nvCOMP's own allocator fails (None: never)
fail_allocations: int | None = None


@_typed
def set_device_allocator(allocator: object = None) -> None:
    global _allocator
    _allocator = allocator  # type: ignore[assignment]


def _scratch(nbytes: int, stream: int) -> Any:
    """A scratch allocation the way nvCOMP makes one: through the allocator set, else its
    own (cudaMalloc), whose failure is a RuntimeError."""
    global fail_allocations
    if _allocator is not None:
        block = _allocator(nbytes, _built(CudaStream, _ptr=stream))
        if not isinstance(getattr(block, "ptr", None), int):
            raise TypeError("the allocator's result has no integer `ptr`")
        return block
    if fail_allocations is not None:
        if fail_allocations <= 0:
            fail_allocations = None
            raise RuntimeError("CUDA Runtime API failure: out of memory : code=2.")
        fail_allocations -= 1
    return None


def _inflate(data: bytes, wbits: int, capacity: int) -> bytes:
    d = zlib.decompressobj(wbits=wbits)
    try:
        out = d.decompress(data, capacity)
    except zlib.error as e:
        raise RuntimeError(f"Could not perform decompression: {e}") from e
    if d.unconsumed_tail:
        raise ValueError("output too small")
    return out


def _decode_one(algorithm: str, data: bytes, capacity: int) -> bytes:
    if algorithm == "Zstd":
        try:
            frame = zstandard.frame_content_size(data)
        except zstandard.ZstdError as e:
            raise RuntimeError(f"Could not perform decompression: {e}") from e
        if frame > capacity:
            raise ValueError("output too small")
        try:
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=capacity)
        except zstandard.ZstdError as e:
            if "too small" in str(e) or "does not fit" in str(e):
                raise ValueError("output too small") from e
            raise RuntimeError(f"Could not perform decompression: {e}") from e
    if algorithm == "Deflate":
        return _inflate(data, -15, capacity)
    if algorithm == "Gzip":
        return _inflate(data, 31, capacity)
    if algorithm == "LZ4":  # a raw LZ4 block; numcodecs' frame is a 4-byte size + the block
        from numcodecs import LZ4

        try:
            return bytes(LZ4().decode(int(capacity).to_bytes(4, "little") + data))
        except RuntimeError as e:
            raise RuntimeError(f"Could not perform decompression: {e}") from e
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
    """Records each call, so tests can count batches, launches and synchronizations."""

    calls: ClassVar[list[tuple[str, int]]] = []
    #: decodes that had no decompression_config (each a stream synchronization)
    syncs: ClassVar[int] = 0
    #: RAW LZ4/Deflate streams walked once more to find their sizes (no config given)
    size_passes: ClassVar[int] = 0

    def __init__(self, **kwargs: Any) -> None:
        known = {"algorithm", "device_id", "cuda_stream", "uncomp_chunk_size",
                 "bitstream_kind", "execution_policy", "checksum_policy",
                 "decompress_backend", "use_de_sort", "data_type", "bitshuffle_mode"}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(f"Codec(): unknown options {sorted(unknown)}")
        if kwargs.get("bitstream_kind") != BitstreamKind.RAW:
            raise ValueError("cuzarr must ask for RAW bitstreams")
        self._algorithm = str(kwargs.get("algorithm", ""))
        self._stream = int(kwargs.get("cuda_stream", 0))

    def get_required_decompression_alignment(self) -> int:
        return _DECOMPRESSION_ALIGNMENT.get(self._algorithm, 16)

    def get_required_compression_alignment(self) -> int:
        return _COMPRESSION_ALIGNMENT.get(self._algorithm, 16)

    @_typed
    def get_max_comp_buffer_size(self, source: Array) -> int:
        size = source.buffer_size
        if self._algorithm == "Zstd":
            return len(zstandard.ZstdCompressor().compress(b"")) + size + size // 128 + 64
        if self._algorithm == "Deflate":  # nvCOMP's own bound is about 2.26x the input
            return size * 226 // 100 + 64
        if self._algorithm == "LZ4":  # LZ4_compressBound
            return size + size // 255 + 16
        raise NotImplementedError(f"the double does not compress {self._algorithm}")

    @_typed
    def compression_config(self, uncompressed_sizes: list[int]) -> CompressConfig:
        if not uncompressed_sizes or any(s <= 0 for s in uncompressed_sizes):
            raise ValueError("compression_config: sizes must be non-empty and positive")
        return _built(CompressConfig, _sizes=list(uncompressed_sizes))

    @_typed
    def decompression_config(self, compression_config: CompressConfig) -> DecompressConfig:
        return _built(DecompressConfig, _sizes=list(compression_config._sizes))

    def _aligned(self, views: list[np.ndarray], align: int) -> None:
        if any(_address(v) % align for v in views):
            raise ValueError(f"{self._algorithm}: buffers must be {align}-byte aligned")

    @_typed
    def encode(self, srcs: BatchArray, out: object = None,
               compression_config: CompressConfig | None = None) -> BatchArray:
        if not isinstance(out, BatchArray) or len(out) != len(srcs):
            raise ValueError("cuzarr passes a preallocated output batch of the same length")
        self._aligned(srcs._views + out._views, self.get_required_compression_alignment())
        Codec.calls.append((f"{self._algorithm}-encode", len(srcs)))
        _scratch(1 << 20, self._stream)
        sizes = []
        for src, dst in zip(srcs._views, out._views, strict=True):
            if src.size > _MAX_CHUNK[self._algorithm]:
                raise ValueError(f"{self._algorithm}: {src.size} bytes is above the largest "
                                 f"chunk nvCOMP compresses ({_MAX_CHUNK[self._algorithm]})")
            frame = _encode_one(self._algorithm, src.tobytes())
            if len(frame) > dst.size:
                raise ValueError("output too small")
            dst[: len(frame)] = np.frombuffer(frame, dtype=np.uint8)
            sizes.append(len(frame))
        return _batch(out._views, sizes)

    @_typed
    def decode(self, srcs: BatchArray, data_type: str = "", out: object = None,
               decompression_config: DecompressConfig | None = None) -> BatchArray:
        if not isinstance(out, BatchArray) or len(out) != len(srcs):
            raise ValueError("cuzarr passes a preallocated output batch of the same length")
        self._aligned(srcs._views + out._views, self.get_required_decompression_alignment())
        if decompression_config is None:
            Codec.syncs += 1
            if self._algorithm in ("LZ4", "Deflate"):
                Codec.size_passes += len(srcs)
        elif len(decompression_config._sizes) != len(srcs):
            raise ValueError("decompression_config is for a batch of another length")
        Codec.calls.append((self._algorithm, len(srcs)))
        _scratch(1 << 20, self._stream)
        sizes = []
        for src, dst, size in zip(srcs._views, out._views, srcs._sizes, strict=True):
            decoded = _decode_one(self._algorithm, src[:size].tobytes(), dst.size)
            dst[: len(decoded)] = np.frombuffer(decoded, dtype=np.uint8)
            sizes.append(len(decoded))
        return _batch(out._views, sizes)
