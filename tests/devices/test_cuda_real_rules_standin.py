"""The cuda device held to what the real nvCOMP, kvikio and cupy do (issue 13's defects),
on the stand-ins, whose doubles refuse what the real libraries refuse."""

from __future__ import annotations

import gc
import os
import sys
import types
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr
import zstandard
from zarr.codecs import BytesCodec, GzipCodec, ShardingCodec, ZstdCodec

import cuzarr
import cuzarr.devices
import cuzarr.io.device
import kvikio_double
import nvcomp_double
from cuzarr.batch import ByteBatch
from cuzarr.codecs.bytes_to_bytes import GzipStage, Lz4Stage, ZlibStage, ZstdStage
from cuzarr.devices.cuda import CudaDevice
from cuzarr.devices.nvcomp_backend import NvcompBackend, NvcompOutOfMemory, cupy_allocator
from cuzarr.devices.pinned import PinnedPool, size_class
from cuzarr.io.device import KvikioReader, device_address, size_kvikio_pool
from cuzarr.workers import StageError


def _host(array: object) -> np.ndarray:
    get = getattr(array, "get", None)
    return get() if callable(get) and not isinstance(array, np.ndarray) else np.asarray(array)


def _raws(sizes: list[int], seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 4, size, dtype=np.uint8).tobytes() for size in sizes]


# -- nvCOMP ----------------------------------------------------------------------------------

def test_the_double_refuses_an_int_where_nvcomp_takes_an_array() -> None:
    """Defect 1: the real get_max_comp_buffer_size takes an nvcomp.Array; the backend
    hands it one (an int is refused, as pybind refuses it)."""
    codec = nvcomp_double.Codec(algorithm="Zstd", bitstream_kind=nvcomp_double.BitstreamKind.RAW)
    with pytest.raises(TypeError, match="incompatible function arguments"):
        codec.get_max_comp_buffer_size(4096)
    sample = np.zeros(4096, dtype=np.uint8)
    assert NvcompBackend(nvcomp_double).max_compressed_size("Zstd", sample) >= 4096


