"""Reads and writes leave no reference cycle holding their arrays.

A read's output and a write's value must be freed the moment the caller drops them, not
when Python's cyclic collector next runs: a training loop of large reads would otherwise
hold two outputs at once, and each read would fault in fresh pages (measured: 4-5x the
time of a whole read in a fresh process on this VM) instead of reusing the ones just
freed. The cyclic collector is off in these tests, so only reference counts free memory.
"""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

import cuzarr
from parity import using_pipeline

SHAPE = (96, 80)


@pytest.fixture(autouse=True)
def _no_cyclic_collector(test_pipeline: str) -> Iterator[None]:
    with using_pipeline(test_pipeline):
        gc.collect()
        gc.disable()
        try:
            yield
        finally:
            gc.enable()


def _array(store: Any, layout: str) -> zarr.Array:
    if layout == "sharded":
        return zarr.create_array(store, shape=SHAPE, chunks=(16, 16), shards=(32, 48),
                                 dtype="float32", compressors=[ZstdCodec()], fill_value=0)
    if layout == "v2":
        return zarr.create_array(store, shape=SHAPE, chunks=(32, 32), dtype="float32",
                                 zarr_format=2, compressors=numcodecs.Blosc(cname="lz4"),
                                 fill_value=0)
    return zarr.create_array(store, shape=SHAPE, chunks=(32, 32), dtype="float32",
                             compressors=[BloscCodec(cname="lz4", shuffle="shuffle")],
                             fill_value=0)


def _data() -> np.ndarray:
    return np.arange(np.prod(SHAPE), dtype="float32").reshape(SHAPE)


def _freed(make: Any) -> bool:
    """Whether the array `make()` returns is freed once dropped. A pool thread may still
    hold its finished work item for a moment after the caller resumes, so this waits up
    to a second; an array in a reference cycle is never freed with the collector off."""
    ref = weakref.ref(make())
    deadline = time.monotonic() + 1.0
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.001)
    return ref() is None


@pytest.mark.parametrize("layout", ["plain", "sharded", "v2"])
@pytest.mark.parametrize("kind", ["local", "memory"])
def test_read_outputs_freed_when_dropped(store_factory: Any, layout: str, kind: str) -> None:
    arr = _array(store_factory(kind), layout)
    arr[...] = _data()
    assert _freed(lambda: arr[...])
    assert _freed(lambda: arr[5:70, 3:77])
    assert _freed(lambda: arr.get_orthogonal_selection(([1, 50, 90], slice(None))))
    assert _freed(lambda: cuzarr.read_patches(arr, np.array([[0, 0], [40, 30]]), (20, 20)))
    np.testing.assert_array_equal(arr[...], _data())


@pytest.mark.parametrize("layout", ["plain", "sharded", "v2"])
@pytest.mark.parametrize("kind", ["local", "memory"])
def test_written_values_freed_when_dropped(store_factory: Any, layout: str, kind: str) -> None:
    arr = _array(store_factory(kind), layout)

    def write(selection: Any, value: np.ndarray) -> np.ndarray:
        arr[selection] = value
        return value

    assert _freed(lambda: write(Ellipsis, _data()))
    assert _freed(lambda: write((slice(3, 40), slice(10, 20)), np.ones((37, 10), "float32")))
    expected = _data()
    expected[3:40, 10:20] = 1
    np.testing.assert_array_equal(arr[...], expected)
