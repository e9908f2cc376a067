"""Tiles on the cuda device: big tiles, two in flight, each on its own thread's stream.

A fake stream stands in for cupy's (a context manager that makes itself current, with
`synchronize()`); the nvCOMP backend reads the current stream the way the real device
reads cupy's. The test proves every nvCOMP call ran on the stream of the tile that made
it, that no more than two tiles were in flight, that every tile waited for its stream
before it ended, and that the data is right.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

import cuzarr
import cuzarr.devices
import kvikio_double
import nvcomp_double
from cuzarr.devices.cuda import CudaDevice
from cuzarr.devices.nvcomp_backend import NvcompBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernels"))
from harness import HostLauncher


class FakeStream:
    """Records use; `current()` is the stream a `with` block made current on this thread."""

    _local = threading.local()
    made: list[FakeStream] = []  # noqa: RUF012
    lock = threading.Lock()
    active = 0
    most_active = 0

    def __init__(self) -> None:
        self.ptr = 1000 + len(FakeStream.made)
        self.thread = threading.get_ident()
        self.synced = 0
        FakeStream.made.append(self)

    @classmethod
    def current(cls) -> int:
        stream = getattr(cls._local, "stream", None)
        return 0 if stream is None else stream.ptr

    def __enter__(self) -> FakeStream:
        assert threading.get_ident() == self.thread, "a stream is used by one thread only"
        FakeStream._local.stream = self
        with FakeStream.lock:
            FakeStream.active += 1
            FakeStream.most_active = max(FakeStream.most_active, FakeStream.active)
        time.sleep(0.002)  # let the other lane start while this tile is in flight
        return self

    def __exit__(self, *exc: Any) -> None:
        FakeStream._local.stream = None
        with FakeStream.lock:
            FakeStream.active -= 1

    def synchronize(self) -> None:
        assert FakeStream.current() == 0, "the tile waits for its stream after leaving it"
        self.synced += 1


def _recording_device(monkeypatch: pytest.MonkeyPatch, method: str,
                      chunks_per_tile: int) -> tuple[CudaDevice, list[int]]:
    """A stand-in cuda device on fake streams whose nvCOMP `method` records the stream it
    was called on; tiles of `chunks_per_tile` 40x50 float32 chunks."""
    FakeStream.made.clear()
    FakeStream.most_active = 0
    nvcomp_double.Codec.calls.clear()
    kvikio_double.CuFile.reads.clear()
    backend = NvcompBackend(nvcomp_double, stream=FakeStream.current)
    seen: list[int] = []
    real = getattr(backend, method)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        seen.append(FakeStream.current())
        return real(*args, **kwargs)

    monkeypatch.setattr(backend, method, recorded)
    device = CudaDevice(np, backend, HostLauncher(), kvikio=kvikio_double,
                        new_stream=FakeStream)
    device.tile_bytes = chunks_per_tile * 40 * 50 * 4
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: device)
    return device, seen


def test_tiles_run_on_their_own_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    device, seen = _recording_device(monkeypatch, "decode", chunks_per_tile=4)
    data = np.arange(200 * 250, dtype="<f4").reshape(200, 250) % 977
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        arr = zarr.create_array(str(tmp_path / "a"), shape=data.shape, chunks=(40, 50),
                                dtype=data.dtype, compressors=ZstdCodec())
        arr[:] = data
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda", threads=4):
        got = zarr.open_array(str(tmp_path / "a"))[:]
    np.testing.assert_array_equal(got, data)
    tiles = -(-25 // 4)
    assert len(seen) == tiles, "one batched nvCOMP call per tile"
    ptrs = {s.ptr for s in FakeStream.made}
    assert set(seen) <= ptrs and 0 not in seen, "every nvCOMP call ran on a tile's stream"
    assert 1 <= len(FakeStream.made) <= device.tiles_in_flight
    assert FakeStream.most_active <= device.tiles_in_flight
    assert sum(s.synced for s in FakeStream.made) == tiles


def test_default_tiles_are_large() -> None:
    """The cpu device's 8 MiB tiles would turn a 3 GB read into 400 small nvCOMP calls."""
    assert CudaDevice.tile_bytes >= 256 << 20
    assert CudaDevice.tiles_in_flight == 2


def test_write_tiles_run_on_their_own_streams(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    device, seen = _recording_device(monkeypatch, "encode", chunks_per_tile=3)
    data = np.arange(200 * 250, dtype="<f4").reshape(200, 250) % 977
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda", threads=4):
        arr = zarr.create_array(str(tmp_path / "w"), shape=data.shape, chunks=(40, 50),
                                dtype=data.dtype, compressors=ZstdCodec())
        arr[:] = data
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "w"))[:], data)
    tiles = -(-25 // 3)
    assert len(seen) == tiles, "one batched nvCOMP encode per tile"
    assert 0 not in seen, "every nvCOMP encode ran on a tile's stream"
    assert FakeStream.most_active <= device.tiles_in_flight
    assert sum(s.synced for s in FakeStream.made) == tiles
