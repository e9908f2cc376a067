"""PatchLoader and read_patches on a real GPU: cupy output, torch tensors through DLPack,
the producer's own stream and the event the consumer's stream waits for. Skipped
without a CUDA device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

import cuzarr
from cuzarr.loader import PatchLoader

pytestmark = pytest.mark.cuda


@pytest.fixture
def volume(tmp_path: Path) -> tuple[zarr.Array, np.ndarray]:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(32, 64, 64)).astype("<f4")
    arr = zarr.create_array(str(tmp_path / "v"), shape=data.shape, dtype="<f4",
                            chunks=(16, 16, 16), shards=(32, 64, 64), compressors=ZstdCodec())
    arr[:] = data
    return arr, data


def test_read_patches_into_cupy(volume: Any) -> None:
    import cupy

    arr, data = volume
    starts = np.array([[0, 0, 0], [5, 9, 13], [16, 40, 50]])
    out = cupy.empty((3, 8, 8, 8), dtype="<f4")
    got = cuzarr.read_patches(arr, starts, (8, 8, 8), out=out)
    assert isinstance(got, cupy.ndarray)
    expected = np.stack([data[a : a + 8, b : b + 8, c : c + 8] for a, b, c in starts.tolist()])
    np.testing.assert_array_equal(got.get(), expected)


def test_torch_batches_on_the_gpu_are_ready_on_the_current_stream(volume: Any) -> None:
    torch = pytest.importorskip("torch")
    arr, data = volume
    given = np.array([[i, i, i] for i in range(0, 24, 3)])
    loader = PatchLoader(arr, (8, 8, 8), 4, starts=given, shuffle=False, device="cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):  # the consumer's current stream is not the default one
        seen = []
        for batch in loader:
            assert batch.is_cuda and batch.dtype == torch.float32
            seen.append((batch * 1).cpu().numpy())  # work queued on `side` after the event
    got = np.concatenate(seen)
    expected = np.stack([data[a : a + 8, b : b + 8, c : c + 8] for a, b, c in given.tolist()])
    np.testing.assert_array_equal(got, expected)


def test_cupy_output(volume: Any) -> None:
    import cupy

    arr, data = volume
    loader = PatchLoader(arr, (4, 4, 4), 3, samples_per_epoch=9, device="cuda",
                         output="cupy")
    for batch in loader:
        assert isinstance(batch, cupy.ndarray)
        host = batch.get()
        for patch in host:
            assert np.isin(patch.reshape(-1)[:1], data).all()
