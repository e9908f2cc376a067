"""Adversarial stored bytes: chunks that decode to fewer bytes, more bytes or garbage.

Every case is checked against zarr's own BatchedCodecPipeline (the oracle): where zarr
raises, cuzarr must raise ChunkDecodeError naming the store key; where zarr returns data,
cuzarr must return the same data. Never a chunk padded with leftover memory, never a crash.
Small chunks and chunks >= 256 KiB take different decode paths, and whole reads, leading-row
reads (zstd prefix decoding, raw row windows) and inner boxes take different read paths.
"""

from __future__ import annotations

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
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore
from zarr.testing.store import LatencyStore

from cuzarr.errors import BloscDecodeError
from oracle import check_like_zarr

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
          "appended", "empty", "zero-tail", "padded"]

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
    if damage == "zero-tail":  # what a crash can leave: the header written, zeros after it
        return good[:12] + bytes(max(0, len(good) - 12))
    if damage == "padded":  # NUL bytes after the chunk (zarr reads blosc and gzip through)
        return good + bytes(16)
    raise AssertionError(damage)


def _blosc_past_its_end(raw: bytes) -> bool:
    """A Blosc chunk shorter than its header says: numcodecs reads past the buffer (zarr's
    answer then depends on memory; see tests/oracle.py)."""
    return len(raw) < 16 or int.from_bytes(raw[12:16], "little") > len(raw)


#: index entries whose end wraps past 2**64: zarr's answer depends on the path and the
#: store (its uint64 sum wraps; a whole-shard read slices nothing, LocalStore reads a length
#: of -1 to the end of the file, -2 or less is a ValueError, a MemoryStore slices nothing),
#: so the read is held to "an error naming the key, or the stored data" (tests/oracle.py)
_WRAPPING = ("wraps-2**64", "half-empty-length")


def _oracle_then_cuzarr(path: Path, key: str, selection: Any,
                        stored: np.ndarray | None = None, *, partial_ok: bool = False,
                        blosc: bool = False, undefined: bool = False) -> None:
    """The read held to the oracle's rule (tests/oracle.py): zarr raises -> cuzarr raises
    a ChunkDecodeError naming `key` that is also an instance of zarr's error class; zarr
    returns the stored data -> cuzarr returns the same; zarr returns other values than
    `stored` (what the selection held before the damage) -> cuzarr raises, returns what
    was stored, or returns what zarr did. `partial_ok`: reads that decode part of a chunk
    (blosc windows) may return the rows exactly as stored where zarr raises."""

    def oracle() -> Any:
        with zarr.config.set(ORACLE):
            return zarr.open_array(str(path), mode="r")[selection]

    def mine() -> Any:
        with zarr.config.set(PIPE):
            return zarr.open_array(str(path), mode="r")[selection]

    undefined = undefined or (blosc and _blosc_past_its_end((path / key).read_bytes()))
    check_like_zarr(oracle, mine, key, stored, partial_ok=partial_ok, undefined=undefined)


