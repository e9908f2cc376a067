"""boxes.compact: merged dimensions and widened items copy exactly what the original
tables copy (numpy reference and the kernel on the host harness), and the usual scatter
tables really do get simpler."""

from __future__ import annotations

import numpy as np
import pytest
from harness import HostLauncher, library
from hypothesis import given, settings
from hypothesis import strategies as st
from test_box_copy import ITEMS, copy_cases

from cuzarr.kernels import launch, reference
from cuzarr.kernels.boxes import compact


def _scatter_pairs(case: tuple, slab: np.ndarray, out: np.ndarray) -> list[list[tuple]]:
    """The (source view, target view) groups of one launch each, as the scatter builds
    them: transposed chunks, any slices, dropped axes, fills."""
    chunk, n, itemsize, perm, sels, fills, _ = case
    dtype = np.dtype(ITEMS[itemsize])
    stored = slab.view(dtype).reshape(n, *(chunk[p] for p in perm))
    logical = stored.transpose(0, *(1 + int(a) for a in np.argsort(perm)))
    out_arrays = out.view(dtype).reshape(n, *chunk)
    groups: dict[int, list[tuple]] = {}
    for t in range(n):
        src_view = logical[t][(*sels[t], Ellipsis)]
        dst_sel = tuple(s if isinstance(s, int) else slice(0, len(range(*s.indices(c))))
                        for s, c in zip(sels[t], chunk, strict=True))
        dst_view = out_arrays[t][(*dst_sel, Ellipsis)]
        groups.setdefault(dst_view.ndim, []).append((None if fills[t] else src_view, dst_view))
    return list(groups.values())


