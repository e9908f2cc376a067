"""Partial reads of uncompressed chunks: only the leading-axis rows a selection touches.

Selections are drawn by hypothesis and checked against numpy on a LocalStore array with no
compressor; a spy on the reader proves the window path ran and read less than whole chunks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import BytesCodec

from cuzarr.errors import ChunkDecodeError
from cuzarr.io.host import HostReader
from selections import expected, read, selections

SETTINGS = settings(
    max_examples=80, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SHAPE = (37, 23, 5)
CHUNKS = (16, 8, 5)


def _expected(dtype: str) -> np.ndarray:
    data = (np.arange(np.prod(SHAPE)) * 7 % 1000).reshape(SHAPE).astype(dtype)
    data[16:32, 8:16] = 3
    return data


@pytest.fixture(scope="module")
def arrays_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("row-windows")


@pytest.fixture
def window_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes each window read fetched per chunk (empty when the path did not run)."""
    calls: list[int] = []
    real = HostReader.windows_sync

    def spy(self: HostReader, keys: list[str], starts: np.ndarray, length: int,
            whole: int) -> Any:
        calls.append(length)
        assert length <= whole // 2
        return real(self, keys, starts, length, whole)

    monkeypatch.setattr(HostReader, "windows_sync", spy)
    return calls


def _array(path: Path, endian: str, dtype: str, pipeline: str) -> tuple[zarr.Array, np.ndarray]:
    """An uncompressed array with one missing chunk, opened with `pipeline`; made once."""
    if path.exists():
        with zarr.config.set({"codec_pipeline.path": pipeline}):
            arr = zarr.open_array(str(path), mode="r")
        return arr, _expected(dtype)
    data = (np.arange(np.prod(SHAPE)) * 7 % 1000).reshape(SHAPE).astype(dtype)
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        arr = zarr.create_array(str(path), shape=SHAPE, chunks=CHUNKS, dtype=dtype,
                                serializer=BytesCodec(endian=endian), compressors=None,
                                fill_value=3)
        arr[...] = data
        arr[16:32, 8:16] = 3  # chunk (1, 1, 0) is all fill: deleted, so it is missing
    data = _expected(dtype)
    with zarr.config.set({"codec_pipeline.path": pipeline}):
        return zarr.open_array(str(path), mode="r"), data


@SETTINGS
@given(selection=selections(SHAPE), endian=st.sampled_from(["little", "big"]),
       dtype=st.sampled_from(["int16", "float64", "uint8"]))
def test_windowed_reads_match_numpy(
    arrays_dir: Path, test_pipeline: str, selection: tuple[str, Any], endian: str, dtype: str
) -> None:
    kind, sel = selection
    arr, data = _array(arrays_dir / f"{endian}-{dtype}.zarr", endian, dtype, test_pipeline)
    got = read(arr, kind, sel)
    np.testing.assert_array_equal(got, expected(data, kind, sel))


def test_window_path_reads_only_touched_rows(tmp_path: Path, window_spy: list[int]) -> None:
    arr, data = _array(tmp_path / "a.zarr", "little", "int16", "cuzarr.PhasedCodecPipeline")
    np.testing.assert_array_equal(arr[20:23, 3:20], data[20:23, 3:20])
    row = CHUNKS[1] * CHUNKS[2] * 2
    assert window_spy and max(window_spy) == 3 * row
    window_spy.clear()
    np.testing.assert_array_equal(arr[:], data)  # whole chunks: no windows
    assert window_spy == []


def test_truncated_uncompressed_chunk_named(tmp_path: Path, window_spy: list[int]) -> None:
    arr, _ = _array(tmp_path / "t.zarr", "little", "int16", "cuzarr.PhasedCodecPipeline")
    chunk = tmp_path / "t.zarr" / "c" / "0" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-2])
    with pytest.raises(ChunkDecodeError, match="c/0/1/0"):
        arr[2:4, 8:12]
    assert window_spy
