"""The `phase_timers` setting and `cuzarr.phase_times()`."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

import cuzarr
from cuzarr.timers import timed
from parity import using_pipeline


@pytest.fixture(autouse=True)
def _clean_table(test_pipeline: str) -> Iterator[None]:
    cuzarr.phase_times(reset=True)
    with using_pipeline(test_pipeline):
        yield
    cuzarr.config.reset()
    cuzarr.config.options()  # the timers follow the setting again: off
    cuzarr.phase_times(reset=True)


def _array(store: Any, shards: tuple[int, int] | None = None) -> zarr.Array:
    return zarr.create_array(store, shape=(128, 96), chunks=(32, 32), shards=shards,
                             dtype="float32", compressors=[ZstdCodec()], fill_value=0)


def test_off_by_default_records_nothing(store_factory: Any) -> None:
    arr = _array(store_factory())
    arr[...] = np.ones((128, 96), "float32")
    np.testing.assert_array_equal(arr[...], 1)
    assert cuzarr.phase_times() == {}


@pytest.mark.parametrize("shards", [None, (64, 96)])
def test_read_and_write_phases(store_factory: Any, shards: tuple[int, int] | None) -> None:
    cuzarr.config.set(phase_timers=True)
    arr = _array(store_factory(), shards)
    data = np.arange(128 * 96, dtype="float32").reshape(128, 96)
    arr[...] = data
    written = cuzarr.phase_times(reset=True)
    assert {"gather", "encode", "store writes", "write call"} <= set(written)
    np.testing.assert_array_equal(arr[...], data)
    read = cuzarr.phase_times()
    assert {"io", "decode", "scatter", "read call"} <= set(read)
    assert "encode" not in read  # reset started a new table
    for name, phase in read.items():
        assert phase.calls >= 1
        assert phase.wall_s >= 0
        if name == "read call":
            assert math.isnan(phase.cpu_s)
        else:  # a thread's CPU time never exceeds its wall time
            assert 0 <= phase.cpu_s <= phase.wall_s + 2e-3


def test_a_nested_phase_counts_once() -> None:
    @timed("test inner")
    def inner() -> None:
        time.sleep(0.05)

    @timed("test outer")
    def outer() -> None:
        inner()

    cuzarr.config.set(phase_timers=True)
    cuzarr.config.options()
    outer()
    table = cuzarr.phase_times()
    assert table["test inner"].wall_s >= 0.05
    assert table["test outer"].wall_s < 0.02
    assert table["test outer"].calls == table["test inner"].calls == 1


def test_bad_value_names_the_setting() -> None:
    with pytest.raises(cuzarr.ConfigError, match="phase_timers"):
        cuzarr.config.set(phase_timers="sometimes")
