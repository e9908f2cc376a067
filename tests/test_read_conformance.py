"""Reads that zarr's own pipeline returns or refuses, cuzarr returns or refuses the same way.

Each test here failed before the fix it guards (issue 12, items 2, 3, 5, 6, 10, 11, 16, 17,
18, 20). The oracle is zarr's BatchedCodecPipeline on the same stored bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import struct
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
import zstandard
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec
from zarr.core.buffer import Buffer
from zarr.registry import register_codec

import cuzarr
from cuzarr.errors import (
    BloscDecodeError,
    ChunkDecodeError,
    GzipDecodeError,
    ZlibDecodeError,
    ZstdDecodeError,
)
from oracle import check_like_zarr

PIPE = {"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}
ORACLE = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}


def _array(path: Path, rows: int = 512, cols: int = 256, **kwargs: Any) -> np.ndarray:
    """A float32 (2 * rows, cols) array of two (rows, cols) chunks; returns its data."""
    data = (np.arange(2 * rows * cols, dtype="f4").reshape(2 * rows, cols) % 1000) / 8
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(str(path), shape=data.shape, chunks=(rows, cols), dtype="f4",
                                fill_value=0, **kwargs)
        arr[:] = data
    return data


def _read(path: Path, selection: Any, config: dict[str, str]) -> Any:
    with zarr.config.set(config):
        return zarr.open_array(str(path), mode="r")[selection]


def _same_as_zarr(path: Path, selection: Any, key: str, stored: Any = None, *,
                  partial_ok: bool = False) -> None:
    """The read held to the oracle's rule (tests/oracle.py)."""
    check_like_zarr(lambda: _read(path, selection, ORACLE), lambda: _read(path, selection, PIPE),
                    key, stored, partial_ok=partial_ok)


# -- 2. zstd prefix reads are opt-in --------------------------------------------------------------


def _zstd_blocks(frame: bytes) -> list[tuple[int, int, int]]:
    """(header offset, block type, block size) of each block of a single zstd frame."""
    descriptor = frame[4]
    single = (descriptor >> 5) & 1
    fcs = {0: single, 1: 2, 2: 4, 3: 8}[descriptor >> 6]
    at = 5 + (1 - single) + [0, 1, 2, 4][descriptor & 3] + fcs
    blocks = []
    while True:
        header = int.from_bytes(frame[at : at + 3], "little")
        kind, size = (header >> 1) & 3, header >> 3
        blocks.append((at, kind, size))
        at += 3 + (1 if kind == 1 else size)
        if header & 1:
            return blocks


