"""With `zstd_prefix_reads` opted in, reads of a chunk's leading rows decode only the prefix
of its zstd frame that holds them (by default frames are decoded whole: a prefix cannot be
checked against the frame's declared size).

Selections drawn by hypothesis are checked against numpy, on zstd arrays with and without
a content checksum and with a missing chunk; a spy proves the prefix path ran and decoded
less than whole chunks; damaged frames still end in errors naming their keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import BytesCodec, ZstdCodec

import cuzarr
from cuzarr.codecs.bytes_to_bytes import ZstdStage
from cuzarr.errors import ChunkDecodeError
from selections import expected, read, selections

PIPE = {"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}
SETTINGS = settings(
    max_examples=80, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SHAPE = (70, 23, 5)
CHUNKS = (32, 8, 5)


def _data(dtype: str) -> np.ndarray:
    data = (np.arange(np.prod(SHAPE)) * 7 % 1000).reshape(SHAPE).astype(dtype)
    data[32:64, 8:16] = 3  # that chunk is all fill: not stored
    return data


@pytest.fixture(scope="module")
def arrays_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prefix-reads")


@pytest.fixture(autouse=True)
def _opt_in(request: pytest.FixtureRequest) -> Any:
    """Every test here runs with the opt-in, but the one that checks the default."""
    if request.node.name.startswith("test_default_"):
        yield
        return
    with cuzarr.config.set(zstd_prefix_reads=True):
        yield


@pytest.fixture
def prefix_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(largest prefix, chunk bytes) of every prefix decode (empty when it did not run)."""
    calls: list[tuple[int, int]] = []
    real = ZstdStage.decode_prefixes

    def spy(self: ZstdStage, batch: Any, expected: int, prefixes: np.ndarray,
            threads: int) -> Any:
        calls.append((int(prefixes.max()) if prefixes.size else 0, expected))
        return real(self, batch, expected, prefixes, threads)

    monkeypatch.setattr(ZstdStage, "decode_prefixes", spy)
    return calls


