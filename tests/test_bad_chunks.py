"""Adversarial stored bytes: chunks that decode to fewer bytes, more bytes or garbage.

Every case is checked against zarr's own BatchedCodecPipeline (the oracle): where zarr
raises, cuzarr must raise ChunkDecodeError naming the store key; where zarr returns data,
cuzarr must return the same data. Never a chunk padded with leftover memory, never a crash.
Small chunks and chunks >= 256 KiB take different decode paths, and whole reads, leading-row
reads (zstd prefix decoding, raw row windows) and inner boxes take different read paths.
"""

from __future__ import annotations

import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google_crc32c
import numcodecs
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
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)
from zarr.codecs import numcodecs as zn

from cuzarr.errors import ChunkDecodeError

PIPE = {"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}
ORACLE = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}

COLS = 64
#: rows per chunk: 16 rows of float32 is 4 KiB, 1024 rows is 256 KiB (the large-chunk paths)
SIZES = {"small": 16, "large": 1024}


def _blosc(cname: str, shuffle: str, clevel: int = 5) -> dict[str, Any]:
    return {"compressors": BloscCodec(cname=cname, shuffle=shuffle, clevel=clevel)}


def _v2(compressor: Any, filters: Any = None) -> dict[str, Any]:
    return {"zarr_format": 2, "compressors": compressor, "filters": filters}


#: create_array arguments of every codec path (dtype float32 unless given)
CONFIGS: dict[str, dict[str, Any]] = {
    "raw": {"compressors": None},
    "zstd": {"compressors": ZstdCodec()},
    "zstd-checksum": {"compressors": ZstdCodec(checksum=True)},
    "gzip": {"compressors": GzipCodec()},
    "crc32c": {"compressors": Crc32cCodec()},
    "zstd-crc32c": {"compressors": [ZstdCodec(), Crc32cCodec()]},
    "blosc-lz4-shuffle": _blosc("lz4", "shuffle"),
    "blosc-lz4-noshuffle": _blosc("lz4", "noshuffle"),
    "blosc-lz4-bitshuffle": _blosc("lz4", "bitshuffle"),
    "blosc-zstd-shuffle": _blosc("zstd", "shuffle"),
    "blosc-blosclz-noshuffle": _blosc("blosclz", "noshuffle"),
    "blosc-zlib-bitshuffle": _blosc("zlib", "bitshuffle"),
    "blosc-memcpy": _blosc("lz4", "noshuffle", clevel=0),
    "v3-numcodecs-zlib": {"compressors": zn.Zlib(level=1)},
    "v3-numcodecs-lz4": {"compressors": zn.LZ4()},
    "big-endian": {"serializer": BytesCodec(endian="big"), "compressors": None},
    "big-endian-zstd": {"serializer": BytesCodec(endian="big"), "compressors": ZstdCodec()},
    "transpose-zstd": {"filters": [TransposeCodec(order=(1, 0))], "compressors": ZstdCodec()},
    "generic-delta": {"filters": [zn.Delta(dtype="<f4")], "compressors": ZstdCodec()},
    "v2-raw": _v2(None),
    "v2-zlib": _v2(numcodecs.Zlib(level=1)),
    "v2-gzip": _v2(numcodecs.GZip(level=1)),
    "v2-zstd": _v2(numcodecs.Zstd()),
    "v2-lz4": _v2(numcodecs.LZ4()),
    "v2-blosc": _v2(numcodecs.Blosc(cname="lz4", shuffle=numcodecs.Blosc.SHUFFLE)),
    "v2-bz2": _v2(numcodecs.BZ2()),
    "v2-delta-zlib": _v2(numcodecs.Zlib(level=1), [numcodecs.Delta(dtype="<f4")]),
    "v2-shuffle-zstd": _v2(numcodecs.Zstd(), [numcodecs.Shuffle(elementsize=4)]),
    "vlen-utf8": {"dtype": str},
    "vlen-utf8-zstd": {"dtype": str, "compressors": ZstdCodec()},
    "vlen-bytes": {"dtype": "bytes"},
}

