"""Make a batch of box copies cheaper before the launch, without changing what it copies.

The box_copy kernel spends a 64-bit divide per dimension per item and moves one item per
thread. Scatter tables from zarr selections are rarely in their simplest form: a whole
row of a chunk is one contiguous run in both buffers, and a float32 row of 1024 items is
256 16-byte words. `compact` merges dimensions that are contiguous in both buffers for
every task, drops empty tasks and dimensions of extent 1, and moves the widest word (16,
8, 4, 2 or 1 bytes) every address and stride allows, so each thread moves up to 16 bytes
with one load and store, always aligned (a GPU faults on a misaligned wide load).
"""

from __future__ import annotations

import numpy as np

from cuzarr.kernels.reference import BoxTasks

__all__ = ["compact"]

_WIDTHS = (16, 8, 4, 2, 1)


def compact(tasks: BoxTasks, itemsize: int, src_addr: int, dst_addr: int
            ) -> tuple[BoxTasks, int]:
    """Tables and item size that copy exactly what (tasks, itemsize) copies; `src_addr`
    and `dst_addr` are the base addresses the offsets are relative to (for alignment)."""
    if len(tasks.dst) == 0:
        return tasks, itemsize
    if tasks.ndim == 0:  # single items: a box of one, so they get an aligned word too
        one = np.ones((len(tasks.dst), 1), dtype=np.int64)
        tasks = BoxTasks(tasks.src, tasks.dst, one, one * itemsize, one * itemsize)
    keep = np.flatnonzero(np.prod(tasks.extents, axis=1) > 0)
    src, dst = tasks.src[keep], tasks.dst[keep]
    fill = src < 0
    ext, ss, ds = tasks.extents[keep], tasks.src_strides[keep], tasks.dst_strides[keep]
    dims = [d for d in range(tasks.ndim) if (ext[:, d] != 1).any()] or [tasks.ndim - 1]
    e_cols, s_cols, d_cols = [ext[:, dims[-1]]], [ss[:, dims[-1]]], [ds[:, dims[-1]]]
    for d in reversed(dims[:-1]):
        e, s, t = ext[:, d], ss[:, d], ds[:, d]
        inner_e, inner_s, inner_d = e_cols[0], s_cols[0], d_cols[0]
        trivial = e == 1
        src_ok = fill | trivial | (s == inner_s * inner_e)
        dst_ok = trivial | (t == inner_d * inner_e)
        if bool(np.all(src_ok & dst_ok)):
            e_cols[0] = e * inner_e
        else:
            e_cols.insert(0, e)
            s_cols.insert(0, s)
            d_cols.insert(0, t)
    itemsize = _words(e_cols, s_cols, d_cols, src, dst, fill, itemsize, src_addr, dst_addr)
    return BoxTasks(src, dst, _table(e_cols), _table(s_cols), _table(d_cols)), itemsize


def _table(columns: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack(columns, axis=1), dtype=np.int64)


def _words(e_cols: list[np.ndarray], s_cols: list[np.ndarray], d_cols: list[np.ndarray],
           src: np.ndarray, dst: np.ndarray, fill: np.ndarray, itemsize: int, src_addr: int,
           dst_addr: int) -> int:
    """Pick the widest word (16, 8, 4, 2 or 1 bytes) that every address and stride is a
    multiple of, and rewrite the columns (in place) to move words of that size: whole rows
    contiguous in both buffers become runs of wider words; items the addresses do not
    align to their size get an innermost dimension of narrower words. Returns the word
    size: the kernel's loads and stores of it are then always aligned."""
    copied = ~fill
    contiguous = bool(np.all(d_cols[-1] == itemsize)) and bool(
        np.all(fill | (s_cols[-1] == itemsize)))
    row_bytes = e_cols[-1] * itemsize
    outer = 1 if contiguous else 0  # the row dimension's strides are itemsize, or checked

    def fits(width: int) -> bool:
        if width > itemsize:
            if not contiguous or width % itemsize or np.any(row_bytes % width):
                return False
        elif itemsize % width:
            return False
        return not (
            src_addr % width or dst_addr % width or np.any(dst % width)
            or np.any(src[copied] % width)
            or any(np.any(c % width) for c in d_cols[: len(d_cols) - outer])
            or any(np.any(c[copied] % width) for c in s_cols[: len(s_cols) - outer])
        )

    width = next(w for w in _WIDTHS if fits(w))
    n = len(dst)
    if width > itemsize:
        e_cols[-1] = row_bytes // width
        s_cols[-1] = np.where(fill, 0, width)
        d_cols[-1] = np.full(n, width, dtype=np.int64)
    elif width < itemsize:
        # fill tasks step through the fill item's words too
        e_cols.append(np.full(n, itemsize // width, dtype=np.int64))
        s_cols.append(np.full(n, width, dtype=np.int64))
        d_cols.append(np.full(n, width, dtype=np.int64))
    return width


def _table(columns: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack(columns, axis=1), dtype=np.int64)


def _widen(e_cols: list[np.ndarray], s_cols: list[np.ndarray], d_cols: list[np.ndarray],
           src: np.ndarray, dst: np.ndarray, fill: np.ndarray, itemsize: int, src_addr: int,
           dst_addr: int) -> int:
    """Rewrite the innermost dimension (in place) for the widest item every task allows;
    returns the item size."""
    inner_contiguous = bool(np.all(d_cols[-1] == itemsize)) and bool(
        np.all(fill | (s_cols[-1] == itemsize)))
    if not inner_contiguous:
        return itemsize
    row_bytes = e_cols[-1] * itemsize
    copied = ~fill
    for width in _WIDTHS:
        if width <= itemsize or width % itemsize:
            continue
        if src_addr % width or dst_addr % width:
            continue
        if np.any(row_bytes % width) or np.any(dst % width) or np.any(src[copied] % width):
            continue
        if any(np.any(c % width) for c in d_cols[:-1]):
            continue
        if any(np.any(c[copied] % width) for c in s_cols[:-1]):
            continue
        e_cols[-1] = row_bytes // width
        s_cols[-1] = np.where(fill, 0, width)
        d_cols[-1] = np.full_like(d_cols[-1], width)
        return width
    return itemsize