def _stored(path: Path, selection: Any) -> np.ndarray:
    with zarr.config.set(ORACLE):
        return zarr.open_array(str(path), mode="r")[selection]


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
    stored = _stored(source, SELECTIONS[selection](rows))
    victim.write_bytes(_damaged(victim.read_bytes(), damage, donor, rows))
    _oracle_then_cuzarr(path, key, SELECTIONS[selection](rows), stored,
                        blosc="blosc" in config)


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
                "past-end", "overlap", "shorter-than-index", "index-garbage", "near-2**64",
                "wraps-2**64", "half-empty-offset", "half-empty-length"]


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
    elif damage == "near-2**64":
        b = (2**64 - 100, 50)
    elif damage == "wraps-2**64":  # offset + length wraps around 2**64
        b = (b[0], 2**64 - 1 - b[0] + 10)
    elif damage == "half-empty-offset":
        b = (2**64 - 1, b[1])
    elif damage == "half-empty-length":  # the rest of the shard, index included
        b = (b[0], 2**64 - 1)
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
    region = {"whole": np.s_[:], "leading": np.s_[3 * rows : 3 * rows + 2],
              "inner": np.s_[3 * rows + 3 : 3 * rows + 5, 5:9],
              "other-inner": np.s_[2 * rows + 1 : 2 * rows + 3]}[selection]
    stored = data[region]
    victim.write_bytes(_damaged_shard(victim.read_bytes(), damage, donor, rows))
    if inner == "blosc" and damage == "entry-short" and selection != "whole":
        # zarr fetched the short range alone: c-blosc reads past the buffer it was handed
        # (heap memory; what comes back varies): cuzarr refuses the chunk, or does not need
        # it ("other-inner")
        with zarr.config.set(PIPE):
            try:
                got = zarr.open_array(str(path), mode="r")[region]
            except BloscDecodeError as error:
                assert "c/1/0" in str(error)
                return
        np.testing.assert_array_equal(got, stored)
        return
    _oracle_then_cuzarr(path, "c/1/0", region, stored,
                        undefined=damage in _WRAPPING)


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
    "blosc-blocksize-plus-one": ("blosc-lz4-shuffle", 8, "<i", lambda v: v + 1),
    "blosc-blocksize-minus-one": ("blosc-zstd-shuffle", 8, "<i", lambda v: v - 1),
    "blosc-blocksize-plus-one-noshuffle": ("blosc-lz4-noshuffle", 8, "<i", lambda v: v + 1),
    "blosc-first-block-start": ("blosc-lz4-shuffle", 16, "<i", lambda v: v + 4),
    "blosc-version": ("blosc-lz4-shuffle", 0, "<B", lambda v: 3),
    "blosc-reserved-flag": ("blosc-lz4-shuffle", 2, "<B", lambda v: v | 0x08),
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
    stored = _stored(source, SELECTIONS[selection](SIZES[size]))
    victim.write_bytes(_lying(victim.read_bytes(), offset, fmt, value))
    _oracle_then_cuzarr(path, key, SELECTIONS[selection](SIZES[size]), stored,
                        blosc="blosc" in config)


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
    stored = _stored(source, SELECTIONS[selection](SIZES[size]))
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
    _oracle_then_cuzarr(path, key, SELECTIONS[selection](SIZES[size]), stored,
                        blosc="blosc" in config)


# -- shards on stores whose value sizes are unknown (MemoryStore, async-only) -----------------


class _NoSyncStore(LatencyStore):
    """A MemoryStore seen through its async methods only."""

    @property
    def _supports_sync_io(self) -> bool:
        return False


@pytest.mark.parametrize("selection", ["whole", "leading", "other-inner"])
@pytest.mark.parametrize("damage", ["entry-long", "past-end", "overlap", "index-garbage",
                                    "near-2**64", "wraps-2**64", "half-empty-offset",
                                    "half-empty-length", "appended"])
@pytest.mark.parametrize("inner", ["raw", "zstd", "blosc"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_damaged_shard_in_memory(kind: str, inner: str, damage: str, selection: str) -> None:
    """Shard index damage where cuzarr cannot know the shard's size before it reads: an
    error naming the key, or the data zarr returns; never an allocation of what an index
    entry claims."""
    rows = 16
    memory = MemoryStore()
    store = memory if kind == "sync" else _NoSyncStore(memory, get_latency=0, set_latency=0)
    data = _data((4 * rows, COLS), "f4")
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(store, shape=data.shape, chunks=(2 * rows, COLS), dtype="f4",
                                fill_value=0, **_shard_kwargs(inner, rows))
        arr[...] = data
    raw = memory._store_dict["c/1/0"].to_bytes()
    damaged = _damaged_shard(raw, damage, b"", rows)
    memory._store_dict["c/1/0"] = default_buffer_prototype().buffer.from_bytes(damaged)
    region = {"whole": np.s_[:], "leading": np.s_[3 * rows : 3 * rows + 2],
              "other-inner": np.s_[2 * rows + 1 : 2 * rows + 3]}[selection]

    def read(config: dict[str, str]) -> Any:
        with zarr.config.set(config):
            return zarr.open_array(store, mode="r")[region]

    check_like_zarr(lambda: read(ORACLE), lambda: read(PIPE), "c/1/0", data[region],
                    undefined=damage in _WRAPPING)
