"""Whole reads and writes through PhasedCodecPipeline with device="cuda", on the stand-in
cuda device (numpy for cupy, the nvCOMP double, the host-emulation launcher): every
phase of the cuda path except the real cupy/nvCOMP calls, against zarr's own results."""

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
import cuzarr.io.device
import kvikio_double
import nvcomp_double
from cuzarr.devices.cuda import CudaDevice


@pytest.fixture
def standin(either_standin: CudaDevice) -> CudaDevice:
    """Whole reads and writes run on the numpy and the strict stand-in alike."""
    return either_standin

CASES = {
    "zstd": {"compressors": ZstdCodec()},
    "zstd-crc32c": {"compressors": [ZstdCodec(), Crc32cCodec()]},
    "gzip": {"compressors": GzipCodec()},
    "big-endian-raw": {"serializer": BytesCodec(endian="big"), "compressors": None},
    "blosc-lz4": {"compressors": BloscCodec(cname="lz4")},
    "blosclz": {"compressors": BloscCodec(cname="blosclz")},
    "transpose-zstd": {"filters": [TransposeCodec(order=(1, 0))], "compressors": ZstdCodec()},
    "sharded-zstd": {
        "serializer": ShardingCodec(chunk_shape=(8, 10), codecs=[BytesCodec(), ZstdCodec()]),
        "compressors": None,
    },
}


@pytest.mark.parametrize("small_bytes", [0, 1 << 20])
@pytest.mark.parametrize("case", sorted(CASES))
def test_cuda_standin_matches_zarr(case: str, tmp_path: Path, standin: CudaDevice,
                                   monkeypatch: pytest.MonkeyPatch, small_bytes: int) -> None:
    """Every case with its LocalStore items read by kvikio (small_bytes 0), and with these
    small chunks read through the host and one pinned upload (the default)."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    monkeypatch.setattr(cuzarr.io.device, "SMALL_BYTES", small_bytes)
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
    if case == "blosclz":  # our kernel, not the host
        assert "blosc decode" not in standin.host_fallbacks
        assert "blosclz_decompress" in {name for name, _, _ in standin.launcher.launches}
    if case == "blosc-lz4":
        assert "blosc decode" not in standin.host_fallbacks
        assert any(algorithm == "LZ4" for algorithm, _ in nvcomp_double.Codec.calls)
    if small_bytes == 0:
        assert kvikio_double.CuFile.reads, "LocalStore chunks were not read through kvikio"
    else:
        assert not kvikio_double.CuFile.reads, "small chunks went through kvikio"
    launched = {name for name, _, _ in standin.launcher.launches}
    if case != "sharded-zstd":  # plain chunks scatter with one box_copy launch per read
        assert "box_copy" in launched
    if case == "big-endian-raw":  # both directions of the bytes codec on the kernel
        assert "byteswap" in launched
    # chunks stored transposed scatter through shared memory, where `out` is device
    # memory (numpy's stand-in); into a host `out` (the strict one's) the host scatters
    if case == "transpose-zstd" and standin.xp is np:
        assert "box_copy_tiled" in launched


def test_kvikio_reads_align_and_coalesce(tmp_path: Path, standin: CudaDevice) -> None:
    """Inner chunks of a shard come in coalesced kvikio reads into one device slab, each
    item at an aligned offset; a shard cut short is reported with its key."""
    from cuzarr.io.device import KvikioReader

    payload = np.arange(10_000, dtype=np.uint8)
    (tmp_path / "s").write_bytes(payload.tobytes())
    reader = KvikioReader(kvikio_double, standin, str(tmp_path), small_bytes=0)
    kvikio_double.CuFile.reads.clear()
    batch = reader.ranges(["s"], np.zeros(3, np.int64), np.array([100, 150, 9000]),
                          np.array([40, 60, 500]), max_gap_bytes=100, max_bytes=1 << 20)
    assert len(kvikio_double.CuFile.reads) == 2  # [100, 210) merged, [9000, 9500) alone
    assert all(int(o) % 16 == 0 for o in batch.offsets[[0, 2]])
    for i, (start, size) in enumerate([(100, 40), (150, 60), (9000, 500)]):
        np.testing.assert_array_equal(_host(batch.item(i)), payload[start : start + size])
    with pytest.raises(cuzarr.ChunkDecodeError, match="'s'"):
        reader.ranges(["s"], np.zeros(1, np.int64), np.array([9900]), np.array([200]),
                      max_gap_bytes=0, max_bytes=1 << 20)


def _host(array: object) -> np.ndarray:
    """A device array's bytes on the host (the strict stand-in refuses np.asarray)."""
    get = getattr(array, "get", None)
    return get() if callable(get) and not isinstance(array, np.ndarray) else np.asarray(array)


