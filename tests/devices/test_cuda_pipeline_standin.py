"""Whole reads and writes through PhasedCodecPipeline with device="cuda", on the stand-in
cuda device (numpy for cupy, the nvCOMP double, the host-emulation launcher): every
phase of the cuda path except the real cupy/nvCOMP calls, against zarr's own results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, ShardingCodec, ZstdCodec

import cuzarr
import cuzarr.devices
import nvcomp_double
from cuzarr.devices.cuda import CudaDevice

CASES = {
    "zstd": {"compressors": ZstdCodec()},
    "zstd-crc32c": {"compressors": [ZstdCodec(), Crc32cCodec()]},
    "gzip": {"compressors": GzipCodec()},
    "big-endian-raw": {"serializer": BytesCodec(endian="big"), "compressors": None},
    "blosc (host path)": {"compressors": BloscCodec(cname="lz4")},
    "sharded-zstd": {
        "serializer": ShardingCodec(chunk_shape=(8, 10), codecs=[BytesCodec(), ZstdCodec()]),
        "compressors": None,
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cuda_standin_matches_zarr(case: str, tmp_path: Path, standin: CudaDevice,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    rng = np.random.default_rng(0)
    data = rng.normal(size=(45, 61)).round(2).astype("<f8")
    kwargs = dict(CASES[case])
    chunks = (16, 20)  # the shard shape in the sharded case
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        arr = zarr.create_array(str(tmp_path / "a"), shape=data.shape, chunks=chunks,
                                dtype=data.dtype, **kwargs)
        arr[:] = data
        arr[3:20, 7:40] = 0.5
        expected = data.copy()
        expected[3:20, 7:40] = 0.5
        np.testing.assert_array_equal(arr[:], expected)
        np.testing.assert_array_equal(arr[10:33, ::3], expected[10:33, ::3])
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"))[:], expected)
    if case in ("zstd", "gzip", "zstd-crc32c", "sharded-zstd"):
        assert nvcomp_double.Codec.calls, "the nvCOMP path was not taken"
    if case.startswith("blosc"):
        assert standin.host_fallbacks.get("blosc")
