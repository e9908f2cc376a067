"""The scatter phase (decoded chunks -> `out`) and its mirror for writes (value -> chunks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cuzarr.workers import map_ranges

__all__ = ["gather_into", "rows_equal_fill", "scatter"]

_BITWISE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def scatter(
    out: Any,
    decoded: Any,
    rows: np.ndarray,
    chunk_selections: Sequence[Any],
    out_selections: Sequence[Any],
    drop_axes: tuple[int, ...],
    fill_value: Any,
    threads: int = 1,
) -> None:
    """out[out_sel[i]] = decoded[rows[i]][chunk_sel[i]]; rows[i] < 0 means fill value.

    Chunks write disjoint parts of `out`, so contiguous ranges of them are copied
    on the thread pool (numpy releases the GIL for the copies).
    """
    row_list = rows.tolist()

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            row = row_list[i]
            if row < 0:
                out[out_selections[i]] = fill_value
                continue
            value = decoded[row][chunk_selections[i]]
            if drop_axes:
                value = value.squeeze(axis=drop_axes)
            out[out_selections[i]] = value

    map_ranges(work, len(row_list), threads, min_items=_min_items(decoded))


def _min_items(decoded: Any) -> int:
    """Enough chunks per task that a thread hop (~20 us) is worth it."""
    per_chunk = decoded[0].nbytes if decoded is not None and len(decoded) else 0
    return max(1, (1 << 20) // max(1, per_chunk))


def _value_part(
    value: Any,
    out_selection: Any,
    chunk_selection: Any,
    ndim: int,
    drop_axes: tuple[int, ...],
    scalar: bool,
) -> Any:
    """The part of a write's value that lands in one chunk (zarr's merge rule)."""
    if scalar or chunk_selection == ():
        return value
    part = value[out_selection]
    if drop_axes:
        part = part[tuple(None if d in drop_axes else slice(None) for d in range(ndim))]
    return part


def gather_into(
    chunks: Any,
    value: Any,
    chunk_selections: Sequence[Any],
    out_selections: Sequence[Any],
    drop_axes: tuple[int, ...],
) -> None:
    """chunks[i][chunk_sel[i]] = value[out_sel[i]] for every chunk of a write."""
    scalar = np.ndim(value) == 0
    for i in range(len(chunk_selections)):
        target = chunks[i, ...]  # a view, 0-d chunks included
        part = _value_part(
            value, out_selections[i], chunk_selections[i], target.ndim, drop_axes, scalar
        )
        target[chunk_selections[i]] = part


def rows_equal_fill(arrays: Any, fill_value: Any) -> np.ndarray:
    """Per chunk of an (n, ...) batch: does every element equal the fill value?

    The same rule as zarr's NDBuffer.all_equal (NaN equals NaN; a 0.0 fill is
    compared bit for bit, so -0.0 is data), vectorized over the batch. Chunks
    whose first or last element already differs are settled without reading the
    rest, so real data costs two elements per chunk, not a pass over memory.
    """
    n = arrays.shape[0]
    result = np.zeros(n, dtype=bool)
    if fill_value is None or n == 0:
        return result
    flat = arrays.reshape(n, -1)
    if flat.shape[1] == 0:
        result[:] = True
        return result
    ends = flat[:, [0, -1]]
    candidates = np.flatnonzero(_equal_fill(ends, fill_value).all(axis=1))
    if candidates.size:
        result[candidates] = _equal_fill(flat[candidates], fill_value).all(axis=1)
    return result


def _equal_fill(flat: np.ndarray, fill_value: Any) -> np.ndarray:
    """Elementwise "equals the fill value" under zarr's rule, for a 2-D array."""
    kind = flat.dtype.kind
    fill = np.asarray(fill_value)
    if fill.dtype.kind == "f" and fill == 0.0 and kind not in "USTOV":
        fill = np.asarray(fill_value, dtype=flat.dtype)
        bitwise = _BITWISE.get(flat.dtype.itemsize, f"V{flat.dtype.itemsize}")
        return np.ascontiguousarray(flat).view(bitwise) == fill.view(bitwise)
    fill = np.asarray(fill_value, dtype=flat.dtype)
    equal = flat == fill
    if kind in "fcmM" and bool(np.isnan(fill)):  # structured (V) compares field by field
        equal |= np.isnan(flat)
    return equal
