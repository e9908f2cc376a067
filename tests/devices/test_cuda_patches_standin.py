"""read_patches on the stand-in cuda device: one nvCOMP batch of the distinct chunks,
scattered to every patch by box_copy, against the stored data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BytesCodec, ShardingCodec, ZstdCodec

import cuzarr
import cuzarr.devices
import nvcomp_double
from cuzarr.devices.cuda import CudaDevice

LAYOUTS: dict[str, dict[str, Any]] = {
    "plain": {"chunks": (16, 16), "compressors": ZstdCodec()},
    "sharded": {"chunks": (32, 32), "compressors": None, "serializer": ShardingCodec(
        chunk_shape=(16, 16), codecs=[BytesCodec(), ZstdCodec()])},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_patches_decode_each_chunk_once_on_the_device(
        tmp_path: Path, either_standin: CudaDevice, monkeypatch: pytest.MonkeyPatch,
        layout: str) -> None:
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: either_standin)
    rng = np.random.default_rng(0)
    data = rng.normal(size=(64, 64)).astype("<f4")
    arr = zarr.create_array(str(tmp_path / "a"), shape=data.shape, dtype="<f4",
                            **LAYOUTS[layout])
    arr[:] = data
    arr2 = zarr.open_array(str(tmp_path / "a"))
    starts = np.array([[0, 0], [3, 3], [5, 1], [40, 40], [41, 44]])
    nvcomp_double.Codec.calls.clear()
    either_standin.launcher.launches.clear()
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        got = cuzarr.read_patches(arr2, starts, (8, 8))
    expected = np.stack([data[a : a + 8, b : b + 8] for a, b in starts.tolist()])
    np.testing.assert_array_equal(np.asarray(got), expected)
    # chunks (0, 0) and (2, 2), (2, 3), (3, 2), (3, 3): five distinct, each decoded once
    decoded = sum(n for algorithm, n in nvcomp_double.Codec.calls if algorithm == "Zstd")
    assert decoded == 5, nvcomp_double.Codec.calls
