"""Array-level entry points to the kernels: plan the launch tables, then launch.

Every function takes a `launcher` (how a kernel runs) and works on arrays of the
launcher's array module. On a GPU that is `CupyLauncher` with cupy arrays; in tests it
is the host-emulation launcher with numpy arrays, so the tables, grids and argument
lists built here run in CI exactly as they will on the device.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from cuzarr.kernels import KERNEL_FILES, kernel_source
from cuzarr.kernels.boxes import compact
from cuzarr.kernels.reference import (
    BoxTasks,
    address,
    crc32_table,
    crc32c_table,
    segment_plan,
)

__all__ = [
    "BLOCK",
    "CupyLauncher",
    "Launcher",
    "adler32",
    "bit_shuffle",
    "bit_unshuffle",
    "blosclz_decompress",
    "box_copy",
    "byte_shuffle",
    "byte_unshuffle",
    "byteswap",
    "crc32",
    "crc32c",
    "grid_for",
    "transpose",
    "transposing_axes",
]

#: threads per block for the 1-D launches (memory-bound kernels: enough to hide latency)
BLOCK = (256, 1)
#: the tiled transpose's block: 32 columns x 8 rows of a 32 x 32 tile
TILE, TILE_BLOCK = 32, (32, 8)
_MAX_GRID_X = 1 << 16
_MAX_GRID_Y = 65535
#: bytes each checksum thread (crc32c, crc32, adler32) sums before the per-buffer combine
CRC32C_SEGMENT = 4096
#: threads that decode one blosclz stream together (a warp; see blosclz.cu)
BLOSCLZ_THREADS = 32


class Launcher(Protocol):
    """Runs kernel `name` over a (grid_x, grid_y) grid of `block`-thread blocks."""

    def launch(self, name: str, grid: tuple[int, int], block: tuple[int, int],
               args: tuple) -> None: ...


def grid_for(items: int, rows: int = 1) -> tuple[int, int]:
    """A grid for `rows` independent rows of up to `items` items (grid-stride beyond)."""
    x = max(1, min(_MAX_GRID_X, -(-max(1, items) // BLOCK[0])))
    return x, max(1, min(_MAX_GRID_Y, rows))


def _file_of(name: str) -> str:
    for file, kernels in KERNEL_FILES.items():
        if name in kernels:
            return file
    raise KeyError(f"no kernel named {name!r}")


class CupyLauncher:
    """Launches with cupy: each .cu file is compiled once per device through
    cupy.RawModule (NVRTC), whose on-disk cache is keyed by source, options and arch."""

    def __init__(self) -> None:
        import cupy

        self._cupy = cupy
        self._load = cupy.memoize(for_each_device=True)(self._module)

    @staticmethod
    def _module(file: str) -> Any:
        import cupy

        return cupy.RawModule(code=kernel_source(file), options=("--std=c++14",))

    def launch(self, name: str, grid: tuple[int, int], block: tuple[int, int],
               args: tuple) -> None:
        kernel = self._load(_file_of(name)).get_function(name)
        kernel(grid, block, args)


def byteswap(launcher: Launcher, data: Any, itemsize: int) -> None:
    """Swap the byte order of every item of a flat uint8 buffer, in place."""
    if itemsize not in (2, 4, 8, 16):
        raise ValueError(f"byteswap takes 2-, 4-, 8- or 16-byte items, not {itemsize}")
    n_items = data.size // itemsize
    launcher.launch("byteswap", grid_for(n_items), BLOCK,
                    (data, np.uint64(n_items), np.int32(itemsize)))


#: items per tile of the coalesced (un)shuffles (UNSHUFFLE_TILE and BITSHUFFLE_TILE in the .cu)
UNSHUFFLE_TILE = 256


def _shuffles(name: str, launcher: Launcher, xp: Any, src: Any, dst: Any,
              offsets: np.ndarray, lengths: np.ndarray, typesize: int,
              extra: tuple = ()) -> None:
    """One launch over every block: the `<name>_tiled` kernel (coalesced through shared
    memory) for item sizes up to 16 bytes, the plain one-thread-per-byte kernel above."""
    if len(lengths) != len(offsets):
        raise ValueError(f"{len(offsets)} offsets but {len(lengths)} lengths")
    if len(offsets) == 0:
        return
    args = (src, dst, xp.asarray(offsets, dtype=np.uint64), xp.asarray(lengths, dtype=np.uint64),
            np.uint64(len(offsets)), np.int32(typesize), *extra)
    longest = int(np.max(lengths))
    if typesize > 16:
        launcher.launch(name, grid_for(longest, len(offsets)), BLOCK, args)
        return
    tiles = -(-longest // typesize // UNSHUFFLE_TILE) or 1
    grid = (max(1, min(_MAX_GRID_X, tiles)), max(1, min(_MAX_GRID_Y, len(offsets))))
    launcher.launch(f"{name}_tiled", grid, (UNSHUFFLE_TILE, 1), args)


def byte_unshuffle(launcher: Launcher, xp: Any, src: Any, dst: Any, offsets: np.ndarray,
                   lengths: np.ndarray, typesize: int) -> None:
    """Blosc byte unshuffle of blocks src[offsets[i] : +lengths[i]] into the same places
    of dst, one launch for every block of every chunk."""
    _shuffles("byte_unshuffle", launcher, xp, src, dst, offsets, lengths, typesize)


def byte_shuffle(launcher: Launcher, xp: Any, src: Any, dst: Any, offsets: np.ndarray,
                 lengths: np.ndarray, typesize: int) -> None:
    """Blosc byte shuffle of blocks src[offsets[i] : +lengths[i]] into the same places of
    dst (blosc encode), one launch."""
    _shuffles("byte_shuffle", launcher, xp, src, dst, offsets, lengths, typesize)


def bit_shuffle(launcher: Launcher, xp: Any, src: Any, dst: Any, offsets: np.ndarray,
                lengths: np.ndarray, typesize: int, version: int) -> None:
    """Blosc bit shuffle of blocks (format `version` rules, see bitshuffle.cu), one launch."""
    _shuffles("bit_shuffle", launcher, xp, src, dst, offsets, lengths, typesize,
             (np.int32(version),))


def bit_unshuffle(launcher: Launcher, xp: Any, src: Any, dst: Any, offsets: np.ndarray,
                  lengths: np.ndarray, typesize: int, version: int) -> None:
    """Blosc bit unshuffle of blocks (format `version` rules, see bitshuffle.cu)."""
    _shuffles("bit_unshuffle", launcher, xp, src, dst, offsets, lengths, typesize,
               (np.int32(version),))


def _checksums(prefix: str, launcher: Launcher, xp: Any, data: Any, offsets: np.ndarray,
               lengths: np.ndarray, table: np.ndarray | None) -> Any:
    """`<prefix>_segments` over fixed-size segments of every buffer, then
    `<prefix>_combine` folding each buffer's segments: an xp uint32 array."""
    n = len(offsets)
    if len(lengths) != n:
        raise ValueError(f"{n} offsets but {len(lengths)} lengths")
    out = xp.zeros(max(1, n), dtype=np.uint32)
    if n == 0:
        return out[:0]
    seg_off, seg_len, first, count = segment_plan(offsets, lengths, CRC32C_SEGMENT)
    seg = xp.zeros(max(1, len(seg_off)), dtype=np.uint32)
    seg_len_dev = xp.asarray(seg_len)
    if len(seg_off):
        tables = () if table is None else (xp.asarray(table),)
        launcher.launch(
            f"{prefix}_segments", grid_for(len(seg_off)), BLOCK,
            (data, xp.asarray(seg_off), seg_len_dev, np.uint64(len(seg_off)), *tables, seg),
        )
    launcher.launch(
        f"{prefix}_combine", grid_for(n), BLOCK,
        (seg, seg_len_dev, xp.asarray(first), xp.asarray(count), np.uint64(n), out),
    )
    return out[:n]


