"""The cpu device: numpy slabs, host codec libraries on the host thread pool."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.codecs.bytes_to_bytes import BytesStage
from cuzarr.scatter import gather_into, rows_equal_fill
from cuzarr.timers import timed

__all__ = ["CpuDevice"]


class CpuDevice:
    name = "cpu"
    xp = np
    out_of_memory: tuple[type[BaseException], ...] = ()
    #: ~8 MiB tiles keep every core busy: one tile's file reads overlap another's decode
    tile_bytes = 8 << 20
    tiles_in_flight: int | None = None

    def tile_scope(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def host_empty(self, nbytes: int) -> np.ndarray:
        return np.empty(nbytes, dtype=np.uint8)

    def to_device(self, host: ByteBatch) -> ByteBatch:
        return host

    def to_host(self, batch: ByteBatch) -> ByteBatch:
        return batch

    def decode_stage(
        self, stage: BytesStage, batch: ByteBatch, expected: int | None, threads: int
    ) -> ByteBatch:
        return stage.decode(batch, expected, threads)

    def encode_stage(self, stage: BytesStage, batch: ByteBatch, threads: int) -> ByteBatch:
        return stage.encode(batch, threads)

    def local_reader(self, store: Any) -> Any:
        return None

    def copy_ranges(self, src: Any, dst: Any, src_at: np.ndarray, dst_at: np.ndarray,
                    sizes: np.ndarray) -> None:
        for s, d, n in zip(src_at.tolist(), dst_at.tolist(), sizes.tolist(), strict=True):
            dst[d : d + n] = src[s : s + n]

    def arrays_from_slab(self, layout: Any, slab: Any, count: int) -> Any:
        return layout.arrays_from_slab(slab, count)

    def slab_from_arrays(self, layout: Any, arrays: Any) -> Any:
        return layout.slab_from_arrays(arrays, np)

    def scatter(self, *args: Any) -> bool:
        """The cpu device has no batched scatter of its own: scatter.scatter does it."""
        return False

    def for_output(self, decoded: Any, out: Any) -> Any:
        return decoded

    def as_array(self, out: Any) -> Any:
        array = out.as_ndarray_like()
        if isinstance(array, np.ndarray):
            return array
        return None

    def from_value(self, value: Any) -> Any:
        return value

    def gather(self, targets: Any, value: Any, chunk_selections: list[Any],
               out_selections: list[Any], drop_axes: tuple[int, ...]) -> None:
        gather_into(targets, value, chunk_selections, out_selections, drop_axes)

    @timed("gather")
    def copy_views(self, pairs: list[tuple[Any, Any]]) -> None:
        for src, dst in pairs:
            dst[...] = src

    def rows_equal_fill(self, chunks: Any, fill_value: Any) -> np.ndarray:
        return rows_equal_fill(chunks, fill_value)
