"""Selections inside one chunk or shard: bounding regions and shifting, per dimension.

zarr hands each chunk a tuple of per-dimension selectors (ints, slices, integer
or boolean arrays, possibly broadcast-shaped). These helpers only need
per-dimension min/max and a shift, so every indexer kind goes through them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["aligned_region", "covers_whole", "selection_bounds", "shift_selection"]


def _dim_bounds(sel: Any, length: int) -> tuple[int, int] | None:
    """Half-open [lo, hi) that selector `sel` touches on a dimension of `length`."""
    if isinstance(sel, slice):
        start, stop, step = sel.indices(length)
        r = range(start, stop, step)
        if len(r) == 0:
            return None
        return min(r[0], r[-1]), max(r[0], r[-1]) + 1
    if isinstance(sel, (int, np.integer)):
        i = int(sel) + (length if int(sel) < 0 else 0)
        return i, i + 1
    arr = np.asarray(sel)
    if arr.dtype == bool:
        hit = np.flatnonzero(arr.reshape(-1))
        if hit.size == 0:
            return None
        return int(hit[0]), int(hit[-1]) + 1
    if arr.size == 0:
        return None
    arr = np.where(arr < 0, arr + length, arr)
    return int(arr.min()), int(arr.max()) + 1


def selection_bounds(
    selection: tuple[Any, ...], shape: tuple[int, ...]
) -> list[tuple[int, int]] | None:
    """Per-dimension bounds of a selection; None when it selects nothing."""
    bounds = []
    for sel, length in zip(selection, shape, strict=True):
        b = _dim_bounds(sel, length)
        if b is None:
            return None
        bounds.append(b)
    return bounds


def aligned_region(
    bounds: list[tuple[int, int]], inner: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The inner-chunk grid range [first, stop) per dimension that covers `bounds`."""
    first = tuple(lo // c for (lo, _), c in zip(bounds, inner, strict=True))
    stop = tuple(-(-hi // c) for (_, hi), c in zip(bounds, inner, strict=True))
    return first, stop


def shift_selection(
    selection: tuple[Any, ...],
    origin: tuple[int, ...],
    shape: tuple[int, ...],
    region: tuple[int, ...],
) -> tuple[Any, ...]:
    """Re-express `selection` (on an array of `shape`) relative to a region starting at `origin`."""
    out = []
    for sel, o, length, rlen in zip(selection, origin, shape, region, strict=True):
        if isinstance(sel, slice):
            start, stop, step = sel.indices(length)
            if step > 0:
                out.append(slice(start - o, max(stop - o, 0), step))
            else:
                new_stop = stop - o
                out.append(slice(start - o, None if new_stop < 0 else new_stop, step))
        elif isinstance(sel, (int, np.integer)):
            i = int(sel) + (length if int(sel) < 0 else 0)
            out.append(i - o)
        else:
            arr = np.asarray(sel)
            if arr.dtype == bool:
                out.append(arr[o : o + rlen] if arr.ndim == 1 else _shift_bool(arr, o, rlen))
            else:
                out.append(np.where(arr < 0, arr + length, arr) - o)
    return tuple(out)


def _shift_bool(arr: np.ndarray, origin: int, rlen: int) -> np.ndarray:
    """A broadcast-shaped boolean selector: slice its one non-unit axis."""
    axis = int(np.argmax(arr.shape))
    index = [slice(None)] * arr.ndim
    index[axis] = slice(origin, origin + rlen)
    return arr[tuple(index)]


def covers_whole(selection: tuple[Any, ...], shape: tuple[int, ...]) -> bool:
    """True when a selection is every element of an array of `shape`, in order (all slices)."""
    if len(selection) != len(shape):
        return False
    return all(
        isinstance(sel, slice) and sel.indices(n) == (0, n, 1)
        for sel, n in zip(selection, shape, strict=True)
    )
