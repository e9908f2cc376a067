"""box_copy (scatter, gather, transpose, fill in one kernel) on the host harness, against
its numpy reference and against plain numpy assignment of the same views."""

from __future__ import annotations

import numpy as np
from harness import library
from hypothesis import given, settings
from hypothesis import strategies as st

from cuzarr.kernels import reference

ITEMS = {1: np.uint8, 2: np.uint16, 4: np.float32, 8: np.int64, 16: np.complex128}


@st.composite
def dim_selection(draw: st.DrawFn, length: int) -> slice | int:
    """A slice (any step, possibly negative) or an int on a dimension of `length`."""
    if draw(st.booleans()) and length > 0:
        return draw(st.integers(0, length - 1))
    step = draw(st.sampled_from([1, 1, 2, 3, -1, -2]))
    start = draw(st.integers(0, length))
    stop = draw(st.integers(0, length))
    return slice(start, stop, step)


@st.composite
def copy_cases(draw: st.DrawFn) -> tuple:
    ndim = draw(st.integers(1, 3))
    chunk = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    n = draw(st.integers(1, 5))
    itemsize = draw(st.sampled_from(sorted(ITEMS)))
    perm = tuple(draw(st.permutations(range(ndim))))
    sels = [tuple(draw(dim_selection(c)) for c in chunk) for _ in range(n)]
    fills = [draw(st.integers(0, 4)) == 0 for _ in range(n)]
    return chunk, n, itemsize, perm, sels, fills, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=120, deadline=None)
@given(case=copy_cases(), grid_x=st.integers(1, 4), grid_y=st.integers(1, 4),
       block=st.integers(1, 40))
def test_box_copy_scatter(case: tuple, grid_x: int, grid_y: int, block: int) -> None:
    """Chunks stored transposed in one slab, each selection copied into its own output
    (transpose fused through source strides; ints drop axes; some tasks are fills)."""
    chunk, n, itemsize, perm, sels, fills, seed = case
    rng = np.random.default_rng(seed)
    dtype = np.dtype(ITEMS[itemsize])
    stored_shape = tuple(chunk[p] for p in perm)
    slab = rng.integers(0, 256, n * int(np.prod(chunk)) * itemsize, dtype=np.uint8)
    stored = slab.view(dtype).reshape(n, *stored_shape)
    logical = stored.transpose(0, *(1 + int(a) for a in np.argsort(perm)))
    out = np.zeros(n * int(np.prod(chunk)) * itemsize, dtype=np.uint8)
    out_arrays = out.view(dtype).reshape(n, *chunk)
    fill = rng.integers(0, 256, itemsize, dtype=np.uint8)

    expected = out.copy()
    expected_arrays = expected.view(dtype).reshape(n, *chunk)
    pairs, ndims = [], set()
    for t in range(n):
        src_view = logical[t][(*sels[t], Ellipsis)]  # a view, 0-d included
        dst_sel = tuple(s if isinstance(s, int) else slice(0, len(range(*s.indices(c))))
                        for s, c in zip(sels[t], chunk, strict=True))
        dst_view = out_arrays[t][(*dst_sel, Ellipsis)]
        expected_view = expected_arrays[t][(*dst_sel, Ellipsis)]
        if fills[t]:
            expected_view[...] = fill.view(dtype)[0]
            pairs.append((None, dst_view))
        else:
            expected_view[...] = src_view
            pairs.append((src_view, dst_view))
        ndims.add(dst_view.ndim)
    for nd in ndims:  # one launch per dimensionality
        group = [p for p in pairs if p[1].ndim == nd]
        tasks = reference.box_tasks(slab, out, group)
        ref_out = out.copy()
        reference.box_copy(slab, ref_out, tasks, itemsize, fill)
        library().host_box_copy(
            grid_x, grid_y, block, 1, slab, out, tasks.src, tasks.dst,
            np.ascontiguousarray(tasks.extents), np.ascontiguousarray(tasks.src_strides),
            np.ascontiguousarray(tasks.dst_strides), len(tasks.dst), nd, itemsize, fill,
        )
        np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(out, expected)


def test_box_copy_gather_into_chunks() -> None:
    """The write direction: a strided value cut into C-ordered chunk buffers."""
    value = np.arange(7 * 10, dtype=np.int32).reshape(7, 10)[:, ::-1]
    chunks = np.zeros((4, 4, 5), dtype=np.int32)  # 2 x 2 grid of 4 x 5 chunks (edges partial)
    pairs = []
    for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        part = value[i * 4 : i * 4 + 4, j * 5 : j * 5 + 5]
        pairs.append((part, chunks[k][: part.shape[0], : part.shape[1]]))
    src = value.base.view(np.uint8).reshape(-1)
    dst = chunks.view(np.uint8).reshape(-1)
    tasks = reference.box_tasks(src, dst, pairs)
    library().host_box_copy(
        2, 3, 7, 1, src, dst, tasks.src, tasks.dst, tasks.extents, tasks.src_strides,
        tasks.dst_strides, len(tasks.dst), 2, 4, np.zeros(4, dtype=np.uint8),
    )
    for k, (part, target) in enumerate(pairs):
        np.testing.assert_array_equal(target, part, err_msg=f"chunk {k}")
    assert not chunks[2][3:].any() and not chunks[3][3:].any()
