"""Blosc1 encode on the stand-in cuda device (numpy for cupy, the nvCOMP double, the
host-emulation launcher): shuffles by our kernels, every split stream in one nvCOMP
call, chunks assembled on the device. numcodecs (c-blosc) must decode every chunk to
the original bytes, and the headers must carry c-blosc's own choices."""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nvcomp_double
from cuzarr.batch import ByteBatch
from cuzarr.codecs.blosc_frame import blosc_params, plan_encode
from cuzarr.codecs.bytes_to_bytes import BloscStage
from cuzarr.devices.cuda import CudaDevice
from cuzarr.devices.nvcomp_backend import MAX_CHUNK

_MEMCPYED = 0x2
_ALGORITHM = {"lz4": "LZ4", "lz4hc": "LZ4", "zstd": "Zstd", "zlib": "Deflate"}


def _device() -> CudaDevice:
    from harness import HostLauncher

    from cuzarr.devices.nvcomp_backend import NvcompBackend

    nvcomp_double.Codec.calls.clear()
    return CudaDevice(np, NvcompBackend(nvcomp_double), HostLauncher())


def _data(kind: str, nbytes: int, typesize: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if kind == "random":  # incompressible: every stream raw, the chunk memcpyed
        return rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    n = -(-nbytes // typesize)
    values = np.cumsum(rng.integers(-2, 3, n)).astype("<i8").view(np.uint8).reshape(n, 8)
    items = np.zeros((n, typesize), dtype=np.uint8)  # little-endian ints of `typesize` bytes
    items[:, : min(typesize, 8)] = values[:, : min(typesize, 8)]
    return items.reshape(-1)[:nbytes].tobytes()


def _check(device: CudaDevice, codec: numcodecs.Blosc, raws: list[bytes]) -> ByteBatch:
    """Encode on the device; every chunk decodes with c-blosc, has c-blosc's header fields
    (bar the memcpyed bit, which depends on the compressor's output) and says its size."""
    out = device.to_host(device.encode_stage(BloscStage(codec), ByteBatch.from_buffers(raws), 1))
    for i, raw in enumerate(raws):
        chunk = bytes(out.item(i))
        assert bytes(numcodecs.Blosc().decode(chunk)) == raw
        host = bytes(codec.encode(np.frombuffer(raw, dtype=np.uint8)))
        assert chunk[:2] == host[:2]
        assert chunk[2] | _MEMCPYED == host[2] | _MEMCPYED
        assert chunk[3:12] == host[3:12]  # typesize, nbytes, blocksize
        assert int.from_bytes(chunk[12:16], "little") == len(chunk) <= len(raw) + 16
        if host[2] & _MEMCPYED and len(raw) < 128:
            assert chunk[2] & _MEMCPYED
    return out


def _on_device(codec: numcodecs.Blosc, raws: list[bytes]) -> bool:
    """Whether every split stream fits nvCOMP's largest chunk (else the host encodes)."""
    params = blosc_params(codec)
    plan = plan_encode(np.array([len(r) for r in raws]), *params)
    limit = MAX_CHUNK[_ALGORITHM[params[0]]]
    return not plan.stream_size.size or int(plan.stream_size.max()) <= limit


@settings(max_examples=150, deadline=None)
@given(cname=st.sampled_from(["lz4", "lz4hc", "zstd", "zlib"]),
       shuffle=st.sampled_from([-1, 0, 1, 2]), typesize=st.sampled_from([1, 2, 3, 4, 8, 16]),
       sizes=st.lists(st.one_of(st.integers(1, 200), st.integers(200, 300_000)), min_size=1,
                      max_size=4),
       clevel=st.sampled_from([0, 1, 5, 9]), blocksize=st.sampled_from([0, 0, 256, 20_000]),
       kind=st.sampled_from(["smooth", "smooth", "random"]), seed=st.integers(0, 2**32 - 1))
def test_device_chunks_decode_with_c_blosc(cname: str, shuffle: int, typesize: int,
                                           sizes: list[int], clevel: int, blocksize: int,
                                           kind: str, seed: int) -> None:
    """Tiny (memcpyed) chunks, leftover blocks, split and unsplit blocks, raw streams and
    incompressible (memcpyed) chunks, across codecs, shuffles and item sizes. (No empty
    chunks: c-blosc cannot decode its own 0-byte chunks, and zarr never writes one.)"""
    device = _device()
    codec = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=shuffle, typesize=typesize,
                            blocksize=blocksize)
    raws = [_data(kind, n, typesize, seed + i) for i, n in enumerate(sizes)]
    _check(device, codec, raws)
    if _on_device(codec, raws):
        assert device.host_fallbacks == {}
        streams = [n for name, n in nvcomp_double.Codec.calls if name.endswith("-encode")]
        assert len(streams) <= 1  # every stream of every chunk in one call
    else:
        assert device.host_fallbacks == {"blosc encode": 1}


@pytest.mark.parametrize("cname", ["lz4", "zstd", "zlib"])
@pytest.mark.parametrize("shuffle", [0, 1, 2])
@pytest.mark.parametrize("typesize", [1, 2, 4, 8])
def test_codec_shuffle_typesize_matrix(cname: str, shuffle: int, typesize: int) -> None:
    """Every codec x shuffle x item size on the device: chunks with a leftover block, a
    tiny memcpyed chunk and an incompressible one; all one nvCOMP call."""
    device = _device()
    codec = numcodecs.Blosc(cname=cname, clevel=5, shuffle=shuffle, typesize=typesize,
                            blocksize=16_384 if cname == "zlib" else 0)
    raws = [_data("smooth", 50_003, typesize, 1), _data("smooth", 100, typesize, 2),
            _data("random", 40_000, typesize, 3), _data("smooth", 16_384 * 3, typesize, 4)]
    out = _check(device, codec, raws)
    assert device.host_fallbacks == {}
    assert [name for name, _ in nvcomp_double.Codec.calls] == [f"{_ALGORITHM[cname]}-encode"]
    flags = [bytes(out.item(i))[2] for i in range(4)]
    assert flags[1] & _MEMCPYED and flags[2] & _MEMCPYED  # tiny, incompressible
    assert not flags[0] & _MEMCPYED and not flags[3] & _MEMCPYED


def test_split_streams_and_leftover_block() -> None:
    """lz4 with 4-byte items splits whole blocks into 4 streams; the leftover block is one
    stream; each stream goes to nvCOMP separately. (c-blosc enlarges a splitting codec's
    blocks by the item size, forced block sizes included: 16 KiB becomes 64 KiB.)"""
    device = _device()
    codec = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1, typesize=4, blocksize=16_384)
    raw = _data("smooth", 3 * 65_536 + 1000, 4, 9)
    plan = plan_encode(np.array([len(raw)]), *blosc_params(codec))
    assert int(plan.blocksize[0]) == 65_536 and len(plan.stream_size) == 3 * 4 + 1
    _check(device, codec, [raw])
    assert nvcomp_double.Codec.calls == [("LZ4-encode", 13)]


def test_device_decoder_reads_device_chunks() -> None:
    """Our own device decode (frame planner, nvCOMP, unshuffle kernels) reads them too."""
    device = _device()
    codec = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=2, typesize=8)
    raws = [_data("smooth", 80_000, 8, k) for k in range(3)]
    encoded = device.encode_stage(BloscStage(codec), ByteBatch.from_buffers(raws), 1)
    back = device.decode_stage(BloscStage(codec), device.to_device(device.to_host(encoded)),
                               80_000, 1)
    assert [bytes(back.item(i)) for i in range(3)] == raws


@pytest.mark.parametrize("cname", ["blosclz"])
def test_blosclz_encodes_on_the_host_counted(cname: str) -> None:
    device = _device()
    codec = numcodecs.Blosc(cname=cname, clevel=5, shuffle=1, typesize=4)
    raws = [_data("smooth", 10_000, 4, 0)]
    out = device.encode_stage(BloscStage(codec), ByteBatch.from_buffers(raws), 1)
    assert bytes(numcodecs.Blosc().decode(bytes(out.item(0)))) == raws[0]
    assert device.host_fallbacks == {"blosc encode": 1}