@pytest.mark.parametrize("lie", ["compressed-as-raw", "rle-size"])
def test_zstd_block_header_flip_is_an_error_by_default(tmp_path: Path, lie: str) -> None:
    """A bit flipped in the header of a block inside the prefix a leading-rows read needs:
    a prefix decode cannot see it (the frame's declared size is never reached), so reads
    decode whole frames unless `zstd_prefix_reads` opts in."""
    rows, cols = 512, 256
    data = np.zeros((2 * rows, cols), dtype="f4")
    data[: rows // 2] = np.arange(rows // 2 * cols).reshape(rows // 2, cols) % 7  # compressed
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(str(tmp_path), shape=data.shape, chunks=(rows, cols),
                                dtype="f4", fill_value=0, compressors=ZstdCodec(level=3))
        arr[:] = data
    victim = tmp_path / "c" / "0" / "0"
    frame = bytearray(victim.read_bytes())
    blocks = _zstd_blocks(bytes(frame))
    wanted = 2 if lie == "compressed-as-raw" else 1
    at = next(b[0] for b in blocks if b[1] == wanted)
    header = int.from_bytes(frame[at : at + 3], "little")
    if lie == "compressed-as-raw":
        header ^= 0b100  # type 2 (compressed) -> 0 (raw): same size, other bytes
    else:
        header ^= 1 << 8  # an RLE block's size changed
    frame[at : at + 3] = header.to_bytes(3, "little")
    victim.write_bytes(bytes(frame))
    with pytest.raises(RuntimeError):  # zarr itself refuses the chunk
        _read(tmp_path, np.s_[:8], ORACLE)
    _same_as_zarr(tmp_path, np.s_[:8], "c/0/0")
    with cuzarr.config.set(zstd_prefix_reads=True), contextlib.suppress(ChunkDecodeError):
        _read(tmp_path, np.s_[:8], PIPE)  # the documented opt-in may or may not see it


@pytest.mark.parametrize("opt_in", [False, True])
@pytest.mark.parametrize("frames", ["unsized", "two-frames", "skippable-first"])
def test_zstd_frames_of_every_shape_read_on_partial_reads(tmp_path: Path, frames: str,
                                                          opt_in: bool) -> None:
    """Frames without a declared size (streaming writers), two frames, a leading skippable
    frame: zarr reads them; so do cuzarr's whole and leading-row reads (item 5)."""
    data = _array(tmp_path, compressors=ZstdCodec())
    victim = tmp_path / "c" / "1" / "0"
    raw = data[512:].tobytes()
    if frames == "unsized":
        stored = zstandard.ZstdCompressor(write_content_size=False).compress(raw)
    elif frames == "two-frames":
        half = len(raw) // 2
        stored = (zstandard.ZstdCompressor().compress(raw[:half])
                  + zstandard.ZstdCompressor().compress(raw[half:]))
    else:
        stored = (struct.pack("<II", 0x184D2A50, 5) + b"notes"
                  + zstandard.ZstdCompressor().compress(raw))
    victim.write_bytes(stored)
    with cuzarr.config.set(zstd_prefix_reads=opt_in):
        for selection in (np.s_[:], np.s_[512:520], np.s_[600:610, 3:9]):
            _same_as_zarr(tmp_path, selection, "c/1/0")
            np.testing.assert_array_equal(_read(tmp_path, selection, PIPE), data[selection])


_ZERO_FILL = textwrap.dedent("""
    import sys, zarr
    with zarr.config.set({"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}):
        arr = zarr.open_array(sys.argv[1], mode="r")
        for selection in (slice(None), slice(0, 4)):
            try:
                arr[selection]
            except Exception as e:
                assert "c/0/0" in str(e), e
            else:
                raise AssertionError("a zero-filled frame read without error")
    print("ok")
""")


@pytest.mark.parametrize("rows", [16, 4096], ids=["small", "16MiB"])
def test_zero_filled_zstd_frame_is_rejected_quickly(tmp_path: Path, rows: int) -> None:
    """A frame zero-filled after its header (what a crash can leave) is a run of empty raw
    blocks; the walk of them is bounded (it was a numpy pass per 3 bytes: about 10 s per
    MiB). The read runs in a child process that must finish well within the limit."""
    noise = np.random.default_rng(1).random((2 * rows, 1024), dtype="f4")  # incompressible
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(str(tmp_path), shape=noise.shape, chunks=(rows, 1024),
                                dtype="f4", compressors=ZstdCodec())
        arr[:] = noise
    victim = tmp_path / "c" / "0" / "0"
    raw = victim.read_bytes()
    assert len(raw) > rows * 1024 * 3  # the walk has ~len / 3 empty blocks to cross
    victim.write_bytes(raw[:12] + bytes(len(raw) - 12))
    result = subprocess.run([sys.executable, "-c", _ZERO_FILL, str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# -- 3. blosc windows check the frame's geometry first ------------------------------------------


@pytest.mark.parametrize("lie", ["blocksize+1", "blocksize-typesize", "bstart-swap"])
@pytest.mark.parametrize("shuffle", ["shuffle", "noshuffle"])
def test_lying_blosc_geometry_never_gives_shifted_rows(tmp_path: Path, lie: str,
                                                       shuffle: str) -> None:
    """A Blosc chunk of 4 MiB (read in windows: only the blocks a selection needs) whose
    header's block size is off by one: blosc_getitem returns shifted data where a whole
    decode fails. The frame's geometry is checked before any window is decoded."""
    data = _array(tmp_path, rows=1024, cols=1024,
                  compressors=BloscCodec(cname="lz4", shuffle=shuffle, typesize=4))
    victim = tmp_path / "c" / "0" / "0"
    raw = bytearray(victim.read_bytes())
    blocksize = struct.unpack_from("<i", raw, 8)[0]
    if lie == "blocksize+1":
        struct.pack_into("<i", raw, 8, blocksize + 1)
    elif lie == "blocksize-typesize":
        struct.pack_into("<i", raw, 8, blocksize - 4)
    else:  # two block starts swapped: each block decodes, into the other's place
        a, b = struct.unpack_from("<ii", raw, 16)
        struct.pack_into("<ii", raw, 16, b, a)
    victim.write_bytes(bytes(raw))
    for selection in (np.s_[:], np.s_[0:4], np.s_[300:310, 7:9], np.s_[1000:1024]):
        # a window of blocks the lie does not reach may give the rows exactly as stored
        _same_as_zarr(tmp_path, selection, "c/0/0", data[selection], partial_ok=True)


# -- 10. errors are also what zarr raises for the codec --------------------------------------------


@pytest.mark.parametrize(("kwargs", "family", "zarr_types"), [
    ({"compressors": ZstdCodec()}, ZstdDecodeError, (RuntimeError,)),
    ({"compressors": BloscCodec(cname="lz4")}, BloscDecodeError, (RuntimeError,)),
    ({"compressors": GzipCodec()}, GzipDecodeError,
     (gzip.BadGzipFile, EOFError, zlib.error)),
    ({"compressors": numcodecs.Zlib(), "zarr_format": 2}, ZlibDecodeError, (zlib.error,)),
])
@pytest.mark.parametrize("damage", ["flip", "cut", "zeros"])
def test_decode_errors_are_what_zarr_raises(tmp_path: Path, kwargs: dict[str, Any],
                                            family: type, zarr_types: tuple[type, ...],
                                            damage: str) -> None:
    _array(tmp_path, rows=64, cols=64, **kwargs)
    key = "1.0" if kwargs.get("zarr_format") == 2 else "c/1/0"
    victim = tmp_path / key
    raw = bytearray(victim.read_bytes())
    if damage == "flip":  # the first byte: a magic number, a version, a header field
        raw[0] ^= 0xFF
    elif damage == "cut":
        raw = raw[: len(raw) // 2]
    else:
        raw[12:] = bytes(len(raw) - 12)
    victim.write_bytes(bytes(raw))
    with pytest.raises(Exception) as oracle:
        _read(tmp_path, np.s_[:], ORACLE)
    with pytest.raises(family, match=key) as info:
        _read(tmp_path, np.s_[:], PIPE)
    assert isinstance(info.value, zarr_types) and isinstance(info.value, type(oracle.value))


def test_numcodecs_error_classes_are_kept(tmp_path: Path) -> None:
    """A codec without a family of its own (numcodecs' LZMA) raises its own class too."""
    import lzma

    _array(tmp_path, rows=64, cols=64, compressors=numcodecs.LZMA(), zarr_format=2)
    victim = tmp_path / "1.0"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(lzma.LZMAError, match=r"1\.0") as info:
        _read(tmp_path, np.s_[:], PIPE)
    assert isinstance(info.value, ChunkDecodeError)
    import pickle

    again = pickle.loads(pickle.dumps(info.value))
    assert isinstance(again, lzma.LZMAError) and again.key == "1.0"


# -- 11. trailing bytes zarr reads -------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "pad"), [
    ({"compressors": BloscCodec(cname="lz4")}, b"\0" * 7),
    ({"compressors": BloscCodec(cname="zstd")}, b"trailing garbage"),
    ({"compressors": GzipCodec()}, b"\0" * 5),
    ({"compressors": GzipCodec()}, b"\0x"),  # zarr refuses: not a gzip member
    ({"compressors": numcodecs.Blosc(), "zarr_format": 2}, b"\0\0"),
    ({"compressors": numcodecs.GZip(), "zarr_format": 2}, b"\0"),
])
@pytest.mark.parametrize("rows", [64, 1024])
def test_padded_chunks_read_as_zarr_reads_them(tmp_path: Path, kwargs: dict[str, Any],
                                               pad: bytes, rows: int) -> None:
    _array(tmp_path, rows=rows, cols=256, **kwargs)
    key = "1.0" if kwargs.get("zarr_format") == 2 else "c/1/0"
    victim = tmp_path / key
    victim.write_bytes(victim.read_bytes() + pad)
    for selection in (np.s_[:], np.s_[rows : rows + 3], np.s_[rows + 5 : rows + 9, 4:7]):
        _same_as_zarr(tmp_path, selection, key)


def _shard_with_entry(path: Path, inner: Any, entry: int, change: Any) -> None:
    """A sharded array of one shard of 4 inner chunks whose index entry `entry` is changed
    by change(offset, length, shard size) -> (offset, length)."""
    import google_crc32c

    with zarr.config.set(ORACLE):
        arr = zarr.create_array(str(path), shape=(64, 16), chunks=(16, 16), shards=(64, 16),
                                dtype="f4", fill_value=0, compressors=inner)
        arr[:] = np.arange(64 * 16, dtype="f4").reshape(64, 16)
    victim = path / "c" / "0" / "0"
    raw = victim.read_bytes()
    index = bytearray(raw[-(16 * 4 + 4) : -4])
    offset, length = struct.unpack_from("<QQ", index, 16 * entry)
    struct.pack_into("<QQ", index, 16 * entry, *change(offset, length, len(raw)))
    crc = int(google_crc32c.value(bytes(index))).to_bytes(4, "little")
    victim.write_bytes(raw[: -(16 * 4 + 4)] + bytes(index) + crc)


@pytest.mark.parametrize("inner", [BloscCodec(cname="lz4"), ZstdCodec(), GzipCodec(), None],
                         ids=["blosc", "zstd", "gzip", "raw"])
@pytest.mark.parametrize("change", ["overshoot", "length-0", "length-1", "length-2",
                                    "short", "past-end"])
def test_shard_index_entries_read_as_zarr_reads_them(tmp_path: Path, inner: Any,
                                                     change: str) -> None:
    """An entry reaching past the end of the shard gets the bytes up to the end (zarr's
    slicing); a Blosc inner chunk whose entry is shorter than its header says is read whole
    from the shard where zarr reads the whole shard (numcodecs reads as far as the header
    says, and the shard's buffer continues), and refused where zarr fetched only it."""
    changes = {
        "overshoot": lambda o, n, size: (o, n + 1000),
        "length-0": lambda o, n, size: (o, 0),
        "length-1": lambda o, n, size: (o, 1),
        "length-2": lambda o, n, size: (o, 2),
        "short": lambda o, n, size: (o, n - 5),
        "past-end": lambda o, n, size: (size + 10, n),
    }
    entry = 3 if change == "overshoot" else 1
    _shard_with_entry(tmp_path, inner, entry, changes[change])
    intact = np.arange(64 * 16, dtype="f4").reshape(64, 16)
    short_blosc = isinstance(inner, BloscCodec) and change in ("length-0", "length-1",
                                                               "length-2", "short")
    for selection in (np.s_[:], np.s_[16:18], np.s_[50:60]):
        whole_shard = selection == np.s_[:]
        if short_blosc and not whole_shard:
            # zarr fetched the short range alone: c-blosc reads past the buffer it was
            # handed (heap memory; what comes back varies); cuzarr refuses the chunk or,
            # where it does not need it, reads the rest
            try:
                got = _read(tmp_path, selection, PIPE)
            except BloscDecodeError as error:
                assert "c/0/0" in str(error)
                continue
            np.testing.assert_array_equal(got, intact[selection])
            continue
        if short_blosc:  # zarr read the shard whole: the chunk's bytes continue there
            np.testing.assert_array_equal(_read(tmp_path, selection, PIPE), intact[selection])
        _same_as_zarr(tmp_path, selection, "c/0/0", intact[selection])


# -- 16. 0-d arrays ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "value"), [
    ({"dtype": "S5"}, b"hey"),
    ({"dtype": str}, "hello"),
    ({"dtype": str, "zarr_format": 2}, "hello"),
    ({"dtype": "f8", "shards": ()}, 3.5),
    ({"dtype": "u1", "shards": (), "compressors": ZstdCodec()}, 7),
    ({"dtype": str, "shards": ()}, "sharded"),
    ({"dtype": "S3", "shards": ()}, b"hi"),
])
def test_0d_arrays(tmp_path: Path, kwargs: dict[str, Any], value: Any) -> None:
    with zarr.config.set(PIPE):
        arr = zarr.create_array(str(tmp_path), shape=(), chunks=(), **kwargs)
        arr[()] = value
        assert arr[()] == value and arr[...] == value
    with zarr.config.set(ORACLE):
        assert zarr.open_array(str(tmp_path), mode="r")[()] == value


