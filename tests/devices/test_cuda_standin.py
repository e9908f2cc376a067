"""The cuda device's own code (slab carving, alignment repacking, frame validation, nvCOMP
batch arguments, kernel launches), run on the CPU with numpy standing in for cupy, the
nvCOMP double and the host-emulation launcher; compared with the cpu device."""

from __future__ import annotations

import gzip
import logging
import zlib

import numcodecs
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import nvcomp_double
from cuzarr.batch import ByteBatch
from cuzarr.codecs.bytes_to_bytes import (
    BloscStage,
    Crc32cStage,
    GzipStage,
    ZlibStage,
    ZstdStage,
)
from cuzarr.devices.cuda import CudaDevice
from cuzarr.errors import ChecksumError
from cuzarr.workers import StageError

CHUNK = 3000


def _chunks(count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 8, CHUNK, dtype=np.uint8).tobytes() for _ in range(count)]


def _encode(stage_name: str, raw: bytes) -> bytes:
    if stage_name == "zstd":
        return bytes(numcodecs.Zstd(level=1).encode(raw))
    if stage_name == "gzip":
        return gzip.compress(raw, mtime=0)
    return zlib.compress(raw)


STAGES = {"zstd": ZstdStage(), "gzip": GzipStage(), "zlib": ZlibStage()}


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(STAGES)), count=st.integers(1, 6),
       pad=st.lists(st.integers(0, 7), min_size=6, max_size=6))
def test_decode_matches_cpu_with_unaligned_items(name: str, count: int, pad: list[int]) -> None:
    """Items at odd offsets in the io slab are repacked to nvCOMP's alignment (the double
    refuses unaligned buffers), decoded in one batched call, and equal the cpu result."""
    from harness import HostLauncher

    from cuzarr.devices.nvcomp_backend import NvcompBackend

    device = CudaDevice(np, NvcompBackend(nvcomp_double), HostLauncher())
    raws = _chunks(count, count)
    frames = [_encode(name, r) for r in raws]
    pieces, offsets = [], []
    pos = 0
    for frame, gap in zip(frames, pad, strict=False):
        pieces.append(b"\x00" * gap)
        pos += gap
        offsets.append(pos)
        pieces.append(frame)
        pos += len(frame)
    host = ByteBatch(np.frombuffer(b"".join(pieces), dtype=np.uint8),
                     np.array(offsets, dtype=np.int64),
                     np.array([len(f) for f in frames], dtype=np.int64))
    nvcomp_double.Codec.calls.clear()
    out = device.decode_stage(STAGES[name], device.to_device(host), CHUNK, 1)
    assert [out.item(i).tobytes() for i in range(count)] == raws
    assert len(nvcomp_double.Codec.calls) == 1  # one batched call for every item


@pytest.mark.parametrize("name", sorted(STAGES))
def test_corrupt_frames_never_reach_nvcomp(standin: CudaDevice, name: str) -> None:
    frames = [_encode(name, r) for r in _chunks(3, 1)]
    bad = bytearray(frames[1])
    bad[0] ^= 0xFF  # magic / header
    frames[1] = bytes(bad)
    host = ByteBatch.from_buffers(frames)
    with pytest.raises(StageError) as info:
        standin.decode_stage(STAGES[name], standin.to_device(host), CHUNK, 1)
    assert info.value.index == 1
    assert nvcomp_double.Codec.calls == []


def test_zstd_declared_size_is_checked(standin: CudaDevice) -> None:
    frames = [_encode("zstd", r) for r in _chunks(2, 2)]
    host = ByteBatch.from_buffers(frames)
    # a frame that does not declare the chunk's size never reaches nvCOMP: the host
    # decodes the batch, and says what it decoded
    with pytest.raises(StageError, match=f"expected {CHUNK + 1}"):
        standin.decode_stage(ZstdStage(), standin.to_device(host), CHUNK + 1, 1)
    assert nvcomp_double.Codec.calls == []


