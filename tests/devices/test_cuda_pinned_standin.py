"""Host slabs for the cuda device are pinned: the io phase of a non-kvikio read (any
store but a LocalStore with kvikio) fills memory from the device's pinned allocator, and
the one host-to-device copy per wave reads straight from it. An asynchronous copy keeps
its host slab alive until the tile's stream is synchronized."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import zarr
from harness import HostLauncher
from zarr.codecs import BytesCodec, ShardingCodec, ZstdCodec
from zarr.storage import LocalStore, MemoryStore

import cuzarr
import cuzarr.devices
import nvcomp_double
from cuzarr.devices.cuda import CudaDevice
from cuzarr.devices.nvcomp_backend import NvcompBackend


class PinnedTracker:
    """Stands in for cupyx.empty_pinned: numpy memory, every allocation remembered."""

    def __init__(self) -> None:
        self.made: list[np.ndarray] = []
        self.lock = threading.Lock()

    def __call__(self, nbytes: int) -> np.ndarray:
        slab = np.empty(nbytes, dtype=np.uint8)
        with self.lock:
            self.made.append(slab)
        return slab

    def owns(self, array: np.ndarray) -> bool:
        return any(array is slab or array.base is slab for slab in self.made)


@pytest.mark.parametrize("layout", ["plain", "sharded"])
@pytest.mark.parametrize("where", ["memory", "local-without-kvikio"])
def test_wave_uploads_come_from_pinned_slabs(layout: str, where: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = PinnedTracker()
    device = CudaDevice(np, NvcompBackend(nvcomp_double), HostLauncher(), pinned=pinned)
    uploads: list[np.ndarray] = []
    real_upload = device._upload

    def upload(host: np.ndarray) -> Any:
        uploads.append(host)
        return real_upload(host)

    monkeypatch.setattr(device, "_upload", upload)
    monkeypatch.setattr(cuzarr.devices, "_cuda_device", lambda: device)
    data = np.random.default_rng(3).normal(size=(50, 70)).astype("<f4")
    kwargs: dict[str, Any] = {"compressors": ZstdCodec(), "chunks": (16, 20)}
    if layout == "sharded":
        kwargs = {"serializer": ShardingCodec(chunk_shape=(8, 10),
                                              codecs=[BytesCodec(), ZstdCodec()]),
                  "compressors": None, "chunks": (16, 20)}
    store = MemoryStore() if where == "memory" else LocalStore(str(tmp_path / "a"))
    arr = zarr.create_array(store, shape=data.shape, dtype=data.dtype, **kwargs)
    arr[:] = data
    with cuzarr.enable(gpu=False), cuzarr.config.set(device="cuda"):
        got = zarr.open_array(store, mode="r")[3:47, 5:66]
    np.testing.assert_array_equal(got, data[3:47, 5:66])
    assert uploads, "no host-to-device copy ran"
    assert all(pinned.owns(host) for host in uploads), "a wave came from unpinned memory"
    assert nvcomp_double.Codec.calls


class FakeStream:
    def __init__(self) -> None:
        self.synced = 0

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def synchronize(self) -> None:
        self.synced += 1


class FakeDeviceArray:
    """A device array whose `set` is an asynchronous copy on a stream, as cupy's is."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.copies: list[tuple[np.ndarray, FakeStream]] = []

    def set(self, host: np.ndarray, stream: FakeStream) -> None:
        self.copies.append((host, stream))


def test_an_async_upload_holds_its_host_slab_until_the_stream_is_synchronized() -> None:
    current = FakeStream()
    xp = SimpleNamespace(empty=lambda size, dtype: FakeDeviceArray(size),
                         cuda=SimpleNamespace(get_current_stream=lambda: current))
    tile_stream = FakeStream()
    device = CudaDevice(xp, None, None, new_stream=lambda: tile_stream)  # type: ignore[arg-type]
    host = np.arange(10, dtype=np.uint8)
    with device.tile_scope():
        uploaded = device._upload(host)
        assert uploaded.copies == [(host, current)]
        assert device._streams.held == [host] and current.synced == 0
    assert tile_stream.synced == 1 and device._streams.held is None
    device._upload(host)  # outside a tile: nothing holds the slab, so the copy is waited for
    assert current.synced == 1


def test_a_failing_tile_still_waits_for_its_stream() -> None:
    tile_stream = FakeStream()
    device = CudaDevice(np, None, None, new_stream=lambda: tile_stream)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="boom"), device.tile_scope():
        raise RuntimeError("boom")
    assert tile_stream.synced == 1 and device._streams.held is None