#: how the victim chunk's stored bytes are replaced
DAMAGE = ["half", "one-less", "more", "two-halves", "doubled", "garbage", "truncated", "flipped",
          "appended", "empty"]

SELECTIONS = {
    "whole": lambda r: np.s_[:],
    "leading": lambda r: np.s_[r : r + 2],
    "inner": lambda r: np.s_[r + 3 : r + 5, 5:9],
    "tail": lambda r: np.s_[2 * r - 2 :],
}


def _data(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    rng = np.random.default_rng(sum(shape))
    values = rng.standard_normal(shape).astype("f4")
    if dtype is str:
        return np.vectorize(lambda v: f"{v:.3f}" * (1 + int(abs(v) * 3)))(values).astype(object)
    if dtype == "bytes":
        return np.vectorize(lambda v: f"{v:.2f}".encode() * (1 + int(abs(v) * 3)),
                            otypes=[object])(values)
    return values


def _create(path: Path, rows: int, chunks: tuple[int, int], kwargs: dict[str, Any]) -> zarr.Array:
    kwargs = dict(kwargs)
    dtype = kwargs.pop("dtype", "f4")
    shape = (2 * rows, COLS)
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(str(path), shape=shape, chunks=chunks, dtype=dtype,
                                fill_value=0 if dtype == "f4" else None, **kwargs)
        arr[...] = _data(shape, dtype)
    return arr


def _key(kwargs: dict[str, Any]) -> str:
    return "1.0" if kwargs.get("zarr_format") == 2 else "c/1/0"


def _damaged(good: bytes, damage: str, donor: Callable[[tuple[int, int]], bytes],
             rows: int) -> bytes:
    """The victim chunk's new stored bytes."""
    rng = np.random.default_rng(len(good))
    if damage == "half":
        return donor((rows // 2, COLS))
    if damage == "one-less":
        return donor((rows, COLS - 1))
    if damage == "more":
        return donor((rows + 1, COLS))
    if damage == "two-halves":  # two streams that together hold the chunk's bytes
        return donor((rows // 2, COLS)) * 2
    if damage == "doubled":
        return good * 2
    if damage == "garbage":
        return rng.integers(0, 256, len(good), dtype=np.uint8).tobytes()
    if damage == "truncated":
        return good[: max(0, len(good) - max(7, len(good) // 3))]
    if damage == "flipped":
        raw = bytearray(good)
        if raw:
            raw[len(raw) // 2] ^= 0x5A
        return bytes(raw)
    if damage == "appended":
        return good + bytes(range(1, 9))
    if damage == "empty":
        return b""
    raise AssertionError(damage)


def _oracle_then_cuzarr(path: Path, key: str, selection: Any,
                        intact: np.ndarray | None = None) -> None:
    """zarr raises -> cuzarr raises ChunkDecodeError naming `key`; else cuzarr returns the
    same data, or (stricter than zarr, e.g. bytes after a blosc chunk's declared end) raises
    ChunkDecodeError naming `key`. Never different data, never another exception.

    `intact`: the selection's data before the damage. A zstd prefix read (leading rows of a
    chunk whose frame has no checksum) decodes the frame only as far as those rows, so
    damage inside later blocks goes unseen where zarr, decoding everything, raises; cuzarr
    may then return these rows, but only exactly as they were stored (README, prefix reads).
    """
    with zarr.config.set(ORACLE):
        try:
            expected = zarr.open_array(str(path), mode="r")[selection]
            failed = None
        except Exception as e:  # zarr's own reasons vary: ValueError, RuntimeError, ...
            failed = e
    with zarr.config.set(PIPE):
        arr = zarr.open_array(str(path), mode="r")
        if failed is not None and intact is not None:
            try:
                got = arr[selection]
            except ChunkDecodeError as e:
                assert key in str(e)
                return
            np.testing.assert_array_equal(got, intact)
        elif failed is not None:
            with pytest.raises(ChunkDecodeError, match=re.escape(key)):
                arr[selection]
        else:
            try:
                got = arr[selection]
            except ChunkDecodeError as e:
                assert key in str(e)
                return
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


_PRISTINE: dict[tuple[str, str], tuple[Path, dict[tuple[int, int], bytes]]] = {}


def _pristine(root: Path, config: str, size: str) -> tuple[Path, Callable[..., bytes]]:
    """A written array and a source of chunks of other shapes written with the same codecs
    (made once per config and size)."""
    rows = SIZES[size]
    kwargs = CONFIGS[config]
    cached = _PRISTINE.get((config, size))
    if cached is None:
        path = root / f"{config}-{size}"
        _create(path, rows, (rows, COLS), kwargs)
        cached = _PRISTINE[(config, size)] = (path, {})
    path, donors = cached

    def donor(shape: tuple[int, int]) -> bytes:
        if shape not in donors:
            where = root / f"{config}-{size}-donor-{shape[0]}x{shape[1]}"
            _create(where, rows, shape, kwargs)
            donors[shape] = (where / _key(kwargs).replace("1", "0")).read_bytes()
        return donors[shape]

    return path, donor


@pytest.fixture(scope="module")
def pristine_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _PRISTINE.clear()
    return tmp_path_factory.mktemp("pristine")


@pytest.mark.parametrize("selection", list(SELECTIONS))
@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_damaged_chunk(pristine_root: Path, tmp_path: Path, config: str, size: str,
                       damage: str, selection: str) -> None:
    source, donor = _pristine(pristine_root, config, size)
    path = tmp_path / "a"
    shutil.copytree(source, path)
    key = _key(CONFIGS[config])
    victim = path / key
    rows = SIZES[size]
    intact = None
    if damage == "flipped" and selection in ("leading", "inner") and "zstd" in config:
        # a flip in the middle of the frame lies past the rows a prefix read decodes
        with zarr.config.set(ORACLE):
            intact = zarr.open_array(str(source), mode="r")[SELECTIONS[selection](rows)]
    victim.write_bytes(_damaged(victim.read_bytes(), damage, donor, rows))
    _oracle_then_cuzarr(path, key, SELECTIONS[selection](rows), intact)


# -- shards ------------------------------------------------------------------------------------

#: inner codecs of a shard (after the bytes codec); "nested" shards inner chunks again
INNER: dict[str, list[Any]] = {
    "raw": [],
    "zstd": [ZstdCodec()],
    "gzip": [GzipCodec()],
    "zstd-crc32c": [ZstdCodec(), Crc32cCodec()],
    "blosc": [BloscCodec(cname="lz4", shuffle="shuffle")],
    "nested": [],
}

SHARD_DAMAGE = ["half", "more", "garbage", "appended", "empty", "entry-short", "entry-long",
                "past-end", "overlap", "shorter-than-index", "index-garbage"]


def _shard_kwargs(inner: str, rows: int) -> dict[str, Any]:
    if inner == "nested":
        codecs: list[Any] = [ShardingCodec(chunk_shape=(rows // 2, COLS),
                                           codecs=[BytesCodec(), ZstdCodec()])]
    else:
        codecs = [BytesCodec(), *INNER[inner]]
    return {"serializer": ShardingCodec(chunk_shape=(rows, COLS), codecs=codecs),
            "compressors": None}


def _split_shard(raw: bytes, n_inner: int) -> tuple[list[tuple[int, int]], list[bytes]]:
    """(offset, nbytes) entries and inner chunk bytes of a shard with its index at the end."""
    index = raw[-(16 * n_inner + 4) : -4]
    table = [struct.unpack_from("<QQ", index, 16 * i) for i in range(n_inner)]
    return table, [raw[o : o + n] for o, n in table]


def _join_shard(table: list[tuple[int, int]], body: bytes) -> bytes:
    index = b"".join(struct.pack("<QQ", o, n) for o, n in table)
    return body + index + int(google_crc32c.value(index)).to_bytes(4, "little")


def _damaged_shard(raw: bytes, damage: str, donor: bytes, rows: int) -> bytes:
    """The shard with its second inner chunk (rows 3r..4r of the array) damaged."""
    _, chunks = _split_shard(raw, 2)
    first, second = chunks
    if damage in ("half", "more", "garbage", "appended", "empty"):
        if damage == "garbage":
            second = np.random.default_rng(7).integers(0, 256, len(second), np.uint8).tobytes()
        elif damage == "appended":
            second += bytes(range(1, 9))
        elif damage == "empty":
            second = b""
        else:
            second = donor
        body = first + second
        return _join_shard([(0, len(first)), (len(first), len(second))], body)
    body = first + second
    a, b = (0, len(first)), (len(first), len(second))
    if damage == "entry-short":
        b = (b[0], max(0, b[1] - max(7, b[1] // 3)))
    elif damage == "entry-long":  # reaches into the index
        b = (b[0], b[1] + 8)
    elif damage == "past-end":
        b = (b[0] + len(body), b[1])
    elif damage == "overlap":
        b = a
    elif damage == "shorter-than-index":
        return _join_shard([a, b], body)[-20:]
    elif damage == "index-garbage":  # an index whose checksum still matches
        b = (2**40, 2**41)
    return _join_shard([a, b], body)


@pytest.mark.parametrize("selection", ["whole", "leading", "inner", "other-inner"])
@pytest.mark.parametrize("damage", SHARD_DAMAGE)
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("inner", list(INNER))
def test_damaged_shard(tmp_path: Path, inner: str, size: str, damage: str,
                       selection: str) -> None:
    rows = SIZES[size]
    kwargs = _shard_kwargs(inner, rows)
    path = tmp_path / "a"
    with zarr.config.set(ORACLE):
        data = _data((4 * rows, COLS), "f4")
        arr = zarr.create_array(str(path), shape=data.shape, chunks=(2 * rows, COLS),
                                dtype="f4", fill_value=0, **kwargs)
        arr[...] = data
    shape = (rows // 2, COLS) if damage == "half" else (rows + 1, COLS)
    if inner != "nested":
        donor_path = tmp_path / "donor"
        _create(donor_path, rows, shape, {"compressors": INNER[inner] or None})
        donor = (donor_path / "c" / "0" / "0").read_bytes()
    else:
        donor = b"\x00" * 64  # nested: a donor shard of the wrong shape is just bad bytes
    victim = path / "c" / "1" / "0"
    victim.write_bytes(_damaged_shard(victim.read_bytes(), damage, donor, rows))
    region = {"whole": np.s_[:], "leading": np.s_[3 * rows : 3 * rows + 2],
              "inner": np.s_[3 * rows + 3 : 3 * rows + 5, 5:9],
              "other-inner": np.s_[2 * rows + 1 : 2 * rows + 3]}[selection]
    _oracle_then_cuzarr(path, "c/1/0", region)


# -- headers that lie --------------------------------------------------------------------------


def _lying(raw: bytes, offset: int, fmt: str, value: Callable[[int], int]) -> bytes:
    out = bytearray(raw)
    (old,) = struct.unpack_from(fmt, out, offset)
    struct.pack_into(fmt, out, offset, value(old) & (2 ** (8 * struct.calcsize(fmt)) - 1))
    return bytes(out)


#: (config, header field offset, struct format, new value from the old one)
LIES: dict[str, tuple[str, int, str, Callable[[int], int]]] = {
    "blosc-nbytes-smaller": ("blosc-lz4-shuffle", 4, "<i", lambda v: v - 64),
    "blosc-nbytes-larger": ("blosc-lz4-shuffle", 4, "<i", lambda v: v + 64),
    "blosc-nbytes-odd": ("blosc-lz4-noshuffle", 4, "<i", lambda v: v - 3),
    "blosc-blocksize-smaller": ("blosc-lz4-shuffle", 8, "<i", lambda v: v // 2),
    "blosc-blocksize-larger": ("blosc-zstd-shuffle", 8, "<i", lambda v: v * 2),
    "blosc-blocksize-zero": ("blosc-blosclz-noshuffle", 8, "<i", lambda v: 0),
    "blosc-typesize-1": ("blosc-lz4-shuffle", 3, "<B", lambda v: 1),
    "blosc-typesize-8": ("blosc-lz4-bitshuffle", 3, "<B", lambda v: 8),
    "blosc-flags-memcpy": ("blosc-lz4-shuffle", 2, "<B", lambda v: v | 0x02),
    "blosc-flags-not-memcpy": ("blosc-memcpy", 2, "<B", lambda v: v & ~0x02),
    "blosc-memcpy-nbytes-smaller": ("blosc-memcpy", 4, "<i", lambda v: v - 64),
    "blosc-memcpy-nbytes-larger": ("blosc-memcpy", 4, "<i", lambda v: v + 64),
    "blosc-cbytes-smaller": ("blosc-lz4-shuffle", 12, "<i", lambda v: v - 8),
    "lz4-prefix-smaller": ("v2-lz4", 0, "<I", lambda v: v - 64),
    "lz4-prefix-larger": ("v2-lz4", 0, "<I", lambda v: v + 64),
    "lz4-prefix-huge": ("v2-lz4", 0, "<I", lambda v: 2**31 - 1),
    "v3-lz4-prefix-smaller": ("v3-numcodecs-lz4", 0, "<I", lambda v: v - 4),
    "zstd-content-size-smaller": ("zstd", 5, "<B", lambda v: v ^ 0x01),
    "vlen-count-smaller": ("vlen-utf8", 0, "<I", lambda v: v - 1),
    "vlen-count-larger": ("vlen-utf8", 0, "<I", lambda v: v + 1),
    "vlen-first-length-larger": ("vlen-utf8", 4, "<I", lambda v: v + 1000),
    "vlen-bytes-count-smaller": ("vlen-bytes", 0, "<I", lambda v: v - 1),
}


@pytest.mark.parametrize("selection", list(SELECTIONS))
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("lie", list(LIES))
def test_lying_header(pristine_root: Path, tmp_path: Path, lie: str, size: str,
                      selection: str) -> None:
    config, offset, fmt, value = LIES[lie]
    source, _ = _pristine(pristine_root, config, size)
    path = tmp_path / "a"
    shutil.copytree(source, path)
    key = _key(CONFIGS[config])
    victim = path / key
    victim.write_bytes(_lying(victim.read_bytes(), offset, fmt, value))
    _oracle_then_cuzarr(path, key, SELECTIONS[selection](SIZES[size]))


def test_crc32c_item_shorter_than_its_checksum(tmp_path: Path) -> None:
    _create(tmp_path, 16, (16, COLS), CONFIGS["crc32c"])
    for stored in (b"", b"\x01", b"\x01\x02\x03"):
        (tmp_path / "c" / "1" / "0").write_bytes(stored)
        _oracle_then_cuzarr(tmp_path, "c/1/0", np.s_[:])
        _oracle_then_cuzarr(tmp_path, "c/1/0", np.s_[16:18])


# -- random damage -----------------------------------------------------------------------------

FUZZED = ["zstd", "zstd-checksum", "gzip", "blosc-lz4-shuffle", "blosc-memcpy", "v2-lz4",
          "v2-zlib", "v2-delta-zlib", "crc32c", "vlen-utf8-zstd", "big-endian"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.sampled_from(FUZZED), size=st.sampled_from(list(SIZES)),
       kind=st.sampled_from(["flip", "cut", "insert", "overwrite"]),
       where=st.floats(0, 1), value=st.integers(0, 255), count=st.integers(1, 64),
       selection=st.sampled_from(list(SELECTIONS)))
def test_random_damage(pristine_root: Path, tmp_path_factory: pytest.TempPathFactory,
                       config: str, size: str, kind: str, where: float, value: int, count: int,
                       selection: str) -> None:
    source, _ = _pristine(pristine_root, config, size)
    path = tmp_path_factory.mktemp("fuzz") / "a"
    shutil.copytree(source, path)
    key = _key(CONFIGS[config])
    victim = path / key
    raw = bytearray(victim.read_bytes())
    at = min(len(raw) - 1, int(where * len(raw)))
    if kind == "flip":
        raw[at] ^= value or 1
    elif kind == "cut":
        del raw[at : at + count]
    elif kind == "insert":
        raw[at:at] = bytes([value]) * count
    else:
        raw[at : at + count] = bytes([value]) * len(raw[at : at + count])
    victim.write_bytes(bytes(raw))
    _oracle_then_cuzarr(path, key, SELECTIONS[selection](SIZES[size]))