# -- 17, 18. codecs cuzarr has no batched path for, and subclasses of those it has ---------------


@dataclass(frozen=True)
class AsyncOnlyXor(BytesBytesCodec):  # type: ignore[misc]
    """A third-party codec with async methods only (no _decode_sync / _encode_sync)."""

    is_fixed_size = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AsyncOnlyXor:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"name": "cuzarr_test_async_xor"}

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer:
        return chunk_bytes.from_array_like(chunk_bytes.as_numpy_array() ^ np.uint8(0x33))

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer:
        return chunk_bytes.from_array_like(chunk_bytes.as_numpy_array() ^ np.uint8(0x33))

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: Any) -> int:
        return input_byte_length


register_codec("cuzarr_test_async_xor", AsyncOnlyXor)


@pytest.mark.parametrize("sharded", [False, True])
def test_async_only_codecs_go_to_zarrs_pipeline(tmp_path: Path, sharded: bool) -> None:
    data = np.arange(32 * 32, dtype="i4").reshape(32, 32)
    kwargs: dict[str, Any] = {"shards": (16, 32)} if sharded else {}
    with zarr.config.set(PIPE):
        arr = zarr.create_array(str(tmp_path), shape=data.shape, chunks=(8, 8), dtype="i4",
                                compressors=[AsyncOnlyXor()], **kwargs)
        arr[:] = data
        arr[3:9, 2] = -1
        data[3:9, 2] = -1
        np.testing.assert_array_equal(arr[:], data)
    np.testing.assert_array_equal(_read(tmp_path, np.s_[:], ORACLE), data)