class FakeOutOfMemory(Exception):
    """Stands in for cupy's OutOfMemoryError."""


def test_out_of_memory_splits_tiles_then_names_the_chunk(
    tmp_path: Path, standin: CudaDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = np.arange(64 * 64, dtype="<f8").reshape(64, 64)
    path = str(tmp_path / "a")
    zarr.create_array(path, shape=data.shape, chunks=(8, 8), dtype=data.dtype,
                      compressors=ZstdCodec())[:] = data
    limit = {"items": 1}
    original = standin.decode_stage

    def tight_memory(stage: object, batch: object, expected: object, threads: int) -> object:
        if len(batch) > limit["items"]:  # type: ignore[arg-type]
            raise FakeOutOfMemory("out of memory")
        return original(stage, batch, expected, threads)  # type: ignore[arg-type]

    monkeypatch.setattr(standin, "decode_stage", tight_memory)
    monkeypatch.setattr(standin, "out_of_memory", (FakeOutOfMemory,))
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        np.testing.assert_array_equal(zarr.open_array(path)[:], data)
        limit["items"] = 0
        with pytest.raises(cuzarr.DeviceMemoryError, match=r"chunk 'c/0/0'"):
            zarr.open_array(path)[:8, :8]


def test_zstd_writes_compress_on_the_device(tmp_path: Path, standin: CudaDevice,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames without a content size (as nvCOMP writes them) are read back by zarr."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    data = np.random.default_rng(1).integers(0, 50, (40, 30)).astype("<i4")
    expected = data.copy()
    expected[5:9, 5:9] = 7
    path = str(tmp_path / "a")
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        arr = zarr.create_array(path, shape=data.shape, chunks=(16, 16), dtype=data.dtype,
                                compressors=ZstdCodec())
        arr[:] = data
        arr[5:9, 5:9] = 7
        np.testing.assert_array_equal(arr[:], expected)
    assert any(call[0] == "Zstd-encode" for call in nvcomp_double.Codec.calls)
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        np.testing.assert_array_equal(zarr.open_array(path)[:], expected)


def test_reads_move_no_unexpected_bytes(tmp_path: Path, standin: CudaDevice,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A zstd read with kvikio: nothing goes host-to-device, and device-to-host only the
    frame headers checked before nvCOMP (plus the result, since this out is host memory)."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    data = np.arange(96 * 96, dtype="<f4").reshape(96, 96)
    path = str(tmp_path / "a")
    zarr.create_array(path, shape=data.shape, chunks=(32, 32), dtype=data.dtype,
                      compressors=ZstdCodec())[:] = data
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        np.testing.assert_array_equal(zarr.open_array(path)[:], data)
    n_chunks = 9
    assert standin.transfers.get("h2d", 0) == 0
    assert standin.transfers.get("d2h", 0) <= n_chunks * 18
    assert standin.transfers.get("d2h-output", 0) == data.nbytes


def test_kvikio_whole_reads_in_groups_keep_alignment(tmp_path: Path, standin: CudaDevice
                                                     ) -> None:
    """Whole chunks read group by group (the open-file budget), one group with no file at
    all: every item still starts aligned in the joined slab, and holds its file."""
    from cuzarr.io.device import KvikioReader

    sizes = {"a": 100, "b": 37, "d": 5000, "g": 1, "h": 333}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(bytes([len(name) + size % 251]) * size)
    reader = KvikioReader(kvikio_double, standin, str(tmp_path), small_bytes=0)
    reader.files_per_read = 2
    keys = ["a", "b", "c", "e", "d", "f", "g", "h"]  # c, e, f missing: group 2 is empty
    batch, present = reader.whole(keys)
    assert present.tolist() == [k in sizes for k in keys]
    assert all(int(o) % 16 == 0 for o in batch.offsets)
    for i, key in enumerate(k for k in keys if k in sizes):
        assert _host(batch.item(i)).tobytes() == (tmp_path / key).read_bytes()
