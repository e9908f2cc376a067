"""Writes from a "device" value through the stand-in cuda device (numpy for cupy, the nvCOMP
double, the host-emulation launcher): with device="cuda" the stand-in's array module is
numpy, so a numpy value is the device value. Each store is compared with what zarr's
BatchedCodecPipeline writes from the same values, and the device's counted transfers show
that neither the value nor the chunks cross between host and device unexpectedly."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
import cuzarr.write
import nvcomp_double
from cuzarr.devices.cuda import CudaDevice


@pytest.fixture
def standin(either_standin: CudaDevice) -> CudaDevice:
    """Whole reads and writes run on the numpy and the strict stand-in alike."""
    return either_standin

ORACLE = "zarr.core.codec_pipeline.BatchedCodecPipeline"
SHAPE = (45, 61)
CHUNKS = (16, 20)  # the shard shape in the sharded cases
N_CHUNKS, N_INNER = 3 * 4, 3 * 4 * 2 * 2  # chunks (shards) and inner chunks of (8, 10)


def _sharded(index_location: str, *codecs: Any) -> dict[str, Any]:
    return {"serializer": ShardingCodec(chunk_shape=(8, 10), codecs=[BytesCodec(), *codecs],
                                        index_location=index_location),
            "compressors": None}


CASES: dict[str, dict[str, Any]] = {
    "raw": {"compressors": None},
    "crc32c": {"compressors": Crc32cCodec()},
    "zstd": {"compressors": ZstdCodec()},
    "zstd-crc32c": {"compressors": [ZstdCodec(), Crc32cCodec()]},
    "gzip": {"compressors": GzipCodec()},
    "blosc-lz4": {"compressors": BloscCodec(cname="lz4")},
    "transpose-zstd": {"filters": [TransposeCodec(order=(1, 0))], "compressors": ZstdCodec()},
    "sharded-raw-end": _sharded("end"),
    "sharded-raw-start": _sharded("start"),
    "sharded-zstd-end": _sharded("end", ZstdCodec()),
    "sharded-zstd-start": _sharded("start", ZstdCodec()),
    "sharded-crc32c-start": _sharded("start", Crc32cCodec()),
}
#: deterministic encodings: the same bytes as zarr's
IDENTICAL = {"raw", "crc32c", "sharded-raw-end", "sharded-raw-start", "sharded-crc32c-start"}
#: chains every stage of which runs on the device (in this branch and after device encode)
ON_DEVICE = {"raw", "zstd", "sharded-raw-end", "sharded-raw-start", "sharded-zstd-end",
             "sharded-zstd-start", "transpose-zstd"}

Op = Callable[[Any, Any], None]


def _ops(fill: float) -> list[tuple[str, Op]]:
    """A sequence of writes; each op gets (array, fill) and the same values on both sides."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=SHAPE).round(2)
    block = rng.normal(size=(17, 33)).round(2)
    column = rng.normal(size=15).round(2)

    def full(a: Any, f: float) -> None:
        a[:] = data

    def partial(a: Any, f: float) -> None:
        a[3:20, 7:40] = block

    def scalar(a: Any, f: float) -> None:
        a[30:45, 0:25] = 0.5

    def fill_region(a: Any, f: float) -> None:
        a[0:32, 0:40] = f  # whole chunks (and inner chunks) become fill: deleted if allowed

    def stepped(a: Any, f: float) -> None:
        a[1:45:3, 5] = column  # an integer index: a dropped axis

    def overwrite(a: Any, f: float) -> None:
        a[:] = data[::-1]

    return [("full", full), ("partial", partial), ("scalar", scalar),
            ("fill", fill_region), ("stepped", stepped), ("overwrite", overwrite)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != "zarr.json"}


class Recorder:
    """What one write moved: transfers by kind, encode slabs brought to the host."""

    def __init__(self, device: CudaDevice, monkeypatch: pytest.MonkeyPatch) -> None:
        self.device = device
        self.to_host_calls = 0
        original = device.to_host

        def to_host(batch: Any) -> Any:
            self.to_host_calls += 1
            return original(batch)

        monkeypatch.setattr(device, "to_host", to_host)

    def start(self) -> None:
        self.before = dict(self.device.transfers)
        self.fallbacks = sum(self.device.host_fallbacks.values())
        self.to_host_calls = 0

    def moved(self) -> dict[str, int]:
        after = self.device.transfers
        return {k: after[k] - self.before.get(k, 0) for k in after
                if after[k] != self.before.get(k, 0)}

    def new_fallbacks(self) -> int:
        return sum(self.device.host_fallbacks.values()) - self.fallbacks


