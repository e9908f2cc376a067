"""Writes that zarr's own pipeline refuses, cuzarr refuses; what zarr keeps, cuzarr keeps.

Each test here failed before the fix it guards (issue 12, items 12, 14, 15).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.storage import MemoryStore

PIPE = {"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}

pytestmark = pytest.mark.filterwarnings("ignore:The .generic. unit:DeprecationWarning")
ORACLE = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}


def _write(config: dict[str, str], shards: Any, selection: Any, value: Any,
           dtype: str = "f8") -> tuple[Any, np.ndarray | None]:
    """(the error, or None; the array after the write, or None) of one write."""
    with zarr.config.set(config):
        arr = zarr.create_array(MemoryStore(), shape=(40, 6), chunks=(20, 3), shards=shards,
                                dtype=dtype, fill_value=0)
        arr[:] = np.arange(240).reshape(40, 6)
        try:
            arr[selection] = value
        except Exception as e:
            return e, None
        return None, arr[:]


# -- 12. values zarr refuses ----------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(shards=st.sampled_from([None, (40, 6), (20, 6)]),
       rows=st.tuples(st.integers(0, 40), st.integers(0, 40)),
       cols=st.tuples(st.integers(0, 6), st.integers(0, 6)),
       shape=st.lists(st.integers(0, 40), min_size=0, max_size=3),
       ones=st.lists(st.booleans(), min_size=3, max_size=3))
def test_broadcast_writes_succeed_and_fail_as_in_zarr(shards: Any, rows: tuple[int, int],
                                                      cols: tuple[int, int], shape: list[int],
                                                      ones: list[bool]) -> None:
    """Any value shape against any box: cuzarr succeeds where zarr succeeds (with the same
    contents) and raises the same class of error where zarr raises. One exception: a value
    numpy itself cannot broadcast to the box, which zarr's sharding can still write without
    an error (it slices the value by each inner chunk first: (1, 4) into a (1, 5) box over
    inner chunks of 3 columns writes column 3 twice). cuzarr may refuse that write with
    ValueError, as numpy does, instead of storing values the caller never gave."""
    selection = np.s_[min(rows) : max(rows), min(cols) : max(cols)]
    value_shape = tuple(1 if one else n for n, one in zip(shape, ones, strict=False))
    value = np.arange(int(np.prod(value_shape)), dtype="f8").reshape(value_shape) + 1000
    zarr_error, zarr_result = _write(ORACLE, shards, selection, value)
    error, result = _write(PIPE, shards, selection, value)
    if zarr_error is not None:
        assert error is not None, f"zarr raised {zarr_error!r}; cuzarr wrote"
        assert isinstance(error, type(zarr_error)), (error, zarr_error)
    elif error is not None and not _numpy_broadcasts(value, selection):
        assert isinstance(error, ValueError), error  # zarr's silent mis-broadcast, refused
    else:
        assert error is None, f"zarr wrote; cuzarr raised {error!r}"
        np.testing.assert_array_equal(result, zarr_result)


def _numpy_broadcasts(value: np.ndarray, selection: Any) -> bool:
    """Whether numpy accepts `value` for `selection` of the (40, 6) array."""
    try:
        np.zeros((40, 6))[selection] = value
    except ValueError:
        return False
    return True


def test_a_value_numpy_cannot_broadcast_is_refused_not_written_twice() -> None:
    """zarr writes (1, 4) into a (1, 5) box of a shard with 3-column inner chunks, storing
    column 3's value in column 4 too; cuzarr refuses it (numpy's ValueError)."""
    value = np.arange(4.0).reshape(1, 4) + 1000
    zarr_error, zarr_result = _write(ORACLE, (40, 6), np.s_[0:1, 0:5], value)
    assert zarr_error is None and zarr_result is not None
    assert zarr_result[0, 4] == 1003  # zarr's silent duplicate
    error, _ = _write(PIPE, (40, 6), np.s_[0:1, 0:5], value)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("shards", [None, (40, 6)])
def test_a_sharded_37_row_write_refuses_a_one_row_value(shards: Any) -> None:
    """(1, 3) broadcasts to the shard's (37, 3) selection but not to its second inner
    chunk's 17 rows, once zarr has sliced the value by that chunk's rows."""
    zarr_error, _ = _write(ORACLE, shards, np.s_[0:37, 0:3], np.ones((1, 3)))
    error, _ = _write(PIPE, shards, np.s_[0:37, 0:3], np.ones((1, 3)))
    assert isinstance(zarr_error, ValueError) and isinstance(error, ValueError)


@pytest.mark.parametrize("shards", [None, (40, 6)])
def test_masked_arrays_are_refused_not_unmasked(shards: Any) -> None:
    value = np.ma.masked_array(np.ones((37, 3)), mask=np.eye(37, 3, dtype=bool))
    zarr_error, _ = _write(ORACLE, shards, np.s_[0:37, 0:3], value)
    error, _ = _write(PIPE, shards, np.s_[0:37, 0:3], value)
    assert isinstance(zarr_error, ValueError)
    assert isinstance(error, ValueError) and "mask" in str(error)


# -- 14. a boundary shard keeps what lies beyond the array's edge ---------------------------------


@pytest.mark.parametrize("codecs", ["raw", "zstd"])
@pytest.mark.parametrize("write", ["whole", "boundary", "inside"])
def test_shrink_write_grow_keeps_what_zarr_keeps(tmp_path: Path, codecs: str, write: str) -> None:
    results = []
    for name, config in (("zarr", ORACLE), ("cuzarr", PIPE)):
        with zarr.config.set(config):
            arr = zarr.create_array(str(tmp_path / name), shape=(16, 6), chunks=(4, 3),
                                    shards=(8, 6), dtype="i4", fill_value=0,
                                    compressors=ZstdCodec() if codecs == "zstd" else None)
            arr[:] = np.arange(1, 97).reshape(16, 6)
            arr.resize((6, 6))
            selection = {"whole": np.s_[:], "boundary": np.s_[4:6], "inside": np.s_[0:2]}
            arr[selection[write]] = -5
            arr.resize((16, 6))
            results.append(arr[:])
    np.testing.assert_array_equal(results[1], results[0])
    if write == "whole":  # rows 6 and 7 of the boundary shard were kept, as zarr keeps them
        np.testing.assert_array_equal(results[1][6:8], np.arange(1, 97).reshape(16, 6)[6:8])


# -- 15. big-endian datetime64 / timedelta64 of the generic unit (zarr v2) ----------------------


@pytest.mark.parametrize("dtype", [">M8", ">m8", "<M8", ">M8[s]", ">m8[ms]"])
@pytest.mark.parametrize("compressor", [None, "zstd"])
@pytest.mark.parametrize("sharded", [False, True])
def test_datetimes_of_any_byte_order_round_trip(tmp_path: Path, dtype: str, compressor: Any,
                                                sharded: bool) -> None:
    """numpy's casts between byte orders do not swap the generic unit's bytes; what cuzarr
    writes, zarr reads (and the other way round), value for value."""
    fmt = 3 if sharded else 2
    if sharded and dtype[0] == ">":  # v3 keeps byte order in the bytes codec
        kwargs: dict[str, Any] = {"serializer": BytesCodec(endian="big"), "shards": (10,)}
    elif sharded:
        kwargs = {"shards": (10,)}
    else:
        kwargs = {}
    if compressor == "zstd":
        kwargs["compressors"] = ZstdCodec() if fmt == 3 else __import__("numcodecs").Zstd()
    else:
        kwargs["compressors"] = None
    values = np.array([1, 2, 3, 1000, -5, 7, 2**40, 9, 10, 11], dtype="i8")
    data = values.astype(_as_int(np.dtype(dtype))).view(dtype)  # built without numpy's cast
    for writer, reader in ((PIPE, ORACLE), (ORACLE, PIPE), (PIPE, PIPE)):
        path = tmp_path / f"{writer is PIPE}-{reader is PIPE}"
        with zarr.config.set(writer):
            arr = zarr.create_array(str(path), shape=(10,), chunks=(5,), dtype=dtype,
                                    zarr_format=fmt, **kwargs)
            arr[:] = data
            arr[7:9] = data[7:9]  # a partial write merges with what is stored
        with zarr.config.set(reader):
            got = zarr.open_array(str(path), mode="r")[:]
        assert got.view(_as_int(got.dtype)).tolist() == values.tolist(), (writer, reader)


def _as_int(dtype: np.dtype) -> np.dtype:
    """The integer dtype with `dtype`'s size and byte order."""
    return np.dtype("i8").newbyteorder(dtype.byteorder if dtype.byteorder in "<>" else "=")


@pytest.mark.parametrize("dtype", [">M8", ">m8", ">M8[2s]", "<m8", ">M8[us]"])
@pytest.mark.parametrize("fmt", [2, 3])
def test_datetime_fill_of_unwritten_chunks(dtype: str, fmt: int) -> None:
    """Chunks never written read as NaT, whatever the byte order (the fill value was made
    in the stored order by numpy's cast, which does not swap the generic unit's bytes)."""
    counts = np.array([0, 1, -2, 100], dtype="i8")
    results = []
    for config in (ORACLE, PIPE):
        with zarr.config.set(config):
            data = counts.astype(_as_int(np.dtype(dtype))).view(dtype)
            arr = zarr.create_array(MemoryStore(), data=data, chunks=(2,), zarr_format=fmt,
                                    compressors=None)
            arr.resize((6,))
            got = zarr.open_array(arr.store, mode="r")[:]
            results.append(got.view(_as_int(got.dtype)).tolist())
    assert results[1] == results[0] == [0, 1, -2, 100, -(2**63), -(2**63)]
