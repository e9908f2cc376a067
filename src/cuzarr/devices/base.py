"""The device interface every phase is written against."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.codecs.bytes_to_bytes import BytesStage

__all__ = ["Device", "run_in_tile"]


class Device(Protocol):
    """Where slabs live and batched codec stages run."""

    name: str
    xp: Any  # the array module: numpy or cupy
    #: allocation errors after which a tile is split in two and retried
    out_of_memory: tuple[type[BaseException], ...]
    #: decoded bytes per tile of a read on a blocking store (capped by `wave_bytes`)
    tile_bytes: int
    #: tiles in flight at once (None: one per thread)
    tiles_in_flight: int | None

    def tile_scope(self) -> AbstractContextManager[None]:
        """Where one tile's work runs (the cuda device: this thread's own stream, synchronized
        on exit, so tiles overlap and results are complete when the tile ends)."""
        ...

    def host_empty(self, nbytes: int) -> np.ndarray:
        """A host uint8 buffer for the io phase to fill (the cuda device's is pinned, so
        the one host-to-device copy of a wave is a direct DMA, with no staging copy)."""
        ...

    def to_device(self, host: ByteBatch) -> ByteBatch:
        """Move a host slab (from the io phase) to this device, once per wave."""
        ...

    def to_host(self, batch: ByteBatch) -> ByteBatch:
        """Bring an encoded slab back to the host for the store."""
        ...

    def decode_stage(
        self, stage: BytesStage, batch: ByteBatch, expected: int | None, threads: int
    ) -> ByteBatch:
        """Decode every item of `batch` with `stage` (one batched call)."""
        ...

    def encode_stage(self, stage: BytesStage, batch: ByteBatch, threads: int) -> ByteBatch:
        """Encode every item of `batch` with `stage` (one batched call)."""
        ...

    def as_array(self, out: Any) -> Any:
        """The array behind a zarr NDBuffer, in this device's array module."""
        ...

    def copy_ranges(self, src: Any, dst: Any, src_at: np.ndarray, dst_at: np.ndarray,
                    sizes: np.ndarray) -> None:
        """src[src_at[i] : +sizes[i]] -> dst[dst_at[i] :] for every i (one kernel launch on
        the cuda device), without an index array as large as the data."""
        ...

    def local_reader(self, store: Any) -> Any:
        """A reader of `store` straight into this device's memory (kvikio), or None for the
        host reader plus `to_device`."""
        ...

    def arrays_from_slab(self, layout: Any, slab: Any, count: int) -> Any:
        """View `count` decoded chunks in a slab as an (count, *shape) array (ArrayLayout)."""
        ...

    def slab_from_arrays(self, layout: Any, arrays: Any) -> Any:
        """The stored bytes of an (n, *shape) batch of chunks, as one uint8 slab."""
        ...

    def scatter(self, out: Any, decoded: Any, rows: Any, chunk_selections: list[Any],
                out_selections: list[Any], drop_axes: tuple[int, ...], fill_value: Any) -> bool:
        """Scatter the batch in this device's own way; False means use scatter.scatter."""
        ...

    def for_output(self, decoded: Any, out: Any) -> Any:
        """Decoded chunks (an array or a list of arrays) in the memory `out` lives in."""
        ...

    # -- writes ----------------------------------------------------------------------------

    def from_value(self, value: Any) -> Any:
        """A write's value in this device's memory (a host value goes over once)."""
        ...

    def gather(self, targets: Any, value: Any, chunk_selections: list[Any],
               out_selections: list[Any], drop_axes: tuple[int, ...]) -> None:
        """targets[i][chunk_sel[i]] = value[out_sel[i]] for every chunk of a write; targets is
        an (n, ...) chunk batch or a list of arrays carved from one buffer."""
        ...

    def copy_views(self, pairs: list[tuple[Any, Any]]) -> None:
        """dst[...] = src for each (src, dst) pair of equal shape (views of this device)."""
        ...

    def rows_equal_fill(self, chunks: Any, fill_value: Any) -> Any:
        """Per chunk of an (n, ...) batch: all elements equal the fill value? A host bool
        array (zarr's empty-chunk rule)."""
        ...


def run_in_tile[T](device: Device, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` inside `device.tile_scope()`: for the wave-by-wave paths of async
    stores, so their device work is complete (and their host slabs free) when it returns."""
    with device.tile_scope():
        return fn(*args)
