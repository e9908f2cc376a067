"""Property-based parity of selections (reads and writes) with the oracle and with numpy.

Hypothesis draws an array setup (1-3 dims, chunking, optional sharding, v2/v3, codec, dtype,
LocalStore or MemoryStore) and a selection of one kind: basic (slices with steps, integer and
negative indices, Ellipsis), orthogonal (int arrays, bool masks), vindex coordinates, mask
selection or block selection. Reads compare the pipeline under test, the oracle and numpy on
the same store; writes apply the same selection write through each pipeline to its own store
and compare both with numpy (plus stored keys and cross-reads).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
import numpy.typing as npt
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.abc.store import Store
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ZstdCodec

from parity import (
    ORACLE_PIPELINE,
    StoreFactory,
    assert_equal_values,
    assert_same_array,
    create_with,
    make_store,
    open_with,
    random_data,
    store_keys,
    using_pipeline,
)

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DTYPES = ("int32", "float64", "uint8", "bool", "complex64", "int16")

# --------------------------------------------------------------------------------------------
# array setups
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """A drawn array configuration."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    zarr_format: int
    dtype: str
    codec: str
    order: str
    store_kind: str
    seed: int

    @property
    def grid(self) -> tuple[int, ...]:
        """The shape of one block as ``Array.blocks`` sees it (shards when sharded)."""
        return self.shards or self.chunks

    def create_kwargs(self) -> dict[str, Any]:
        """``zarr.create_array`` keyword arguments."""
        kwargs: dict[str, Any] = {
            "shape": self.shape,
            "chunks": self.chunks,
            "dtype": self.dtype,
            "zarr_format": self.zarr_format,
        }
        if self.zarr_format == 2:
            v2 = {
                "none": None,
                "zstd": numcodecs.Zstd(level=1),
                "blosc": numcodecs.Blosc(cname="lz4", shuffle=2),
            }
            return kwargs | {"compressors": v2[self.codec], "filters": None, "order": self.order}
        v3 = {
            "none": None,
            "zstd": [ZstdCodec(level=1)],
            "blosc": [BloscCodec(cname="zstd", shuffle="shuffle")],
            "crc32c": [Crc32cCodec()],
        }
        kwargs |= {"compressors": v3[self.codec], "filters": None, "serializer": BytesCodec()}
        if self.shards is not None:
            kwargs["shards"] = self.shards
        return kwargs


