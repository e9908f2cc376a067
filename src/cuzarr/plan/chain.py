"""Resolve a pipeline's codecs once per chunk spec into a prepared chain.

A prepared chain holds everything shape- and dtype-specific (tensorstore's
"prepared state"): decoding a batch then does no metadata work. Three kinds:

- `FixedChain`: transposes, the bytes codec (or a v2 codec with no filters) and
  any bytes->bytes stages. Every chunk decodes to the same byte count, so a whole
  batch decodes into one slab and becomes one (n, *shape) array.
- `ShardChain`: sharding_indexed with no outer codecs; its inner chunks run
  through a prepared inner chain, its index is read in one batch.
- `GenericChain`: anything else zarr can read, run per chunk through zarr's own
  synchronous `ChunkTransform` (still with batched IO and batched scatter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cuzarr.codecs.bytes_to_bytes import BytesStage
from cuzarr.codecs.stages import numcodec_stage, zarr_bytes_stage

__all__ = ["ArrayLayout", "Chain", "FixedChain", "GenericChain", "ShardChain", "integer_view",
           "prepare_chain"]


@dataclass(frozen=True)
class ArrayLayout:
    """How a chunk's decoded bytes map to its array (and back)."""

    shape: tuple[int, ...]  # logical chunk shape
    dtype: np.dtype  # dtype of the decoded array (the array's native dtype)
    stored_dtype: np.dtype  # dtype of the stored bytes (byte order as stored)
    stored_shape: tuple[int, ...]  # C-order shape of the stored bytes
    to_logical: tuple[int, ...]  # logical = stored.transpose(to_logical)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.stored_dtype.itemsize

    def arrays_from_slab(self, slab: Any, count: int) -> Any:
        """View a slab of `count` decoded chunks as an (count, *shape) array, native order."""
        arr = slab[: count * self.nbytes].view(self.stored_dtype).reshape(count, *self.stored_shape)
        if self.stored_dtype != self.dtype:
            arr = arr.astype(self.dtype)
        return arr.transpose(0, *(1 + a for a in self.to_logical))

    def slab_from_arrays(self, arrays: Any, xp: Any = np) -> Any:
        """The stored bytes of an (n, *shape) batch of chunks, as one uint8 slab."""
        from_logical = tuple(int(a) for a in np.argsort(self.to_logical))
        stored = arrays.transpose(0, *(1 + a for a in from_logical))
        stored = xp.ascontiguousarray(stored, dtype=self.stored_dtype)
        return stored.reshape(-1).view(np.uint8)


@dataclass(frozen=True)
class FixedChain:
    layout: ArrayLayout
    stages: tuple[BytesStage, ...]  # encode order
    fill_value: Any
    write_empty_chunks: bool
    #: datetime64/timedelta64 chunks are handled as the integers they are stored as (see
    #: `integer_view`): the pipeline views `out` and write values the same way
    as_integers: bool = False


@dataclass(frozen=True)
class GenericChain:
    transform: Any  # zarr ChunkTransform
    spec: Any  # ArraySpec
    fill_value: Any
    write_empty_chunks: bool
    reason: str


@dataclass(frozen=True)
class ShardChain:
    codec: Any  # the ShardingCodec
    spec: Any  # the shard's ArraySpec
    inner: Chain
    inner_spec: Any
    shard_shape: tuple[int, ...]
    inner_shape: tuple[int, ...]
    chunks_per_shard: tuple[int, ...]
    index_at_start: bool
    index_nbytes: int
    index_stages: tuple[BytesStage, ...] | None  # None: decode the index with zarr
    fill_value: Any
    write_empty_chunks: bool

    @property
    def n_inner(self) -> int:
        return math.prod(self.chunks_per_shard)

    @property
    def as_integers(self) -> bool:
        return isinstance(self.inner, FixedChain) and self.inner.as_integers


Chain = FixedChain | GenericChain | ShardChain


def _fill_value(spec: Any) -> Any:
    from zarr.core.chunk_utils import fill_value_or_default

    return fill_value_or_default(spec)


def _fixed_dtype(spec: Any) -> np.dtype | None:
    """The native dtype when chunks of this dtype have a fixed byte size, else None."""
    from zarr.core.dtype.common import HasItemSize

    if not isinstance(spec.dtype, HasItemSize):
        return None
    dtype = spec.dtype.to_native_dtype()
    if dtype.kind in "OT" or dtype.hasobject:
        return None
    return dtype


def _stored_dtype(spec: Any, endian: str | None) -> np.dtype:
    """Mirror zarr's BytesCodec: the dtype the stored bytes are viewed with."""
    from zarr.core.dtype import Struct
    from zarr.core.dtype.common import HasEndianness

    dtype = spec.dtype.to_native_dtype()
    if isinstance(spec.dtype, HasEndianness):
        return replace(spec.dtype, endianness=endian).to_native_dtype()
    if isinstance(spec.dtype, Struct) and endian is not None:
        return dtype.newbyteorder(endian)
    return dtype


def _generic(codecs: tuple[Any, ...], spec: Any, reason: str) -> GenericChain:
    from zarr.core.chunk_utils import ChunkTransform, evolve_codecs

    transform = ChunkTransform(codecs=evolve_codecs(codecs, spec))
    return GenericChain(
        transform=transform,
        spec=spec,
        fill_value=_fill_value(spec),
        write_empty_chunks=spec.config.write_empty_chunks,
        reason=reason,
    )