def _create(path: Path, case: str, fill: float, wec: bool) -> Any:
    return zarr.create_array(str(path), shape=SHAPE, chunks=CHUNKS, dtype="<f8",
                             fill_value=fill, config={"write_empty_chunks": wec},
                             **CASES[case])


@pytest.mark.parametrize("wec", [False, True], ids=["wec0", "wec1"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_device_writes_match_zarr(case: str, wec: bool, tmp_path: Path, standin: CudaDevice,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    fill = 0.0
    record = Recorder(standin, monkeypatch)
    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        theirs = _create(tmp_path / "zarr", case, fill, wec)
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        ours = _create(tmp_path / "cuzarr", case, fill, wec)
    for name, op in _ops(fill):
        with zarr.config.set({"codec_pipeline.path": ORACLE}):
            op(theirs, fill)
        stored = sum(len(b) for b in _files(tmp_path / "cuzarr").values())
        record.start()
        with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
            op(ours, fill)
        moved = record.moved()
        mine, oracle = _files(tmp_path / "cuzarr"), _files(tmp_path / "zarr")
        assert sorted(mine) == sorted(oracle), name
        if case in IDENTICAL:
            assert mine == oracle, name
        with zarr.config.set({"codec_pipeline.path": ORACLE}):
            np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "cuzarr"))[:],
                                          zarr.open_array(str(tmp_path / "zarr"))[:])
        # the value stays where it is (numpy's stand-in: a numpy value is a device value;
        # the strict one's numpy value is host memory: it goes over once, counted), chunks
        # never come back as arrays
        if standin.xp is np:
            assert "h2d-value" not in moved, (name, moved)
        else:
            assert moved.get("h2d-value", 0) <= np.prod(SHAPE) * 8, (name, moved)
        assert "d2h-output" not in moved, (name, moved)
        # stored bytes go to the device at most once (only what a partial write merges)
        assert moved.get("h2d", 0) <= stored, (name, moved)
        # a whole write reads nothing stored, but for the boundary shards: a shard that
        # reaches past the array's edge is merged, keeping what lies beyond (as zarr does)
        if name in ("full", "overwrite") and "sharded" not in case:
            assert moved.get("h2d", 0) == 0, (name, moved)
        # the empty-chunk rule returns one bool per chunk, nothing when it is off
        assert ("d2h-mask" in moved) == (not wec), (name, moved)
        assert moved.get("d2h-mask", 0) <= (N_INNER if "sharded" in case else N_CHUNKS), moved
        # one copy of the encoded slab per tile, plus one per stage that ran on the host;
        # none where every chunk the write touched is empty
        nothing_to_encode = name == "fill" and not wec
        assert record.to_host_calls <= 1 + record.new_fallbacks(), (name, moved)
        assert (record.to_host_calls == 0) == nothing_to_encode, (name, moved)
        if case in ON_DEVICE:
            assert record.new_fallbacks() == 0 and record.to_host_calls <= 1, name
    assert standin.per_chunk_gathers == 0
    launched = {n for n, _, _ in standin.launcher.launches}
    assert "box_copy" in launched
    if "zstd" in case:
        assert any(call[0] == "Zstd-encode" for call in nvcomp_double.Codec.calls)