@st.composite
def setups(draw: st.DrawFn, max_side: int = 14) -> Setup:
    """Draw a small array configuration."""
    ndim = draw(st.integers(1, 3))
    side = {1: 40, 2: max_side, 3: 8}[ndim]
    shape = tuple(draw(st.integers(1, side)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, n + 2)) for n in shape)
    sharded = draw(st.booleans())
    shards = tuple(c * draw(st.integers(1, 3)) for c in chunks) if sharded else None
    zarr_format = 3 if sharded else draw(st.sampled_from([2, 3]))
    codecs = ["none", "zstd", "blosc"] + (["crc32c"] if zarr_format == 3 else [])
    return Setup(
        shape=shape,
        chunks=chunks,
        shards=shards,
        zarr_format=zarr_format,
        dtype=draw(st.sampled_from(DTYPES)),
        codec=draw(st.sampled_from(codecs)),
        order=draw(st.sampled_from(["C", "F"])) if zarr_format == 2 else "C",
        store_kind=draw(st.sampled_from(["local", "local", "memory"])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@contextmanager
def fresh_store(kind: str) -> Iterator[Store]:
    """A new store; LocalStore directories are removed afterwards."""
    if kind == "memory":
        yield make_store("memory")
        return
    with tempfile.TemporaryDirectory(prefix="cuzarr-sel-") as root:
        yield make_store("local", root)


def populate(setup: Setup, store: Store, pipeline: str) -> npt.NDArray[Any]:
    """Create the array in ``store`` with ``pipeline``, fill it with random data, return it."""
    data = random_data(setup.shape, setup.dtype, np.random.default_rng(setup.seed))
    arr = create_with(pipeline, store, **setup.create_kwargs())
    with using_pipeline(pipeline):
        arr[...] = data
    return data


# --------------------------------------------------------------------------------------------
# selection strategies + numpy equivalents
# --------------------------------------------------------------------------------------------


def index_for(n: int) -> st.SearchStrategy[int]:
    """A valid (possibly negative) integer index into an axis of length ``n``."""
    return st.integers(-n, n - 1)


def slice_for(n: int) -> st.SearchStrategy[slice]:
    """A slice with optional (possibly negative / out of range) bounds and a step >= 1."""
    bound = st.none() | st.integers(-n - 2, n + 2)
    step = st.none() | st.integers(1, max(1, n + 1))
    return st.builds(slice, bound, bound, step)


@st.composite
def basic_selections(draw: st.DrawFn, shape: tuple[int, ...]) -> Any:
    """Ints and slices for some axes, optionally with an Ellipsis standing for the rest."""
    ndim = len(shape)
    if draw(st.booleans()):  # leading items, Ellipsis, trailing items
        n_lead = draw(st.integers(0, ndim))
        n_trail = draw(st.integers(0, ndim - n_lead))
        axes: list[Any] = [*range(n_lead), Ellipsis, *range(ndim - n_trail, ndim)]
    else:  # the first k axes
        axes = list(range(draw(st.integers(1, ndim))))
    items = [a if a is Ellipsis else draw(index_for(shape[a]) | slice_for(shape[a])) for a in axes]
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return tuple(items)


@st.composite
def orthogonal_items(draw: st.DrawFn, n: int, unique: bool) -> Any:
    """One axis of an orthogonal selection: int, slice, int array or bool mask."""
    kind = draw(st.sampled_from(["int", "slice", "ints", "mask"]))
    if kind == "int":
        return draw(index_for(n))
    if kind == "slice":
        return draw(slice_for(n))
    if kind == "mask":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if unique:
        values = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
        signs = draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
        return np.array([v - n if s else v for v, s in zip(values, signs, strict=True)])
    return np.array(draw(st.lists(index_for(n), min_size=1, max_size=2 * n)))


def orthogonal_selections(shape: tuple[int, ...], unique: bool = False) -> st.SearchStrategy:
    """A tuple with one orthogonal item per axis (int arrays unique when ``unique``)."""
    return st.tuples(*(orthogonal_items(n, unique) for n in shape))


def numpy_oindex(shape: tuple[int, ...], sel: tuple[Any, ...]) -> tuple[Any, tuple[int, ...]]:
    """An ``np.ix_`` index equivalent to ``sel`` plus the result shape (int axes dropped)."""
    axes: list[npt.NDArray[np.intp]] = []
    out_shape: list[int] = []
    for item, n in zip(sel, shape, strict=True):
        if isinstance(item, slice):
            idx = np.arange(n)[item]
        elif isinstance(item, np.ndarray) and item.dtype == bool:
            idx = np.flatnonzero(item)
        else:
            idx = np.atleast_1d(np.asarray(item)) % n
        axes.append(idx.astype(np.intp))
        if not isinstance(item, int | np.integer):
            out_shape.append(len(idx))
    return np.ix_(*axes), tuple(out_shape)


@st.composite
def coordinate_selections(draw: st.DrawFn, shape: tuple[int, ...], unique: bool = False) -> Any:
    """Per-axis int arrays of one common length (points), possibly negative."""
    size = math.prod(shape)
    if unique:
        flat = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=size, unique=True))
    else:
        flat = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=2 * size))
    coords = np.unravel_index(np.array(flat), shape)
    neg = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    return tuple(c - n if s else c for c, n, s in zip(coords, shape, neg, strict=True))


def mask_selections(shape: tuple[int, ...]) -> st.SearchStrategy[npt.NDArray[np.bool_]]:
    """A boolean mask over the whole array."""
    size = math.prod(shape)
    return st.lists(st.booleans(), min_size=size, max_size=size).map(
        lambda bits: np.array(bits, dtype=bool).reshape(shape)
    )