def prepare_chain(codecs: tuple[Any, ...], spec: Any, *, verify_checksums: bool) -> Chain:
    """Prepare `codecs` (already evolved for this array) for chunks described by `spec`.

    Raises TypeError when a codec has no synchronous implementation at all (zarr's own
    test, which sees through a sharding codec to its inner and index codecs); the
    pipeline then hands the batch to zarr's own async pipeline. Only zarr's own codec
    classes take the batched paths: a subclass (which may encode differently) runs through
    its own methods.
    """
    from zarr.abc.codec import _codec_supports_sync
    from zarr.codecs import BytesCodec, ShardingCodec, TransposeCodec
    from zarr.codecs._v2 import V2Codec
    from zarr.core.codec_pipeline import codecs_from_list_unchecked

    no_sync = [c for c in codecs if not _codec_supports_sync(c)]
    if no_sync:
        raise TypeError(f"{type(no_sync[0]).__name__} has no synchronous implementation")
    aa, ab, bb = codecs_from_list_unchecked(codecs)
    dtype = _fixed_dtype(spec)

    if type(ab) is ShardingCodec and not aa and not bb:
        return _prepare_shard(ab, spec, verify_checksums=verify_checksums)

    if dtype is None:
        return _generic(codecs, spec, f"dtype {spec.dtype} has no fixed item size")
    if not all(type(c) is TransposeCodec for c in aa):
        return _generic(codecs, spec, "an array->array codec other than zarr's transpose")

    if type(ab) is BytesCodec:
        order = tuple(range(len(spec.shape)))
        for codec in aa:
            order = tuple(order[i] for i in codec.order)
        stored_shape = tuple(spec.shape[i] for i in order)
        to_logical = tuple(int(i) for i in np.argsort(order))
        stored_dtype = _stored_dtype(spec, ab.endian)
        found = [zarr_bytes_stage(c, spec, verify_checksums=verify_checksums) for c in bb]
        if any(stage is None for stage in found):
            return _generic(codecs, spec, "a bytes codec without a batched stage")
        stages = tuple(stage for stage in found if stage is not None)
    elif type(ab) is V2Codec and not aa and not bb and not ab.filters:
        ndim = len(spec.shape)
        if spec.order == "F":
            stored_shape, to_logical = tuple(reversed(spec.shape)), tuple(reversed(range(ndim)))
        else:
            stored_shape, to_logical = tuple(spec.shape), tuple(range(ndim))
        stored_dtype = dtype
        stages = ()
        if ab.compressor is not None:
            stages = (numcodec_stage(ab.compressor, verify_checksums=verify_checksums,
                                     itemsize=dtype.itemsize),)
    else:
        return _generic(codecs, spec, f"{type(ab).__name__} has no batched path")

    fill = _fill_value(spec)
    as_integers = integer_view(dtype) is not None
    if as_integers:  # the fill as an integer value, made in native order (no swap needed)
        native = dtype.newbyteorder("=")
        fill = np.asarray(fill, dtype=native).view(integer_view(native))[()]
        dtype, stored_dtype = integer_view(dtype), integer_view(stored_dtype)
    layout = ArrayLayout(
        shape=tuple(spec.shape),
        dtype=dtype,
        stored_dtype=stored_dtype,
        stored_shape=stored_shape,
        to_logical=to_logical,
    )
    return FixedChain(
        layout=layout,
        stages=stages,
        fill_value=fill,
        write_empty_chunks=spec.config.write_empty_chunks,
        as_integers=as_integers,
    )


def integer_view(dtype: np.dtype) -> np.dtype | None:
    """The integer dtype of the same size and byte order as a datetime64/timedelta64 dtype
    (None for any other). numpy's casts and assignments between datetime arrays of other
    byte orders do not swap bytes for the generic unit ('>M8' to '<M8' keeps the bytes),
    so cuzarr copies and byte-swaps these as the integers they are stored as."""
    if dtype.kind not in "mM":
        return None
    order = dtype.byteorder if dtype.byteorder in "<>" else "="
    return np.dtype(f"{order}i{dtype.itemsize}")


def _prepare_shard(codec: Any, spec: Any, *, verify_checksums: bool) -> Chain:
    from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec
    from zarr.core.chunk_utils import evolve_codecs

    chunks_per_shard = codec._get_chunks_per_shard(spec)
    inner_spec = codec._get_chunk_spec(spec)
    inner_codecs = evolve_codecs(codec.codecs, inner_spec)
    if any(isinstance(c, ShardingCodec) for c in inner_codecs):  # nested, or a subclass
        inner: Chain = _generic(inner_codecs, inner_spec, "nested sharding")
    else:
        inner = prepare_chain(inner_codecs, inner_spec, verify_checksums=verify_checksums)

    index_stages: tuple[BytesStage, ...] | None = None
    ic = codec.index_codecs
    little = ("little", None)
    if len(ic) >= 1 and type(ic[0]) is BytesCodec and ic[0].endian in little:
        rest = ic[1:]
        if all(type(c) is Crc32cCodec for c in rest):
            from cuzarr.codecs.bytes_to_bytes import Crc32cStage

            index_stages = tuple(Crc32cStage(verify=verify_checksums) for _ in rest)
    return ShardChain(
        codec=codec,
        spec=spec,
        inner=inner,
        inner_spec=inner_spec,
        shard_shape=tuple(spec.shape),
        inner_shape=tuple(codec.chunk_shape),
        chunks_per_shard=tuple(chunks_per_shard),
        index_at_start=codec.index_location == "start",
        index_nbytes=int(codec._shard_index_size(chunks_per_shard)),
        index_stages=index_stages,
        fill_value=inner.fill_value if getattr(inner, "as_integers", False) else _fill_value(spec),
        write_empty_chunks=spec.config.write_empty_chunks,
    )