def crc32c(launcher: Launcher, xp: Any, data: Any, offsets: np.ndarray,
           lengths: np.ndarray) -> Any:
    """CRC32C of each buffer data[offsets[i] : +lengths[i]]: an xp uint32 array."""
    return _checksums("crc32c", launcher, xp, data, offsets, lengths, crc32c_table())


def crc32(launcher: Launcher, xp: Any, data: Any, offsets: np.ndarray,
          lengths: np.ndarray) -> Any:
    """zlib's CRC-32 (the gzip trailer) of each buffer: an xp uint32 array."""
    return _checksums("crc32", launcher, xp, data, offsets, lengths, crc32_table())


def adler32(launcher: Launcher, xp: Any, data: Any, offsets: np.ndarray,
            lengths: np.ndarray) -> Any:
    """zlib's Adler-32 (the zlib stream trailer) of each buffer: an xp uint32 array."""
    return _checksums("adler32", launcher, xp, data, offsets, lengths, None)


def box_copy(launcher: Launcher, xp: Any, src: Any, dst: Any, tasks: BoxTasks, itemsize: int,
             fill: Any = None) -> None:
    """Run the box copies of `tasks` (reference.box_tasks) in one launch, after merging
    dimensions contiguous in both buffers and widening items (boxes.compact). `fill`: the
    fill item's bytes (numpy or `xp`), for tasks whose source is < 0."""
    tasks, width = compact(tasks, itemsize, address(src), address(dst))
    n = len(tasks.dst)
    if n == 0:
        return
    fill_bytes = xp.zeros(itemsize, dtype=np.uint8) if fill is None else xp.asarray(fill)
    fill_bytes = _aligned(xp, xp.tile(fill_bytes.reshape(-1)[:itemsize],
                                      max(1, width // itemsize)))
    args = (src, dst, xp.asarray(tasks.src), xp.asarray(tasks.dst),
            xp.asarray(np.ascontiguousarray(tasks.extents)),
            xp.asarray(np.ascontiguousarray(tasks.src_strides)),
            xp.asarray(np.ascontiguousarray(tasks.dst_strides)),
            np.uint64(n), np.int32(tasks.ndim), np.int32(width), fill_bytes)
    axes = transposing_axes(tasks, width)
    if axes is None:
        largest = int(np.max(np.prod(tasks.extents, axis=1)))
        launcher.launch("box_copy", grid_for(largest, n), BLOCK, args)
        return
    p, q = axes
    plane = tasks.extents[:, p] * tasks.extents[:, q]
    tiles = np.prod(tasks.extents, axis=1) // np.maximum(1, plane)
    tiles *= -(-tasks.extents[:, p] // TILE) * -(-tasks.extents[:, q] // TILE)
    grid = (max(1, min(_MAX_GRID_X, int(tiles.max()))), max(1, min(_MAX_GRID_Y, n)))
    launcher.launch("box_copy_tiled", grid, TILE_BLOCK, (*args, np.int32(p), np.int32(q)))


#: both sides of a plane need this many words for the tiled box copy to pay
TILED_MIN_EXTENT = 8


def transposing_axes(tasks: BoxTasks, width: int) -> tuple[int, int] | None:
    """(p, q): the axis contiguous in the source and the one contiguous in the
    destination, when they differ for every copied task (boxes of transposed chunks, both
    ways) and the planes are big enough for 32 x 32 tiles to pay. Then box_copy_tiled
    coalesces both sides; None keeps the plain kernel."""
    copied = tasks.src >= 0
    if tasks.ndim < 2 or not copied.any():
        return None
    p = _contiguous_axis(tasks.src_strides[copied], width)
    q = _contiguous_axis(tasks.dst_strides, width)
    if p is None or q is None or p == q:
        return None
    sides = tasks.extents[copied][:, [p, q]]
    if int(np.median(sides.min(axis=1))) < TILED_MIN_EXTENT:
        return None
    return p, q


def _contiguous_axis(strides: np.ndarray, width: int) -> int | None:
    """The last axis whose stride is `width` in every row, if any."""
    for axis in range(strides.shape[1] - 1, -1, -1):
        if np.all(strides[:, axis] == width):
            return axis
    return None


def _aligned(xp: Any, data: Any, alignment: int = 16) -> Any:
    """`data` (a flat uint8 array) at an address that is a multiple of `alignment`, for
    the kernels' wide loads of it."""
    if address(data) % alignment == 0:
        return data
    room = xp.empty(data.size + alignment, dtype=np.uint8)
    start = -address(room) % alignment
    out = room[start : start + data.size]
    out[...] = data
    return out


def transpose(launcher: Launcher, xp: Any, src: Any, dst: Any, n_chunks: int,
              in_shape: tuple[int, ...], to_logical: tuple[int, ...], itemsize: int) -> bool:
    """dst chunk k = src chunk k (C order, in_shape) transposed by `to_logical`.

    Runs the tiled kernel when the permutation moves the innermost axis and returns True;
    returns False (nothing done) when it does not, since a box copy is then coalesced on
    both sides already.
    """
    ndim = len(in_shape)
    if itemsize > 16:
        raise ValueError(f"the tiled transpose moves items of at most 16 bytes, not {itemsize}")
    if ndim < 2 or to_logical[-1] == ndim - 1 or n_chunks == 0:
        return False
    in_strides = np.ones(ndim, dtype=np.int64)
    for d in range(ndim - 2, -1, -1):
        in_strides[d] = in_strides[d + 1] * in_shape[d + 1]
    logical_shape = [in_shape[a] for a in to_logical]
    logical_strides = np.ones(ndim, dtype=np.int64)
    for k in range(ndim - 2, -1, -1):
        logical_strides[k] = logical_strides[k + 1] * logical_shape[k + 1]
    out_strides = np.empty(ndim, dtype=np.int64)
    out_strides[list(to_logical)] = logical_strides
    axis_a, axis_b = int(to_logical[-1]), ndim - 1
    tiles = -(-in_shape[axis_a] // TILE) * -(-in_shape[axis_b] // TILE)
    outer = n_chunks * int(np.prod([n for d, n in enumerate(in_shape) if d not in (axis_a,
                                                                              axis_b)]))
    grid = (max(1, min(_MAX_GRID_X, tiles)), max(1, min(_MAX_GRID_Y, outer)))
    launcher.launch(
        "transpose_tiled", grid, TILE_BLOCK,
        (src, dst, np.uint64(n_chunks), np.int32(ndim),
         xp.asarray(np.asarray(in_shape, dtype=np.int64)), xp.asarray(in_strides),
         xp.asarray(out_strides), np.int32(axis_a), np.int32(axis_b), np.int32(itemsize)),
    )
    return True


def blosclz_decompress(launcher: Launcher, xp: Any, src: Any, dst: Any, src_offsets: np.ndarray,
                       src_sizes: np.ndarray, dst_offsets: np.ndarray,
                       dst_capacity: np.ndarray) -> Any:
    """Decode blosclz streams src[src_offsets[i] : +src_sizes[i]] into
    dst[dst_offsets[i] : +dst_capacity[i]], all in one launch (one thread block each).

    Returns an xp int64 array: each stream's decoded size, or a negative error code
    (reference.BLOSCLZ_*). The tables must lie inside src and dst; the stream bytes may
    be anything."""
    n = len(src_offsets)
    if not len(src_sizes) == len(dst_offsets) == len(dst_capacity) == n:
        raise ValueError("blosclz_decompress: the four tables differ in length")
    status = xp.zeros(max(1, n), dtype=np.int64)
    if n == 0:
        return status[:0]
    # the four tables in one array: one host-to-device copy
    tables = xp.asarray(np.stack([src_offsets, src_sizes, dst_offsets, dst_capacity])
                        .astype(np.int64))
    launcher.launch("blosclz_decompress", (min(n, _MAX_GRID_X), 1), (BLOSCLZ_THREADS, 1),
                    (src, dst, tables[0], tables[1], tables[2], tables[3], np.uint64(n), status))
    return status[:n]
