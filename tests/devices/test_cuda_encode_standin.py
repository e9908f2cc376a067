"""Device encode of gzip, zlib, numcodecs LZ4 and zstd on the stand-in cuda device
(numpy for cupy, the nvCOMP double, the host-emulation launcher): frames assembled around
nvCOMP's raw streams, checksums from our kernels, decoded by the host libraries that
zarr on the CPU uses (which check the CRC-32 / Adler-32 trailers)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs.numcodecs
from hypothesis import given, settings
from hypothesis import strategies as st

import cuzarr
import cuzarr.devices
import nvcomp_double
from cuzarr.batch import ByteBatch
from cuzarr.codecs.bytes_to_bytes import BytesStage, GzipStage, Lz4Stage, ZlibStage, ZstdStage
from cuzarr.devices.cuda import CudaDevice
from cuzarr.workers import StageError

STAGES: dict[str, tuple[BytesStage, str, Callable[[bytes], bytes]]] = {
    "gzip": (GzipStage(), "Deflate", gzip.decompress),
    "zlib": (ZlibStage(level=1), "Deflate", zlib.decompress),
    "lz4": (Lz4Stage(numcodecs.LZ4()), "LZ4", lambda b: bytes(numcodecs.LZ4().decode(b))),
    "zstd": (ZstdStage(), "Zstd", lambda b: bytes(numcodecs.Zstd().decode(b))),
}


def _items(sizes: list[int], seed: int) -> list[bytes]:
    """Compressible data with a random part, so checksums see every byte value."""
    rng = np.random.default_rng(seed)
    return [np.cumsum(rng.integers(-3, 4, n)).astype(np.uint8).tobytes() for n in sizes]


def _unaligned_batch(raws: list[bytes], gap: int) -> ByteBatch:
    """Items `gap` bytes apart in one slab, so most start at odd addresses."""
    slab, offsets, pos = [], [], 0
    for raw in raws:
        slab.append(b"\x00" * gap)
        pos += gap
        offsets.append(pos)
        slab.append(raw)
        pos += len(raw)
    return ByteBatch(np.frombuffer(b"".join(slab) + b"\x00", dtype=np.uint8),
                     np.array(offsets, dtype=np.int64),
                     np.array([len(r) for r in raws], dtype=np.int64))


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(STAGES)),
       sizes=st.lists(st.integers(1, 40_000), min_size=1, max_size=5),
       gap=st.integers(0, 9), seed=st.integers(0, 2**32 - 1))
def test_device_frames_decode_on_the_host(name: str, sizes: list[int], gap: int,
                                          seed: int) -> None:
    """Every item in one nvCOMP call; the host decoders (which verify gzip's CRC-32 and
    ISIZE, zlib's Adler-32, LZ4's size prefix) give the data back."""
    from harness import HostLauncher

    from cuzarr.devices.nvcomp_backend import NvcompBackend

    device = CudaDevice(np, NvcompBackend(nvcomp_double), HostLauncher())
    stage, algorithm, decode = STAGES[name]
    raws = _items(sizes, seed)
    nvcomp_double.Codec.calls.clear()
    out = device.to_host(device.encode_stage(stage, _unaligned_batch(raws, gap), 1))
    assert [decode(bytes(out.item(i))) for i in range(len(raws))] == raws
    assert nvcomp_double.Codec.calls == [(f"{algorithm}-encode", len(raws))]
    assert device.host_fallbacks == {}
    assert out.slab.size == int(out.sizes.sum())  # packed before the copy to the host


def test_gzip_and_zlib_frames_are_standard(standin: CudaDevice) -> None:
    """Header bytes and trailers as the formats define them."""
    raws = _items([1000, 7], 3)
    batch = ByteBatch.from_buffers(raws)
    gz = standin.to_host(standin.encode_stage(GzipStage(), batch, 1))
    member = bytes(gz.item(0))
    assert member[:4] == b"\x1f\x8b\x08\x00" and member[9] == 0xFF
    assert int.from_bytes(member[-8:-4], "little") == zlib.crc32(raws[0])
    assert int.from_bytes(member[-4:], "little") == 1000
    for level, flg in [(1, 0x01), (5, 0x5E), (6, 0x9C), (9, 0xDA)]:
        zl = standin.to_host(standin.encode_stage(ZlibStage(level=level), batch, 1))
        stream = bytes(zl.item(1))
        assert stream[:2] == bytes([0x78, flg])
        assert stream[-4:] == zlib.adler32(raws[1]).to_bytes(4, "big")


@pytest.mark.parametrize("name", ["gzip", "zlib", "lz4"])
def test_device_frames_decode_on_the_device(standin: CudaDevice, name: str) -> None:
    """Our own device decoders (header checks included) read what the device wrote."""
    stage, _, _ = STAGES[name]
    raws = _items([4096] * 3, 4)
    encoded = standin.encode_stage(stage, ByteBatch.from_buffers(raws), 1)
    back = standin.decode_stage(stage, standin.to_device(standin.to_host(encoded)), 4096, 1)
    assert [bytes(back.item(i)) for i in range(3)] == raws


def test_chunks_above_nvcomps_largest_take_the_host_path(standin: CudaDevice) -> None:
    """nvCOMP 6.0 compresses at most 16 MiB as one LZ4 chunk: a batch with a larger item
    is compressed on the host (counted) and still decodes."""
    raws = _items([100, (16 << 20) + 1], 5)
    out = standin.encode_stage(Lz4Stage(numcodecs.LZ4()), ByteBatch.from_buffers(raws), 1)
    assert [bytes(numcodecs.LZ4().decode(bytes(out.item(i)))) for i in range(2)] == raws
    assert standin.host_fallbacks == {"lz4 encode": 1}
    assert not any(call[0].endswith("-encode") for call in nvcomp_double.Codec.calls)


def test_deflate_chunks_up_to_2_gib_compress_on_the_device(standin: CudaDevice) -> None:
    """nvCOMP 6.0 deflates chunks up to 2 GiB (its headers): gzip and zlib chunks over
    64 KiB no longer take the host."""
    raws = _items([100, 70_000, 1 << 20], 5)
    for stage, unpack in ((GzipStage(), gzip.decompress), (ZlibStage(), zlib.decompress)):
        out = standin.encode_stage(stage, ByteBatch.from_buffers(raws), 1)
        assert [unpack(bytes(out.item(i))) for i in range(3)] == raws
    assert standin.host_fallbacks == {}
    assert [c for c in nvcomp_double.Codec.calls if c[0] == "Deflate-encode"] == [
        ("Deflate-encode", 3), ("Deflate-encode", 3)]


def test_lz4_decodes_on_the_device(standin: CudaDevice) -> None:
    raws = _items([3000, 1, 40_000], 6)
    frames = [bytes(numcodecs.LZ4().encode(r)) for r in raws]
    out = standin.decode_stage(Lz4Stage(numcodecs.LZ4()),
                               standin.to_device(ByteBatch.from_buffers(frames)), None, 1)
    assert [bytes(out.item(i)) for i in range(3)] == raws
    assert nvcomp_double.Codec.calls == [("LZ4", 3)]
    assert standin.host_fallbacks == {}


@pytest.mark.parametrize("damage", ["prefix", "short"])
def test_bad_lz4_prefixes_never_reach_nvcomp(standin: CudaDevice, damage: str) -> None:
    frames = [bytes(numcodecs.LZ4().encode(r)) for r in _items([500, 500], 7)]
    frames[1] = (501).to_bytes(4, "little") + frames[1][4:] if damage == "prefix" else b"\x01"
    with pytest.raises(StageError, match="lz4") as info:
        standin.decode_stage(Lz4Stage(numcodecs.LZ4()),
                             standin.to_device(ByteBatch.from_buffers(frames)), 500, 1)
    assert info.value.index == 1
    assert nvcomp_double.Codec.calls == []


WRITES = {
    "gzip": (3, {"compressors": zarr.codecs.GzipCodec()}, "Deflate"),
    "v2-zlib": (2, {"compressors": numcodecs.Zlib(level=1)}, "Deflate"),
    "v2-gzip": (2, {"compressors": numcodecs.GZip(level=5)}, "Deflate"),
    "v2-lz4": (2, {"compressors": numcodecs.LZ4()}, "LZ4"),
    "v3-numcodecs-lz4": (3, {"compressors": zarr.codecs.numcodecs.LZ4()}, "LZ4"),
    "blosc-lz4-shuffle": (3, {"compressors": zarr.codecs.BloscCodec(cname="lz4")}, "LZ4"),
    "blosc-zstd-bitshuffle": (
        3, {"compressors": zarr.codecs.BloscCodec(cname="zstd", shuffle="bitshuffle")}, "Zstd"),
    "blosc-zlib-noshuffle": (
        3, {"compressors": zarr.codecs.BloscCodec(cname="zlib", shuffle="noshuffle")},
        "Deflate"),
    "v2-blosc-lz4-bitshuffle": (2, {"compressors": numcodecs.Blosc("lz4", shuffle=2)}, "LZ4"),
}


@pytest.mark.parametrize("case", sorted(WRITES))
def test_writes_compress_on_the_device(case: str, tmp_path: Path, standin: CudaDevice,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrays written through the stand-in cuda device read back with zarr's own pipeline,
    and were compressed by nvCOMP (not the host)."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    zarr_format, kwargs, algorithm = WRITES[case]
    data = np.random.default_rng(2).integers(0, 40, (50, 37)).astype("<i4")
    expected = data.copy()
    expected[3:11, 4:30] = -1
    path = str(tmp_path / "a")
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        arr = zarr.create_array(path, shape=data.shape, chunks=(16, 16), dtype=data.dtype,
                                zarr_format=zarr_format, **kwargs)
        arr[:] = data
        arr[3:11, 4:30] = -1
        np.testing.assert_array_equal(arr[:], expected)
    assert any(call[0] == f"{algorithm}-encode" for call in nvcomp_double.Codec.calls)
    assert not any(key.endswith("encode") for key in standin.host_fallbacks)
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        np.testing.assert_array_equal(zarr.open_array(path)[:], expected)