@pytest.mark.parametrize("case", ["raw", "sharded-raw-end"])
def test_uncompressed_writes_move_exactly_the_chunks(case: str, tmp_path: Path,
                                                     standin: CudaDevice,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncompressed: device-to-host is exactly the bytes of the chunks (inner chunks) a
    write stores, host-to-device exactly the stored (inner) chunks a partial write merges."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    data = np.arange(np.prod(SHAPE), dtype="<f8").reshape(SHAPE) + 1
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        arr = _create(tmp_path / "a", case, 0.0, True)
        arr[:] = data
        before = dict(standin.transfers)
        arr[2:5, 3:7] = -1.0  # inside one chunk (one inner chunk), partly
    moved = {k: v - before.get(k, 0) for k, v in standin.transfers.items()}
    chunk_nbytes = 16 * 20 * 8 if case == "raw" else 8 * 10 * 8
    assert moved.get("d2h", 0) == chunk_nbytes
    # the stored chunk goes over once; of a shard, only the inner chunk the write merges
    assert moved.get("h2d", 0) == chunk_nbytes
    expected = data.copy()
    expected[2:5, 3:7] = -1.0
    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"))[:], expected)


@pytest.mark.parametrize("case", ["zstd", "sharded-zstd-end"])
def test_nan_fill_chunks_are_deleted(case: str, tmp_path: Path, standin: CudaDevice,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The empty-chunk rule on the device is NaN-aware, like zarr's."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        arr = _create(tmp_path / "a", case, float("nan"), False)
        arr[:] = 1.0
        arr[0:16, 0:20] = np.nan
        arr[16:32, 0:20] = -0.0  # data: not the fill value
    keys = set(_files(tmp_path / "a"))
    assert "c/0/0" not in keys and "c/1/0" in keys  # a shard of fill inner chunks goes too
    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        back = zarr.open_array(str(tmp_path / "a"))[:]
    assert np.isnan(back[0:16, 0:20]).all()
    assert np.signbit(back[16:32, 0:20]).all()
    assert standin.transfers.get("d2h-mask", 0) > 0


@pytest.mark.parametrize("case", ["zstd", "sharded-zstd-start"])
def test_array_selections_gather_chunk_by_chunk(case: str, tmp_path: Path,
                                                standin: CudaDevice,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Integer-array selections are not views: the chunks are gathered one by one, which is
    counted and logged once; the result still equals zarr's."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    data = np.arange(np.prod(SHAPE), dtype="<f8").reshape(SHAPE)
    rows = np.array([1, 5, 17, 40])
    values = -np.arange(rows.size * SHAPE[1], dtype="<f8").reshape(rows.size, SHAPE[1])
    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        theirs = _create(tmp_path / "zarr", case, 0.0, False)
        theirs[:] = data
        theirs.oindex[rows, :] = values
    with (caplog.at_level(logging.WARNING, logger="cuzarr"), cuzarr.enable(gpu=False),
          cuzarr.config.set(device="cuda")):
        ours = _create(tmp_path / "cuzarr", case, 0.0, False)
        ours[:] = data
        assert standin.per_chunk_gathers == 0
        for _ in range(2):
            ours.oindex[rows, :] = values
    assert standin.per_chunk_gathers == 2
    assert sum("not a view" in r.message for r in caplog.records) == 1
    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "cuzarr"))[:],
                                      theirs[:])


