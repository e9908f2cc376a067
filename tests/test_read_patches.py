"""`cuzarr.read_patches`: n boxes as one job, against numpy slices of the stored data.

The oracle is the data itself (what zarr's own reads return): every patch must equal
`data[start:start + shape]`, with fill values where chunks are missing. The job's own
claim, each shared chunk fetched and decoded once, is checked by counting the store's
reads.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    TransposeCodec,
    ZstdCodec,
)
from zarr.storage import LocalStore

import cuzarr
from cuzarr.plan.patches import check_patches, patch_pairs


def expected_patches(data: np.ndarray, starts: np.ndarray, shape: tuple[int, ...]
                     ) -> np.ndarray:
    out = np.empty((len(starts), *shape), dtype=data.dtype)
    for i, corner in enumerate(starts.tolist()):
        out[i] = data[tuple(slice(a, a + s) for a, s in zip(corner, shape, strict=True))]
    return out


def random_starts(rng: np.random.Generator, n: int, array_shape: tuple[int, ...],
                  shape: tuple[int, ...]) -> np.ndarray:
    return np.stack([rng.integers(0, a - s + 1, n) for a, s in zip(array_shape, shape,
                                                                   strict=True)], axis=1)


# -- the plan ---------------------------------------------------------------------------------

def test_pairs_name_each_chunk_once_and_cover_every_patch() -> None:
    starts = np.array([[0, 0], [5, 5], [8, 3], [5, 5]])
    pairs = patch_pairs(starts, (4, 4), (6, 6))
    keys = [tuple(c) for c in pairs.chunk_coords.tolist()]
    assert keys == sorted(set(keys))
    assert keys == [(0, 0), (0, 1), (1, 0), (1, 1)]
    covered = Counter()
    for p, lo, hi in zip(pairs.patch.tolist(), pairs.lo.tolist(), pairs.hi.tolist(),
                         strict=True):
        covered[p] += int(np.prod(np.subtract(hi, lo)))
    assert covered == {0: 16, 1: 16, 2: 16, 3: 16}
    assert np.all(np.diff(pairs.chunk) >= 0)


def test_patch_checks_name_the_patch() -> None:
    with pytest.raises(IndexError, match=r"patch 2 \(start \(7, 0\), shape \(4, 4\)\) lies "
                                         r"outside the array of shape \(10, 10\)"):
        check_patches([[0, 0], [6, 6], [7, 0]], (4, 4), (10, 10))
    with pytest.raises(IndexError, match="patch 1 "):
        check_patches([[0, 0], [-1, 0]], (4, 4), (10, 10))
    with pytest.raises(ValueError, match="2 dimensions; the array has 3"):
        check_patches([[0, 0]], (4, 4), (10, 10, 10))
    with pytest.raises(ValueError, match=r"\(n, 2\) array"):
        check_patches([0, 0], (4, 4), (10, 10))
    with pytest.raises(TypeError, match="integers"):
        check_patches([[0.5, 0]], (4, 4), (10, 10))
    found, box = check_patches(np.array([[1.0, 2.0]]), [3, 3], (10, 10))
    assert found.dtype == np.int64 and box == (3, 3)


# -- reads against the data -------------------------------------------------------------------

LAYOUTS: dict[str, dict[str, Any]] = {
    "plain": {"chunks": (16, 12)},
    "sharded": {"chunks": (8, 6), "shards": (16, 24)},
    "v2": {"chunks": (16, 12), "zarr_format": 2},
}
CODECS: dict[str, dict[str, Any]] = {
    "zstd": {"compressors": ZstdCodec()},
    "gzip": {"compressors": GzipCodec()},
    "blosc-shuffle": {"compressors": BloscCodec(cname="zstd", shuffle="shuffle")},
    "zstd-crc32c": {"compressors": [ZstdCodec(), Crc32cCodec()]},
    "raw-big-endian": {"serializer": BytesCodec(endian="big"), "compressors": None},
    "transpose": {"filters": [TransposeCodec(order=(1, 0))], "compressors": ZstdCodec()},
}


def make_array(path: Path, data: np.ndarray, layout: str, codec: str = "zstd",
               fill_value: Any = 0, skip: tuple[int, ...] = ()) -> zarr.Array:
    """An array of `data`, whose chunks (or shards) numbered in `skip` along axis 0 are
    never written (missing: fill)."""
    kwargs = dict(LAYOUTS[layout])
    if layout == "v2":
        from numcodecs import Blosc as V2Blosc
        from numcodecs import GZip, Zstd

        kwargs["compressors"] = {"zstd": Zstd(), "gzip": GZip(), "raw-big-endian": None,
                                 "blosc-shuffle": V2Blosc(cname="zstd")}[codec]
    else:
        kwargs.update(CODECS[codec])
    arr = zarr.create_array(LocalStore(path), shape=data.shape, dtype=data.dtype,
                            fill_value=fill_value, **kwargs)
    outer = kwargs.get("shards") or kwargs["chunks"]
    for i in range(-(-data.shape[0] // outer[0])):
        if i not in skip:
            arr[i * outer[0] : (i + 1) * outer[0]] = data[i * outer[0] : (i + 1) * outer[0]]
    return arr


def stored_with_fill(data: np.ndarray, arr: zarr.Array, skip: tuple[int, ...],
                     fill: Any) -> np.ndarray:
    expected = data.copy()
    outer = arr.shards or arr.chunks
    for i in skip:
        expected[i * outer[0] : (i + 1) * outer[0]] = fill
    return expected


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_patches_equal_the_stored_data(tmp_path: Path, layout: str, codec: str) -> None:
    if layout == "v2" and codec in ("zstd-crc32c", "transpose"):
        pytest.skip("a v3 codec")
    rng = np.random.default_rng(1)
    data = rng.normal(size=(50, 61)).astype("<f4")
    arr = make_array(tmp_path / "a", data, layout, codec, skip=(1,))
    expected_data = stored_with_fill(data, arr, (1,), 0)
    starts = random_starts(rng, 40, data.shape, (13, 17))
    starts[:3] = [[0, 0], [37, 44], [37, 44]]  # corners, and one patch twice
    with cuzarr.enable():
        got = cuzarr.read_patches(arr, starts, (13, 17))
    assert isinstance(got, np.ndarray) and got.shape == (40, 13, 17)
    np.testing.assert_array_equal(got, expected_patches(expected_data, starts, (13, 17)))


@pytest.mark.parametrize("dtype", ["u1", "<i2", ">i4", "<f8", "bool", "<c8", "<M8[s]",
                                   "<U3"])
@pytest.mark.parametrize("layout", ["plain", "sharded"])
def test_every_dtype(tmp_path: Path, dtype: str, layout: str) -> None:
    rng = np.random.default_rng(2)
    raw = rng.integers(0, 100, size=(33, 29))
    data = raw.astype("<U3") if dtype == "<U3" else raw.astype(dtype)
    fill = np.zeros((), dtype=data.dtype)[()] if dtype != "<U3" else ""
    codec = "zstd"
    try:
        arr = make_array(tmp_path / "a", data, layout, codec, fill_value=fill, skip=(1,))
    except (ValueError, TypeError) as e:  # zarr's own refusals (a codec for this dtype)
        pytest.skip(f"zarr refuses: {e}")
    expected_data = stored_with_fill(data, arr, (1,), fill)
    starts = random_starts(rng, 25, data.shape, (9, 11))
    with cuzarr.enable():
        got = cuzarr.read_patches(arr, starts, (9, 11))
    assert got.dtype == arr.dtype
    np.testing.assert_array_equal(got, expected_patches(expected_data, starts, (9, 11)))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_layouts_shapes_and_starts(tmp_path_factory: pytest.TempPathFactory,
                                              data: st.DataObject) -> None:
    """Random dimensionality, array, chunk, shard and patch shapes, starts (shared
    chunks, edges) and missing chunks, plain or sharded, v2 or v3."""
    ndim = data.draw(st.integers(1, 3), label="ndim")
    shape = tuple(data.draw(st.lists(st.integers(1, 24), min_size=ndim, max_size=ndim)))
    chunks = tuple(data.draw(st.integers(1, max(1, s)), label="chunk") for s in shape)
    sharded = data.draw(st.booleans(), label="sharded")
    v2 = not sharded and data.draw(st.booleans(), label="v2")
    per_shard = tuple(data.draw(st.integers(1, 3)) for _ in shape) if sharded else None
    box = tuple(data.draw(st.integers(0, s), label="box") for s in shape)
    n = data.draw(st.integers(0, 12), label="n")
    starts = np.array([[data.draw(st.integers(0, s - b)) for s, b in zip(shape, box,
                                                                          strict=True)]
                       for _ in range(n)], dtype=np.int64).reshape(n, ndim)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    values = rng.integers(-1000, 1000, size=shape).astype("<i4")
    kwargs: dict[str, Any] = {"chunks": chunks, "compressors": ZstdCodec() if not v2 else None}
    if sharded:
        kwargs["shards"] = tuple(c * k for c, k in zip(chunks, per_shard, strict=True))
    if v2:
        kwargs["zarr_format"] = 2
    path = tmp_path_factory.mktemp("h")
    arr = zarr.create_array(LocalStore(path), shape=shape, dtype="<i4", fill_value=-7,
                            **kwargs)
    written = np.full(shape, -7, dtype="<i4")
    outer = kwargs.get("shards", chunks)
    grid = [range(-(-s // c)) for s, c in zip(shape, outer, strict=True)]
    for coords in itertools.product(*grid):
        if data.draw(st.booleans(), label="write this chunk"):
            sel = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, outer, strict=True))
            arr[sel] = values[sel]
            written[sel] = values[sel]
    with cuzarr.enable():
        got = cuzarr.read_patches(arr, starts, box)
    np.testing.assert_array_equal(got, expected_patches(written, starts, box))


# -- one fetch and one decode per chunk -------------------------------------------------------

class CountingStore(LocalStore):
    """A LocalStore that counts what is fetched: its own IO methods, so cuzarr reads
    through them (the direct-file path is for LocalStore's own methods only)."""

    gets: Counter[tuple[str, Any]]

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self.gets[(key, byte_range)] += 1
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> Any:
        key_ranges = list(key_ranges)
        for key, byte_range in key_ranges:
            self.gets[(key, byte_range)] += 1
        return await super().get_partial_values(prototype, key_ranges)


@pytest.mark.parametrize("layout", ["plain", "sharded"])
def test_a_chunk_many_patches_share_is_fetched_once(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(64, 64)).astype("<f4")
    kwargs: dict[str, Any] = {"chunks": (16, 16), "compressors": ZstdCodec()}
    if layout == "sharded":
        kwargs.update(chunks=(8, 8), shards=(32, 32))
    writer = zarr.create_array(LocalStore(tmp_path), shape=data.shape, dtype="<f4", **kwargs)
    writer[:] = data
    store = CountingStore(tmp_path)
    store.gets = Counter()
    arr = zarr.open_array(store)
    starts = rng.integers(0, 64 - 12, size=(64, 2))
    with cuzarr.enable():
        got = cuzarr.read_patches(arr, starts, (12, 12))
    np.testing.assert_array_equal(got, expected_patches(data, starts, (12, 12)))
    data_reads = {k: v for k, v in store.gets.items() if k[0].startswith("c/")}
    assert data_reads, "nothing was read through the store"
    assert max(data_reads.values()) == 1, "a chunk or range was fetched twice"
    if layout == "plain":  # 64 patches of 12x12 in 16 chunks: each chunk once
        assert len(data_reads) <= 16
    # zarr's own reads, patch by patch, fetch the shared chunks again and again
    store.gets = Counter()
    with cuzarr.enable():
        for corner in starts.tolist():
            arr[corner[0] : corner[0] + 12, corner[1] : corner[1] + 12]
    assert max(v for k, v in store.gets.items() if k[0].startswith("c/")) > 1


def test_each_chunk_is_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cuzarr.codecs import bytes_to_bytes

    decoded: list[int] = []
    original = bytes_to_bytes.ZstdStage.decode

    def counting(self: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
        decoded.append(len(batch))
        return original(self, batch, *args, **kwargs)

    monkeypatch.setattr(bytes_to_bytes.ZstdStage, "decode", counting)
    data = np.arange(64 * 64, dtype="<f4").reshape(64, 64)
    arr = make_array(tmp_path / "a", data, "plain")
    starts = np.array([[0, 0], [2, 2], [4, 4], [20, 20], [21, 21]])
    with cuzarr.enable():
        got = cuzarr.read_patches(arr, starts, (8, 8))
    np.testing.assert_array_equal(got, expected_patches(data, starts, (8, 8)))
    # 16x12 chunks: (0, 0) for the first three patches, (1, 1) and (1, 2) for the last two
    assert sum(decoded) == 3, decoded


# -- several arrays, targets ----------------------------------------------------------------

def test_inputs_and_targets_at_the_same_starts(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    images = rng.normal(size=(40, 32, 32)).astype("<f4")
    labels = np.arange(40, dtype="<i8")
    masks = (images > 0).astype("u1")
    a = zarr.create_array(LocalStore(tmp_path / "i3"), shape=images.shape, chunks=(8, 16, 16),
                          dtype="<f4")
    a[:] = images
    b = zarr.create_array(LocalStore(tmp_path / "l"), shape=labels.shape, chunks=(16,),
                          dtype="<i8")
    b[:] = labels
    c = zarr.create_array(LocalStore(tmp_path / "m"), shape=masks.shape, chunks=(8, 8, 8),
                          shards=(8, 16, 32), dtype="u1")
    c[:] = masks
    starts = random_starts(rng, 10, images.shape, (1, 16, 16))
    with cuzarr.enable():
        x, y, m = cuzarr.read_patches((a, b, c), starts, (1, 16, 16))
    np.testing.assert_array_equal(x, expected_patches(images, starts, (1, 16, 16)))
    np.testing.assert_array_equal(y, labels[starts[:, 0]][:, None])
    np.testing.assert_array_equal(m, expected_patches(masks, starts, (1, 16, 16)))
    with cuzarr.enable():
        x2, y2 = cuzarr.read_patches((a, b), starts, [(1, 16, 16), (1,)])
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


# -- output, bad input ------------------------------------------------------------------------

def test_out_is_filled_and_checked(tmp_path: Path) -> None:
    data = np.arange(30 * 30, dtype="<i4").reshape(30, 30)
    arr = make_array(tmp_path / "a", data, "plain")
    starts = np.array([[1, 2], [10, 3]])
    out = np.zeros((2, 5, 5), dtype="<i4")
    with cuzarr.enable():
        result = cuzarr.read_patches(arr, starts, (5, 5), out=out)
        assert result is out or np.shares_memory(result, out)
        np.testing.assert_array_equal(out, expected_patches(data, starts, (5, 5)))
        with pytest.raises(ValueError, match=r"out has shape \(2, 4, 5\)"):
            cuzarr.read_patches(arr, starts, (5, 5), out=np.zeros((2, 4, 5), "<i4"))
        with pytest.raises(ValueError, match="out has dtype float32"):
            cuzarr.read_patches(arr, starts, (5, 5), out=np.zeros((2, 5, 5), "<f4"))
        with pytest.raises(IndexError, match="patch 1 "):
            cuzarr.read_patches(arr, [[0, 0], [26, 0]], (5, 5))
        with pytest.raises(TypeError, match="zarr arrays"):
            cuzarr.read_patches(data, starts, (5, 5))


def test_no_patches_and_empty_patches(tmp_path: Path) -> None:
    arr = make_array(tmp_path / "a", np.ones((10, 10), "<f4"), "plain")
    with cuzarr.enable():
        assert cuzarr.read_patches(arr, np.zeros((0, 2), int), (3, 3)).shape == (0, 3, 3)
        assert cuzarr.read_patches(arr, [[1, 1]], (0, 3)).shape == (1, 0, 3)


def test_a_corrupt_chunk_is_named(tmp_path: Path) -> None:
    data = np.arange(40 * 40, dtype="<f4").reshape(40, 40)
    arr = make_array(tmp_path / "a", data, "plain")
    chunk = tmp_path / "a" / "c" / "1" / "1"
    chunk.write_bytes(chunk.read_bytes()[: len(chunk.read_bytes()) // 2])  # truncated
    with cuzarr.enable(), pytest.raises(Exception, match="c/1/1") as info:
        cuzarr.read_patches(arr, [[0, 0], [20, 20]], (4, 4))
    assert isinstance(info.value, cuzarr.ChunkDecodeError)


def test_missing_chunks_raise_where_zarr_is_told_to(tmp_path: Path) -> None:
    from zarr.errors import ChunkNotFoundError

    data = np.arange(32 * 32, dtype="<f4").reshape(32, 32)
    make_array(tmp_path / "a", data, "plain", skip=(1,))
    arr = zarr.open_array(LocalStore(tmp_path / "a"), config={"read_missing_chunks": False})
    with cuzarr.enable():
        np.testing.assert_array_equal(cuzarr.read_patches(arr, [[0, 0]], (4, 4))[0],
                                      data[:4, :4])
        with pytest.raises(ChunkNotFoundError, match="c/1/0"):
            cuzarr.read_patches(arr, [[0, 0], [20, 0]], (4, 4))


def test_zarrs_own_pipeline_configured_gives_the_same(tmp_path: Path) -> None:
    """read_patches under zarr's default pipeline setting runs cuzarr's anyway."""
    rng = np.random.default_rng(5)
    data = rng.normal(size=(40, 40)).astype("<f8")
    make_array(tmp_path / "a", data, "sharded")
    starts = random_starts(rng, 9, data.shape, (7, 7))
    got = cuzarr.read_patches(zarr.open_array(LocalStore(tmp_path / "a")), starts, (7, 7))
    np.testing.assert_array_equal(got, expected_patches(data, starts, (7, 7)))


def test_zstd_prefix_reads_cover_the_union_of_patches(tmp_path: Path) -> None:
    """Partial decodes (zstd prefixes where opted in, blosc windows) of a chunk cover
    every patch that needs it: one patch near the top, one near the bottom."""
    rng = np.random.default_rng(6)
    data = rng.normal(size=(256, 64)).astype("<f4")
    for codec, setting in [("zstd", {"zstd_prefix_reads": True}), ("blosc-shuffle", {})]:
        arr = zarr.create_array(LocalStore(tmp_path / codec), shape=data.shape,
                                chunks=(256, 64), dtype="<f4", **CODECS[codec])
        arr[:] = data
        starts = np.array([[2, 0], [200, 10]])
        with cuzarr.enable(), cuzarr.config.set(**setting):
            got = cuzarr.read_patches(arr, starts, (8, 8))
        np.testing.assert_array_equal(got, expected_patches(data, starts, (8, 8)))
