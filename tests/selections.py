"""Hypothesis strategies for the selections partial-read tests draw, and their numpy
expectations: basic slices (with steps), an integer on the leading axis, orthogonal index
arrays and a boolean mask, all over a 3-d array of a given shape."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st


def _slice(draw: Any, n: int) -> slice:
    start = draw(st.integers(0, n - 1))
    stop = draw(st.integers(start + 1, n))
    return slice(start, stop, draw(st.sampled_from([1, 1, 2, 3])))


@st.composite
def selections(draw: Any, shape: tuple[int, int, int]) -> tuple[str, Any]:
    """(kind, selection); kind "orthogonal" goes to get_orthogonal_selection."""
    kind = draw(st.sampled_from(["basic", "int", "orthogonal", "mask"]))
    rows = _slice(draw, shape[0])
    if kind == "basic":
        return kind, (rows, _slice(draw, shape[1]), _slice(draw, shape[2]))
    if kind == "int":
        return kind, (draw(st.integers(-shape[0], shape[0] - 1)), _slice(draw, shape[1]))
    if kind == "orthogonal":
        cols = draw(st.lists(st.integers(0, shape[1] - 1), min_size=1, max_size=6))
        return kind, (rows, np.array(sorted(set(cols))), slice(None))
    lo = draw(st.integers(0, shape[0] - 4))
    mask = np.zeros(shape[0], dtype=bool)
    mask[lo : lo + draw(st.integers(1, 4))] = True
    return kind, (mask, slice(None), 2)


def read(arr: Any, kind: str, selection: Any) -> Any:
    """The selection read from a zarr array, as its kind says."""
    return arr.get_orthogonal_selection(selection) if kind == "orthogonal" else arr[selection]


def expected(data: np.ndarray, kind: str, selection: Any) -> np.ndarray:
    """What numpy gives for the selection."""
    if kind == "orthogonal":
        axes = (np.arange(n)[s] for s, n in zip(selection, data.shape, strict=True))
        return data[np.ix_(*axes)]
    return data[selection]