@settings(max_examples=150, deadline=None)
@given(case=copy_cases(), shift=st.sampled_from([0, 0, 4, 8]))
def test_compacted_tables_copy_the_same_bytes(case: tuple, shift: int) -> None:
    chunk, n, itemsize, *_, seed = case
    rng = np.random.default_rng(seed)
    size = n * int(np.prod(chunk)) * itemsize
    slab = rng.integers(0, 256, size + 16, dtype=np.uint8)[shift : shift + size]
    out = np.zeros(size, dtype=np.uint8)
    fill = rng.integers(0, 256, itemsize, dtype=np.uint8)
    for pairs in _scatter_pairs(case, slab, out):
        tasks = reference.box_tasks(slab, out, pairs)
        expected = out.copy()
        reference.box_copy(slab, expected, tasks, itemsize, fill)
        small, width = compact(tasks, itemsize, reference.address(slab), reference.address(out))
        # at most one more dimension: the words of an item its addresses do not align
        assert small.ndim <= max(1, tasks.ndim) + (width < itemsize)
        assert width % itemsize == 0 or itemsize % width == 0
        via_reference = out.copy()
        reference.box_copy(slab, via_reference, small, width,
                           np.tile(fill, max(1, width // itemsize)))
        np.testing.assert_array_equal(via_reference, expected)
        _assert_aligned(small, width, slab, out)
        launch.box_copy(HostLauncher(), np, slab, out, tasks, itemsize, fill)
        np.testing.assert_array_equal(out, expected)


def _assert_aligned(tasks: reference.BoxTasks, width: int, src: np.ndarray,
                    dst: np.ndarray) -> None:
    """The kernel's contract: every word it loads or stores is aligned to its size."""
    copied = tasks.src >= 0
    assert np.all((reference.address(dst) + tasks.dst) % width == 0)
    assert np.all((reference.address(src) + tasks.src[copied]) % width == 0)
    assert np.all(tasks.dst_strides % width == 0)
    assert np.all(tasks.src_strides[copied] % width == 0)


def _tasks_for(src: np.ndarray, dst: np.ndarray, pairs: list[tuple]) -> reference.BoxTasks:
    return reference.box_tasks(src.reshape(-1).view(np.uint8), dst.reshape(-1).view(np.uint8),
                               pairs)


def test_a_whole_chunk_into_a_big_output_moves_16_byte_words() -> None:
    """The read scatter of whole 64x64 float32 chunks into a 256x256 output: rows stay
    (strided in the output), each row becomes 16 words of 16 bytes."""
    decoded = np.zeros((3, 64, 64), dtype=np.float32)
    out = np.zeros((256, 256), dtype=np.float32)
    pairs = [(decoded[k], out[64 * k : 64 * k + 64, 64:128]) for k in range(3)]
    tasks = _tasks_for(decoded, out, pairs)
    small, width = compact(tasks, 4, reference.address(decoded), reference.address(out))
    assert width == 16
    assert small.extents.tolist() == [[64, 16]] * 3
    assert small.dst_strides.tolist() == [[1024, 16]] * 3


def test_contiguous_boxes_become_one_run() -> None:
    """Chunks that are whole rows of the output merge into one dimension."""
    decoded = np.zeros((2, 8, 256), dtype=np.uint16)
    out = np.zeros((16, 256), dtype=np.uint16)
    pairs = [(decoded[k], out[8 * k : 8 * k + 8]) for k in range(2)]
    small, width = compact(_tasks_for(decoded, out, pairs), 2, reference.address(decoded),
                           reference.address(out))
    assert (small.ndim, width) == (1, 16)
    assert small.extents.tolist() == [[8 * 256 * 2 // 16]] * 2


@pytest.mark.parametrize(("start", "width"), [(0, 16), (2, 8), (1, 4)])
def test_width_follows_alignment(start: int, width: int) -> None:
    """A patch starting `start` float32 items into a row moves the widest words its
    addresses allow."""
    decoded = np.zeros((1, 8, 64), dtype=np.float32)
    out = np.zeros((8, 8), dtype=np.float32)
    pairs = [(decoded[0][:, start : start + 8], out)]
    _, got = compact(_tasks_for(decoded, out, pairs), 4, reference.address(decoded),
                     reference.address(out))
    assert got == width


def test_strided_or_transposed_rows_keep_their_items() -> None:
    decoded = np.zeros((1, 16, 16), dtype=np.float32)
    out = np.zeros((16, 16), dtype=np.float32)
    for source in (decoded[0].T, decoded[0][:, ::-1]):
        small, width = compact(_tasks_for(decoded, out, [(source, out)]), 4,
                               reference.address(decoded), reference.address(out))
        assert width == 4 and small.ndim == 2


def test_empty_and_trivial_tasks() -> None:
    decoded = np.zeros((2, 4, 4), dtype=np.int8)
    out = np.zeros((4, 4), dtype=np.int8)
    pairs = [(decoded[0][:0], out[:0]), (None, out[1:2, :])]
    small, width = compact(_tasks_for(decoded, out, pairs), 1, reference.address(decoded),
                           reference.address(out))
    assert len(small.dst) == 1 and small.src[0] < 0  # the empty box is gone, the fill stays
    assert small.ndim == 1 and small.extents[0, 0] * width == 4


def test_misaligned_wide_items_move_as_aligned_words() -> None:
    """complex128 items at an address that is a multiple of 8 but not 16 move as two
    8-byte words each; a fill item steps through its own two words."""
    room = np.zeros(16 * 32, dtype=np.uint8)
    base = room[(-reference.address(room)) % 16 + 8 :][: 16 * 30]
    src = base.view(np.complex128).reshape(5, 6)
    src[...] = np.arange(30).reshape(5, 6) * (1 + 1j)
    out = np.zeros((5, 12), dtype=np.complex128)
    pairs = [(src, out[:, :6]), (None, out[:, 6:])]
    src_bytes = src.reshape(-1).view(np.uint8)
    out_bytes = out.reshape(-1).view(np.uint8)
    tasks = reference.box_tasks(src_bytes, out_bytes, pairs)
    _, width = compact(tasks, 16, reference.address(src_bytes), reference.address(out_bytes))
    assert width == 8
    fill = np.array([1 + 2j]).view(np.uint8)
    launch.box_copy(HostLauncher(), np, src_bytes, out_bytes, tasks, 16, fill)
    np.testing.assert_array_equal(out[:, :6], src)
    assert (out[:, 6:] == 1 + 2j).all()


def _contiguous_axes(tasks: reference.BoxTasks, width: int) -> tuple[int, int] | None:
    """Any two different axes, contiguous in the source of every copied task and in every
    destination: the planes box_copy_tiled can take (whatever their size)."""
    copied = tasks.src >= 0
    p = [a for a in range(tasks.ndim) if np.all(tasks.src_strides[copied][:, a] == width)]
    q = [a for a in range(tasks.ndim) if np.all(tasks.dst_strides[:, a] == width)]
    pairs = [(a, b) for a in p for b in q if a != b]
    return pairs[0] if pairs else None


@st.composite
def transposed_cases(draw: st.DrawFn) -> tuple:
    """Chunks stored with their last axis moved (a transpose codec), cut by contiguous
    ranges big enough to span several 32 x 32 tiles, some chunks missing: the shape of
    the copies box_copy_tiled is for (copy_cases draws mostly tiny or strided ones)."""
    ndim = draw(st.integers(2, 3))
    chunk = tuple(draw(st.integers(1, 70 if ndim == 2 else 12)) for _ in range(ndim))
    perm = tuple(draw(st.permutations(range(ndim)).filter(lambda p: p[-1] != ndim - 1)))
    n = draw(st.integers(1, 3))
    itemsize = draw(st.sampled_from(sorted(ITEMS)))
    sels = []
    for _ in range(n):
        sel = []
        for c in chunk:
            a = draw(st.integers(0, c - 1))
            sel.append(slice(a, draw(st.integers(a + 1, c))))
        sels.append(tuple(sel))
    fills = [draw(st.integers(0, 3)) == 0 for _ in range(n)]
    return chunk, n, itemsize, perm, sels, fills, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=120, deadline=None)
@given(case=st.one_of(copy_cases(), transposed_cases()), grid_x=st.integers(1, 4),
       grid_y=st.integers(1, 3),
       block=st.sampled_from([(32, 8), (32, 1), (7, 3), (64, 2)]), reverse=st.booleans())
def test_tiled_box_copy_matches_the_reference(case: tuple, grid_x: int, grid_y: int,
                                             block: tuple[int, int], reverse: bool) -> None:
    """box_copy_tiled over any boxes whose two sides are contiguous along different axes
    (transposed chunks, slices, fills), any grid and block shape, threads in either order
    between barriers."""
    chunk, n, itemsize, *_, seed = case
    rng = np.random.default_rng(seed)
    size = n * int(np.prod(chunk)) * itemsize
    slab = rng.integers(0, 256, size, dtype=np.uint8)
    out = rng.integers(0, 256, size, dtype=np.uint8)
    fill = rng.integers(0, 256, itemsize, dtype=np.uint8)
    for pairs in _scatter_pairs(case, slab, out):
        tasks = reference.box_tasks(slab, out, pairs)
        small, width = compact(tasks, itemsize, reference.address(slab), reference.address(out))
        axes = _contiguous_axes(small, width)
        if axes is None:
            continue
        expected = out.copy()
        reference.box_copy(slab, expected, tasks, itemsize, fill)
        library(reverse).host_box_copy_tiled(
            grid_x, grid_y, *block, slab, out, small.src, small.dst, small.extents,
            small.src_strides, small.dst_strides, len(small.dst), small.ndim, width,
            np.tile(fill, max(1, width // itemsize)), *axes,
        )
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("itemsize", [1, 2, 4, 8, 16])
def test_transposed_chunks_scatter_through_tiles(itemsize: int) -> None:
    """Chunks stored transposed (order F, say) scattered into a C-ordered output: the
    launch picks box_copy_tiled, and a missing chunk is filled in the same launch."""
    dtype = ITEMS[itemsize]
    rng = np.random.default_rng(itemsize)
    stored = rng.integers(0, 100, (3, 40, 70)).astype(dtype)  # each chunk stored (x, y)
    logical = stored.transpose(0, 2, 1)  # chunks of (70, 40)
    out = np.zeros((70, 3 * 40 + 5), dtype=dtype)
    pairs = [(logical[k], out[:, 40 * k : 40 * k + 40]) for k in range(2)]
    pairs.append((None, out[:, 80:120]))
    src = stored.reshape(-1).view(np.uint8)
    dst = out.reshape(-1).view(np.uint8)
    tasks = reference.box_tasks(src, dst, pairs)
    launcher = HostLauncher()
    fill = np.array([7], dtype=dtype).view(np.uint8)
    launch.box_copy(launcher, np, src, dst, tasks, itemsize, fill)
    assert [name for name, _, _ in launcher.launches] == ["box_copy_tiled"]
    np.testing.assert_array_equal(out[:, :40], logical[0])
    np.testing.assert_array_equal(out[:, 40:80], logical[1])
    assert (out[:, 80:120] == dtype(7)).all() and not out[:, 120:].any()


def test_small_or_untransposed_boxes_keep_the_plain_kernel() -> None:
    decoded = np.zeros((2, 4, 4), dtype=np.float32)
    out = np.zeros((4, 8), dtype=np.float32)
    transposed = [(decoded[k].T, out[:, 4 * k : 4 * k + 4]) for k in range(2)]
    straight = [(decoded[k], out[:, 4 * k : 4 * k + 4]) for k in range(2)]
    for pairs in (transposed, straight):
        launcher = HostLauncher()
        src = decoded.reshape(-1).view(np.uint8)
        launch.box_copy(launcher, np, src, out.reshape(-1).view(np.uint8),
                        reference.box_tasks(src, out.reshape(-1).view(np.uint8), pairs), 4)
        assert [name for name, _, _ in launcher.launches] == ["box_copy"]


def test_gather_into_transposed_chunks_goes_through_tiles() -> None:
    """The write direction: a C-ordered value cut into chunk buffers stored transposed;
    reads run along the value's rows, writes along the stored rows."""
    value = np.arange(50 * 90, dtype=np.int32).reshape(50, 90)
    stored = np.zeros((2, 45, 50), dtype=np.int32)  # two (50, 45) chunks, stored (45, 50)
    pairs = [(value[:, 45 * k : 45 * k + 45], stored[k].T) for k in range(2)]
    src = value.reshape(-1).view(np.uint8)
    dst = stored.reshape(-1).view(np.uint8)
    launcher = HostLauncher()
    launch.box_copy(launcher, np, src, dst, reference.box_tasks(src, dst, pairs), 4)
    assert [name for name, _, _ in launcher.launches] == ["box_copy_tiled"]
    for k in range(2):
        np.testing.assert_array_equal(stored[k].T, value[:, 45 * k : 45 * k + 45])