class _ShiftedZstd(ZstdCodec):
    """A ZstdCodec subclass that stores every chunk's bytes rotated by one: it must run
    through its own methods, not cuzarr's zstd stage."""

    def _encode_sync(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer | None:
        raw = chunk_bytes.as_numpy_array()
        return super()._encode_sync(chunk_bytes.from_array_like(np.roll(raw, 1)), chunk_spec)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer:
        out = super()._decode_sync(chunk_bytes, chunk_spec)
        return out.from_array_like(np.roll(out.as_numpy_array(), -1))

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer | None:
        return self._encode_sync(chunk_bytes, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer:
        return self._decode_sync(chunk_bytes, chunk_spec)


def test_codec_subclasses_run_their_own_methods(tmp_path: Path) -> None:
    data = np.arange(64 * 16, dtype="i4").reshape(64, 16)
    with zarr.config.set(PIPE):
        arr = zarr.create_array(str(tmp_path), shape=data.shape, chunks=(16, 16), dtype="i4",
                                compressors=[_ShiftedZstd()])
        arr[:] = data
        np.testing.assert_array_equal(arr[:], data)
    stored = zstandard.ZstdDecompressor().decompress((tmp_path / "c" / "0" / "0").read_bytes())
    np.testing.assert_array_equal(np.frombuffer(stored, "<i4"), np.roll(data[:16].ravel()
                                                                        .view("u1"), 1)
                                  .view("<i4"))


# -- 20. errors zarr raises on purpose pass through --------------------------------------------


@pytest.mark.parametrize("zarr_opt_in", [False, True])
def test_pickle_refusals_pass_through(tmp_path: Path, zarr_opt_in: bool) -> None:
    """zarr's gate (PickleCodecDisabledError) and, with zarr's opt-in, numcodecs' own
    (UnsafeDecodeError) reach the caller unchanged, as from zarr's pipeline."""
    from numcodecs.errors import UnsafeDecodeError
    from zarr.core.dtype import VariableLengthUTF8
    from zarr.errors import PickleCodecDisabledError

    with zarr.config.set(ORACLE):
        arr = zarr.create_array(str(tmp_path), shape=(3,), chunks=(3,),
                                dtype=VariableLengthUTF8(),  # type: ignore[arg-type]
                                zarr_format=2, filters=[numcodecs.VLenUTF8()],
                                compressors=numcodecs.Pickle(), fill_value="")
        arr[:] = np.array(["a", "bb", "ccc"])
    expected = UnsafeDecodeError if zarr_opt_in else PickleCodecDisabledError
    config = {"array.allow_unsafe_pickle_decode": zarr_opt_in}
    for pipeline in (ORACLE, PIPE):
        with zarr.config.set({**pipeline, **config}), pytest.raises(expected) as info:
            zarr.open_array(str(tmp_path), mode="r")[:]
        assert type(info.value) is expected


def test_async_only_shard_index_codec(tmp_path: Path) -> None:
    """zarr's sharding encodes its index through the configured pipeline's encode: with an
    async-only index codec, cuzarr hands that to zarr's pipeline too."""
    from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec

    data = np.arange(32 * 32, dtype="i4").reshape(32, 32)
    serializer = ShardingCodec(chunk_shape=(8, 8), codecs=[BytesCodec(), ZstdCodec()],
                               index_codecs=[BytesCodec(), AsyncOnlyXor(), Crc32cCodec()])
    for config in (PIPE, ORACLE):
        path = tmp_path / config["codec_pipeline.path"]
        with zarr.config.set(config):
            arr = zarr.create_array(str(path), shape=data.shape, chunks=(16, 32), dtype="i4",
                                    serializer=serializer, compressors=None)
            arr[:] = data
            arr[1:3, 5] = -7
        expected = data.copy()
        expected[1:3, 5] = -7
        for reader in (PIPE, ORACLE):
            np.testing.assert_array_equal(_read(path, np.s_[:], reader), expected)


@dataclass(frozen=True)
class ElidingCodec(BytesBytesCodec):  # type: ignore[misc]
    """A third-party codec that stores nothing for a chunk of all-zero bytes (its encode
    returns None, which zarr's codec API allows) and passes other bytes through."""

    is_fixed_size = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ElidingCodec:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"name": "cuzarr_test_eliding"}

    def _encode_sync(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer | None:
        return None if not chunk_bytes.as_numpy_array().any() else chunk_bytes

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer:
        return chunk_bytes

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer | None:
        return self._encode_sync(chunk_bytes, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> Buffer:
        return chunk_bytes

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: Any) -> int:
        raise NotImplementedError


register_codec("cuzarr_test_eliding", ElidingCodec)


def test_a_codec_that_elides_chunks(tmp_path: Path) -> None:
    data = np.zeros((16, 16), dtype="i4")
    data[:4] = 3
    stored = {}
    for config in (PIPE, ORACLE):
        path = tmp_path / config["codec_pipeline.path"]
        with zarr.config.set(config):
            arr = zarr.create_array(str(path), shape=data.shape, chunks=(4, 16), dtype="i4",
                                    fill_value=7, compressors=[ElidingCodec()])
            arr[:] = data
            np.testing.assert_array_equal(arr[:4], data[:4])
        stored[config["codec_pipeline.path"]] = sorted(
            p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert stored[PIPE["codec_pipeline.path"]] == stored[ORACLE["codec_pipeline.path"]]
    np.testing.assert_array_equal(_read(tmp_path / PIPE["codec_pipeline.path"], np.s_[:], PIPE),
                                  _read(tmp_path / ORACLE["codec_pipeline.path"], np.s_[:],
                                        ORACLE))


@pytest.mark.parametrize("rows", [64, 1024])
def test_a_blosc_header_claiming_huge_sizes_allocates_nothing(tmp_path: Path, rows: int) -> None:
    """A small chunk whose header claims 256 MiB in blocks of 1 byte: refused from the
    stored bytes it has, before the plan of its blocks is made (that took 4.8 s and then
    raised MemoryError)."""
    _array(tmp_path, rows=rows, cols=256, compressors=BloscCodec(cname="lz4"))
    victim = tmp_path / "c" / "1" / "0"
    raw = bytearray(victim.read_bytes()[:64])
    struct.pack_into("<iii", raw, 4, 2**28, 1, 64)
    victim.write_bytes(bytes(raw))
    for selection in (np.s_[:], np.s_[rows : rows + 2]):
        _same_as_zarr(tmp_path, selection, "c/1/0")


def test_datetimes_read_into_an_out_of_another_unit(tmp_path: Path) -> None:
    """`out` in milliseconds, the array in seconds: numpy's cast converts, as in zarr."""
    from zarr.core.buffer.cpu import NDBuffer

    data = np.array(["2020-01-01", "2021-06-30", "NaT", "1970-01-02"], dtype="M8[s]")
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(str(tmp_path), shape=(4,), chunks=(2,), dtype="M8[s]")
        arr[:] = data
    results = []
    for config in (ORACLE, PIPE):
        out = np.zeros(4, dtype="M8[ms]")
        with zarr.config.set(config):
            zarr.open_array(str(tmp_path), mode="r").get_basic_selection(
                Ellipsis, out=NDBuffer.from_numpy_array(out))
        results.append(out)
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[1], data.astype("M8[ms]"))


def test_a_short_blosc_entry_inside_a_coalesced_group(tmp_path: Path) -> None:
    """An index entry 10 bytes short, for an inner chunk read in one coalesced range with
    its neighbours: zarr's get_ranges slices one buffer, so numcodecs reads the chunk's
    declared length from it; so does cuzarr."""
    _shard_with_entry(tmp_path, BloscCodec(cname="lz4"), 0, lambda o, n, size: (o, n - 10))
    intact = np.arange(64 * 16, dtype="f4").reshape(64, 16)
    for selection in (np.s_[0:40], np.s_[0:64], np.s_[3:20]):
        expected = _read(tmp_path, selection, ORACLE)
        np.testing.assert_array_equal(expected, intact[selection])
        np.testing.assert_array_equal(_read(tmp_path, selection, PIPE), expected)
