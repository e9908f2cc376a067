"""Bad input ends in a clear error that names the store key or setting, and loses no data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, ShardingCodec, ZstdCodec

import cuzarr
from cuzarr.errors import ChecksumError, ChunkDecodeError, ConfigError

PIPE = {"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}


def _make(path: Path, **kwargs: object) -> tuple[zarr.Array, np.ndarray]:
    data = np.arange(64 * 32, dtype="f4").reshape(64, 32)
    kwargs.setdefault("chunks", (16, 16))
    arr = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, **kwargs)
    arr[:] = data
    return arr, data


def _chunk_file(path: Path, key: str) -> Path:
    return path / key


@pytest.mark.parametrize(
    "compressors",
    [ZstdCodec(), GzipCodec(), BloscCodec(cname="lz4"), None],
    ids=["zstd", "gzip", "blosc", "raw"],
)
def test_truncated_chunk_names_key(tmp_path: Path, compressors: object) -> None:
    _make(tmp_path, compressors=compressors)
    victim = _chunk_file(tmp_path, "c/1/0")
    victim.write_bytes(victim.read_bytes()[:-7])
    with zarr.config.set(PIPE), pytest.raises(ChunkDecodeError, match="c/1/0"):
        zarr.open_array(str(tmp_path))[:]


def test_corrupt_zstd_names_key(tmp_path: Path) -> None:
    _make(tmp_path, compressors=ZstdCodec())
    victim = _chunk_file(tmp_path, "c/2/1")
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2 :] = b"\xff" * (len(raw) - len(raw) // 2)
    victim.write_bytes(bytes(raw))
    with zarr.config.set(PIPE), pytest.raises(ChunkDecodeError, match="c/2/1"):
        zarr.open_array(str(tmp_path))[:]


@pytest.mark.parametrize("chunk_rows", [16, 256], ids=["small-chunks", "large-chunks"])
@pytest.mark.parametrize("items", [100, 1 << 20], ids=["shorter", "longer"])
@pytest.mark.parametrize("content_size", [True, False], ids=["sized", "unsized"])
@pytest.mark.parametrize("selection", ["whole", "leading-rows"])
def test_zstd_frame_of_the_wrong_size_names_key(tmp_path: Path, chunk_rows: int, items: int,
                                                content_size: bool, selection: str) -> None:
    """A valid zstd frame that decodes to fewer or more bytes than the chunk holds is an
    error naming the key, never a chunk padded with whatever memory held (large chunks
    decode straight into their rows; leading-row reads decode only a prefix)."""
    import zstandard

    data = np.ones((2 * chunk_rows, 256), dtype="f4")
    arr = zarr.create_array(str(tmp_path), shape=data.shape, chunks=(chunk_rows, 256),
                            dtype=data.dtype, compressors=ZstdCodec())
    arr[:] = data
    payload = np.full(items, 2, dtype="f4").tobytes()
    frame = zstandard.ZstdCompressor(write_content_size=content_size).compress(payload)
    (tmp_path / "c" / "1" / "0").write_bytes(frame)
    region = np.s_[:] if selection == "whole" else np.s_[chunk_rows : chunk_rows + 2]
    with zarr.config.set(PIPE), pytest.raises(ChunkDecodeError, match="c/1/0"):
        zarr.open_array(str(tmp_path))[region]


def test_checksum_mismatch_says_so(tmp_path: Path) -> None:
    _make(tmp_path, compressors=[Crc32cCodec()])
    victim = _chunk_file(tmp_path, "c/0/1")
    raw = bytearray(victim.read_bytes())
    raw[5] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with zarr.config.set(PIPE), pytest.raises(ChecksumError, match=r"c/0/1.*checksum"):
        zarr.open_array(str(tmp_path))[:]


def test_checksums_can_be_skipped(tmp_path: Path) -> None:
    _, data = _make(tmp_path, compressors=[Crc32cCodec()])
    victim = _chunk_file(tmp_path, "c/0/1")
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 0xFF  # damage the checksum only
    victim.write_bytes(bytes(raw))
    with zarr.config.set(PIPE), cuzarr.config.set(verify_checksums=False):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path))[:], data)


def _sharded(tmp_path: Path, location: str) -> tuple[zarr.Array, np.ndarray]:
    return _make(
        tmp_path,
        chunks=(32, 32),
        compressors=None,
        serializer=ShardingCodec(
            chunk_shape=(8, 8), codecs=[zarr.codecs.BytesCodec(), ZstdCodec()],
            index_location=location,
        ),
    )


@pytest.mark.parametrize("location", ["start", "end"])
def test_corrupt_shard_index_names_key(tmp_path: Path, location: str) -> None:
    _sharded(tmp_path, location)
    victim = _chunk_file(tmp_path, "c/1/0")
    raw = bytearray(victim.read_bytes())
    pos = 3 if location == "start" else len(raw) - 30
    raw[pos] ^= 0x55
    victim.write_bytes(bytes(raw))
    with zarr.config.set(PIPE), pytest.raises(ChecksumError, match="c/1/0"):
        zarr.open_array(str(tmp_path))[:]


def test_truncated_shard_names_key(tmp_path: Path) -> None:
    _sharded(tmp_path, "start")
    victim = _chunk_file(tmp_path, "c/0/0")
    victim.write_bytes(victim.read_bytes()[:-100])
    with zarr.config.set(PIPE), pytest.raises(ChunkDecodeError, match="c/0/0"):
        zarr.open_array(str(tmp_path))[:]


def test_shard_shorter_than_index(tmp_path: Path) -> None:
    _sharded(tmp_path, "end")
    _chunk_file(tmp_path, "c/0/0").write_bytes(b"\x00" * 10)
    with zarr.config.set(PIPE), pytest.raises(ChunkDecodeError, match=r"c/0/0.*truncated"):
        zarr.open_array(str(tmp_path))[:]


def test_corrupt_inner_chunk_names_shard_and_inner_coords(tmp_path: Path) -> None:
    _sharded(tmp_path, "end")
    victim = _chunk_file(tmp_path, "c/1/0")
    raw = bytearray(victim.read_bytes())
    raw[20:60] = b"\x00" * 40  # inside the first inner chunk's frame
    victim.write_bytes(bytes(raw))
    with zarr.config.set(PIPE), pytest.raises(ChunkDecodeError, match=r"c/1/0 \(inner chunk"):
        zarr.open_array(str(tmp_path))[:]


def test_failed_partial_write_keeps_stored_chunk(tmp_path: Path) -> None:
    _make(tmp_path, compressors=ZstdCodec())
    victim = _chunk_file(tmp_path, "c/1/1")
    victim.write_bytes(victim.read_bytes()[:-3])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with zarr.config.set(PIPE), pytest.raises(ChunkDecodeError, match="c/1/1"):
        zarr.open_array(str(tmp_path))[20:22, 20:22] = 5
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert before == after
    assert not [p for p in os.listdir(tmp_path / "c" / "1") if p.endswith(".partial")]


def test_bad_settings_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="'threads'"):
        cuzarr.config.set(threads=0)
    with pytest.raises(ConfigError, match="'device'"):
        cuzarr.config.set(device="tpu")
    with pytest.raises(KeyError, match="nosuch"):
        cuzarr.config.set(nosuch=1)
    monkeypatch.setenv("CUZARR_WAVE_BYTES", "lots")
    with pytest.raises(ConfigError, match="CUZARR_WAVE_BYTES"):
        cuzarr.config.get("wave_bytes")


def test_cuda_device_explains_what_is_missing(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """device="cuda" fails where it is set (the setting, or the environment variable at
    the first read), saying what is missing and how to install it."""
    if cuzarr.devices.cuda_available():
        pytest.skip("a cuda device is present")
    with pytest.raises(cuzarr.DeviceUnavailableError, match=r"cupy.*\.\[cuda13\]"):
        cuzarr.config.set(device="cuda")
    assert cuzarr.config.get("device") == "auto"
    _make(tmp_path, compressors=ZstdCodec())
    monkeypatch.setenv("CUZARR_DEVICE", "cuda")
    with zarr.config.set(PIPE), pytest.raises(cuzarr.DeviceUnavailableError,
                                              match="CUZARR_DEVICE"):
        zarr.open_array(str(tmp_path))[:]


def test_a_misspelled_setting_is_a_config_error_naming_the_closest() -> None:
    for call in (lambda: cuzarr.config.set(thread=2), lambda: cuzarr.config.get("thread")):
        with pytest.raises(cuzarr.ConfigError, match=r"'thread'.*did you mean 'threads'") as e:
            call()
        assert isinstance(e.value, KeyError)
        assert str(e.value).startswith("unknown cuzarr setting")
    with pytest.raises(cuzarr.UnknownSettingError, match="known: device"):
        cuzarr.config.set(colour="blue")


def test_corrupt_inner_chunk_in_a_partial_shard_write(tmp_path: Path) -> None:
    """The merge reads the stored inner chunk: its error names the shard and the inner
    chunk's coordinates, and the shard stays as it was."""
    _sharded(tmp_path, "end")
    victim = _chunk_file(tmp_path, "c/1/0")
    raw = bytearray(victim.read_bytes())
    raw[20:60] = b"\x00" * 40  # inside the first inner chunk's frame
    victim.write_bytes(bytes(raw))
    with zarr.config.set(PIPE), pytest.raises(
        ChunkDecodeError, match=r"c/1/0 \(inner chunk \(0, 0\)\)"
    ):
        zarr.open_array(str(tmp_path))[33:35, 1:3] = 1.0
    assert victim.read_bytes() == bytes(raw)


def test_enable_gpu_says_what_is_missing_before_zarr_fails(tmp_path: Path) -> None:
    """cuzarr.enable(gpu=True) checks first and leaves zarr's settings as they were;
    zarr's own enable_gpu() without cupy fails later, inside zarr (what the README says)."""
    if cuzarr.devices.cuda_available():
        pytest.skip("a cuda device is present")
    before = {k: zarr.config.get(k) for k in ("codec_pipeline.path", "buffer", "ndbuffer")}
    with pytest.raises(cuzarr.DeviceUnavailableError, match=r"cupy.*\.\[cuda13\]"):
        cuzarr.enable(gpu=True)
    assert {k: zarr.config.get(k) for k in before} == before
    _make(tmp_path, compressors=ZstdCodec())
    with zarr.config.enable_gpu(), pytest.raises(AttributeError, match="empty"):
        zarr.open_array(str(tmp_path))[:]
    with cuzarr.enable():  # gpu=None: host buffers where the cuda device cannot run
        assert zarr.config.get("buffer") == before["buffer"]
        np.asarray(zarr.open_array(str(tmp_path))[:])
