"""cuzarr.dask on a real dask.distributed LocalCluster (2 worker processes, 1 thread each),
cpu device: the plugin on the workers themselves, reads and writes against zarr's own
pipeline, the overlap refusal, and errors naming the key."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

import cuzarr

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from cuzarr.dask import enable, from_zarr, to_zarr, worker_state  # noqa: E402

ZARR_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, worker_dashboard_address=None)
    previous = zarr.config.get("codec_pipeline.path")
    try:
        with distributed.Client(cluster) as c:
            yield c
    finally:
        cluster.close()
        zarr.config.set({"codec_pipeline.path": previous})  # enable() selects it here too


def zarr_read(path: Path) -> np.ndarray:
    with zarr.config.set({"codec_pipeline.path": ZARR_PIPELINE}):
        return zarr.open_array(str(path), mode="r")[...]


def make(path: Path, data: np.ndarray, **kwargs: Any) -> zarr.Array:
    with zarr.config.set({"codec_pipeline.path": ZARR_PIPELINE}):
        arr = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype,
                                compressors=ZstdCodec(), **kwargs)
        arr[...] = data
    return arr


def test_enable_reaches_every_worker_and_later_ones(client: Any) -> None:
    before = client.run(worker_state)
    assert all(s["codec_pipeline.path"] != "cuzarr.PhasedCodecPipeline" for s in before.values())
    assert {s["threads"] for s in before.values()} == {os.cpu_count()}  # the oversubscription
    enable(client, wave_bytes=1 << 20)
    after = client.run(worker_state)
    assert len(after) == 2
    for state in after.values():
        assert state["codec_pipeline.path"] == "cuzarr.PhasedCodecPipeline"
        assert state["threads"] == 1  # the worker's nthreads
        assert state["wave_bytes"] == 1 << 20
    assert cuzarr.config.get("wave_bytes") != 1 << 20  # the client's own settings stay
    assert zarr.config.get("codec_pipeline.path") == "cuzarr.PhasedCodecPipeline"
    client.cluster.scale(3)
    client.wait_for_workers(3, timeout=60)
    joined = client.run(worker_state)
    assert len(joined) == 3
    assert all(s["codec_pipeline.path"] == "cuzarr.PhasedCodecPipeline" and s["threads"] == 1
               for s in joined.values())
    client.cluster.scale(2)
    deadline = time.monotonic() + 60
    while len(client.scheduler_info()["workers"]) > 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    client.restart()  # restarted workers run the plugin again
    restarted = client.run(worker_state)
    assert restarted and all(s["codec_pipeline.path"] == "cuzarr.PhasedCodecPipeline"
                             for s in restarted.values())


def test_enable_checks_settings_in_the_client(client: Any) -> None:
    with pytest.raises(cuzarr.ConfigError, match="'threads'"):
        enable(client, threads=0)
    with pytest.raises(cuzarr.ConfigError, match="unknown cuzarr settings"):
        enable(client, no_such=1)


@pytest.mark.parametrize("sharded", [False, True])
def test_reads_larger_than_a_wave_match_zarr(client: Any, tmp_path: Path,
                                             sharded: bool) -> None:
    """8 MiB of data, workers with a 1 MiB wave budget (enable above)."""
    enable(client, wave_bytes=1 << 20)
    rng = np.random.default_rng(0)
    data = np.round(rng.normal(size=(1024, 2048)), 2).astype("<f4")
    kwargs: dict[str, Any] = {"chunks": (128, 256)}
    if sharded:
        kwargs["shards"] = (256, 512)
    make(tmp_path / "a", data, **kwargs)
    x = from_zarr(str(tmp_path / "a"))
    assert x.chunks == ((256,) * 4, (512,) * 4) if sharded else x.chunks[0] == (128,) * 8
    assert isinstance(x._meta, np.ndarray)
    np.testing.assert_array_equal(x.compute(), zarr_read(tmp_path / "a"))
    np.testing.assert_array_equal(x[100:900:3, 5:].compute(), data[100:900:3, 5:])
    y = from_zarr(str(tmp_path / "a"), chunks=(-1, 1024))
    assert y.chunks == ((1024,), (1024, 1024))
    np.testing.assert_array_equal(y.sum(axis=0).compute(), data.sum(axis=0))


def test_block_shapes_must_hold_whole_shards(tmp_path: Path) -> None:
    arr = make(tmp_path / "a", np.zeros((100, 100), "u1"), chunks=(10, 10), shards=(20, 50))
    with pytest.raises(ValueError, match="dimension 1 has blocks of 30, not a multiple of the "
                                         "array's shard extent 50"):
        from_zarr(arr, chunks=(40, 30))
    assert from_zarr(arr, chunks=(100, 100)).chunks == ((100,), (100,))
    assert from_zarr(arr, chunks=(60, 50)).chunks == ((60, 40), (50, 50))


def test_edge_blocks_of_an_uneven_array(client: Any, tmp_path: Path) -> None:
    data = np.arange(37 * 53, dtype="<i8").reshape(37, 53)
    make(tmp_path / "a", data, chunks=(5, 7), shards=(10, 14))
    x = from_zarr(str(tmp_path / "a"))
    assert x.chunks == ((10, 10, 10, 7), (14, 14, 14, 11))
    np.testing.assert_array_equal(x.compute(), data)


@pytest.mark.parametrize("sharded", [False, True])
def test_writes_match_zarr(client: Any, tmp_path: Path, sharded: bool) -> None:
    enable(client, wave_bytes=1 << 20)
    kwargs: dict[str, Any] = {"chunks": (64, 128)}
    if sharded:
        kwargs["shards"] = (128, 256)
    target = make(tmp_path / "t", np.zeros((512, 1024), "<f4"), **kwargs)
    source = da.random.default_rng(1).normal(size=(512, 1024), chunks=(128, 256)).astype("<f4")
    expected = source.compute()
    to_zarr(source, target)
    np.testing.assert_array_equal(zarr_read(tmp_path / "t"), expected)


def test_overlapping_writes_are_refused_or_locked(client: Any, tmp_path: Path) -> None:
    target = make(tmp_path / "t", np.zeros((64, 64), "<i4"), chunks=(8, 8), shards=(16, 16))
    source = da.arange(64 * 64, dtype="<i4", chunks=24).reshape(64, 64).rechunk((24, 64))
    with pytest.raises(ValueError, match=r"dimension 0: a block edge at 24 cuts the stored "
                                         r"extent \[16, 32\)"):
        to_zarr(source, target)
    np.testing.assert_array_equal(zarr_read(tmp_path / "t"), 0)  # nothing was written
    to_zarr(source, target, lock=True)
    np.testing.assert_array_equal(zarr_read(tmp_path / "t"), source.compute())


def test_a_corrupt_chunk_on_a_worker_names_its_key(client: Any, tmp_path: Path) -> None:
    data = np.arange(64 * 64, dtype="<f4").reshape(64, 64)
    make(tmp_path / "a", data, chunks=(16, 16))
    chunk = tmp_path / "a" / "c" / "2" / "1"
    chunk.write_bytes(chunk.read_bytes()[:10])
    with pytest.raises(Exception, match="c/2/1") as info:
        from_zarr(str(tmp_path / "a")).compute()
    assert isinstance(info.value, cuzarr.ChunkDecodeError)


def test_tasks_read_with_cuzarr_whatever_the_workers_config(client: Any, tmp_path: Path
                                                            ) -> None:
    """A worker whose zarr config names zarr's pipeline still reads blocks with cuzarr:
    the block task builds cuzarr's pipeline for the array it is handed."""
    def zarr_default() -> str:
        zarr.config.set({"codec_pipeline.path": ZARR_PIPELINE})
        return zarr.config.get("codec_pipeline.path")

    client.run(zarr_default)
    data = np.arange(40 * 40, dtype="<u2").reshape(40, 40)
    make(tmp_path / "a", data, chunks=(8, 8))
    chunk = tmp_path / "a" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:5])
    with pytest.raises(cuzarr.ChunkDecodeError, match="c/0/0"):  # cuzarr's error class
        from_zarr(str(tmp_path / "a")).compute()
    enable(client)  # restore for the other tests