def test_crc32c_on_the_device(standin: CudaDevice) -> None:
    import google_crc32c

    raws = _chunks(4, 3)
    framed = [r + int(google_crc32c.value(r)).to_bytes(4, "little") for r in raws]
    out = standin.decode_stage(Crc32cStage(), standin.to_device(ByteBatch.from_buffers(framed)),
                               CHUNK, 1)
    assert [out.item(i).tobytes() for i in range(4)] == raws
    broken = bytearray(framed[2])
    broken[10] ^= 1
    framed[2] = bytes(broken)
    with pytest.raises(StageError) as info:
        standin.decode_stage(Crc32cStage(), standin.to_device(ByteBatch.from_buffers(framed)),
                             CHUNK, 1)
    assert info.value.index == 2 and info.value.family is ChecksumError


def test_host_fallback_is_counted_and_logged_once(
    standin: CudaDevice, caplog: pytest.LogCaptureFixture
) -> None:
    """gzip without a known decoded size has no GPU path: it runs on the host, counted
    per batch and logged once."""
    raws = _chunks(3, 4)
    host = ByteBatch.from_buffers([_encode("gzip", r) for r in raws])
    with caplog.at_level(logging.WARNING, logger="cuzarr"):
        for _ in range(2):
            out = standin.decode_stage(GzipStage(), standin.to_device(host), None, 1)
    assert [out.item(i).tobytes() for i in range(3)] == raws
    assert standin.host_fallbacks == {"gzip decode": 2}
    assert sum("no GPU decode path" in r.message for r in caplog.records) == 1


