"""Reads into cupy outputs through cuzarr's cuda device on a real GPU, against the source
data and zarr's own reading. Skipped without a CUDA device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)

import cuzarr
import cuzarr.devices

pytestmark = pytest.mark.cuda

CASES = {
    "zstd": {"compressors": ZstdCodec()},
    "zstd-checksum-crc32c": {"compressors": [ZstdCodec(checksum=True), Crc32cCodec()]},
    "gzip": {"compressors": GzipCodec()},
    "raw-big-endian": {"serializer": BytesCodec(endian="big"), "compressors": None},
    "transpose-zstd": {"filters": [TransposeCodec(order=(1, 0))], "compressors": ZstdCodec()},
    "blosc-lz4-shuffle": {"compressors": BloscCodec(cname="lz4", shuffle="shuffle")},
    "blosc-zstd-bitshuffle": {"compressors": BloscCodec(cname="zstd", shuffle="bitshuffle")},
    "blosclz": {"compressors": BloscCodec(cname="blosclz")},
    "blosclz-bitshuffle": {"compressors": BloscCodec(cname="blosclz", shuffle="bitshuffle")},
    "sharded-zstd": {"serializer": ShardingCodec(chunk_shape=(64, 64),
                                                 codecs=[BytesCodec(), ZstdCodec()]),
                     "compressors": None},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gpu_read_matches(case: str, tmp_path: Path) -> None:
    import cupy as cp

    data = np.random.default_rng(0).normal(size=(300, 257)).astype("<f4")
    if case.startswith("blosclz"):  # data blosclz compresses (c-blosc stores noise raw)
        data = data.round(1)
    path = str(tmp_path / "a")
    zarr.create_array(path, shape=data.shape, chunks=(128, 128), dtype=data.dtype,
                      **CASES[case])[:] = data
    fallbacks = dict(cuzarr.devices._cuda_device().host_fallbacks)
    with cuzarr.enable(gpu=True):
        arr = zarr.open_array(path)
        full = arr[:]
        part = arr[17:250, 3:200:3]
    assert isinstance(full, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(full), data)
    np.testing.assert_array_equal(cp.asnumpy(part), data[17:250, 3:200:3])
    if case.startswith("blosc"):  # blosclz too: our kernel, not the host
        assert cuzarr.devices._cuda_device().host_fallbacks == fallbacks


def test_gpu_corrupt_chunk_names_key(tmp_path: Path) -> None:
    data = np.arange(256 * 256, dtype="<i4").reshape(256, 256)
    path = tmp_path / "a"
    zarr.create_array(str(path), shape=data.shape, chunks=(128, 128), dtype=data.dtype,
                      compressors=ZstdCodec())[:] = data
    victim = path / "c" / "1" / "0"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2 :] = b"\x00" * (len(raw) - len(raw) // 2)
    victim.write_bytes(bytes(raw))
    with cuzarr.enable(gpu=True), pytest.raises(cuzarr.ChunkDecodeError, match="c/1/0"):
        zarr.open_array(str(path))[:]


@pytest.mark.parametrize("sharded", [False, True])
def test_gpu_read_from_a_memory_store_through_pinned_slabs(sharded: bool) -> None:
    """A store kvikio cannot read: fetched into pinned host slabs, one upload per wave."""
    import cupy as cp
    from zarr.storage import MemoryStore

    device = cuzarr.devices._cuda_device()
    slab = device.host_empty(1 << 20)
    attributes = cp.cuda.runtime.pointerGetAttributes(slab.ctypes.data)
    assert attributes.type == cp.cuda.runtime.memoryTypeHost  # page-locked, not pageable
    data = np.random.default_rng(5).normal(size=(300, 257)).astype("<f4")
    store = MemoryStore()
    kwargs = dict(CASES["sharded-zstd" if sharded else "zstd"])
    zarr.create_array(store, shape=data.shape, chunks=(128, 128), dtype=data.dtype,
                      **kwargs)[:] = data
    with cuzarr.enable(gpu=True):
        got = zarr.open_array(store, mode="r")[5:290, 1:250]
    np.testing.assert_array_equal(cp.asnumpy(got), data[5:290, 1:250])


def test_transposed_chunks_scatter_through_tiles_on_the_gpu(tmp_path: Path) -> None:
    """The tiled box copy (transposed chunks, both directions) on the device: writes of a
    cupy value into chunks stored transposed, then reads back, against the CPU."""
    import cupy as cp

    data = np.random.default_rng(6).normal(size=(300, 257)).astype("<f4")
    path = str(tmp_path / "t")
    with cuzarr.enable(gpu=True):
        arr = zarr.create_array(path, shape=data.shape, chunks=(128, 96), dtype=data.dtype,
                                filters=[TransposeCodec(order=(1, 0))],
                                compressors=ZstdCodec())
        arr[:] = cp.asarray(data)
        got = arr[7:300, 2:250]
    np.testing.assert_array_equal(cp.asnumpy(got), data[7:300, 2:250])
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        np.testing.assert_array_equal(zarr.open_array(path)[:], data)
