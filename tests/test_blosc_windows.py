"""Reads that need some rows of a large blosc chunk decode only the blocks holding them.

`BloscStage.decode_windows` is checked against numcodecs' whole decode on random windows;
whole reads through the pipeline are checked against numpy on hypothesis selections (the
size threshold lowered so small test chunks take the path, with blocks forced small so a
chunk has many); a spy proves the path ran on real 1 MiB chunks; damaged chunks still end in
errors naming their keys, or in rows exactly as they were stored.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec

from cuzarr import read as read_module
from cuzarr.batch import ByteBatch
from cuzarr.codecs import blosc_native
from cuzarr.codecs.bytes_to_bytes import BloscStage
from cuzarr.errors import ChunkDecodeError
from cuzarr.workers import StageError
from selections import expected, read, selections

PIPE = {"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}
ORACLE = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
SETTINGS = settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SHAPE = (70, 23, 5)
CHUNKS = (32, 8, 5)


def _data(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    data = (np.arange(int(np.prod(shape))) * 7 % 1000).reshape(shape).astype(dtype)
    if shape == SHAPE:
        data[32:64, 8:16] = 3  # that chunk is all fill: not stored
    return data


@pytest.fixture(scope="module")
def arrays_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("blosc-windows")


@pytest.fixture
def windows_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(bytes decoded by windows, bytes of the chunks) of every windowed decode."""
    calls: list[tuple[int, int]] = []
    real = BloscStage.decode_windows

    def spy(self: BloscStage, batch: Any, expected: int, windows: np.ndarray,
            threads: int) -> Any:
        calls.append((int((windows[:, 1] - windows[:, 0]).sum()), expected * len(windows)))
        return real(self, batch, expected, windows, threads)

    monkeypatch.setattr(BloscStage, "decode_windows", spy)
    return calls


def _array(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str,
           codec: BloscCodec) -> zarr.Array:
    if not path.exists():
        with zarr.config.set(ORACLE):
            arr = zarr.create_array(str(path), shape=shape, chunks=chunks, dtype=dtype,
                                    compressors=codec, fill_value=3)
            arr[...] = _data(shape, dtype)
    with zarr.config.set(PIPE):
        return zarr.open_array(str(path), mode="r")


@pytest.fixture
def small_chunks_too() -> Iterator[None]:
    """Let the test's small chunks take the windowed path (it starts at 1 MiB)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(read_module, "_BLOSC_PARTIAL_MIN_BYTES", 0)
        yield


@SETTINGS
@given(selection=selections(SHAPE), dtype=st.sampled_from(["int16", "float64", "uint8"]),
       cname=st.sampled_from(["lz4", "zstd", "blosclz"]),
       shuffle=st.sampled_from(["noshuffle", "shuffle", "bitshuffle"]),
       blocksize=st.sampled_from([0, 256]))
def test_windowed_reads_match_numpy(arrays_dir: Path, small_chunks_too: None,
                                    selection: tuple[str, Any], dtype: str, cname: str,
                                    shuffle: str, blocksize: int) -> None:
    kind, sel = selection
    codec = BloscCodec(cname=cname, shuffle=shuffle, blocksize=blocksize)
    arr = _array(arrays_dir / f"{dtype}-{cname}-{shuffle}-{blocksize}.zarr", SHAPE, CHUNKS,
                 dtype, codec)
    with zarr.config.set(PIPE):
        got = read(arr, kind, sel)
    np.testing.assert_array_equal(got, expected(_data(SHAPE, dtype), kind, sel))


def test_a_few_rows_decode_a_few_blocks(arrays_dir: Path, small_chunks_too: None,
                                        windows_spy: list[tuple[int, int]]) -> None:
    arr = _array(arrays_dir / "spy.zarr", SHAPE, CHUNKS, "float64",
                 BloscCodec(cname="lz4", shuffle="shuffle", blocksize=256))
    with zarr.config.set(PIPE):
        got = arr[3:5, 2:20]
    np.testing.assert_array_equal(got, _data(SHAPE, "float64")[3:5, 2:20])
    assert windows_spy, "the windowed decode did not run"
    decoded, whole = windows_spy[-1]
    assert decoded * 8 <= whole


def test_one_mib_chunks_take_the_path(arrays_dir: Path, windows_spy: list[tuple[int, int]],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """At the default threshold: a patch of 1 MiB float32 chunks calls c-blosc's getitem."""
    calls: list[int] = []
    real = blosc_native.GETITEM

    def getitem(src: int, start: int, nitems: int, dest: int) -> int:
        calls.append(nitems)
        return real(src, start, nitems, dest)

    monkeypatch.setattr(blosc_native, "GETITEM", getitem)
    shape, chunks = (1024, 1024), (512, 512)
    arr = _array(arrays_dir / "large.zarr", shape, chunks, "float32",
                 BloscCodec(cname="lz4", shuffle="shuffle"))
    with zarr.config.set(PIPE):
        got = arr[500:600, 100:700]
    np.testing.assert_array_equal(got, _data(shape, "float32")[500:600, 100:700])
    assert windows_spy and calls
    assert max(calls) * 4 < 512 * 512 * 4 // 2


@settings(max_examples=80, deadline=None)
@given(cname=st.sampled_from(numcodecs.blosc.list_compressors()),
       shuffle=st.sampled_from([0, 1, 2]), typesize=st.sampled_from([1, 2, 4, 8]),
       blocksize=st.sampled_from([0, 128, 1024]), size=st.integers(1, 40_000),
       cuts=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=6))
