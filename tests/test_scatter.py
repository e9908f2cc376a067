"""The batched fill-value test agrees with zarr's per-chunk rule (NDBuffer.all_equal)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.core.buffer.cpu import NDBuffer

from cuzarr.scatter import rows_equal_fill

CASES = [
    ("f4", np.float32(0.0), [0.0, -0.0, 1.0, np.nan]),
    ("f8", np.float64(np.nan), [np.nan, 0.0, 2.5]),
    ("c8", np.complex64(0), [0, 1j, -0.0]),
    ("c16", np.complex128(0), [0, 1j, -0.0, complex(0, -0.0)]),
    ("i2", np.int16(7), [7, 0, -1]),
    ("u1", np.uint8(0), [0, 255]),
    ("?", np.False_, [False, True]),
    ("M8[s]", np.datetime64("NaT", "s"), [np.datetime64("NaT", "s"), np.datetime64(0, "s")]),
    ("S3", np.bytes_(b"ab"), [b"ab", b"", b"abc"]),
]


@pytest.mark.parametrize(("dtype", "fill", "pool"), CASES, ids=[c[0] for c in CASES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_rows_equal_fill_matches_zarr(
    dtype: str, fill: object, pool: list[object], data: st.DataObject
) -> None:
    n = data.draw(st.integers(1, 6))
    size = data.draw(st.integers(0, 9))
    picks = data.draw(
        st.lists(
            st.lists(st.sampled_from(range(len(pool))), min_size=size, max_size=size),
            min_size=n,
            max_size=n,
        )
    )
    arrays = np.array([[pool[k] for k in row] for row in picks], dtype=dtype).reshape(n, size)
    expected = [NDBuffer.from_numpy_array(row).all_equal(fill) for row in arrays]
    assert rows_equal_fill(arrays, fill).tolist() == expected


def test_structured_fill() -> None:
    dtype = np.dtype([("a", "<i4"), ("b", "<f8")])
    fill = np.zeros((), dtype=dtype)
    arrays = np.zeros((3, 4), dtype=dtype)
    arrays[1, 2] = (1, 0.0)
    arrays[2, 0] = (0, -0.0)
    expected = [NDBuffer.from_numpy_array(row).all_equal(fill) for row in arrays]
    assert expected == [True, False, True]  # zarr compares fields: -0.0 == 0.0
    assert rows_equal_fill(arrays, fill).tolist() == expected
