"""Invariants of the pipeline under test that hold regardless of the oracle.

Exact round trips per codec and dtype; fill-value semantics (NaN fills, never-written arrays);
all-empty shards; edge chunks stored at full chunk size with fill-value padding; byte-exact
big-endian / F-order / transposed / crc32c chunk encodings; corrupted checksums never decode
silently; degenerate shapes (0-d, zero-length, chunks larger than the array).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import google_crc32c
import numcodecs
import numpy as np
import numpy.typing as npt
import pytest
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, TransposeCodec, ZstdCodec

from parity import (
    ALL_CODECS,
    CODECS_BY_ID,
    CUSTOM_FILLS,
    DTYPES,
    LAYOUTS,
    ORACLE_PIPELINE,
    VLEN_STR,
    CodecCase,
    StoreFactory,
    assert_equal_values,
    assert_same_array,
    create_with,
    fill_array,
    get_bytes,
    open_with,
    random_data,
    read_with,
    store_keys,
    using_pipeline,
)

ROUND_TRIP_DTYPES = (
    "bool",
    "int8",
    "uint16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "datetime64[ns]",
)
# catalog entries tied to one dtype (Delta("<i4"), Shuffle(8), explicit byte order, strings)
DTYPE_BOUND = {"v2-delta-zstd", "v2-shuffle-zlib", "v2-bigendian-i4", "v2-bigendian-f8-zstd"}
GENERIC_CODECS = [c for c in ALL_CODECS if c.id not in DTYPE_BOUND and c.dtype != VLEN_STR]


def native(a: Any) -> npt.NDArray[Any]:
    """``a`` as a numpy array in native byte order (values unchanged)."""
    arr = np.asarray(a)
    if arr.dtype.kind in "OT" or arr.dtype.byteorder in "=|":
        return arr
    return arr.astype(arr.dtype.newbyteorder("="))


def assert_round_trip(got: Any, want: Any, what: str) -> None:
    """Bit-exact equality up to byte order."""
    assert_same_array(native(got), native(want), what)


def _round_trip(case: CodecCase, dtype: str, store_factory: StoreFactory, pipeline: str) -> None:
    layout = LAYOUTS["edge"]
    kwargs = layout.kwargs(dataclasses.replace(case, dtype=dtype))
    store = store_factory()
    arr = create_with(pipeline, store, **kwargs)
    data = random_data(layout.shape, dtype, np.random.default_rng(8))
    with using_pipeline(pipeline):
        arr[...] = data
    reader = open_with(pipeline, store)
    with using_pipeline(pipeline):
        assert_round_trip(reader[...], data, "full read")
        region = (slice(3, 19, 2), slice(5, 27))
        assert_round_trip(reader[region], data[region], "strided region")
        last = np.asarray(reader[-1, -1], dtype=data.dtype)  # scalars: value, not dtype
        assert_round_trip(last, data[-1:, -1:].reshape(()), "last element")
    assert len(store_keys(store)) == math.prod(
        -(-n // c) for n, c in zip(layout.shape, layout.chunks, strict=True)
    )


@pytest.mark.parametrize("dtype", ROUND_TRIP_DTYPES)
@pytest.mark.parametrize("case", GENERIC_CODECS, ids=lambda c: c.id)
def test_round_trip(
    case: CodecCase, dtype: str, store_factory: StoreFactory, test_pipeline: str
) -> None:
    """Write then read with the pipeline under test: bit-exact, every codec x dtype."""
    _round_trip(case, dtype, store_factory, test_pipeline)


@pytest.mark.filterwarnings("ignore::zarr.errors.UnstableSpecificationWarning")
@pytest.mark.parametrize(
    "case_id",
    [*sorted(DTYPE_BOUND), "v3-vlen-str", "v3-vlen-str-raw", "v2-vlen-str", "v3-s5", "v2-u4"],
)
def test_round_trip_dtype_bound(
    case_id: str, store_factory: StoreFactory, test_pipeline: str
) -> None:
    """Round trips of the catalog entries tied to a dtype, plus fixed-length strings."""
    extra = {
        "v3-s5": CodecCase("v3-s5", 3, "S5", compressors=(ZstdCodec(),)),
        "v2-u4": CodecCase("v2-u4", 2, "U4", compressors=numcodecs.Zstd()),
    }
    case = extra.get(case_id) or CODECS_BY_ID[case_id]
    _round_trip(case, case.dtype, store_factory, test_pipeline)


# --------------------------------------------------------------------------------------------
# fill values
# --------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::zarr.errors.UnstableSpecificationWarning")
@pytest.mark.parametrize("fill", ["default-fill", "custom-fill"])
@pytest.mark.parametrize("layout_id", ["v2-edge", "v3-edge", "v3-shards"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_never_written_reads_fill(
    dtype: str,
    layout_id: str,
    fill: str,
    store_factory: StoreFactory,
    test_pipeline: str,
) -> None:
    """An array nobody wrote reads as its fill value everywhere and stores no chunks."""
    fmt, _, lid = layout_id.partition("-")
    layout = LAYOUTS[lid]
    compressors: Any = numcodecs.Zstd() if fmt == "v2" else (ZstdCodec(),)
    case = CodecCase(layout_id, 2 if fmt == "v2" else 3, dtype, compressors=compressors)
    kwargs = layout.kwargs(case)
    if fill == "custom-fill":
        kwargs["fill_value"] = CUSTOM_FILLS[dtype]
    store = store_factory()
    arr = create_with(test_pipeline, store, **kwargs)
    expected = fill_array(layout.shape, dtype, arr.fill_value)
    got = read_with(test_pipeline, store)
    assert_equal_values(got, expected, "never-written array")
    assert_same_array(got, read_with(ORACLE_PIPELINE, store), "vs oracle")
    one = read_with(test_pipeline, store, (-1, 2))
    assert_equal_values(one, expected[-1, 2], "single element")
    assert store_keys(store) == []


NAN_DTYPES = ("float16", "float32", "float64", "complex64")


@pytest.mark.parametrize("write_empty_chunks", [False, True], ids=["wec0", "wec1"])
@pytest.mark.parametrize("layout_id", ["edge", "shards"])
@pytest.mark.parametrize("dtype", NAN_DTYPES)
def test_nan_fill(
    dtype: str,
    layout_id: str,
    write_empty_chunks: bool,
    store_factory: StoreFactory,
    test_pipeline: str,
) -> None:
    """NaN fill: NaN-only chunks count as empty; partly-NaN chunks are kept; NaNs read back."""
    layout = LAYOUTS[layout_id]
    store = store_factory()
    case = CodecCase("nan", 3, dtype, compressors=(ZstdCodec(level=1),))
    kwargs = layout.kwargs(case) | {
        "fill_value": float("nan"),
        "config": {"write_empty_chunks": write_empty_chunks},
    }
    arr = create_with(test_pipeline, store, **kwargs)
    assert np.isnan(arr.fill_value)
    assert np.isnan(read_with(test_pipeline, store)).all()

    data = random_data(layout.shape, dtype, np.random.default_rng(9))
    data[np.isnan(data)] = 0  # keep NaNs where we put them
    grid = layout.shards or layout.chunks
    all_keys = math.prod(-(-n // c) for n, c in zip(layout.shape, grid, strict=True))
    with using_pipeline(test_pipeline):
        arr[...] = data
        assert len(store_keys(store)) == all_keys
        # NaN over the whole first row of chunks/shards, plus one NaN elsewhere
        data[: grid[0], :] = np.nan
        data[-1, -1] = np.nan
        arr[: grid[0], :] = np.nan
        arr[-1, -1] = np.nan
    keys = store_keys(store)
    first_row = -(-layout.shape[1] // grid[1])
    assert len(keys) == (all_keys if write_empty_chunks else all_keys - first_row)
    got = read_with(test_pipeline, store)
    assert_round_trip(got, data, "after NaN writes")
    assert_round_trip(read_with(ORACLE_PIPELINE, store), data, "oracle reading it")


# --------------------------------------------------------------------------------------------
# all-empty shards
# --------------------------------------------------------------------------------------------

SHARD_LAYOUTS = ("shards", "shard-idx-start", "shard-idx-end", "shard-nested", "shards3d")


@pytest.mark.parametrize("write_empty_chunks", [False, True], ids=["wec0", "wec1"])
@pytest.mark.parametrize("case_id", ["v3-bytes-le", "v3-zstd-crc32c"])
@pytest.mark.parametrize("layout_id", SHARD_LAYOUTS)
def test_all_empty_shards(
    layout_id: str,
    case_id: str,
    write_empty_chunks: bool,
    store_factory: StoreFactory,
    test_pipeline: str,
) -> None:
    """Writing the fill value everywhere deletes every shard (wec=False) or keeps them all."""
    layout, case = LAYOUTS[layout_id], CODECS_BY_ID[case_id]
    kwargs = layout.kwargs(case) | {"config": {"write_empty_chunks": write_empty_chunks}}
    store = store_factory()
    arr = create_with(test_pipeline, store, **kwargs)
    grid = layout.shards or layout.chunks
    n_shards = math.prod(-(-n // c) for n, c in zip(layout.shape, grid, strict=True))
    data = random_data(layout.shape, case.dtype, np.random.default_rng(10))
    data[data == arr.fill_value] = 1
    with using_pipeline(test_pipeline):
        arr[...] = data
        assert len(store_keys(store)) == n_shards
        # empty exactly the first shard: only its key may go
        first = tuple(slice(0, c) for c in grid)
        arr[first] = arr.fill_value
        keys = store_keys(store)
        assert len(keys) == (n_shards if write_empty_chunks else n_shards - 1)
        arr[...] = arr.fill_value
    keys = store_keys(store)
    assert len(keys) == (n_shards if write_empty_chunks else 0), keys
    expected = fill_array(layout.shape, case.dtype, arr.fill_value)
    assert_equal_values(read_with(test_pipeline, store), expected, "after emptying")
    assert_equal_values(read_with(ORACLE_PIPELINE, store), expected, "oracle after emptying")


# --------------------------------------------------------------------------------------------
# byte-exact chunk encodings: edge chunks, byte order, memory order, transpose, crc32c
# --------------------------------------------------------------------------------------------


def expected_chunk_bytes(
    data: npt.NDArray[Any],
    fill_value: Any,
    chunk_index: tuple[int, ...],
    chunks: tuple[int, ...],
    *,
    byteorder: str = "<",
    order: str = "C",
    transpose: tuple[int, ...] | None = None,
    crc32c: bool = False,
) -> bytes:
    """The uncompressed encoding of one chunk: padded with the fill value to full size."""
    dtype = data.dtype.newbyteorder(byteorder) if data.dtype.itemsize > 1 else data.dtype
    chunk = np.full(chunks, fill_value, dtype=dtype)
    region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(chunk_index, chunks, strict=True))
    part = data[region]
    chunk[tuple(slice(0, n) for n in part.shape)] = part
    if transpose is not None:
        chunk = chunk.transpose(transpose)
    payload = chunk.tobytes(order=order)
    if crc32c:
        payload += google_crc32c.value(payload).to_bytes(4, "little")
    return payload


def _chunk_index(key: str) -> tuple[int, ...]:
    parts = key.split("/")
    if parts[0] == "c":  # v3 default encoding "c/0/1"
        return tuple(int(p) for p in parts[1:])
    return tuple(int(p) for p in key.split("."))  # v2 "0.1"


ENCODINGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # id: (create kwargs, expected_chunk_bytes kwargs)
    "v3-le": ({"serializer": BytesCodec(endian="little")}, {}),
    "v3-be": ({"serializer": BytesCodec(endian="big")}, {"byteorder": ">"}),
    "v3-transpose-be": (
        {"filters": [TransposeCodec(order=(1, 0))], "serializer": BytesCodec(endian="big")},
        {"byteorder": ">", "transpose": (1, 0)},
    ),
    "v3-crc32c": ({"compressors": [Crc32cCodec()]}, {"crc32c": True}),
    "v2-C": ({"zarr_format": 2}, {}),
    "v2-F": ({"zarr_format": 2, "order": "F"}, {"order": "F"}),
    "v2-bigendian": ({"zarr_format": 2, "big_endian": True}, {"byteorder": ">"}),
}


@pytest.mark.parametrize("dtype", ["int32", "float64", "uint16", "complex64", "bool"])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_chunk_bytes_exact(
    encoding: str, dtype: str, store_factory: StoreFactory, test_pipeline: str
) -> None:
    """Uncompressed chunks (edge chunks included) are byte-exact, full-size, fill-padded."""
    create, expect = ENCODINGS[encoding]
    create = dict(create)
    shape, chunks = (23, 29), (8, 7)
    np_dtype = np.dtype(dtype)
    if create.pop("big_endian", False):
        np_dtype = np_dtype.newbyteorder(">")
    kwargs: dict[str, Any] = {"shape": shape, "chunks": chunks, "dtype": np_dtype}
    if create.get("zarr_format") == 2:
        kwargs |= {"compressors": None, "filters": None}
    else:
        kwargs |= {"compressors": None, "filters": None, "serializer": BytesCodec()}
    kwargs |= create | {"fill_value": CUSTOM_FILLS.get(dtype, 1)}
    store = store_factory()
    arr = create_with(test_pipeline, store, **kwargs)
    data = random_data(shape, dtype, np.random.default_rng(12))
    region = (slice(0, 20), slice(3, 29))  # leaves chunk rows/cols partially unwritten
    with using_pipeline(test_pipeline):
        arr[region] = data[region]
    full = np.full(shape, arr.fill_value, dtype=np.dtype(dtype))
    full[region] = data[region]
    keys = store_keys(store)
    assert len(keys) == 3 * 5
    for key in keys:
        want = expected_chunk_bytes(full, arr.fill_value, _chunk_index(key), chunks, **expect)
        assert get_bytes(store, key) == want, f"chunk {key} bytes"
    assert_round_trip(read_with(test_pipeline, store), full, "read back")


# --------------------------------------------------------------------------------------------
# corruption never decodes silently
# --------------------------------------------------------------------------------------------

CORRUPTIBLE = {
    "crc32c": {"compressors": [Crc32cCodec()]},
    "zstd-checksum": {"compressors": [ZstdCodec(checksum=True)]},
    "zstd-crc32c": {"compressors": [ZstdCodec(), Crc32cCodec()]},
    "shard-index-crc32c": {
        "chunks": (16, 16),
        "serializer": ShardingCodec(chunk_shape=(8, 8), index_location="end"),
    },
    "shard-inner-crc32c": {
        "chunks": (16, 16),
        "serializer": ShardingCodec(
            chunk_shape=(8, 8), codecs=[BytesCodec(), Crc32cCodec()], index_location="start"
        ),
    },
}


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("case_id", list(CORRUPTIBLE))
def test_corruption_is_detected(
    case_id: str, where: str, store_factory: StoreFactory, test_pipeline: str
) -> None:
    """Flipping one byte of a checksummed chunk/shard makes reads fail, never return data."""
    kwargs: dict[str, Any] = {
        "shape": (32, 32),
        "chunks": (16, 16),
        "dtype": "float32",
        "filters": None,
        "compressors": None,
        "serializer": BytesCodec(),
    }
    kwargs |= CORRUPTIBLE[case_id]
    store = store_factory()
    arr = create_with(ORACLE_PIPELINE, store, **kwargs)
    arr[...] = np.arange(32 * 32, dtype="float32").reshape(32, 32)
    key = "c/1/0"
    path = Path(store.root) / key
    raw = bytearray(path.read_bytes())
    if case_id == "shard-index-crc32c":
        pos = {"first": len(raw) - 40, "middle": len(raw) - 20, "last": len(raw) - 1}[where]
    elif case_id == "shard-inner-crc32c":
        index_len = 4 * 16 + 4
        pos = {"first": index_len, "middle": (index_len + len(raw)) // 2, "last": len(raw) - 1}
        pos = pos[where]
    else:
        pos = {"first": 0, "middle": len(raw) // 2, "last": len(raw) - 1}[where]
    raw[pos] ^= 0x5A
    path.write_bytes(bytes(raw))

    for pipeline in (ORACLE_PIPELINE, test_pipeline):
        try:
            out = read_with(pipeline, store, (slice(16, 32), slice(0, 16)))
        except Exception:
            continue
        pytest.fail(f"{pipeline} decoded a corrupted {case_id} chunk silently: {out!r}")
    # untouched chunks still read fine
    good = read_with(test_pipeline, store, (slice(0, 16), slice(0, 16)))
    assert_equal_values(good, np.arange(32 * 32, dtype="float32").reshape(32, 32)[:16, :16])


# --------------------------------------------------------------------------------------------
# degenerate shapes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zero_dimensional(
    zarr_format: int, store_factory: StoreFactory, test_pipeline: str
) -> None:
    """0-d arrays: fill when unwritten, the scalar after a write, same bytes as the oracle."""
    stores = {}
    for pipeline in (test_pipeline, ORACLE_PIPELINE):
        store = store_factory()
        arr = create_with(
            pipeline, store, shape=(), dtype="float64", fill_value=1.5, zarr_format=zarr_format
        )
        with using_pipeline(pipeline):
            assert arr[()] == 1.5
            arr[()] = 3.25
            assert arr[...] == 3.25
        stores[pipeline] = store
    for reader in (test_pipeline, ORACLE_PIPELINE):
        for store in stores.values():
            got = read_with(reader, store, ())
            assert got == 3.25 and np.asarray(got).dtype == np.float64
    assert store_keys(stores[test_pipeline]) == store_keys(stores[ORACLE_PIPELINE])


@pytest.mark.parametrize(
    ("shape", "chunks", "shards"),
    [
        ((0, 5), (2, 2), None),
        ((7, 0), (3, 3), (6, 3)),
        ((5, 6), (16, 16), None),
        ((5, 6), (4, 4), (32, 32)),
        ((1,), (1,), None),
        ((9,), (1,), (3,)),
    ],
    ids=["zero-rows", "zero-cols-sharded", "chunk-gt-shape", "shard-gt-shape", "1x1", "1-in-3"],
)
def test_degenerate_shapes(
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None,
    store_factory: StoreFactory,
    test_pipeline: str,
) -> None:
    """Zero-length axes, chunks/shards larger than the array, single-element chunks."""
    stores = {}
    data = random_data(shape, "int32", np.random.default_rng(13))
    for pipeline in (test_pipeline, ORACLE_PIPELINE):
        store = store_factory()
        arr = create_with(pipeline, store, shape=shape, chunks=chunks, shards=shards, dtype="int32")
        with using_pipeline(pipeline):
            arr[...] = data
        stores[pipeline] = store
    for reader in (test_pipeline, ORACLE_PIPELINE):
        for store in stores.values():
            assert_same_array(read_with(reader, store), data, f"{reader}")
    assert store_keys(stores[test_pipeline]) == store_keys(stores[ORACLE_PIPELINE])