@pytest.mark.parametrize("name", ["zstd", "gzip", "zlib", "lz4"])
def test_decodes_pass_a_config_so_nvcomp_neither_syncs_nor_walks_twice(
        either_standin: CudaDevice, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 4: decode() without decompression_config synchronizes (and walks RAW
    LZ4/Deflate streams to size them); the device builds one from the sizes it knows."""
    monkeypatch.setattr(nvcomp_double.Codec, "syncs", 0)
    monkeypatch.setattr(nvcomp_double.Codec, "size_passes", 0)
    raws = _raws([4096] * 3, 1)
    stage = {"zstd": ZstdStage(), "gzip": GzipStage(), "zlib": ZlibStage(),
             "lz4": Lz4Stage(numcodecs.LZ4())}[name]
    frames = stage.encode(ByteBatch.from_buffers(raws), 1)
    back = either_standin.decode_stage(stage, either_standin.to_device(frames), 4096, 1)
    assert [_host(back.item(i)).tobytes() for i in range(3)] == raws
    assert nvcomp_double.Codec.calls, "the batch did not go to nvCOMP"
    assert (nvcomp_double.Codec.syncs, nvcomp_double.Codec.size_passes) == (0, 0)
    assert either_standin.host_fallbacks == {}


def _damaged_zstd(raw: bytes) -> bytes:
    """A frame whose header passes every host check but whose body does not decode."""
    frame = bytearray(zstandard.ZstdCompressor(level=3).compress(raw))
    for at in range(len(frame) // 2, len(frame) - 4):
        frame[at] ^= 0x5A
    return bytes(frame)


def test_a_stream_nvcomp_refuses_is_named_by_the_host(either_standin: CudaDevice) -> None:
    """Defect 5: real nvCOMP raises RuntimeError/ValueError for a damaged stream without
    saying which; the device checks that batch on the host, which names the item."""
    raws = _raws([8192] * 4, 2)
    frames = [zstandard.ZstdCompressor(level=3).compress(r) for r in raws]
    frames[2] = _damaged_zstd(raws[2])
    with pytest.raises(StageError) as caught:
        either_standin.decode_stage(ZstdStage(), either_standin.to_device(
            ByteBatch.from_buffers(frames)), 8192, 1)
    assert caught.value.index == 2
    assert either_standin.refusals == {"Zstd": 1}


def test_a_damaged_stored_chunk_is_named_on_a_cuda_read(
        tmp_path: Path, either_standin: CudaDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: either_standin)
    data = np.random.default_rng(3).integers(0, 9, (64, 64)).astype("<i4")
    path = tmp_path / "a"
    zarr.create_array(str(path), shape=data.shape, chunks=(32, 32), dtype=data.dtype,
                      compressors=ZstdCodec())[:] = data
    key = path / "c" / "1" / "0"
    key.write_bytes(_damaged_zstd(zstandard.decompress(key.read_bytes())))
    with (cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"),
          pytest.raises(cuzarr.ChunkDecodeError, match="'c/1/0'") as caught):
        zarr.open_array(str(path))[:]
    assert isinstance(caught.value, RuntimeError)  # what zarr raises for zstd


def test_nvcomp_allocation_failures_split_the_tile(
        tmp_path: Path, standin: CudaDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 6: nvCOMP's own allocator fails with a RuntimeError; it counts as out of
    memory, so the tile is split and retried, and the read returns the data."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    data = np.arange(64 * 64, dtype="<f8").reshape(64, 64)
    path = str(tmp_path / "a")
    zarr.create_array(path, shape=data.shape, chunks=(8, 8), dtype=data.dtype,
                      compressors=ZstdCodec())[:] = data
    assert NvcompOutOfMemory in standin.out_of_memory
    monkeypatch.setattr(nvcomp_double, "fail_allocations", 0)
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        np.testing.assert_array_equal(zarr.open_array(path)[:], data)
    assert nvcomp_double.fail_allocations is None, "no allocation failed"
    sizes = [n for algorithm, n in nvcomp_double.Codec.calls if algorithm == "Zstd"]
    assert sizes[0] == 64 and sorted(sizes[1:]) == [32, 32]  # the failed tile, in halves


def test_nvcomp_scratch_comes_from_the_array_modules_pool(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Defect 6: with cupy's allocator set, nvCOMP's scratch is cupy's, and cupy's
    OutOfMemoryError (a MemoryError) is what the tile split sees."""
    class Pointer:
        def __init__(self, n: int) -> None:
            self.ptr = 4096

    class OutOfMemory(MemoryError):
        pass

    state = {"fail": False, "asked": 0}

    def alloc(n: int) -> Pointer:
        state["asked"] += 1
        if state["fail"]:
            raise OutOfMemory(f"Out of memory allocating {n} bytes")
        return Pointer(n)

    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(alloc=alloc))
    monkeypatch.setattr(nvcomp_double, "_allocator", None)
    nvcomp_double.set_device_allocator(cupy_allocator(fake_cupy))
    backend = NvcompBackend(nvcomp_double)
    frame = np.frombuffer(zstandard.compress(b"x" * 100), dtype=np.uint8).copy()
    out = np.empty(128, dtype=np.uint8)
    args = ("Zstd", frame, np.array([0]), np.array([frame.size]), out, np.array([0]),
            np.array([100]))
    assert backend.decode(*args).tolist() == [100]
    assert state["asked"] == 1
    state["fail"] = True
    with pytest.raises(NvcompOutOfMemory):
        backend.decode(*args)


def test_deflate_bound_comes_from_nvcomp(standin: CudaDevice) -> None:
    """Defect 8: the output slots are what nvCOMP says a chunk may need (about 2.26x the
    input for Deflate), not a zlib bound."""
    raws = _raws([1 << 16], 4)
    out = standin.encode_stage(GzipStage(), ByteBatch.from_buffers(raws), 1)
    assert out.slab.size >= 2 * (1 << 16)
    assert standin.host_fallbacks == {}


def test_encode_inputs_use_the_compression_alignment(standin: CudaDevice) -> None:
    """Defect 9: Deflate compresses from 8-byte aligned buffers (it decodes from 4-byte
    aligned ones): an item at offset 4 is moved before the call."""
    raws = _raws([4, 5000, 3000], 5)
    assert ByteBatch.from_buffers(raws).offsets.tolist() == [0, 4, 5004]
    out = standin.encode_stage(ZlibStage(), ByteBatch.from_buffers(raws), 1)
    import zlib

    assert [zlib.decompress(bytes(out.item(i))) for i in range(3)] == raws
    assert standin.host_fallbacks == {}


def test_items_with_gaps_pack_in_one_launch(either_standin: CudaDevice) -> None:
    """Defect 10: decoded items that do not tile their slab (chunks stored uncompressed
    inside a shard) are packed by one range-copy launch, not an n x nbytes index."""
    from cuzarr.decode import decode_fixed
    from cuzarr.plan.chain import ArrayLayout, FixedChain

    chunks = [np.arange(16, dtype="<u2") + 100 * i for i in range(3)]
    slab = np.zeros(200, dtype=np.uint8)
    offsets = np.array([8, 72, 150])
    for chunk, at in zip(chunks, offsets, strict=True):
        slab[at : at + 32] = chunk.view(np.uint8)
    batch = ByteBatch(either_standin.xp.asarray(slab), offsets, np.full(3, 32))
    u2 = np.dtype("<u2")
    fixed = FixedChain(layout=ArrayLayout((16,), u2, u2, (16,), (0,)), stages=(),
                       fill_value=0, write_empty_chunks=False)
    either_standin.launcher.launches.clear()
    arrays = decode_fixed(fixed, batch, either_standin, 1, ["a", "b", "c"])
    np.testing.assert_array_equal(_host(arrays), np.stack(chunks))
    assert [name for name, _, _ in either_standin.launcher.launches] == ["box_copy"]


