"""The small-file read path (io.files.read_small) and the vectorized chunk keys it reads
(plan.keys), held to what a plain read of each file and zarr's own encoders give."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding

from cuzarr.io.files import read_small, read_whole, small_file_cap
from cuzarr.plan.keys import chunk_keys


def _alloc(nbytes: int) -> np.ndarray:
    return np.empty(nbytes, dtype=np.uint8)


def _items(batch) -> list[bytes]:
    return [batch.slab[o : o + s].tobytes() for o, s in zip(batch.offsets, batch.sizes,
                                                           strict=True)]


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_read_small_reads_what_the_files_hold(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    files = {f"c/{i}/{j}": rng.bytes(int(rng.integers(0, 2300))) for i in range(3)
             for j in range(70)}
    _tree(tmp_path, files)
    (tmp_path / "c" / "1" / "folder").mkdir()
    (tmp_path / "c" / "0" / "0").write_bytes(b"")
    files["c/0/0"] = b""
    keys = [*files, "c/9/9", "c/1/folder", "c/1/missing", "c/0/0/under-a-file", "x"]
    batch, present = read_small(str(tmp_path), keys, small_file_cap(2048), _alloc)
    assert present.tolist() == [True] * len(files) + [False] * 5
    assert _items(batch) == list(files.values())


def test_a_file_that_fills_its_place_falls_back_to_the_general_read(tmp_path: Path) -> None:
    """A chunk stored larger than every codec's worst case for its size (a foreign
    writer) is read whole all the same."""
    cap = small_file_cap(1024)
    files = {"a": b"x" * 10, "b": b"y" * cap, "c": b"z" * (3 * cap + 5)}
    _tree(tmp_path, files)
    assert read_small(str(tmp_path), list(files), cap, _alloc) is None
    batch, present = read_whole(str(tmp_path), list(files), 2, _alloc, size_hint=1024)
    assert present.all()
    assert _items(batch) == list(files.values())


def test_many_folders_stay_within_the_folder_budget(tmp_path: Path) -> None:
    files = {f"c/{i}/{j}/0": bytes([i, j]) for i in range(12) for j in range(12)}
    _tree(tmp_path, files)
    before = len(os.listdir("/proc/self/fd"))
    keys = list(files)[::-1]
    batch, present = read_small(str(tmp_path), keys, 64, _alloc)
    assert present.all()
    assert _items(batch) == [files[k] for k in keys]
    assert len(os.listdir("/proc/self/fd")) == before


def test_an_io_error_names_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    _tree(tmp_path, {"c/0/0": b"abc", "c/0/1": b"def"})

    def failing(fd: int, buffers: list) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "readv", failing)
    with pytest.raises(OSError, match="c/0/0") as info:
        read_small(str(tmp_path), ["c/0/0", "c/0/1"], 64, _alloc)
    assert info.value.errno == errno.EIO or "Input/output" in str(info.value)
    assert not [f for f in os.listdir("/proc/self/fd") if _points_into(f, tmp_path)]


def _points_into(fd: str, root: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith(str(root))
    except OSError:
        return False


coords_strategy = st.integers(1, 4).flatmap(
    lambda ndim: st.lists(st.lists(st.integers(0, 1200), min_size=ndim, max_size=ndim),
                          min_size=1, max_size=40))


@settings(max_examples=60, deadline=None)
@given(coords=coords_strategy, zarr_format=st.sampled_from([2, 3]),
       separator=st.sampled_from(["/", "."]), v2_keys=st.booleans())
def test_chunk_keys_are_zarrs_keys(coords: list[list[int]], zarr_format: int, separator: str,
                                   v2_keys: bool) -> None:
    ndim = len(coords[0])
    shape = (10**6,) * ndim
    if zarr_format == 2:
        arr = zarr.create_array(store={}, shape=shape, chunks=(1,) * ndim, dtype="u1",
                                zarr_format=2, chunk_key_encoding={"name": "v2",
                                                                   "separator": separator})
    else:
        encoding = {"name": "v2" if v2_keys else "default", "separator": separator}
        arr = zarr.create_array(store={}, shape=shape, chunks=(1,) * ndim, dtype="u1",
                                chunk_key_encoding=encoding)
    metadata = arr.metadata
    got = chunk_keys(metadata, np.asarray(coords))
    assert got == [metadata.encode_chunk_key(tuple(c)) for c in coords]


class _Reversed(DefaultChunkKeyEncoding):
    """An encoding of zarr's family that says its keys its own way."""

    def encode_chunk_key(self, chunk_coords: tuple[int, ...]) -> str:
        return "r/" + "/".join(map(str, reversed(chunk_coords)))


def test_other_encodings_are_asked_key_by_key() -> None:
    from dataclasses import replace

    arr = zarr.create_array(store={}, shape=(100, 100), chunks=(10, 10), dtype="u1")
    metadata = replace(arr.metadata, chunk_key_encoding=_Reversed())
    assert chunk_keys(metadata, np.array([[1, 2], [3, 4]])) == ["r/2/1", "r/4/3"]


@pytest.mark.parametrize("nbytes", [1, 64, 2048, 65536])
def test_incompressible_chunks_of_every_codec_fit_their_place(nbytes: int) -> None:
    """The reserved place holds what each codec zarr ships stores for random bytes (its
    worst case), crc32c included: such chunks take the one-read path, not the fallback."""
    import numcodecs
    import zstandard

    raw = np.random.default_rng(nbytes).bytes(nbytes)
    stored = [
        zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw),
        numcodecs.GZip(5).encode(raw), numcodecs.Zlib(5).encode(raw),
        numcodecs.LZ4().encode(raw),
        numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE).encode(raw),
        numcodecs.Blosc("zstd", 5, numcodecs.Blosc.BITSHUFFLE).encode(raw),
    ]
    assert max(len(s) for s in stored) + 4 < small_file_cap(nbytes)