def test_async_store_writes_on_the_device(standin: CudaDevice,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A store without sync IO runs wave by wave through the same device path."""
    from zarr.storage import MemoryStore

    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    monkeypatch.setattr(MemoryStore, "supports_sync", False, raising=False)
    data = np.random.default_rng(3).normal(size=SHAPE)
    expected = data.copy()
    expected[4:9, 10:50] = 2.0
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        arr = zarr.create_array(MemoryStore(), shape=SHAPE, chunks=CHUNKS, dtype="<f8",
                                compressors=ZstdCodec())
        arr[:] = data
        arr[4:9, 10:50] = 2.0
        np.testing.assert_array_equal(arr[:], expected)
    assert "d2h-mask" in standin.transfers
    assert any(call[0] == "Zstd-encode" for call in nvcomp_double.Codec.calls)


def test_cpu_device_gathers_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Numpy values on the cpu device never reach the cuda device's write methods."""
    def refuse() -> CudaDevice:
        raise AssertionError("the cuda device was asked for")

    monkeypatch.setattr(cuzarr.devices, "_cuda_device", refuse)
    data = np.arange(np.prod(SHAPE), dtype="<f8").reshape(SHAPE)
    with cuzarr.enable(gpu=False):
        arr = zarr.create_array(str(tmp_path / "a"), shape=SHAPE, chunks=CHUNKS, dtype="<f8",
                                compressors=ZstdCodec())
        arr[:] = data
        arr[3:9, 3:9] = 0
        expected = data.copy()
        expected[3:9, 3:9] = 0
        np.testing.assert_array_equal(arr[:], expected)


@pytest.mark.parametrize("dtype", ["f4", "f8", "c8", "c16", "i2", "u1", "?"])
def test_device_empty_rule_matches_zarr(dtype: str, standin: CudaDevice) -> None:
    """The device's one-pass empty-chunk test agrees with zarr's NDBuffer.all_equal,
    whatever value the rows start and end with."""
    from zarr.core.buffer.cpu import NDBuffer

    from test_scatter import CASES as FILL_CASES

    _, fill, pool = next(c for c in FILL_CASES if c[0] == dtype)
    rng = np.random.default_rng(1)
    rows = [[pool[0]] * 6]
    rows += [[pool[0]] * 5 + [p] for p in pool] + [[p] + [pool[0]] * 5 for p in pool]
    rows += [list(rng.choice(np.array(pool, dtype=object), 6)) for _ in range(20)]
    arrays = np.array(rows, dtype=dtype).reshape(len(rows), 2, 3)
    expected = [NDBuffer.from_numpy_array(row).all_equal(fill) for row in arrays]
    assert any(expected) and not all(expected)
    before = standin.transfers.get("d2h-mask", 0)
    assert standin.rows_equal_fill(standin.xp.asarray(arrays), fill).tolist() == expected
    assert standin.transfers["d2h-mask"] - before == len(rows)  # the mask, nothing more


@pytest.mark.parametrize("shape", [(), (7,), (6, 5, 9)], ids=["0d", "1d", "3d"])
def test_other_dimensionalities(shape: tuple[int, ...], tmp_path: Path, standin: CudaDevice,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """0-d arrays (a scalar into a 0-d chunk), 1-d and 3-d transposed chunks, against zarr."""
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    chunks = tuple(max(1, n // 2) for n in shape)
    order = tuple(reversed(range(len(shape))))
    values = np.random.default_rng(4).normal(size=shape)
    part = tuple(slice(1, n - 1) for n in shape)

    def writes(path: Path) -> Any:
        arr = zarr.create_array(str(path), shape=shape, chunks=chunks, dtype="<f8",
                                filters=[TransposeCodec(order=order)] if shape else None,
                                compressors=ZstdCodec())
        arr[...] = values
        arr[part] = -1.0
        return arr

    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        writes(tmp_path / "zarr")
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        writes(tmp_path / "cuzarr")
    assert sorted(_files(tmp_path / "cuzarr")) == sorted(_files(tmp_path / "zarr"))
    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "cuzarr"))[...],
                                      zarr.open_array(str(tmp_path / "zarr"))[...])
    assert standin.per_chunk_gathers == 0
    assert any(call[0] == "Zstd-encode" for call in nvcomp_double.Codec.calls)


class FakeOutOfMemory(Exception):
    """Stands in for cupy's OutOfMemoryError."""


@pytest.mark.parametrize("case", ["zstd", "sharded-zstd-end"])
def test_out_of_memory_splits_write_tiles(case: str, tmp_path: Path, standin: CudaDevice,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A write tile that runs out of device memory is halved and retried; a chunk (shard)
    that cannot fit alone is named."""
    limit = {"items": 4}  # two chunks, or one shard's four inner chunks
    original = standin.rows_equal_fill

    def tight_memory(chunks: Any, fill: Any) -> Any:
        if len(chunks) > limit["items"]:
            raise FakeOutOfMemory("out of memory")
        return original(chunks, fill)

    monkeypatch.setattr(standin, "rows_equal_fill", tight_memory)
    monkeypatch.setattr(standin, "out_of_memory", (FakeOutOfMemory,))
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: standin)
    data = np.random.default_rng(2).normal(size=SHAPE)
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        arr = _create(tmp_path / "a", case, 0.0, False)
        arr[:] = data
        np.testing.assert_array_equal(arr[:], data)
        limit["items"] = 0
        what = "shard" if "sharded" in case else "chunk"
        with pytest.raises(cuzarr.DeviceMemoryError, match=rf"{what} 'c/0/0'"):
            arr[0:2, 0:2] = 1.0


class _DeviceValue:
    """A value zarr hands over in device memory (not a numpy array)."""

    def as_ndarray_like(self) -> object:
        return object()


class _Spy:
    def __init__(self) -> None:
        self.writes = 0

    async def write(self, *args: object) -> None:
        self.writes += 1


@pytest.mark.parametrize("why", ["device=cpu", "no cuda"])
def test_device_values_go_to_zarr_without_the_cuda_device(
    why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for reads: a device value with device="cpu", or where cuda cannot run, is written
    by zarr's own pipeline."""
    import asyncio

    from zarr.storage import LocalStore, StorePath

    spy = _Spy()
    monkeypatch.setattr(cuzarr.PhasedCodecPipeline, "_zarr_pipeline", lambda self: spy)
    monkeypatch.setattr("cuzarr.pipeline.cuda_available", lambda: why != "no cuda")
    pipeline = cuzarr.PhasedCodecPipeline.from_codecs([BytesCodec()])
    entry = (StorePath(LocalStore(str(tmp_path)), "c/0"), None, (slice(0, 1),),
             (slice(0, 1),), True)
    with cuzarr.config.set(device="cpu" if why == "device=cpu" else "auto"):
        asyncio.run(pipeline.write([entry], _DeviceValue()))  # type: ignore[arg-type]
    assert spy.writes == 1