# -- kvikio ----------------------------------------------------------------------------------

def test_a_range_past_the_end_is_refused_before_kvikio_reads(
        tmp_path: Path, either_standin: CudaDevice) -> None:
    """Defect 2: kvikio's POSIX path raises at end of file (small reads inside pread
    itself); the reader checks every range against the file first and names the key."""
    (tmp_path / "s").write_bytes(bytes(range(200)) * 50)
    reader = KvikioReader(kvikio_double, either_standin, str(tmp_path), small_bytes=0)
    kvikio_double.CuFile.reads.clear()
    with pytest.raises(cuzarr.ChunkDecodeError, match=r"'s'.*past the end"):
        reader.ranges(["s"], np.zeros(2, np.int64), np.array([0, 9900]), np.array([100, 200]),
                      max_gap_bytes=0, max_bytes=1 << 20)
    assert kvikio_double.CuFile.reads == []
    with pytest.raises(RuntimeError, match="EOF"):  # what the reader keeps away from
        kvikio_double.CuFile(str(tmp_path / "s")).pread(np.empty(200, np.uint8), 200, 9900)


def test_every_issued_read_is_waited_for_before_files_close(
        tmp_path: Path, standin: CudaDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 2: a read that raises as it is issued leaves the others to finish first."""
    (tmp_path / "s").write_bytes(bytes(1 << 16))
    closed_with_pending: list[bool] = []
    pending: list[kvikio_double._IOFuture] = []

    class Future(kvikio_double._IOFuture):
        def get(self) -> int:
            pending.remove(self)
            return super().get()

    class File(kvikio_double.CuFile):
        def pread(self, buf: object, size: int | None = None, file_offset: int = 0,
                  task_size: int | None = None) -> kvikio_double._IOFuture:
            if file_offset >= 3 << 12:
                raise RuntimeError("POSIX error on pread: EIO")
            future = Future(int(size or 0))
            pending.append(future)
            return future

        def close(self) -> None:
            closed_with_pending.append(bool(pending))
            super().close()

    fake = types.SimpleNamespace(CuFile=File, defaults=kvikio_double.defaults)
    reader = KvikioReader(fake, standin, str(tmp_path), small_bytes=0)
    with pytest.raises(RuntimeError, match="EIO"):
        reader.ranges(["s"], np.zeros(4, np.int64), np.arange(4) << 12, np.full(4, 100),
                      max_gap_bytes=0, max_bytes=1 << 20)
    assert closed_with_pending == [False]


def test_kvikio_pool_is_sized_and_a_wider_setting_kept(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """Defect 7: kvikio's pool defaults to one thread."""
    monkeypatch.setitem(kvikio_double._settings, "num_threads", 1)
    assert size_kvikio_pool(kvikio_double, 8) == 8
    assert kvikio_double.defaults.get("num_threads") == 8
    monkeypatch.setitem(kvikio_double._settings, "num_threads", 32)
    assert size_kvikio_pool(kvikio_double, 8) == 32


@pytest.mark.parametrize("sharded", [False, True])
def test_small_items_go_through_the_host_in_one_upload(
        tmp_path: Path, either_standin: CudaDevice, monkeypatch: pytest.MonkeyPatch,
        sharded: bool) -> None:
    """Defect 7: items under SMALL_BYTES are read with pread into one pinned slab and
    uploaded once; items over it are read by kvikio, into 4096-aligned device memory
    (defect 11: aligned by address, not only by offset)."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: either_standin)
    monkeypatch.setattr(cuzarr.io.device, "SMALL_BYTES", 64 << 10)
    rng = np.random.default_rng(6)
    data = rng.normal(size=(256, 512)).astype("<f4")
    path = str(tmp_path / "a")
    kwargs = {"shards": (128, 512)} if sharded else {}
    zarr.create_array(path, shape=data.shape, chunks=(16, 512), dtype=data.dtype,
                      compressors=None, **kwargs)[:] = data
    big = tmp_path / "big"  # one array whose chunks are over SMALL_BYTES
    zarr.create_array(str(big), shape=data.shape, chunks=(64, 512), dtype=data.dtype,
                      compressors=None)[:] = data
    kvikio_double.CuFile.reads.clear()
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        np.testing.assert_array_equal(_host(zarr.open_array(path)[:]), data)
        assert kvikio_double.CuFile.reads == [] or sharded  # 32 KiB chunks: the host's
        if sharded:  # a whole shard's coalesced group is one big read
            assert all(size >= 64 << 10 for _, size, _, _ in kvikio_double.CuFile.reads)
        kvikio_double.CuFile.reads.clear()
        np.testing.assert_array_equal(_host(zarr.open_array(str(big))[:]), data)
    reads = kvikio_double.CuFile.reads
    assert len(reads) == 4
    assert all(address % 4096 == 0 for _, _, _, address in reads)


def test_device_slabs_are_aligned_by_address(standin: CudaDevice) -> None:
    """Defect 11: pool blocks are 512-byte granular, so offsets alone do not align."""
    from cuzarr.io.device import _aligned_empty

    for n in (1, 4095, 1 << 20):
        assert device_address(_aligned_empty(np, n, 4096)) % 4096 == 0


def _broken_package(root: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package that is found but fails to load, as kvikio does without rapids-logger."""
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(
        'raise ImportError("librapids_logger.so: cannot open shared object file")\n')
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_kvikio_that_does_not_load_is_reported_and_the_device_runs_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 3: a kvikio that is found but fails to import is reported as such (a lookup
    alone would call it present); the cuda device then reads through the host."""
    import importlib.util

    _broken_package(tmp_path, "kvikio", monkeypatch)
    assert importlib.util.find_spec("kvikio") is not None
    assert "librapids_logger" in (cuzarr.devices.kvikio_status() or "")
    assert cuzarr.devices._kvikio() is None
    device = CudaDevice(np, NvcompBackend(nvcomp_double), None, kvikio=None)  # type: ignore[arg-type]
    assert device.local_reader(zarr.storage.LocalStore(os.getcwd())) is None


def test_missing_parts_import_for_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    """Defect 3: a required package that is found but does not load counts as missing,
    with the reason."""
    _broken_package(tmp_path, "cupy", monkeypatch)
    missing = cuzarr.devices._missing_cuda_parts()
    assert any(m.startswith("cupy (ImportError: librapids_logger") for m in missing)
    with pytest.raises(cuzarr.DeviceUnavailableError, match="cupy"):
        cuzarr.devices.require_cuda()


# -- pinned host memory ----------------------------------------------------------------------

def test_pinned_slabs_are_sized_to_the_request_and_reused() -> None:
    """Defect 12: cupy's pinned pool pins 512 MiB for a slab just over 256 MiB and never
    frees; ours pins at most 1/8 more, reuses freed blocks, and caps what it keeps."""
    asked: list[int] = []

    def allocate(n: int) -> bytearray:
        asked.append(n)
        return bytearray(n)

    assert size_class((256 << 20) + 1) == 288 << 20
    assert all(n <= size_class(n) <= max(n * 1.125, n + (1 << 16))  # 64 KiB granules
               for n in (1, 1000, 65537, 3 << 20, (1 << 30) + 5))
    pool = PinnedPool(allocate, keep_bytes=4 << 20)
    slab = pool.empty(3 << 20)
    assert slab.size == 3 << 20 and asked == [3 << 20]
    view = slab[10:20]
    del slab
    gc.collect()
    assert pool.cached_bytes == 0  # a view still holds it
    del view
    gc.collect()
    assert pool.cached_bytes == 3 << 20
    again = pool.empty((3 << 20) - 5)
    assert asked == [3 << 20] and pool.cached_bytes == 0  # reused
    other = pool.empty(2 << 20)
    del again, other
    gc.collect()
    assert pool.cached_bytes <= 4 << 20  # the cap: one block was let go
    assert pool.pinned_bytes == pool.cached_bytes


def test_sharded_reads_on_the_standin_with_damaged_inner_chunk(
        tmp_path: Path, either_standin: CudaDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 5 inside shards: the shard's key is named."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: either_standin)
    data = np.random.default_rng(7).integers(0, 5, (32, 32)).astype("<i8")
    path = tmp_path / "a"
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype,
                      serializer=ShardingCodec(chunk_shape=(8, 32),
                                               codecs=[BytesCodec(), GzipCodec()]),
                      chunks=(32, 32), compressors=None)[:] = data
    shard = path / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[40:60] = bytes(20)
    shard.write_bytes(bytes(raw))
    with (cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"),
          pytest.raises(cuzarr.ChunkDecodeError, match="c/0/0")):
        zarr.open_array(str(path))[:]