def _blosclz_data(kind: str, nbytes: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    if kind == "constant":
        return bytes(nbytes)
    if kind == "ints":  # a walk of int32: compresses well once shuffled
        walk = np.cumsum(rng.integers(-2, 3, nbytes // 4 + 1)).astype("<i4")
        return walk.view(np.uint8)[:nbytes].tobytes()
    return np.cumsum(rng.integers(-2, 3, nbytes)).astype(np.uint8).tobytes()


@settings(max_examples=50, deadline=None)
@given(clevel=st.integers(1, 9), shuffle=st.sampled_from([0, 1, 2]),
       typesize=st.sampled_from([1, 2, 4, 8]),
       nbytes=st.one_of(st.integers(1, 400), *[st.integers(400, 200_000)] * 3),
       kind=st.sampled_from(["ints", "ints", "constant", "walk", "random"]),
       blocksize=st.sampled_from([0, 4096]))
def test_blosclz_on_the_device_matches_numcodecs(clevel: int, shuffle: int, typesize: int,
                                                 nbytes: int, kind: str,
                                                 blocksize: int) -> None:
    """blosclz chunks (leftover blocks, tiny memcpyed chunks included) decode through our
    kernel, never the host, equal to c-blosc."""
    from harness import HostLauncher

    from cuzarr.devices.nvcomp_backend import NvcompBackend

    device = CudaDevice(np, NvcompBackend(nvcomp_double), HostLauncher())
    codec = numcodecs.Blosc(cname="blosclz", clevel=clevel, shuffle=shuffle, typesize=typesize,
                            blocksize=blocksize)
    raws = [_blosclz_data(kind, nbytes, seed) for seed in range(3)]
    host = ByteBatch.from_buffers([codec.encode(r) for r in raws])
    out = device.decode_stage(BloscStage(codec), device.to_device(host), nbytes, 1)
    assert [out.item(i).tobytes() for i in range(3)] == raws
    assert device.host_fallbacks == {}
    launched = any(name == "blosclz_decompress" for name, _, _ in device.launcher.launches)
    event("streams through the kernel" if launched else "stored streams only")


def test_mixed_blosc_batch_one_launch_per_decoder(standin: CudaDevice) -> None:
    """blosclz, lz4 and zstd chunks in one batch: one kernel launch for every blosclz
    stream, one nvCOMP call per other codec, no host path."""
    raws = [_blosclz_data("ints", 50_000, seed) for seed in range(6)]
    cnames = ["blosclz", "lz4", "blosclz", "zstd", "blosclz", "lz4"]
    frames = [numcodecs.Blosc(cname=c, shuffle=numcodecs.Blosc.SHUFFLE, typesize=4).encode(r)
              for c, r in zip(cnames, raws, strict=True)]
    stage = BloscStage(numcodecs.Blosc(cname="blosclz"))
    out = standin.decode_stage(stage, standin.to_device(ByteBatch.from_buffers(frames)),
                               50_000, 1)
    assert [out.item(i).tobytes() for i in range(6)] == raws
    assert standin.host_fallbacks == {}
    names = [name for name, _, _ in standin.launcher.launches]
    assert names.count("blosclz_decompress") == 1
    assert sorted(a for a, _ in nvcomp_double.Codec.calls) == ["LZ4", "Zstd"]


def test_corrupt_blosclz_stream_names_its_chunk(standin: CudaDevice) -> None:
    """A stream whose first match reaches before its block is refused by the kernel's
    status, with the chunk's index; nothing falls back to the host."""
    from cuzarr.codecs.blosc_frame import plan_frames

    codec = numcodecs.Blosc(cname="blosclz", shuffle=numcodecs.Blosc.SHUFFLE, typesize=4)
    frames = [bytearray(codec.encode(_blosclz_data("ints", 40_000, k))) for k in range(3)]
    one = ByteBatch.from_buffers([bytes(frames[2])])
    plan = plan_frames(one.slab, one.offsets, one.sizes)
    at = int(plan.split_src[np.flatnonzero(~plan.split_raw)[0]])
    frames[2][at : at + 4] = b"\x00a\x20\x01"  # 'a', then a match 2 bytes back
    host = ByteBatch.from_buffers([bytes(f) for f in frames])
    with pytest.raises(StageError, match="before the start") as info:
        standin.decode_stage(BloscStage(codec), standin.to_device(host), 40_000, 1)
    assert info.value.index == 2
    assert standin.host_fallbacks == {}


def test_snappy_streams_take_the_host_path(standin: CudaDevice) -> None:
    """A compressed snappy stream (no GPU decoder) sends its batch to the host path."""
    import struct

    from cuzarr.devices.blosc_gpu import decode_blosc

    stream = b"\x64\xfc" + bytes(100)  # a snappy literal; the bytes are never decoded
    snappy = (struct.pack("<BBBBiii", 2, 1, 0x10 | 2 << 5, 1, 400, 400, 24 + len(stream))
              + struct.pack("<ii", 20, len(stream)) + stream)
    lz = numcodecs.Blosc(cname="blosclz").encode(_blosclz_data("walk", 400, 0))
    host = ByteBatch.from_buffers([lz, snappy])
    assert decode_blosc(standin, standin.to_device(host), host.slab, 400) is None
    assert standin.launcher.launches == []


def test_the_double_enforces_alignment() -> None:
    """What the repacking is for: nvCOMP (and so the double) rejects unaligned buffers."""
    from cuzarr.devices.nvcomp_backend import NvcompBackend, NvcompRefused

    frame = np.frombuffer(b"\x00" + _encode("zstd", _chunks(1, 5)[0]), dtype=np.uint8)
    out = np.empty(CHUNK, dtype=np.uint8)
    with pytest.raises(NvcompRefused, match="aligned"):
        NvcompBackend(nvcomp_double).decode(
            "Zstd", frame, np.array([1]), np.array([frame.size - 1]), out, np.array([0]),
            np.array([CHUNK]),
        )


@pytest.mark.parametrize("drop", [False, True])
def test_device_scatter_matches_cpu_scatter(standin: CudaDevice, drop: bool) -> None:
    """Transposed chunks, steps, a missing chunk and (optionally) a dropped axis, in one
    launch, equal scatter.scatter."""
    from cuzarr.scatter import scatter

    stored = np.arange(3 * 4 * 5, dtype=np.float64).reshape(3, 5, 4)  # chunks stored (5, 4)
    decoded = stored.transpose(0, 2, 1)  # logical (4, 5) chunks
    rows = np.array([0, -1, 2, 1])
    if drop:
        chunk_sels = [(1, slice(0, 5)), (2, slice(0, 5)), (0, slice(4, None, -2)), (3, slice(1, 4))]
        out_sels = [(0, slice(0, 5)), (1, slice(0, 5)), (2, slice(0, 3)), (3, slice(0, 3))]
        shape = (4, 5)
    else:
        chunk_sels = [(slice(0, 4), slice(0, 5)), (slice(0, 2), slice(0, 5)),
                      (slice(3, None, -1), slice(0, 5, 2)), (slice(1, 3), slice(2, 5))]
        out_sels = [(slice(0, 4), slice(0, 5)), (slice(4, 6), slice(0, 5)),
                    (slice(0, 4), slice(5, 8)), (slice(4, 6), slice(5, 8))]
        shape = (6, 8)
    drop_axes = ()
    expected = np.zeros(shape)
    scatter(expected, decoded, rows, chunk_sels, out_sels, drop_axes, -1.0)
    out = np.zeros(shape)
    assert standin.scatter(out, decoded, rows, chunk_sels, out_sels, drop_axes, -1.0)
    np.testing.assert_array_equal(out, expected)


def test_device_scatter_declines_array_selections(standin: CudaDevice) -> None:
    decoded = np.zeros((1, 4, 4))
    out = np.zeros((2, 4))
    sels = [(np.array([0, 2]), slice(0, 4))]
    assert not standin.scatter(out, decoded, np.array([0]), sels, [(slice(0, 2), slice(0, 4))],
                               (), 0.0)


@pytest.mark.parametrize("stored", [">i2", ">f4", ">f8", ">c8", ">c16", ">U3", ">M8[s]"])
def test_byte_order_through_the_kernel(standin: CudaDevice, stored: str) -> None:
    """The bytes codec's byte order on the cuda device (complex numbers swap each half),
    both directions, equal to numpy."""
    from cuzarr.plan.chain import ArrayLayout

    native = np.dtype(stored).newbyteorder("=")
    layout = ArrayLayout(shape=(3, 4), dtype=native, stored_dtype=np.dtype(stored),
                         stored_shape=(3, 4), to_logical=(0, 1))
    rng = np.random.default_rng(0)
    if native.kind == "U":
        values = np.array([["ab", "c", "xyz", ""]] * 6, dtype=native).reshape(2, 3, 4)
    elif native.kind == "M":
        values = rng.integers(0, 10**9, (2, 3, 4)).astype(native)
    else:
        values = (rng.normal(size=(2, 3, 4)) * 100).astype(native)
    slab = standin.slab_from_arrays(layout, values)
    np.testing.assert_array_equal(slab, values.astype(stored).reshape(-1).view(np.uint8))
    np.testing.assert_array_equal(standin.arrays_from_slab(layout, slab.copy(), 2), values)


@settings(max_examples=40, deadline=None)
@given(cname=st.sampled_from(["lz4", "lz4hc", "zstd", "zlib"]),
       shuffle=st.sampled_from([0, 1, 2]), typesize=st.sampled_from([1, 2, 4, 8]),
       nbytes=st.integers(1, 200_000), clevel=st.sampled_from([0, 1, 5]),
       blocksize=st.sampled_from([0, 4096]))
def test_blosc_on_the_device_matches_numcodecs(cname: str, shuffle: int, typesize: int,
                                               nbytes: int, clevel: int,
                                               blocksize: int) -> None:
    """Every stream of every chunk in one nvCOMP call per inner codec, raw streams and
    memcpyed chunks by box_copy, unshuffles by the kernels: equal to c-blosc."""
    from harness import HostLauncher

    from cuzarr.devices.nvcomp_backend import NvcompBackend

    device = CudaDevice(np, NvcompBackend(nvcomp_double), HostLauncher())
    rng = np.random.default_rng(nbytes)
    codec = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=shuffle, typesize=typesize,
                            blocksize=blocksize)
    raws = [np.cumsum(rng.integers(-2, 3, nbytes)).astype(np.uint8).tobytes()
            for _ in range(3)]
    host = ByteBatch.from_buffers([codec.encode(r) for r in raws])
    out = device.decode_stage(BloscStage(codec), device.to_device(host), nbytes, 1)
    assert [out.item(i).tobytes() for i in range(3)] == raws
    assert device.host_fallbacks == {}
