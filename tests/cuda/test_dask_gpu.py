"""cuzarr.dask on dask-cuda's LocalCUDACluster: one worker per GPU, cupy blocks read and
written on each worker's own GPU. Skipped without a CUDA device or dask-cuda."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    dask_cuda = pytest.importorskip("dask_cuda")
    distributed = pytest.importorskip("distributed")
    cluster = dask_cuda.LocalCUDACluster(dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_cupy_blocks_on_every_gpu_worker(client: Any, tmp_path: Path) -> None:
    import cupy

    import cuzarr.dask

    cuzarr.dask.enable(client)
    data = np.random.default_rng(0).normal(size=(2048, 2048)).astype("<f4")
    arr = zarr.create_array(str(tmp_path / "a"), shape=data.shape, dtype="<f4",
                            chunks=(256, 256), shards=(1024, 1024), compressors=ZstdCodec())
    arr[:] = data
    x = cuzarr.dask.from_zarr(str(tmp_path / "a"), device="cuda")
    assert isinstance(x._meta, cupy.ndarray)
    blocks = x.map_blocks(lambda b: cupy.asarray([[b.device.id]]), dtype=np.int64,
                          chunks=((1,) * 2, (1,) * 2)).compute()
    assert blocks.size == 4
    np.testing.assert_array_equal(cupy.asnumpy(x.compute()), data)
    target = zarr.create_array(str(tmp_path / "b"), shape=data.shape, dtype="<f4",
                               chunks=(256, 256), shards=(1024, 1024), compressors=ZstdCodec())
    cuzarr.dask.to_zarr(x * 2, target)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "b"))[:], data * 2)
