"""Our Blosc1 frame plan, decoded with host stream decoders and the numpy unshuffles,
equals numcodecs.Blosc byte for byte across codecs, shuffles, item sizes, leftover
blocks, split and unsplit blocks, and memcpyed chunks; corrupt chunks are refused. The
write plan's header fields equal what c-blosc writes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numcodecs import Blosc

from cuzarr.batch import ByteBatch
from cuzarr.codecs.blosc_frame import blosc_params, decode_host, plan_encode, plan_frames
from cuzarr.workers import StageError

SHUFFLES = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE,
            "bitshuffle": Blosc.BITSHUFFLE}


def _data(rng: np.random.Generator, nbytes: int, typesize: int) -> np.ndarray:
    """Compressible but not trivial data."""
    n = max(1, nbytes // typesize)
    values = np.cumsum(rng.integers(-2, 3, n)).astype(f"<i{typesize}" if typesize in (1, 2, 4,
                                                                                     8) else "<i8")
    raw = values.view(np.uint8)
    return np.resize(raw, nbytes)


@settings(max_examples=120, deadline=None)
@given(cname=st.sampled_from(["lz4", "lz4hc", "zstd", "zlib"]),
       shuffle=st.sampled_from(sorted(SHUFFLES)), typesize=st.sampled_from([1, 2, 4, 8, 16]),
       nbytes=st.integers(1, 300_000), blocksize=st.sampled_from([0, 256, 4096, 65536]),
       clevel=st.sampled_from([0, 1, 5, 9]), seed=st.integers(0, 2**32 - 1))
def test_matches_numcodecs(cname: str, shuffle: str, typesize: int, nbytes: int,
                           blocksize: int, clevel: int, seed: int) -> None:
    data = _data(np.random.default_rng(seed), nbytes, typesize)
    codec = Blosc(cname=cname, clevel=clevel, shuffle=SHUFFLES[shuffle], blocksize=blocksize,
                  typesize=typesize)
    frames = [codec.encode(data), codec.encode(data[: nbytes // 2 + 1])]
    batch = ByteBatch.from_buffers(frames)
    out, out_offsets = decode_host(batch.slab, batch.offsets, batch.sizes)
    for i, frame in enumerate(frames):
        expected = np.frombuffer(Blosc().decode(frame), dtype=np.uint8)
        got = out[out_offsets[i] : out_offsets[i] + expected.size]
        np.testing.assert_array_equal(got, expected)


def test_split_blocks_are_seen() -> None:
    """lz4 with item sizes up to 16 and big blocks splits each block into typesize streams."""
    data = _data(np.random.default_rng(0), 1 << 20, 4)
    frame = Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE, typesize=4).encode(data)
    batch = ByteBatch.from_buffers([frame])
    plan = plan_frames(batch.slab, batch.offsets, batch.sizes)
    assert len(plan.split_chunk) == 4 * len(plan.block_chunk)


@pytest.mark.parametrize("damage", ["truncate", "cbytes", "bstart"])
def test_corrupt_chunks_are_refused(damage: str) -> None:
    data = _data(np.random.default_rng(1), 200_000, 4)
    frame = bytearray(Blosc(cname="zstd", clevel=5, shuffle=Blosc.SHUFFLE).encode(data))
    if damage == "truncate":
        frame = frame[:-10]
    elif damage == "cbytes":
        frame[12:16] = (len(frame) + 100).to_bytes(4, "little")
    else:
        frame[16:20] = (len(frame) + 5).to_bytes(4, "little")
    good = Blosc().encode(data[:1000])
    batch = ByteBatch.from_buffers([good, bytes(frame)])
    with pytest.raises(StageError) as info:
        decode_host(batch.slab, batch.offsets, batch.sizes)
    assert info.value.index == 1


_MEMCPYED = 0x2


@settings(max_examples=300, deadline=None)
@given(cname=st.sampled_from(["lz4", "lz4hc", "zstd", "zlib", "blosclz"]),
       clevel=st.integers(0, 9), shuffle=st.sampled_from([-1, 0, 1, 2]),
       typesize=st.sampled_from([None, 1, 2, 3, 4, 8, 16, 17, 300]),
       nbytes=st.one_of(st.integers(0, 300), st.integers(0, 5_000_000)),
       blocksize=st.sampled_from([0, 0, 1, 100, 256, 4096, 65_536, 1 << 20]))
def test_planned_headers_are_c_blosc_s(cname: str, clevel: int, shuffle: int,
                                       typesize: int | None, nbytes: int,
                                       blocksize: int) -> None:
    """The planner's typesize, nbytes, blocksize and flags equal what c-blosc writes
    (the memcpyed bit only where c-blosc's rule forces it: clevel 0, tiny chunks)."""
    codec = Blosc(cname=cname, clevel=clevel, shuffle=shuffle, blocksize=blocksize,
                  typesize=typesize)
    host = bytes(codec.encode(np.zeros(nbytes, dtype=np.uint8)))[:16]
    plan = plan_encode(np.array([nbytes]), *blosc_params(codec))
    ours = plan.headers(plan.memcpyed, np.array([0])).reshape(-1).tobytes()
    assert ours[:2] == host[:2] and ours[3:12] == host[3:12]
    assert ours[2] | _MEMCPYED == host[2] | _MEMCPYED
    assert bool(plan.memcpyed[0]) == (clevel == 0 or nbytes < 128)


@pytest.mark.parametrize(("settings_", "message"), [
    ({"clevel": 12}, "clevel"), ({"shuffle": 5}, "shuffle"), ({"cname": "nope"}, "compressor"),
])
def test_impossible_settings_are_named(settings_: dict, message: str) -> None:
    """numcodecs builds these codecs and fails only inside c-blosc; the planner names them."""
    with pytest.raises(ValueError, match=message):
        blosc_params(Blosc(**settings_))