def test_decode_windows_matches_whole_decode(cname: str, shuffle: int, typesize: int,
                                             blocksize: int, size: int,
                                             cuts: list[tuple[float, float]]) -> None:
    """Inside every window the bytes are numcodecs'; windows need not be whole items."""
    size -= size % typesize or 0
    size = max(size, typesize)
    codec = numcodecs.Blosc(cname=cname, shuffle=shuffle, blocksize=blocksize,
                            typesize=typesize)
    raw = (np.arange(size) * 31 % 251).astype(np.uint8)
    chunk = codec.encode(raw)
    windows = np.array([sorted((int(a * size), int(b * size))) for a, b in cuts],
                       dtype=np.int64)
    batch = ByteBatch.from_buffers([chunk] * len(windows))
    out = BloscStage(codec).decode_windows(batch, size, windows, threads=2)
    for i, (low, high) in enumerate(windows.tolist()):
        assert bytes(out.item(i)[low:high]) == raw[low:high].tobytes()


def _damaged_copy(source: Path, tmp: Path, edit: Any) -> tuple[Path, str]:
    path = tmp / "a.zarr"
    shutil.copytree(source, path)
    key = "c/0/0/0"
    victim = path / key
    victim.write_bytes(edit(bytearray(victim.read_bytes())))
    return path, key


@pytest.mark.parametrize("damage", ["block-table", "truncated", "stream-size"])
def test_damaged_frames_name_their_key(arrays_dir: Path, tmp_path: Path,
                                       small_chunks_too: None, damage: str) -> None:
    source = arrays_dir / "damage-source.zarr"
    _array(source, SHAPE, CHUNKS, "float64", BloscCodec(cname="lz4", blocksize=256))

    def edit(raw: bytearray) -> bytes:
        if damage == "block-table":
            raw[20:24] = (len(raw) + 100).to_bytes(4, "little")  # block 1 past the end
        elif damage == "truncated":
            del raw[len(raw) // 2 :]
        else:
            start = int.from_bytes(raw[16:20], "little")
            raw[start : start + 4] = (10**6).to_bytes(4, "little")  # block 0's first stream
        return bytes(raw)

    path, key = _damaged_copy(source, tmp_path, edit)
    with zarr.config.set(PIPE):
        arr = zarr.open_array(str(path), mode="r")
        with pytest.raises(ChunkDecodeError, match=key):
            arr[20:22, 0:3]


def test_damage_outside_the_window_leaves_the_rows_as_stored(
        arrays_dir: Path, tmp_path: Path, small_chunks_too: None) -> None:
    """As with zstd prefix reads (README): blocks the read does not need are not decoded,
    so damage there goes unseen, and the rows returned are exactly the stored ones."""
    source = arrays_dir / "damage-source.zarr"
    _array(source, SHAPE, CHUNKS, "float64", BloscCodec(cname="lz4", blocksize=256))

    def edit(raw: bytearray) -> bytes:
        raw[-8] ^= 0xFF  # inside the last block's stream; the read needs the first blocks
        return bytes(raw)

    path, _ = _damaged_copy(source, tmp_path, edit)
    with zarr.config.set(PIPE):
        got = zarr.open_array(str(path), mode="r")[0:2, 0:8]
    np.testing.assert_array_equal(got, _data(SHAPE, "float64")[0:2, 0:8])


def test_blocks_not_whole_items_are_decoded_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window that is not whole items of the chunk's typesize (a v3 typesize other than
    the dtype's) is decoded whole, through blosc_decompress_ctx."""
    whole: list[int] = []
    real = blosc_native.DECOMPRESS

    def decompress(src: int, dst: int, size: int, threads: int) -> int:
        whole.append(size)
        return real(src, dst, size, threads)

    monkeypatch.setattr(blosc_native, "DECOMPRESS", decompress)
    codec = numcodecs.Blosc(cname="lz4", typesize=8)
    raw = np.arange(4096, dtype=np.uint8)
    out = BloscStage(codec).decode_windows(ByteBatch.from_buffers([codec.encode(raw)]), 4096,
                                           np.array([[4, 100]]), threads=1)
    assert whole == [4096]
    assert bytes(out.item(0)[4:100]) == raw[4:100].tobytes()


def test_a_wrong_declared_size_names_the_item() -> None:
    codec = numcodecs.Blosc(cname="lz4")
    chunk = codec.encode(np.zeros(1000, dtype=np.uint8))
    with pytest.raises(StageError, match="1000 bytes, expected 2000"):
        BloscStage(codec).decode_windows(ByteBatch.from_buffers([chunk]), 2000,
                                         np.array([[0, 10]]), threads=1)


@SETTINGS
@given(selection=selections(SHAPE), shuffle=st.sampled_from(["shuffle", "bitshuffle"]))
def test_windowed_inner_chunks_match_numpy(arrays_dir: Path, small_chunks_too: None,
                                           selection: tuple[str, Any], shuffle: str) -> None:
    """Inner chunks of shards decode only the blocks their part of the selection needs."""
    kind, sel = selection
    path = arrays_dir / f"sharded-{shuffle}.zarr"
    if not path.exists():
        with zarr.config.set(ORACLE):
            arr = zarr.create_array(str(path), shape=SHAPE, chunks=CHUNKS, shards=(64, 16, 5),
                                    dtype="int32", fill_value=3,
                                    compressors=BloscCodec(cname="zstd", shuffle=shuffle,
                                                           blocksize=256))
            arr[...] = _data(SHAPE, "int32")
    with zarr.config.set(PIPE):
        got = read(zarr.open_array(str(path), mode="r"), kind, sel)
    np.testing.assert_array_equal(got, expected(_data(SHAPE, "int32"), kind, sel))
