"""Writes from cupy arrays, compressed on a real GPU (nvCOMP, our checksum and shuffle
kernels), read back by zarr's own CPU pipeline; and device-made chunks decoded by the
host libraries directly. These check what the CI stand-ins assume about nvCOMP: that its
RAW deflate, LZ4 and zstd outputs are the standard streams. Skipped without a CUDA device."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, GzipCodec

import cuzarr
from cuzarr.batch import ByteBatch
from cuzarr.codecs.bytes_to_bytes import BloscStage, GzipStage, Lz4Stage, ZlibStage

pytestmark = pytest.mark.cuda

CASES = {
    "gzip": (3, {"compressors": GzipCodec()}),
    "v2-zlib": (2, {"compressors": numcodecs.Zlib(level=1)}),
    "v2-lz4": (2, {"compressors": numcodecs.LZ4()}),
    "blosc-lz4-shuffle": (3, {"compressors": BloscCodec(cname="lz4", shuffle="shuffle")}),
    "blosc-zstd-bitshuffle": (3, {"compressors": BloscCodec(cname="zstd",
                                                            shuffle="bitshuffle")}),
    "blosc-zlib-shuffle": (3, {"compressors": BloscCodec(cname="zlib", shuffle="shuffle")}),
    "v2-blosc-lz4-noshuffle": (2, {"compressors": numcodecs.Blosc("lz4", shuffle=0)}),
}


def _device() -> Any:
    from cuzarr.devices import _cuda_device

    return _cuda_device()


@pytest.mark.parametrize("case", sorted(CASES))
def test_gpu_writes_read_back_with_zarr(case: str, tmp_path: Path) -> None:
    import cupy as cp

    zarr_format, kwargs = CASES[case]
    data = np.random.default_rng(0).normal(size=(300, 257)).round(1).astype("<f4")
    path = str(tmp_path / "a")
    device = _device()
    before = dict(device.host_fallbacks)
    with cuzarr.enable(gpu=True):
        arr = zarr.create_array(path, shape=data.shape, chunks=(64, 64), dtype=data.dtype,
                                zarr_format=zarr_format, **kwargs)
        arr[:] = cp.asarray(data)
    assert device.host_fallbacks == before
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        np.testing.assert_array_equal(zarr.open_array(path)[:], data)


def _items(sizes: list[int]) -> ByteBatch:
    rng = np.random.default_rng(1)
    raws = [np.cumsum(rng.integers(-3, 4, n)).astype(np.uint8) for n in sizes]
    return ByteBatch.from_buffers(raws)


@pytest.mark.parametrize("name", ["gzip", "zlib", "lz4"])
def test_gpu_frames_decode_with_host_libraries(name: str) -> None:
    """CRC-32/ISIZE (gzip), Adler-32 (zlib) and the size prefix (LZ4), checked by the
    host decoders, on odd sizes up to nvCOMP's largest deflate chunk."""
    import cupy as cp

    device = _device()
    stage = {"gzip": GzipStage(), "zlib": ZlibStage(), "lz4": Lz4Stage(numcodecs.LZ4())}[name]
    decode = {"gzip": gzip.decompress, "zlib": zlib.decompress,
              "lz4": lambda b: bytes(numcodecs.LZ4().decode(b))}[name]
    host = _items([1, 7, 4097, 65_536, 30_001])
    batch = ByteBatch(cp.asarray(host.slab), host.offsets, host.sizes)
    out = device.to_host(device.encode_stage(stage, batch, 1))
    for i in range(len(host)):
        assert decode(bytes(out.item(i))) == bytes(host.item(i))


@pytest.mark.parametrize("cname", ["lz4", "zstd", "zlib"])
@pytest.mark.parametrize("shuffle", [0, 1, 2])
def test_gpu_blosc_chunks_decode_with_c_blosc(cname: str, shuffle: int) -> None:
    import cupy as cp

    device = _device()
    codec = numcodecs.Blosc(cname=cname, clevel=5, shuffle=shuffle, typesize=4,
                            blocksize=16_384 if cname == "zlib" else 0)
    host = _items([100, 50_003, 1 << 20, 40_000])
    batch = ByteBatch(cp.asarray(host.slab), host.offsets, host.sizes)
    out = device.to_host(device.encode_stage(BloscStage(codec), batch, 1))
    for i in range(len(host)):
        assert bytes(numcodecs.Blosc().decode(bytes(out.item(i)))) == bytes(host.item(i))