@st.composite
def block_selections(draw: st.DrawFn, shape: tuple[int, ...], grid: tuple[int, ...]) -> Any:
    """Block indices (int or step-1 slice per axis) over the chunk/shard grid."""
    items: list[Any] = []
    for n, c in zip(shape, grid, strict=True):
        nblocks = -(-n // c)
        if draw(st.booleans()):
            items.append(draw(st.integers(-nblocks, nblocks - 1)))
        else:
            start = draw(st.integers(0, nblocks - 1))
            items.append(slice(start, draw(st.integers(start + 1, nblocks))))
    return tuple(items)


def numpy_blocks(shape: tuple[int, ...], grid: tuple[int, ...], sel: tuple[Any, ...]) -> Any:
    """The element-space basic selection equivalent to a block selection."""
    out = []
    for item, n, c in zip(sel, shape, grid, strict=True):
        nblocks = -(-n // c)
        if isinstance(item, slice):
            start, stop, _ = item.indices(nblocks)
        else:
            start = item % nblocks
            stop = start + 1
        out.append(slice(start * c, min(stop * c, n)))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# read tests
# --------------------------------------------------------------------------------------------

Reader = Callable[[zarr.Array], Any]


def check_read(
    setup: Setup,
    reader: Reader,
    expected: Callable[[npt.NDArray[Any]], Any],
    test_pipeline: str,
    writer: str,
) -> None:
    """Populate with ``writer``; read with both pipelines; compare with each other and numpy."""
    with fresh_store(setup.store_kind) as store:
        data = populate(setup, store, writer)
        results = {}
        for path in (test_pipeline, ORACLE_PIPELINE):
            arr = open_with(path, store)
            with using_pipeline(path):
                results[path] = reader(arr)
        assert_equal_values(results[ORACLE_PIPELINE], expected(data), "oracle vs numpy")
        assert_same_array(results[test_pipeline], results[ORACLE_PIPELINE], "test vs oracle")


WRITERS = st.sampled_from(["test", "oracle"])


def _writer(which: str, test_pipeline: str) -> str:
    return test_pipeline if which == "test" else ORACLE_PIPELINE


@SETTINGS
@given(data=st.data(), setup=setups(), which=WRITERS)
def test_basic_selection_read(
    data: st.DataObject, setup: Setup, which: str, test_pipeline: str
) -> None:
    """Slices with steps, negative indices, integer indices (dropped axes), Ellipsis."""
    sel = data.draw(basic_selections(setup.shape), label="selection")
    check_read(
        setup,
        lambda arr: arr[sel],
        lambda src: src[sel],
        test_pipeline,
        _writer(which, test_pipeline),
    )


@SETTINGS
@given(data=st.data(), setup=setups(), which=WRITERS)
def test_orthogonal_selection_read(
    data: st.DataObject, setup: Setup, which: str, test_pipeline: str
) -> None:
    """``arr.oindex[...]`` with ints, slices, int arrays (unsorted, repeated, negative), masks."""
    sel = data.draw(orthogonal_selections(setup.shape), label="selection")
    index, out_shape = numpy_oindex(setup.shape, sel)
    check_read(
        setup,
        lambda arr: arr.oindex[sel],
        lambda src: src[index].reshape(out_shape),
        test_pipeline,
        _writer(which, test_pipeline),
    )


@SETTINGS
@given(data=st.data(), setup=setups(), which=WRITERS)
def test_coordinate_selection_read(
    data: st.DataObject, setup: Setup, which: str, test_pipeline: str
) -> None:
    """``arr.vindex[...]`` with per-axis coordinate arrays (repeats, negatives)."""
    sel = data.draw(coordinate_selections(setup.shape), label="selection")
    check_read(
        setup,
        lambda arr: arr.vindex[sel],
        lambda src: src[sel],
        test_pipeline,
        _writer(which, test_pipeline),
    )


@SETTINGS
@given(data=st.data(), setup=setups(), which=WRITERS, via_vindex=st.booleans())
def test_mask_selection_read(
    data: st.DataObject, setup: Setup, which: str, via_vindex: bool, test_pipeline: str
) -> None:
    """``get_mask_selection`` and ``arr.vindex[mask]``."""
    mask = data.draw(mask_selections(setup.shape), label="mask")

    def read(arr: zarr.Array) -> Any:
        return arr.vindex[mask] if via_vindex else arr.get_mask_selection(mask)

    check_read(
        setup,
        read,
        lambda src: src[mask],
        test_pipeline,
        _writer(which, test_pipeline),
    )


@SETTINGS
@given(data=st.data(), setup=setups(), which=WRITERS)
def test_block_selection_read(
    data: st.DataObject, setup: Setup, which: str, test_pipeline: str
) -> None:
    """``arr.blocks[...]`` over the chunk (or shard) grid."""
    sel = data.draw(block_selections(setup.shape, setup.grid), label="blocks")
    region = numpy_blocks(setup.shape, setup.grid, sel)
    check_read(
        setup,
        lambda arr: arr.blocks[sel],
        lambda src: src[region],
        test_pipeline,
        _writer(which, test_pipeline),
    )


# --------------------------------------------------------------------------------------------
# write tests
# --------------------------------------------------------------------------------------------

Writer = Callable[[zarr.Array, Any], None]


def check_write(
    setup: Setup,
    prefill: bool,
    write_empty_chunks: bool,
    value_shape: tuple[int, ...],
    writer: Writer,
    apply_numpy: Callable[[npt.NDArray[Any], Any], None],
    test_pipeline: str,
) -> None:
    """Apply the same selection write with each pipeline to its own store; compare."""
    rng = np.random.default_rng(setup.seed + 1)
    value = random_data(value_shape, setup.dtype, rng)
    kwargs = setup.create_kwargs() | {"config": {"write_empty_chunks": write_empty_chunks}}
    with fresh_store(setup.store_kind) as store_t, fresh_store(setup.store_kind) as store_o:
        stores = {test_pipeline: store_t, ORACLE_PIPELINE: store_o}
        expected = None
        for path, store in stores.items():
            arr = create_with(path, store, **kwargs)
            with using_pipeline(path):
                if prefill:
                    arr[...] = random_data(setup.shape, setup.dtype, np.random.default_rng(7))
                writer(arr, value)
            if expected is None:
                expected = (
                    random_data(setup.shape, setup.dtype, np.random.default_rng(7))
                    if prefill
                    else np.full(setup.shape, arr.fill_value, dtype=setup.dtype)
                )
                apply_numpy(expected, value)
        reference = None
        for reader in (test_pipeline, ORACLE_PIPELINE):
            for writer_path, store in stores.items():
                got = open_with(reader, store)[...]
                assert_equal_values(got, expected, f"{reader} reading {writer_path}'s store")
                if reference is None:
                    reference = got
                assert_same_array(got, reference, f"{reader} reading {writer_path}'s store")
        assert store_keys(store_t) == store_keys(store_o), "stored keys differ"


WRITE_FLAGS = {"prefill": st.booleans(), "wec": st.booleans()}


@SETTINGS
@given(data=st.data(), setup=setups(), **WRITE_FLAGS)
def test_basic_selection_write(
    data: st.DataObject, setup: Setup, prefill: bool, wec: bool, test_pipeline: str
) -> None:
    """``arr[sel] = value`` with basic selections."""
    sel = data.draw(basic_selections(setup.shape), label="selection")
    shape = np.empty(setup.shape, dtype=np.int8)[sel].shape

    def write(arr: Any, value: Any) -> None:
        arr[sel] = value

    check_write(setup, prefill, wec, shape, write, write, test_pipeline)


@SETTINGS
@given(data=st.data(), setup=setups(), **WRITE_FLAGS)
def test_orthogonal_selection_write(
    data: st.DataObject, setup: Setup, prefill: bool, wec: bool, test_pipeline: str
) -> None:
    """``set_orthogonal_selection`` / ``arr.oindex[...] = value`` (unique indices)."""
    sel = data.draw(orthogonal_selections(setup.shape, unique=True), label="selection")
    index, out_shape = numpy_oindex(setup.shape, sel)
    via_method = data.draw(st.booleans(), label="via set_orthogonal_selection")

    def write(arr: zarr.Array, value: Any) -> None:
        if via_method:
            arr.set_orthogonal_selection(sel, value)
        else:
            arr.oindex[sel] = value

    def apply_numpy(src: npt.NDArray[Any], value: Any) -> None:
        src[index] = value.reshape(src[index].shape)

    check_write(setup, prefill, wec, out_shape, write, apply_numpy, test_pipeline)


@SETTINGS
@given(data=st.data(), setup=setups(), **WRITE_FLAGS)
def test_coordinate_selection_write(
    data: st.DataObject, setup: Setup, prefill: bool, wec: bool, test_pipeline: str
) -> None:
    """``arr.vindex[coords] = value`` (unique points) and ``set_mask_selection``."""
    use_mask = data.draw(st.booleans(), label="mask")
    sel: Any
    if use_mask:
        sel = data.draw(mask_selections(setup.shape), label="selection")
        n_points = int(sel.sum())
    else:
        sel = data.draw(coordinate_selections(setup.shape, unique=True), label="selection")
        n_points = len(sel[0])

    def write(arr: zarr.Array, value: Any) -> None:
        if use_mask:
            arr.set_mask_selection(sel, value)
        else:
            arr.vindex[sel] = value

    def apply_numpy(src: npt.NDArray[Any], value: Any) -> None:
        src[sel] = value

    check_write(setup, prefill, wec, (n_points,), write, apply_numpy, test_pipeline)


@SETTINGS
@given(data=st.data(), setup=setups(), **WRITE_FLAGS)
def test_block_selection_write(
    data: st.DataObject, setup: Setup, prefill: bool, wec: bool, test_pipeline: str
) -> None:
    """``arr.blocks[...] = value``."""
    sel = data.draw(block_selections(setup.shape, setup.grid), label="blocks")
    region = numpy_blocks(setup.shape, setup.grid, sel)
    shape = np.empty(setup.shape, dtype=np.int8)[region].shape

    def write(arr: zarr.Array, value: Any) -> None:
        arr.blocks[sel] = value

    def apply_numpy(src: npt.NDArray[Any], value: Any) -> None:
        src[region] = value

    check_write(setup, prefill, wec, shape, write, apply_numpy, test_pipeline)


@pytest.mark.parametrize("fill_with", ["fill-value", "data"])
def test_fill_value_write_through_selection(
    fill_with: str, test_pipeline: str, store_factory: StoreFactory
) -> None:
    """Writing the fill value through oindex/vindex empties chunks exactly like the oracle."""
    setup = Setup((12, 10), (4, 5), None, 3, "float32", "zstd", "C", "local", 11)
    for wec in (False, True):
        stores = {test_pipeline: store_factory(), ORACLE_PIPELINE: store_factory()}
        for path, store in stores.items():
            arr = create_with(
                path, store, **setup.create_kwargs(), config={"write_empty_chunks": wec}
            )
            with using_pipeline(path):
                arr[...] = random_data(setup.shape, setup.dtype, np.random.default_rng(0))
                value = arr.fill_value if fill_with == "fill-value" else 1.5
                arr.oindex[np.arange(0, 8), :] = value
                arr.vindex[(np.array([8, 8, 11]), np.array([0, 9, 9]))] = value
        got = open_with(test_pipeline, stores[test_pipeline])[...]
        want = open_with(ORACLE_PIPELINE, stores[ORACLE_PIPELINE])[...]
        assert_same_array(got, want, f"wec={wec}")
        assert store_keys(stores[test_pipeline]) == store_keys(stores[ORACLE_PIPELINE])
