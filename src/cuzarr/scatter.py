"""The scatter phase (decoded chunks -> `out`) and its mirror for writes (value -> chunks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cuzarr.timers import timed
from cuzarr.workers import map_ranges

__all__ = ["equal_fill", "gather_into", "gather_pairs", "rows_equal_fill", "scatter"]

_BITWISE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@timed("scatter")
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
            # decoded[row, ...]: a 0-d chunk stays an array (decoded[row] would be a scalar,
            # and a bytes scalar cannot be indexed with ())
            chunk = decoded[row] if isinstance(decoded, list) else decoded[row, ...]
            value = chunk[chunk_selections[i]]
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


def _target(targets: Any, i: int) -> Any:
    """Write target i: a chunk of an (n, ...) batch (a view, 0-d chunks included) or the
    i-th array of a list (shard regions)."""
    return targets[i] if isinstance(targets, list) else targets[i, ...]


@timed("gather")
def gather_into(
    targets: Any,
    value: Any,
    chunk_selections: Sequence[Any],
    out_selections: Sequence[Any],
    drop_axes: tuple[int, ...],
) -> None:
    """targets[i][chunk_sel[i]] = value[out_sel[i]] for every chunk of a write."""
    scalar = np.ndim(value) == 0
    for i in range(len(chunk_selections)):
        target = _target(targets, i)
        part = _value_part(
            value, out_selections[i], chunk_selections[i], target.ndim, drop_axes, scalar
        )
        target[chunk_selections[i]] = part


def gather_pairs(
    targets: Any,
    value: Any,
    chunk_selections: Sequence[Any],
    out_selections: Sequence[Any],
    drop_axes: tuple[int, ...],
    xp: Any = np,
) -> list[tuple[Any, Any]] | None:
    """`gather_into` as (source view, target view) pairs of equal shape, for a batched copy
    (a scalar value gives None sources: the copy fills). None when a part is not a view
    (integer or boolean array selections) or does not broadcast to its target as a view."""
    scalar = np.ndim(value) == 0
    pairs: list[tuple[Any, Any]] = []
    for i in range(len(chunk_selections)):
        target = _target(targets, i)
        chunk_sel = chunk_selections[i]
        if not _basic(chunk_sel) or not (scalar or _basic(out_selections[i])):
            return None
        view = target[(*_as_tuple(chunk_sel), Ellipsis)]
        if scalar:
            pairs.append((None, view))
            continue
        part = _value_part(value, out_selections[i], chunk_sel, target.ndim, drop_axes, False)
        extra = part.ndim - view.ndim
        if extra > 0 and all(n == 1 for n in part.shape[:extra]):
            part = part.reshape(part.shape[extra:])
        try:
            part = xp.broadcast_to(part, view.shape)
        except ValueError:
            return None
        pairs.append((part, view))
    return pairs


def _as_tuple(selection: Any) -> tuple[Any, ...]:
    return selection if isinstance(selection, tuple) else (selection,)


def _basic(selection: Any) -> bool:
    """True for a selection of slices and ints only (basic indexing gives a view)."""
    return all(isinstance(part, (slice, int, np.integer)) for part in _as_tuple(selection))


@timed("fill check")
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
    candidates = np.flatnonzero(equal_fill(ends, fill_value).all(axis=1))
    if candidates.size:
        result[candidates] = equal_fill(flat[candidates], fill_value).all(axis=1)
    return result


def equal_fill(flat: Any, fill_value: Any, xp: Any = np) -> Any:
    """Elementwise "equals the fill value" under zarr's rule, for a 2-D array of module xp.

    Fill values are compared as host scalars, so a device array needs no copy to the host.
    """
    kind = flat.dtype.kind
    fill = np.asarray(fill_value)
    if fill.dtype.kind == "f" and fill == 0.0 and kind not in "USTOV":
        fill = np.asarray(fill_value, dtype=flat.dtype)
        size = flat.dtype.itemsize
        if size in _BITWISE:
            bits = _BITWISE[size]
            return xp.ascontiguousarray(flat).view(bits) == fill.view(bits)[()]
        raw = xp.ascontiguousarray(flat).view(np.uint8).reshape(*flat.shape, size)
        return (raw == xp.asarray(fill.reshape(1).view(np.uint8))).all(axis=-1)
    fill = np.asarray(fill_value, dtype=flat.dtype)
    equal = flat == (fill if kind == "V" else fill[()])  # a scalar suits any array module
    if kind in "fcmM" and bool(np.isnan(fill)):  # structured (V) compares field by field
        equal |= xp.isnan(flat)
    return equal
