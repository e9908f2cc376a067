"""Writes of cupy values through cuzarr's cuda device on a real GPU, against what zarr's
BatchedCodecPipeline writes from the same numpy values. Skipped without a CUDA device."""

from __future__ import annotations

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

pytestmark = pytest.mark.cuda

ORACLE = "zarr.core.codec_pipeline.BatchedCodecPipeline"
SHAPE = (300, 257)
CHUNKS = (128, 128)  # the shard shape in the sharded cases


def _sharded(index_location: str, *codecs: Any) -> dict[str, Any]:
    return {"serializer": ShardingCodec(chunk_shape=(64, 64), codecs=[BytesCodec(), *codecs],
                                        index_location=index_location),
            "compressors": None}


CASES: dict[str, dict[str, Any]] = {
    "raw": {"compressors": None},
    "crc32c": {"compressors": Crc32cCodec()},
    "zstd": {"compressors": ZstdCodec()},
    "zstd-crc32c": {"compressors": [ZstdCodec(), Crc32cCodec()]},
    "gzip": {"compressors": GzipCodec()},
    "blosc-lz4": {"compressors": BloscCodec(cname="lz4")},
    "raw-big-endian": {"serializer": BytesCodec(endian="big"), "compressors": None},
    "transpose-zstd": {"filters": [TransposeCodec(order=(1, 0))], "compressors": ZstdCodec()},
    "sharded-raw-start": _sharded("start"),
    "sharded-zstd-end": _sharded("end", ZstdCodec()),
    "sharded-zstd-start": _sharded("start", ZstdCodec()),
}
IDENTICAL = {"raw", "crc32c", "raw-big-endian", "sharded-raw-start"}


def _ops(xp: Any) -> list[tuple[str, Callable[[Any], None]]]:
    """Writes with values of module xp (cupy for cuzarr, numpy for zarr's pipeline)."""
    rng = np.random.default_rng(0)
    data = xp.asarray(rng.normal(size=SHAPE).astype("<f4"))
    block = xp.asarray(rng.normal(size=(117, 90)).astype("<f4"))
    column = xp.asarray(rng.normal(size=100).astype("<f4"))
    rows = np.array([3, 140, 141, 299])

    def full(a: Any) -> None:
        a[:] = data

    def partial(a: Any) -> None:
        a[17:134, 100:190] = block

    def scalar(a: Any) -> None:
        a[200:300, 0:129] = 0.5

    def fill(a: Any) -> None:
        a[0:128, 0:256] = 0.0

    def stepped(a: Any) -> None:
        a[0:300:3, 7] = column

    def indexed(a: Any) -> None:
        a.oindex[rows, :] = data[:4]

    return [("full", full), ("partial", partial), ("scalar", scalar), ("fill", fill),
            ("stepped", stepped), ("indexed", indexed)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != "zarr.json"}


def _create(path: Path, case: str, wec: bool) -> Any:
    return zarr.create_array(str(path), shape=SHAPE, chunks=CHUNKS, dtype="<f4",
                             fill_value=0.0, config={"write_empty_chunks": wec}, **CASES[case])


@pytest.mark.parametrize("wec", [False, True], ids=["wec0", "wec1"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_gpu_writes_match_zarr(case: str, wec: bool, tmp_path: Path) -> None:
    import cupy as cp

    from cuzarr.devices import _cuda_device

    device = _cuda_device()
    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        theirs = _create(tmp_path / "zarr", case, wec)
        for _, op in _ops(np):
            op(theirs)
    with cuzarr.enable(gpu=True):
        ours = _create(tmp_path / "cuzarr", case, wec)
        for name, op in _ops(cp):
            before = dict(device.transfers)
            op(ours)
            moved = {k: v - before.get(k, 0) for k, v in device.transfers.items()
                     if v != before.get(k, 0)}
            assert "h2d-value" not in moved and "d2h-output" not in moved, (name, moved)
            assert ("d2h-mask" in moved) == (not wec), (name, moved)
    mine, oracle = _files(tmp_path / "cuzarr"), _files(tmp_path / "zarr")
    assert sorted(mine) == sorted(oracle)
    if case in IDENTICAL:
        assert mine == oracle
    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "cuzarr"))[:],
                                      zarr.open_array(str(tmp_path / "zarr"))[:])


def test_gpu_gather_is_one_launch_per_write(tmp_path: Path) -> None:
    """View selections never fall back to chunk-by-chunk gathers; array ones do, counted."""
    import cupy as cp

    from cuzarr.devices import _cuda_device

    device = _cuda_device()
    with cuzarr.enable(gpu=True):
        arr = _create(tmp_path / "a", "zstd", False)
        before = device.per_chunk_gathers
        for name, op in _ops(cp):
            op(arr)
            expected = before + (1 if name == "indexed" else 0)
            assert device.per_chunk_gathers == expected, name
            before = device.per_chunk_gathers


def test_gpu_value_with_cpu_device_goes_to_zarr(tmp_path: Path) -> None:
    """device="cpu" with a cupy value: zarr's pipeline writes it; the cuda device is idle."""
    import cupy as cp

    from cuzarr.devices import _cuda_device

    device = _cuda_device()
    data = np.arange(SHAPE[0] * SHAPE[1], dtype="<f4").reshape(SHAPE)
    before = dict(device.transfers)
    with cuzarr.enable(gpu=True), cuzarr.config.set(device="cpu"):
        arr = _create(tmp_path / "a", "zstd", False)
        arr[:] = cp.asarray(data)
    assert device.transfers == before
    with zarr.config.set({"codec_pipeline.path": ORACLE}):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"))[:], data)