def _array(path: Path, dtype: str, checksum: bool, endian: str = "little") -> zarr.Array:
    if not path.exists():
        with zarr.config.set({"codec_pipeline.path":
                              "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
            arr = zarr.create_array(str(path), shape=SHAPE, chunks=CHUNKS, dtype=dtype,
                                    serializer=BytesCodec(endian=endian),
                                    compressors=ZstdCodec(checksum=checksum), fill_value=3)
            arr[...] = _data(dtype)
    with zarr.config.set(PIPE):
        return zarr.open_array(str(path), mode="r")


@SETTINGS
@given(selection=selections(SHAPE), dtype=st.sampled_from(["int16", "float64", "uint8"]),
       checksum=st.booleans(), endian=st.sampled_from(["little", "little", "big"]))
def test_prefix_reads_match_numpy(arrays_dir: Path, selection: tuple[str, Any], dtype: str,
                                  checksum: bool, endian: str) -> None:
    kind, sel = selection
    arr = _array(arrays_dir / f"{dtype}-{checksum}-{endian}.zarr", dtype, checksum, endian)
    data = _data(dtype)
    with zarr.config.set(PIPE):
        got = read(arr, kind, sel)
    np.testing.assert_array_equal(got, expected(data, kind, sel))


def test_leading_rows_decode_only_a_prefix(tmp_path: Path,
                                           prefix_spy: list[tuple[int, int]]) -> None:
    arr = _array(tmp_path / "a.zarr", "int16", checksum=False)
    data = _data("int16")
    with zarr.config.set(PIPE):
        np.testing.assert_array_equal(arr[33:40, 2:20], data[33:40, 2:20])
        row = CHUNKS[1] * CHUNKS[2] * 2
        assert prefix_spy and prefix_spy[-1] == (8 * row, CHUNKS[0] * row)
        prefix_spy.clear()
        np.testing.assert_array_equal(arr[:64], data[:64])  # whole chunks: no prefixes
        np.testing.assert_array_equal(arr[20:32], data[20:32])  # the last rows: none either
        np.testing.assert_array_equal(arr[:], data)  # zarr marks every chunk complete
    assert prefix_spy == []


def _victim(tmp_path: Path, checksum: bool = False) -> tuple[zarr.Array, Path, bytes]:
    arr = _array(tmp_path / "v.zarr", "float64", checksum)
    path = tmp_path / "v.zarr" / "c" / "1" / "0" / "0"
    return arr, path, path.read_bytes()


@pytest.mark.parametrize("damage", ["cut-short", "trailing-bytes", "garbage-front",
                                    "wrong-size", "no-size-wrong-size"])
def test_damaged_frames_name_their_key(tmp_path: Path, prefix_spy: list[tuple[int, int]],
                                       damage: str) -> None:
    arr, path, frame = _victim(tmp_path)
    chunk_bytes = int(np.prod(CHUNKS)) * 8
    if damage == "cut-short":
        frame = frame[: len(frame) - 9]
    elif damage == "trailing-bytes":
        frame = frame + b"\x00" * 5
    elif damage == "garbage-front":
        raw = bytearray(frame)
        raw[8:40] = b"\xff" * 32
        frame = bytes(raw)
    elif damage == "wrong-size":
        frame = zstandard.ZstdCompressor().compress(b"\x01" * (chunk_bytes - 8))
    else:
        frame = zstandard.ZstdCompressor(write_content_size=False).compress(b"\x01" * 800)
    path.write_bytes(frame)
    with zarr.config.set(PIPE), pytest.raises(ChunkDecodeError, match="c/1/0/0"):
        arr[33:36]
    assert prefix_spy, "the prefix path ran"


def test_a_checksum_is_still_verified(tmp_path: Path) -> None:
    """A frame with a content checksum is decoded whole even for its first rows, so a
    flipped byte anywhere in it is found."""
    arr, path, frame = _victim(tmp_path, checksum=True)
    raw = bytearray(frame)
    raw[-1] ^= 0x55  # the checksum itself
    path.write_bytes(bytes(raw))
    with zarr.config.set(PIPE), pytest.raises(ChunkDecodeError, match="c/1/0/0"):
        arr[33:35]


def _sharded(path: Path, dtype: str) -> zarr.Array:
    from zarr.codecs import ShardingCodec

    if not path.exists():
        with zarr.config.set({"codec_pipeline.path":
                              "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
            arr = zarr.create_array(
                str(path), shape=SHAPE, chunks=(64, 16, 5), dtype=dtype, fill_value=3,
                serializer=ShardingCodec(chunk_shape=(CHUNKS[0], 8, 5),
                                         codecs=[BytesCodec(), ZstdCodec()]),
                compressors=None)
            arr[...] = _data(dtype)
    with zarr.config.set(PIPE):
        return zarr.open_array(str(path), mode="r")


@SETTINGS
@given(selection=selections(SHAPE), dtype=st.sampled_from(["int16", "float64"]))
def test_sharded_prefix_reads_match_numpy(arrays_dir: Path, selection: tuple[str, Any],
                                          dtype: str) -> None:
    kind, sel = selection
    arr = _sharded(arrays_dir / f"sharded-{dtype}.zarr", dtype)
    data = _data(dtype)
    with zarr.config.set(PIPE):
        got = read(arr, kind, sel)
    np.testing.assert_array_equal(got, expected(data, kind, sel))


def test_sharded_leading_rows_decode_prefixes(tmp_path: Path,
                                              prefix_spy: list[tuple[int, int]]) -> None:
    arr = _sharded(tmp_path / "s.zarr", "int16")
    data = _data("int16")
    with zarr.config.set(PIPE):
        np.testing.assert_array_equal(arr[33:36, 1:12], data[33:36, 1:12])
    row = 8 * 5 * 2
    assert prefix_spy and prefix_spy[-1] == (4 * row, CHUNKS[0] * row)


@settings(max_examples=60, deadline=None)
@given(payloads=st.lists(st.binary(max_size=3000), min_size=1, max_size=6),
       checksum=st.booleans(), content_size=st.booleans(), level=st.sampled_from([1, 3, 19]),
       damage=st.lists(st.sampled_from(["none", "cut", "append", "double", "cut-header"]),
                       min_size=6, max_size=6))
def test_frame_lengths_walk_headers_for_a_whole_batch(payloads: list[bytes], checksum: bool,
                                                      content_size: bool, level: int,
                                                      damage: list[str]) -> None:
    """zstd_frame_lengths (numpy, whole batch) says an item is exactly one frame iff it is:
    intact frames of any header layout pass; cut, padded or doubled ones do not."""
    from cuzarr.batch import ByteBatch
    from cuzarr.codecs.bytes_to_bytes import zstd_frame_lengths

    compressor = zstandard.ZstdCompressor(level=level, write_checksum=checksum,
                                          write_content_size=content_size)
    items, whole = [], []
    for payload, how in zip(payloads, damage, strict=False):
        frame = compressor.compress(payload)
        items.append({"none": frame, "cut": frame[:-1], "append": frame + b"\0",
                      "double": frame + frame, "cut-header": frame[:5]}[how])
        whole.append(how == "none")
    batch = ByteBatch.from_buffers(items)
    lengths = zstd_frame_lengths(batch.slab, batch.offsets, batch.sizes)
    assert list(lengths == batch.sizes) == whole


def test_default_reads_decode_whole_frames(tmp_path: Path,
                                           prefix_spy: list[tuple[int, int]]) -> None:
    """Without the opt-in, a leading-rows read decodes whole frames (item 2 of issue 12)."""
    assert cuzarr.config.get("zstd_prefix_reads") is False
    arr = _array(tmp_path / "a.zarr", "float64", checksum=False)
    with zarr.config.set(PIPE):
        np.testing.assert_array_equal(arr[:3], _data("float64")[:3])
    assert prefix_spy == []