def test_xarray_round_trip_on_the_cluster(client: Any, tmp_path: Path) -> None:
    """Dataset.to_zarr from dask-backed variables and xr.open_zarr(chunks=...) read back,
    on the workers; a damaged chunk then surfaces as cuzarr's error naming its key, so
    the workers' reads went through cuzarr."""
    xr = pytest.importorskip("xarray")
    enable(client)
    rng = np.random.default_rng(2)
    temperature = da.from_array(rng.normal(size=(48, 64, 32)).astype("<f4"),
                                chunks=(16, 32, 32))
    ds = xr.Dataset({"t": (("time", "y", "x"), temperature)},
                    coords={"time": np.arange(48), "y": np.arange(64), "x": np.arange(32)})
    ds.to_zarr(tmp_path / "ds.zarr", zarr_format=3, consolidated=False,
               encoding={"t": {"chunks": (16, 32, 32)}})
    back = xr.open_zarr(tmp_path / "ds.zarr", chunks={"time": 16}, consolidated=False)
    assert back["t"].chunks is not None
    np.testing.assert_array_equal(back["t"].values, temperature.compute())
    chunk = tmp_path / "ds.zarr" / "t" / "c" / "1" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:8])
    damaged = xr.open_zarr(tmp_path / "ds.zarr", chunks={"time": 16}, consolidated=False)
    with pytest.raises(cuzarr.ChunkDecodeError, match="c/1/0/0"):
        damaged["t"].mean().compute()
