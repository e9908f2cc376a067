"""`PhasedCodecPipeline`: zarr's CodecPipeline as phases over the whole batch.

read:  plan (prepared chain, shard indexes, byte ranges) -> io (one slab per wave)
       -> decode (each stage once per batch) -> scatter into `out`.
write: gather value into chunk arrays on the value's device (merging what is stored)
       -> encode in batch -> one copy of the encoded bytes to the host -> store writes
       (LocalStore keeps its atomic temp-and-rename) / deletes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from zarr.abc.codec import (
    ArrayArrayCodec,
    ArrayBytesCodec,
    BytesBytesCodec,
    Codec,
    CodecPipeline,
    GetResult,
)

from cuzarr.config import Options, options
from cuzarr.devices import cuda_available
from cuzarr.errors import ConfigError
from cuzarr.io.access import access
from cuzarr.io.files import recover_journals
from cuzarr.plan.chain import Chain, GenericChain, ShardChain, integer_view, prepare_chain
from cuzarr.plan.patches import Fanout, ShardFanout
from cuzarr.read import read_plain, read_shards
from cuzarr.timers import timed
from cuzarr.write import (
    device_writes,
    refuse_masked,
    refuse_what_zarr_refuses,
    write_plain,
    write_shards,
)

if TYPE_CHECKING:
    from zarr.abc.store import ByteGetter, ByteSetter
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType
    from zarr.core.indexing import SelectorTuple
    from zarr.core.metadata.v3 import ChunkGridMetadata

__all__ = ["PhasedCodecPipeline"]

logger = logging.getLogger("cuzarr")

Entry = tuple[Any, Any, Any, Any, bool]
_PRESENT = GetResult(status="present")
_MISSING = GetResult(status="missing")


@dataclass(frozen=True)
class PhasedCodecPipeline(CodecPipeline):
    """A batched codec pipeline: every chunk of a read or write is one job."""

    array_array_codecs: tuple[ArrayArrayCodec, ...]
    array_bytes_codec: ArrayBytesCodec
    bytes_bytes_codecs: tuple[BytesBytesCodec, ...]
    _chains: dict[Any, Any] = field(
        default_factory=dict, init=False, compare=False, repr=False, hash=False
    )

    # zarr registers pipelines under module + qualname; users write "cuzarr.PhasedCodecPipeline"
    __module__ = "cuzarr"

    # -- construction ------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the prepared-chain cache (a dask task carries arrays with their
        pipelines; the cache is rebuilt where it is used)."""
        return {**self.__dict__, "_chains": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_codecs(cls, codecs: Iterable[Codec]) -> Self:
        from zarr.core.codec_pipeline import codecs_from_list

        aa, ab, bb = codecs_from_list(codecs)
        return cls(array_array_codecs=aa, array_bytes_codec=ab, bytes_bytes_codecs=bb)

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        from zarr.core.chunk_utils import evolve_codecs
        from zarr.core.codec_pipeline import codecs_from_list_unchecked

        aa, ab, bb = codecs_from_list_unchecked(evolve_codecs(self, array_spec))
        return type(self)(array_array_codecs=aa, array_bytes_codec=ab, bytes_bytes_codecs=bb)

    def __iter__(self) -> Iterator[Codec]:
        yield from self.array_array_codecs
        yield self.array_bytes_codec
        yield from self.bytes_bytes_codecs

    @property
    def codecs(self) -> tuple[Codec, ...]:
        return tuple(self)

    @property
    def supports_partial_decode(self) -> bool:
        from zarr.core.codec_pipeline import pipeline_supports_partial_decode

        return pipeline_supports_partial_decode(
            self.array_bytes_codec,
            array_array_codecs=self.array_array_codecs,
            bytes_bytes_codecs=self.bytes_bytes_codecs,
            require_no_aa_bb=True,
        )

    @property
    def supports_partial_encode(self) -> bool:
        from zarr.core.codec_pipeline import pipeline_supports_partial_encode

        return pipeline_supports_partial_encode(
            self.array_bytes_codec,
            array_array_codecs=self.array_array_codecs,
            bytes_bytes_codecs=self.bytes_bytes_codecs,
            require_no_aa_bb=True,
        )

    def validate(
        self,
        *,
        shape: tuple[int, ...],
        dtype: ZDType[TBaseDType, TBaseScalar],
        chunk_grid: ChunkGridMetadata,
    ) -> None:
        for codec in self:
            codec.validate(shape=shape, dtype=dtype, chunk_grid=chunk_grid)

    def compute_encoded_size(self, byte_length: int, array_spec: ArraySpec) -> int:
        for codec in self:
            byte_length = codec.compute_encoded_size(byte_length, array_spec)
            array_spec = codec.resolve_metadata(array_spec)
        return byte_length

    # -- prepared chains and the named fallback ------------------------------------------

    def _chain(self, spec: ArraySpec, opts: Options) -> Chain | None:
        """The prepared chain for `spec` (cached), or None when zarr's pipeline must run it."""
        key = (spec, opts.verify_checksums)
        chain = self._chains.get(key)
        if chain is None and key not in self._chains:
            try:
                chain = prepare_chain(self.codecs, spec, verify_checksums=opts.verify_checksums)
            except TypeError as e:
                logger.info("cuzarr: handing %s to zarr's pipeline: %s", self.codecs, e)
                chain = None
            self._chains[key] = chain
            if isinstance(chain, GenericChain) and not opts.generic_fallback:
                raise ConfigError(
                    f"cuzarr setting 'generic_fallback' is False, but this codec chain has no "
                    f"batched path ({chain.reason}): {self.codecs}"
                )
            if isinstance(chain, GenericChain):
                logger.info("cuzarr: per-chunk codec path for %s (%s)", self.codecs, chain.reason)
        return chain

    def _zarr_pipeline(self) -> CodecPipeline:
        from zarr.core.codec_pipeline import BatchedCodecPipeline
        from zarr.core.config import config as zarr_config

        return BatchedCodecPipeline(
            array_array_codecs=self.array_array_codecs,
            array_bytes_codec=self.array_bytes_codec,
            bytes_bytes_codecs=self.bytes_bytes_codecs,
            batch_size=zarr_config.get("codec_pipeline.batch_size"),
        )

    def _zarr_io(self, batch: list[Entry]) -> CodecPipeline:
        """zarr's pipeline, for a read or write it runs on this batch; shards of a LocalStore
        first get any journal a killed partial write of cuzarr's left replayed, so zarr
        never reads or replaces a shard half written."""
        from zarr.codecs.sharding import ShardingCodec

        if isinstance(self.array_bytes_codec, ShardingCodec) and _all_store_paths(batch):
            root = access(batch[0][0].store).root
            if root is not None:
                recover_journals([os.path.join(root, e[0].path) for e in batch],
                                 options().threads)
        return self._zarr_pipeline()

    # -- decode / encode (bytes in hand) --------------------------------------------------

    async def decode(
        self, chunk_bytes_and_specs: Iterable[tuple[Buffer | None, ArraySpec]]
    ) -> Iterable[NDBuffer | None]:
        from cuzarr.codec_api import decode_buffers

        items = list(chunk_bytes_and_specs)
        opts = options()
        if self._needs_zarr(items, opts):
            return await self._zarr_pipeline().decode(items)
        return await asyncio.to_thread(decode_buffers, self, items, opts)

    async def encode(
        self, chunk_arrays_and_specs: Iterable[tuple[NDBuffer | None, ArraySpec]]
    ) -> Iterable[Buffer | None]:
        from cuzarr.codec_api import encode_arrays

        items = list(chunk_arrays_and_specs)
        opts = options()
        if self._needs_zarr(items, opts):
            return await self._zarr_pipeline().encode(items)
        return await asyncio.to_thread(encode_arrays, self, items, opts)

    def _needs_zarr(self, items: list[tuple[Any, Any]], opts: Options) -> bool:
        """True when a codec of these items has no synchronous implementation (a
        third-party async-only codec, say, as a shard index codec): zarr's pipeline runs
        them."""
        specs = {spec for data, spec in items if data is not None}
        return any(self._chain(spec, opts) is None for spec in specs)

    # -- read / write ------------------------------------------------------------------------

    @timed("read call")
    async def read(
        self,
        batch_info: Iterable[tuple[ByteGetter, ArraySpec, SelectorTuple, SelectorTuple, bool]],
        out: NDBuffer,
        drop_axes: tuple[int, ...] = (),
    ) -> tuple[GetResult, ...]:
        batch = list(batch_info)
        if not batch:
            return ()
        opts = options()
        out_array = out.as_ndarray_like()
        groups = _group_by_spec(batch)
        device_out = not isinstance(out_array, np.ndarray)
        if (device_out and not cuda_available()) or not _all_store_paths(batch):
            return await self._zarr_io(batch).read(batch, out, drop_axes)
        chains = [(self._chain(spec, opts), idx) for spec, idx in groups]
        if any(chain is None for chain, _ in chains):
            return await self._zarr_io(batch).read(batch, out, drop_axes)
        out_array = _as_integers(out_array, chains, groups[0][0])
        if out_array is None:
            return await self._zarr_io(batch).read(batch, out, drop_axes)
        status = np.zeros(len(batch), dtype=bool)
        store = batch[0][0].store
        for chain, idx in chains:
            entries = [batch[i] for i in idx]
            if isinstance(chain, ShardChain):
                present = await read_shards(chain, store, entries, out_array, drop_axes, opts)
            else:
                present = await read_plain(chain, store, entries, out_array, drop_axes, opts)
            status[idx] = present
        return tuple(_PRESENT if p else _MISSING for p in status.tolist())

    @timed("read call")
    async def read_fanout(
        self, chunks: list[Entry], fanout: Fanout, pairs: list[Entry], out: NDBuffer
    ) -> np.ndarray:
        """Read distinct chunks (or shards) once each and copy their parts where `fanout`
        says (read_patches); returns which chunks were present. `pairs` is the same read
        as an ordinary batch, one entry per part: where the batched path cannot run it,
        `read` runs that (zarr's pipeline then fetches a shared chunk once per part)."""
        opts = options()
        out_array = out.as_ndarray_like()
        spec = chunks[0][1]
        device_out = not isinstance(out_array, np.ndarray)
        chain = None
        if (not device_out or cuda_available()) and _all_store_paths(chunks):
            chain = self._chain(spec, opts)
        if chain is not None:
            out_array = _as_integers(out_array, [(chain, None)], spec)
        if chain is None or out_array is None:
            status = await self.read(pairs, out)
            found = {e[0].path: s["status"] == "present" for e, s in
                     zip(pairs, status, strict=True)}
            return np.array([found.get(c[0].path, False) for c in chunks], dtype=bool)
        store = chunks[0][0].store
        if isinstance(chain, ShardChain):
            assert isinstance(fanout, ShardFanout)
            return await read_shards(chain, store, chunks, out_array, (), opts, fanout)
        return await read_plain(chain, store, chunks, out_array, (), opts, fanout)

    @timed("write call")
    async def write(
        self,
        batch_info: Iterable[tuple[ByteSetter, ArraySpec, SelectorTuple, SelectorTuple, bool]],
        value: NDBuffer,
        drop_axes: tuple[int, ...] = (),
    ) -> None:
        batch = list(batch_info)
        if not batch:
            return
        opts = options()
        value_array = value.as_ndarray_like()
        refuse_masked(value_array)
        # a device value runs on the cuda device; where that cannot (device="cpu", no GPU,
        # a chain without batched encode) zarr's pipeline writes it, as for reads
        on_device = not isinstance(value_array, np.ndarray)
        if (on_device and (opts.device == "cpu" or not cuda_available())) or not (
            _all_store_paths(batch)
        ):
            await self._zarr_io(batch).write(batch, value, drop_axes)
            return
        groups = _group_by_spec(batch)
        chains = [(self._chain(spec, opts), idx) for spec, idx in groups]
        if any(chain is None or (on_device and not device_writes(chain))
               for chain, _ in chains):
            await self._zarr_io(batch).write(batch, value, drop_axes)
            return
        value_array = _as_integers(value_array, chains, None)
        if value_array is None:
            await self._zarr_io(batch).write(batch, value, drop_axes)
            return
        store = batch[0][0].store
        for chain, idx in chains:
            refuse_what_zarr_refuses(chain, [batch[i] for i in idx], value_array)
        for chain, idx in chains:
            entries = [batch[i] for i in idx]
            if isinstance(chain, ShardChain):
                await write_shards(chain, store, entries, value_array, drop_axes, opts)
            else:
                await write_plain(chain, store, entries, value_array, drop_axes, opts)


def _group_by_spec(batch: list[Entry]) -> list[tuple[Any, np.ndarray]]:
    """Indices of the batch grouped by chunk spec (one group on a regular grid)."""
    first = batch[0][1]
    if all(entry[1] is first for entry in batch):
        return [(first, np.arange(len(batch)))]
    groups: dict[Any, list[int]] = {}
    for i, entry in enumerate(batch):
        groups.setdefault(entry[1], []).append(i)
    return [(spec, np.asarray(idx)) for spec, idx in groups.items()]


def _all_store_paths(batch: list[Entry]) -> bool:
    from zarr.storage._common import StorePath

    store = getattr(batch[0][0], "store", None)
    return all(isinstance(e[0], StorePath) and e[0].store is store for e in batch)


def _as_integers(array: Any, chains: list[tuple[Any, np.ndarray]], spec: Any) -> Any:
    """`array` viewed as integers where the chains handle datetime64/timedelta64 chunks as
    the integers they are stored as (plan.chain.integer_view); None where that would not
    be right, and zarr's pipeline then runs the batch: only some chains do, or a read's
    `out` (spec given) holds another unit than the array (numpy's cast must convert)."""
    flags = {bool(getattr(chain, "as_integers", False)) for chain, _ in chains}
    if flags == {False}:
        return array
    if len(flags) > 1:
        return None
    view = integer_view(array.dtype)
    if view is None:
        return array
    if spec is not None:
        native = spec.dtype.to_native_dtype()
        if (array.dtype.kind != native.kind
                or np.datetime_data(array.dtype) != np.datetime_data(native)):
            return None
    return array.view(view)
