"""The cuda device: slabs in device memory, nvCOMP batched decode and encode, our kernels.

It takes its array module (`xp`), its nvCOMP backend and its kernel launcher as
parameters. On a GPU those are cupy, the real `nvidia.nvcomp` and `CupyLauncher`; in CI
they are numpy, a test double of nvCOMP and the host-emulation launcher, so slab
carving, alignment repacking, header validation, size checks and kernel launch tables
all run in CI, and only the real cupy/nvCOMP calls wait for a GPU.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch, aligned_layout
from cuzarr.codecs.bytes_to_bytes import (
    BloscStage,
    BytesStage,
    Crc32cStage,
    GzipStage,
    Lz4Stage,
    ZlibStage,
    ZstdStage,
)
from cuzarr.devices.headers import check_gzip, check_zlib, check_zstd
from cuzarr.devices.nvcomp_backend import NvcompBackend, NvcompOutOfMemory, NvcompRefused
from cuzarr.errors import ChecksumError
from cuzarr.kernels import launch
from cuzarr.kernels.reference import box_tasks, byte_ranges
from cuzarr.workers import StageError

__all__ = ["CudaDevice", "DeviceBatch"]

logger = logging.getLogger("cuzarr")
_HEAD = 18  # enough for any zstd frame header
#: gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown
#: (what Python's gzip module writes, bar the mtime)
_GZIP_HEAD = np.array([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF], dtype=np.uint8)
#: output buffers of nvCOMP's compressors start at this alignment (at least)
_OUT_ALIGN = 8


@dataclass(frozen=True)
class DeviceBatch(ByteBatch):
    """A batch whose slab lives on the device, with the host slab it came from (if any)."""

    host_slab: Any = None


class CudaDevice:
    name = "cuda"
    #: a tile is one batched nvCOMP call per stage: big tiles keep the GPU busy, and two in
    #: flight let one tile's file reads overlap the other's decode on its own stream
    tile_bytes = 256 << 20
    tiles_in_flight: int | None = 2

    def __init__(self, xp: Any, backend: NvcompBackend, launcher: launch.Launcher,
                 kvikio: Any = None,
                 out_of_memory: tuple[type[BaseException], ...] = (),
                 new_stream: Callable[[], Any] | None = None,
                 pinned: Callable[[int], np.ndarray] | None = None) -> None:
        """out_of_memory: the allocation errors after which a tile is split and retried
        (cupy's OutOfMemoryError on a GPU). new_stream: makes a stream (a context
        manager that makes itself current, with `synchronize()`), one per thread that runs
        tiles; None runs everything on the current stream. cupy's ordinary streams, not
        non-blocking ones: they overlap one another but still order against the legacy
        default stream, where zarr (on another thread) allocated and may have filled `out`.
        pinned: allocates page-locked host memory (cupyx.empty_pinned) for the io phase's
        slabs; None uses plain numpy memory."""
        self.xp = xp
        self.pinned = pinned
        #: nvCOMP's own allocation failures split a tile like the array module's do
        self.out_of_memory = (*out_of_memory, NvcompOutOfMemory)
        self.new_stream = new_stream
        self._streams = threading.local()
        self.backend = backend
        self.launcher = launcher
        self.kvikio = kvikio
        self.host_fallbacks: dict[str, int] = {}
        #: batches nvCOMP refused (then checked, or compressed, on the host), by algorithm
        self.refusals: dict[str, int] = {}
        #: bytes moved between host and device, by kind (h2d, d2h, d2h-output, fallback)
        self.transfers: dict[str, int] = {}
        #: writes whose value went to the chunks selection by selection (not views)
        self.per_chunk_gathers = 0

    # -- tiles -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def tile_scope(self) -> Iterator[None]:
        """Run a tile on this thread's own stream (kernels, nvCOMP calls and copies all
        follow the current stream), then wait for it: tiles on other threads overlap with
        this one, and everything a tile wrote into `out` is complete when it returns."""
        self._streams.held = []
        try:
            if self.new_stream is None:
                yield
                return
            stream = getattr(self._streams, "stream", None)
            if stream is None:
                stream = self._streams.stream = self.new_stream()
            try:
                with stream:
                    yield
            finally:
                stream.synchronize()
        finally:
            self._streams.held = None  # the tile's copies are done: its host slabs may go

    def host_empty(self, nbytes: int) -> np.ndarray:
        """Pinned host memory for the io phase's slabs, so `to_device` is a direct DMA."""
        if self.pinned is None:
            return np.empty(nbytes, dtype=np.uint8)
        return self.pinned(nbytes)

    def _upload(self, host: np.ndarray) -> Any:
        """One host-to-device copy of a slab: asynchronous on the current stream for cupy
        (a DMA straight from pinned memory). The host slab is held until the tile's stream
        is synchronized (outside a tile, the copy is waited for here), so a pool cannot hand
        its memory out again while the copy still reads it."""
        device = self.xp.empty(host.size, dtype=np.uint8)
        self.upload_into(device, host)
        return device

    def upload_into(self, device: Any, host: np.ndarray) -> None:
        """Copy a host buffer into an existing device buffer of its size, as `_upload`
        does (asynchronous from pinned memory; the host buffer held until the tile ends)."""
        if not hasattr(device, "set"):  # numpy standing in for cupy
            device[...] = host
            return
        stream = self.xp.cuda.get_current_stream()
        device.set(host, stream=stream)
        held = getattr(self._streams, "held", None)
        if held is None:
            stream.synchronize()
        else:
            held.append(host)

    # -- moving slabs ------------------------------------------------------------------------

    def local_reader(self, store: Any) -> Any:
        """A reader straight into device memory (kvikio) for a LocalStore whose IO is
        LocalStore's own (io.access), else None."""
        from cuzarr.io.access import access

        root = access(store).root
        if self.kvikio is None or root is None:
            return None
        from cuzarr.io.device import KvikioReader

        return KvikioReader(self.kvikio, self, root, in_flight=self.tiles_in_flight or 1)

    def to_device(self, host: ByteBatch) -> DeviceBatch:
        """One host-to-device copy per wave (the slab from the io phase); batches read
        straight into device memory pass through."""
        if isinstance(host, DeviceBatch):
            return host
        packed = host.packed()
        if 2 * int(packed.sizes.sum()) < packed.slab.size:
            # a few ranges of a big slab (a write merging some inner chunks of whole stored
            # shards): only those ranges go over
            packed = ByteBatch.from_buffers([packed.item(i) for i in range(len(packed))],
                                            alloc=self.host_empty)
        self._count("h2d", packed.slab.nbytes)
        return DeviceBatch(self._upload(np.ascontiguousarray(packed.slab)), packed.offsets,
                           packed.sizes, host_slab=packed.slab)

    def _count(self, kind: str, nbytes: int) -> None:
        self.transfers[kind] = self.transfers.get(kind, 0) + int(nbytes)

    def to_host(self, batch: ByteBatch) -> ByteBatch:
        """The items on the host; items with gaps between them (compressed outputs in
        slots sized for the worst case) are packed first, so only their bytes move."""
        if batch.parts is not None:
            return batch
        if int(batch.sizes.sum()) < batch.slab.size:
            batch = self._packed(batch)
        return ByteBatch(self._to_numpy(batch.slab), batch.offsets, batch.sizes)

    def as_array(self, out: Any) -> Any:
        return out.as_ndarray_like()

    def for_output(self, decoded: Any, out: Any) -> Any:
        """A host `out` (device="cuda" with host buffers) gets host chunks: one copy back."""
        if not isinstance(out, np.ndarray):
            return decoded
        if isinstance(decoded, list):
            return [self._to_numpy(d, "d2h-output") for d in decoded]
        return self._to_numpy(decoded, "d2h-output")

    # -- bytes -> bytes stages ---------------------------------------------------------------

    def decode_stage(self, stage: BytesStage, batch: ByteBatch, expected: int | None,
                     threads: int) -> ByteBatch:
        n = len(batch)
        if n == 0:
            return batch
        # a batch the host checks do not pass (a corrupt frame, padding after a gzip
        # member, ...) is decoded on the host, which reads or refuses it exactly as zarr
        if isinstance(stage, ZstdStage):
            try:
                declared = check_zstd(self._bytes(batch, _HEAD, tail=False), batch.sizes,
                                      expected)
            except StageError:
                return self._host_stage(stage, batch, expected, threads)
            if expected is None and bool((declared < 0).any()):
                return self._host_stage(stage, batch, expected, threads)
            capacity = np.full(n, expected) if expected is not None else declared
            return self._nvcomp("Zstd", batch, capacity, exact=expected is not None,
                                host=lambda: self._host_stage(stage, batch, expected, threads))
        if isinstance(stage, GzipStage) and expected is not None:
            try:
                check_gzip(self._bytes(batch, _HEAD, tail=False),
                           self._bytes(batch, 4, tail=True), batch.sizes, expected)
            except StageError:
                return self._host_stage(stage, batch, expected, threads)
            return self._nvcomp("Gzip", batch, np.full(n, expected), exact=True,
                                host=lambda: self._host_stage(stage, batch, expected, threads))
        if isinstance(stage, ZlibStage) and expected is not None:
            try:
                check_zlib(self._bytes(batch, _HEAD, tail=False), batch.sizes)
            except StageError:
                return self._host_stage(stage, batch, expected, threads)
            inner = ByteBatch(batch.slab, batch.offsets + 2, batch.sizes - 6)
            return self._nvcomp("Deflate", inner, np.full(n, expected), exact=True,
                                host=lambda: self._host_stage(stage, batch, expected, threads))
        if isinstance(stage, Lz4Stage):
            declared = stage.declared_sizes(self._bytes(batch, 4, tail=False), batch.sizes,
                                            expected)
            inner = ByteBatch(batch.slab, batch.offsets + 4, batch.sizes - 4)
            return self._nvcomp("LZ4", inner, declared, exact=True,
                                host=lambda: self._host_stage(stage, batch, expected, threads))
        if isinstance(stage, Crc32cStage):
            return self._crc32c(stage, batch, expected)
        if isinstance(stage, BloscStage):
            from cuzarr.devices.blosc_gpu import decode_blosc

            host = getattr(batch, "host_slab", None)
            if host is None:
                host = self._to_numpy(batch.packed().slab)
            decoded = decode_blosc(self, batch, np.asarray(host), expected)
            if decoded is not None:
                return decoded
        return self._host_stage(stage, batch, expected, threads)

    def encode_stage(self, stage: BytesStage, batch: ByteBatch, threads: int) -> ByteBatch:
        """zstd (without its optional checksum), gzip, zlib, numcodecs' LZ4 and blosc
        (lz4/zstd/zlib inside) compress with nvCOMP in one call per algorithm, at nvCOMP's
        own level; their headers and trailers (checksums by our kernels) are written on
        the device. Other stages, and batches nvCOMP cannot take, run on the host."""
        encoded = self._device_encode(stage, batch) if len(batch) else None
        if encoded is not None:
            return encoded
        return self._host_stage_encode(stage, batch, threads)

    def _device_encode(self, stage: BytesStage, batch: ByteBatch) -> ByteBatch | None:
        """`batch` encoded on the device, or None when this stage or batch has no GPU path."""
        if isinstance(stage, ZstdStage) and not stage.checksum:
            return self._nvcomp_encode("Zstd", batch)
        if isinstance(stage, GzipStage):
            return self._nvcomp_encode("Deflate", batch, head=self._const(_GZIP_HEAD),
                                       tail=self._gzip_trailer)
        if isinstance(stage, ZlibStage):
            return self._nvcomp_encode("Deflate", batch, head=self._const(zlib_head(stage.level)),
                                       tail=self._adler32_trailer)
        if isinstance(stage, Lz4Stage):
            return self._nvcomp_encode("LZ4", batch, head=self._size_prefix)
        if isinstance(stage, BloscStage):
            from cuzarr.devices.blosc_gpu import encode_blosc

            return encode_blosc(self, batch, stage.codec)
        return None

    def _nvcomp_encode(self, algorithm: str, batch: ByteBatch,
                       head: Callable[[ByteBatch], Any] | None = None,
                       tail: Callable[[ByteBatch], Any] | None = None) -> ByteBatch | None:
        """Compress every item in one nvCOMP call, framed: head(src) and tail(src) give
        each item's leading and trailing bytes as (n, k) device arrays. nvCOMP writes each
        stream at an aligned address with room for the frame around it, so the frame is
        one scatter of small writes and nothing is moved. None (nothing done) when an
        item is empty or above nvCOMP's largest chunk."""
        packed = batch.packed()
        largest = int(packed.sizes.max())
        if largest > self.backend.max_chunk(algorithm) or bool((packed.sizes == 0).any()):
            return None
        align = self.backend.compression_alignment(algorithm)
        src = self._aligned(packed, align)
        n = len(src)
        heads = head(src) if head is not None else None
        tails = tail(src) if tail is not None else None
        h = 0 if heads is None else int(heads.shape[1])
        t = 0 if tails is None else int(tails.shape[1])
        at = int(src.offsets[int(np.argmax(src.sizes))])
        bound = self.backend.max_compressed_size(algorithm, src.slab[at : at + largest])
        out_align = max(align, _OUT_ALIGN)
        stride = -(-(h + bound + t) // out_align) * out_align
        data_at = -(-h // out_align) * out_align + np.arange(n, dtype=np.int64) * stride
        out = self.xp.empty(int(data_at[-1]) + stride, dtype=np.uint8)
        capacity = np.full(n, bound, dtype=np.int64)
        try:
            sizes = self.backend.encode(algorithm, src.slab, src.offsets, src.sizes, out,
                                        data_at, capacity)
        except NvcompRefused as e:
            logger.info("cuzarr: nvCOMP refused to compress a %s batch (%s); the host "
                        "compresses it", algorithm, e)
            self.refusals[f"{algorithm} encode"] = self.refusals.get(f"{algorithm} encode",
                                                                     0) + 1
            return None
        bad = np.flatnonzero((sizes <= 0) | (sizes > capacity))
        if bad.size:
            i = int(bad[0])
            raise StageError(i, f"{algorithm}: nvCOMP compressed {int(sizes[i])} bytes into "
                                f"a {bound}-byte buffer")
        parts, where = [], []
        if heads is not None:
            parts.append(heads)
            where.append(data_at[:, None] - h + np.arange(h)[None, :])
        if tails is not None:
            parts.append(tails)
            where.append((data_at + sizes)[:, None] + np.arange(t)[None, :])
        if parts:
            values = self.xp.concatenate([p.astype(np.uint8) for p in parts], axis=1)
            positions = np.concatenate(where, axis=1)
            out[self.xp.asarray(positions.reshape(-1))] = values.reshape(-1)
        return ByteBatch(out, data_at - h, sizes + h + t)

    def _const(self, values: np.ndarray) -> Callable[[ByteBatch], Any]:
        """A frame part that is the same bytes for every item."""
        def part(src: ByteBatch) -> Any:
            return self.xp.broadcast_to(self.xp.asarray(values), (len(src), values.size))
        return part

    def _size_prefix(self, src: ByteBatch) -> Any:
        """numcodecs LZ4's prefix: each item's size, 4 bytes little-endian."""
        return self.xp.asarray(_le32(src.sizes))

    def _gzip_trailer(self, src: ByteBatch) -> Any:
        """CRC-32 of the data (our kernel) and ISIZE, both little-endian."""
        crc = launch.crc32(self.launcher, self.xp, src.slab, src.offsets, src.sizes)
        crc_bytes = crc.astype(np.uint32).view(np.uint8).reshape(len(src), 4)
        return self.xp.concatenate([crc_bytes, self.xp.asarray(_le32(src.sizes))], axis=1)

    def _adler32_trailer(self, src: ByteBatch) -> Any:
        """Adler-32 of the data (our kernel), big-endian, as zlib streams end."""
        adler = launch.adler32(self.launcher, self.xp, src.slab, src.offsets, src.sizes)
        return adler.astype(np.uint32).view(np.uint8).reshape(len(src), 4)[:, ::-1]

    # -- array <-> bytes (the bytes codec) -----------------------------------------------------

    def arrays_from_slab(self, layout: Any, slab: Any, count: int) -> Any:
        """Decoded bytes as chunk arrays. A stored byte order other than the array's is
        swapped in place by the byteswap kernel (cupy has no non-native dtypes)."""
        if layout.stored_dtype == layout.dtype:
            return layout.arrays_from_slab(slab, count)
        unit = _swap_unit(layout.stored_dtype)
        if unit is None:
            arrays = layout.arrays_from_slab(self._to_numpy(slab), count)
            return self.xp.asarray(np.ascontiguousarray(arrays))
        body = slab[: count * layout.nbytes]
        launch.byteswap(self.launcher, body, unit)
        return replace(layout, stored_dtype=layout.dtype).arrays_from_slab(body, count)

    def slab_from_arrays(self, layout: Any, arrays: Any) -> Any:
        """Chunk arrays as their stored bytes: byte order swapped by the kernel."""
        if layout.stored_dtype == layout.dtype:
            return layout.slab_from_arrays(arrays, self.xp)
        unit = _swap_unit(layout.stored_dtype)
        if unit is None:
            host = layout.slab_from_arrays(self._to_numpy(arrays), np)
            return self.xp.asarray(host)
        native = replace(layout, stored_dtype=layout.dtype).slab_from_arrays(arrays, self.xp)
        native = native.copy() if native.base is not None else native
        launch.byteswap(self.launcher, native, unit)
        return native

    # -- scatter -----------------------------------------------------------------------------

    def scatter(self, out: Any, decoded: Any, rows: np.ndarray, chunk_selections: list[Any],
                out_selections: list[Any], drop_axes: tuple[int, ...], fill_value: Any) -> bool:
        """Every chunk's selection copied into `out` in one box_copy launch per
        dimensionality (transposed chunks included, through their strides; missing chunks
        filled). Returns False, having done nothing, for selections that are not views
        (integer or boolean arrays), chunks not held in one array, or a host `out`
        (for_output brought the chunks to the host: a kernel cannot read or write there)."""
        if self._on_host(out) or self._on_host(decoded):
            return False
        if isinstance(decoded, list) or not _is_view_selection(out_selections):
            return False
        if not _is_view_selection(chunk_selections):
            return False
        src_base, dst_base = _flat_bytes(decoded), _flat_bytes(out)
        if src_base is None or dst_base is None:
            return False
        fill = np.asarray(fill_value, dtype=out.dtype).reshape(1).view(np.uint8)
        groups: dict[int, list[tuple[Any, Any]]] = {}
        for i, row in enumerate(rows.tolist()):
            target = out[(*_as_tuple(out_selections[i]), Ellipsis)]
            source = None
            if row >= 0:
                source = decoded[row][(*_as_tuple(chunk_selections[i]), Ellipsis)]
                if drop_axes:
                    source = source.squeeze(axis=drop_axes)
                if source.shape != target.shape:
                    return False
            groups.setdefault(target.ndim, []).append((source, target))
        for pairs in groups.values():
            tasks = box_tasks(src_base, dst_base, pairs)
            launch.box_copy(self.launcher, self.xp, src_base, dst_base, tasks,
                            out.dtype.itemsize, fill)
        return True

    # -- writes ------------------------------------------------------------------------------

    def from_value(self, value: Any) -> Any:
        """A write's value on the device: a host value (device="cuda" with host buffers) is
        copied once, counted as h2d-value; an array of this device's module stays put."""
        if isinstance(value, self.xp.ndarray):
            return value
        host = np.asarray(value)
        self._count("h2d-value", host.nbytes)
        return self.xp.asarray(host)

    def gather(self, targets: Any, value: Any, chunk_selections: list[Any],
               out_selections: list[Any], drop_axes: tuple[int, ...]) -> None:
        """Every chunk's part of the value in one box_copy launch per dimensionality (a
        scalar value is the launch's fill item). Selections that are not views (integer or
        boolean arrays) go chunk by chunk with the array module: counted, logged once."""
        from cuzarr.scatter import gather_into

        if self._gather_boxes(targets, value, chunk_selections, out_selections, drop_axes):
            return
        if self.per_chunk_gathers == 0:
            logger.warning("cuzarr: a write selection that is not a view; its chunks are "
                           "gathered one by one on the %s device", self.name)
        self.per_chunk_gathers += 1
        gather_into(targets, value, chunk_selections, out_selections, drop_axes)

    def _gather_boxes(self, targets: Any, value: Any, chunk_selections: list[Any],
                      out_selections: list[Any], drop_axes: tuple[int, ...]) -> bool:
        from cuzarr.scatter import gather_pairs

        arrays = targets if isinstance(targets, list) else [targets]
        dst_base = _common_base(arrays)
        if dst_base is None or any(a.dtype != arrays[0].dtype for a in arrays):
            return False
        if value.dtype != arrays[0].dtype:
            value = value.astype(arrays[0].dtype)  # as numpy's assignment would cast
        scalar = value.ndim == 0
        if not scalar and _flat_bytes(value) is None:
            value = self.xp.ascontiguousarray(value)  # one device copy, then views of it
        pairs = gather_pairs(targets, value, chunk_selections, out_selections, drop_axes,
                             self.xp)
        if pairs is None:
            return False
        fill = value.reshape(1).view(np.uint8) if scalar else None
        self._box_copy(dst_base if scalar else _flat_bytes(value), dst_base, pairs,
                       value.dtype.itemsize, fill)
        return True

    def copy_views(self, pairs: list[tuple[Any, Any]]) -> None:
        """One box_copy launch per dimensionality when every source shares one buffer and
        every target another (else the array module copies pair by pair)."""
        if not pairs:
            return
        src_base = _common_base([src for src, _ in pairs])
        dst_base = _common_base([dst for _, dst in pairs])
        dtype = pairs[0][1].dtype
        if (src_base is None or dst_base is None
                or any(s.dtype != dtype or d.dtype != dtype for s, d in pairs)):
            for src, dst in pairs:
                dst[...] = src
            return
        self._box_copy(src_base, dst_base, pairs, dtype.itemsize, None)

    def _box_copy(self, src_base: Any, dst_base: Any, pairs: list[tuple[Any, Any]],
                  itemsize: int, fill: Any) -> None:
        groups: dict[int, list[tuple[Any, Any]]] = {}
        for src, dst in pairs:
            groups.setdefault(dst.ndim, []).append((src, dst))
        for group in groups.values():
            launch.box_copy(self.launcher, self.xp, src_base, dst_base,
                            box_tasks(src_base, dst_base, group), itemsize, fill)

    def rows_equal_fill(self, chunks: Any, fill_value: Any) -> np.ndarray:
        """zarr's empty-chunk rule in one pass over the batch on the device; only the
        n-element mask comes to the host (counted as d2h-mask)."""
        from cuzarr.scatter import equal_fill

        n = chunks.shape[0]
        if fill_value is None or n == 0:
            return np.zeros(n, dtype=bool)
        flat = chunks.reshape(n, -1)
        if flat.shape[1] == 0:
            return np.ones(n, dtype=bool)
        mask = equal_fill(flat, fill_value, self.xp).all(axis=1)
        return self._to_numpy(mask, "d2h-mask")

    # -- helpers -----------------------------------------------------------------------------

    def _bytes(self, batch: ByteBatch, count: int, *, tail: bool) -> np.ndarray:
        """The first (or last) `count` bytes of every item, on the host, zero-padded."""
        sizes = batch.sizes
        k = np.arange(count)[None, :]
        start = batch.offsets[:, None] + (sizes[:, None] - count if tail else 0)
        idx = start + k
        valid = (k < sizes[:, None]) if not tail else (idx >= batch.offsets[:, None])
        idx = np.where(valid, idx, 0)
        host = getattr(batch, "host_slab", None)
        if host is not None:
            picked = np.asarray(host)[idx.reshape(-1)]
        else:
            picked = self._to_numpy(batch.slab[self.xp.asarray(idx.reshape(-1))])
        return np.where(valid, picked.reshape(idx.shape), 0).astype(np.uint8)

    def _on_host(self, array: Any) -> bool:
        """A host (numpy) array where this device's arrays are not numpy (cupy); numpy
        standing in for cupy has no host arrays of its own."""
        return isinstance(array, np.ndarray) and not isinstance(array, self.xp.ndarray)

    def _to_numpy(self, array: Any, kind: str = "d2h") -> np.ndarray:
        """Device memory to the host (counted; numpy stand-ins count what would move)."""
        self._count(kind, array.nbytes)
        return array if isinstance(array, np.ndarray) else self.xp.asnumpy(array)

    def _aligned(self, batch: ByteBatch, align: int) -> ByteBatch:
        """The batch with every item at an `align`-byte boundary (one copy launch if not)."""
        if not bool((batch.offsets % align).any()):
            return batch
        new_offsets, total = aligned_layout(batch.sizes, align)
        slab = self.xp.zeros(total, dtype=np.uint8)
        self.copy_ranges(batch.slab, slab, batch.offsets, new_offsets, batch.sizes)
        return ByteBatch(slab, new_offsets, batch.sizes)

    def _packed(self, batch: ByteBatch) -> ByteBatch:
        """The items laid end to end in a new slab (one copy launch)."""
        offsets = np.zeros(len(batch), dtype=np.int64)
        if len(batch) > 1:
            np.cumsum(batch.sizes[:-1], out=offsets[1:])
        slab = self.xp.empty(max(1, int(batch.sizes.sum())), dtype=np.uint8)
        self.copy_ranges(batch.slab, slab, batch.offsets, offsets, batch.sizes)
        return ByteBatch(slab, offsets, batch.sizes)

    def copy_ranges(self, src: Any, dst: Any, src_at: np.ndarray, dst_at: np.ndarray,
                    sizes: np.ndarray) -> None:
        """src[src_at[i] : +sizes[i]] -> dst[dst_at[i] :] for every i, in one launch."""
        tasks = byte_ranges(src_at, dst_at, sizes)
        if len(tasks.dst):
            launch.box_copy(self.launcher, self.xp, src, dst, tasks, 1)

    def _nvcomp(self, algorithm: str, batch: ByteBatch, capacity: np.ndarray,
                *, exact: bool, host: Callable[[], ByteBatch]) -> ByteBatch:
        """One batched nvCOMP decode. A batch nvCOMP refuses (a damaged stream: real
        nvCOMP raises, it does not say which item), or one with an empty item (nvCOMP's
        configs take positive sizes only), is decoded by `host`, which names the damaged
        item's key or returns the data exactly as zarr would read it."""
        if bool((capacity <= 0).any()):
            return host()
        align = self.backend.alignment(algorithm)
        src = self._aligned(batch, align)
        out_offsets, total = aligned_layout(capacity, align)
        out = self.xp.empty(total, dtype=np.uint8)
        try:
            decoded = self.backend.decode(algorithm, src.slab, src.offsets, src.sizes, out,
                                          out_offsets, capacity)
        except NvcompRefused as e:
            logger.info("cuzarr: nvCOMP refused a %s batch (%s); checking it on the host",
                        algorithm, e)
            self.refusals[algorithm] = self.refusals.get(algorithm, 0) + 1
            return host()
        bad = np.flatnonzero(decoded != capacity) if exact else np.flatnonzero(decoded > capacity)
        if bad.size:
            i = int(bad[0])
            raise StageError(i, f"{algorithm}: decoded {int(decoded[i])} bytes, "
                                f"expected {int(capacity[i])}")
        return ByteBatch(out, out_offsets, decoded)

    def _crc32c(self, stage: Crc32cStage, batch: ByteBatch, expected: int | None) -> ByteBatch:
        short = np.flatnonzero(batch.sizes < 4)
        if short.size:
            raise StageError(int(short[0]), "crc32c: item shorter than its 4-byte checksum")
        if stage.verify:
            computed = self._to_numpy(
                launch.crc32c(self.launcher, self.xp, batch.slab, batch.offsets, batch.sizes - 4)
            )
            stored = self._bytes(batch, 4, tail=True).astype(np.uint32)
            stored = stored @ (np.uint32(1) << np.arange(0, 32, 8, dtype=np.uint32))
            bad = np.flatnonzero(computed != stored)
            if bad.size:
                raise StageError(int(bad[0]), "crc32c checksum mismatch", family=ChecksumError)
        out = ByteBatch(batch.slab, batch.offsets, batch.sizes - 4)
        if expected is not None:
            bad = np.flatnonzero(out.sizes != expected)
            if bad.size:
                i = int(bad[0])
                raise StageError(i, f"crc32c: {int(out.sizes[i])} bytes, expected {expected}")
        return out

    def _count_fallback(self, stage: BytesStage, direction: str) -> None:
        """Count a batch that takes the host path; log the first per codec and direction."""
        key = f"{stage.name} {direction}"
        if key not in self.host_fallbacks:
            logger.warning("cuzarr: %s has no GPU %s path yet; those chunks run on the host",
                           stage.name, direction)
        self.host_fallbacks[key] = self.host_fallbacks.get(key, 0) + 1

    def _host_stage(self, stage: BytesStage, batch: ByteBatch, expected: int | None,
                    threads: int) -> ByteBatch:
        """A stage without a GPU path: to the host, decode there, back (counted, logged once)."""
        self._count_fallback(stage, "decode")
        decoded = stage.decode(self.to_host(batch), expected, threads).packed()
        self._count("h2d", decoded.slab.nbytes)
        return ByteBatch(self.xp.asarray(decoded.slab), decoded.offsets, decoded.sizes)

    def _host_stage_encode(self, stage: BytesStage, batch: ByteBatch, threads: int) -> ByteBatch:
        self._count_fallback(stage, "encode")
        return stage.encode(self.to_host(batch), threads)


def zlib_head(level: int) -> np.ndarray:
    """A zlib stream's 2 header bytes: deflate with a 32 KiB window, zlib's level hint for
    `level` (-1 is zlib's default, 6), and the check bits."""
    level = 6 if level < 0 else level
    flevel = 0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3
    flg = flevel << 6
    flg |= (31 - ((0x78 << 8) | flg) % 31) % 31
    return np.array([0x78, flg], dtype=np.uint8)


def _le32(values: np.ndarray) -> np.ndarray:
    """(n, 4) little-endian bytes of each value mod 2**32."""
    return (np.asarray(values, dtype=np.int64) % (1 << 32)).astype("<u4").view(np.uint8
                                                                              ).reshape(-1, 4)


def _swap_unit(dtype: np.dtype) -> int | None:
    """The byte-swapped unit of a dtype (a complex number swaps each half), or None when
    the kernel cannot do it (structured dtypes: per field)."""
    if dtype.fields is not None or dtype.itemsize == 1:
        return None
    unit = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
    if dtype.kind == "U":
        unit = 4
    return unit if unit in (2, 4, 8, 16) else None


def _as_tuple(selection: Any) -> tuple[Any, ...]:
    return selection if isinstance(selection, tuple) else (selection,)


def _is_view_selection(selections: list[Any]) -> bool:
    """True when every selection is made of slices and ints (basic indexing: views)."""
    return all(
        isinstance(part, (slice, int, np.integer))
        for selection in selections
        for part in _as_tuple(selection)
    )


def _flat_bytes(array: Any) -> Any:
    """The whole contiguous buffer behind `array`, as a flat uint8 array (None if the
    memory's owner is not one contiguous array)."""
    owner = array
    while getattr(owner, "base", None) is not None:
        owner = owner.base
    if not hasattr(owner, "flags") or not owner.flags.c_contiguous:
        return None
    return owner.reshape(-1).view(np.uint8)


def _common_base(arrays: list[Any]) -> Any:
    """The one contiguous buffer behind every array, as flat uint8 (None if they have none
    in common), so a box_copy can address them all from it."""
    owners = set()
    for array in arrays:
        owner = array
        while getattr(owner, "base", None) is not None:
            owner = owner.base
        owners.add(id(owner))
    if len(owners) != 1:
        return None
    return _flat_bytes(arrays[0])
