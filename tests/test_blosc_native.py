"""The cpu blosc stage's direct c-blosc decode (cuzarr.codecs.blosc_native) against numcodecs."""

from __future__ import annotations

from typing import Any

import numcodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cuzarr.batch import ByteBatch
from cuzarr.codecs import blosc_native
from cuzarr.codecs.bytes_to_bytes import BloscStage
from cuzarr.workers import StageError


def test_c_blosc_is_found() -> None:
    """numcodecs (a dependency) exports c-blosc's symbols: the fast path is what runs."""
    assert blosc_native.DECOMPRESS is not None


def _chunks(seed: int, sizes: list[int], typesize: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        smooth = np.cumsum(rng.integers(-3, 4, size // typesize + 1)).astype(f"<i{typesize}")
        raw = smooth.view(np.uint8)[:size].copy()
        out.append(raw)
    return out


@settings(max_examples=60, deadline=None)
@given(
    cname=st.sampled_from(numcodecs.blosc.list_compressors()),
    clevel=st.integers(0, 9),
    shuffle=st.sampled_from([0, 1, 2]),
    typesize=st.sampled_from([1, 2, 4, 8]),
    blocksize=st.sampled_from([0, 256, 4096]),
    sizes=st.lists(st.integers(1, 70_000), min_size=1, max_size=12),  # numcodecs: no 0
    seed=st.integers(0, 2**16),
    native=st.booleans(),
)
def test_decode_matches_numcodecs(
    cname: str, clevel: int, shuffle: int, typesize: int, blocksize: int, sizes: list[int],
    seed: int, native: bool,
) -> None:
    """Either path (c-blosc called directly, or numcodecs) decodes what numcodecs does."""
    codec = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=shuffle, blocksize=blocksize,
                            typesize=typesize)
    raws = _chunks(seed, sizes, typesize)
    encoded = [codec.encode(raw) for raw in raws]
    batch = ByteBatch.from_buffers(encoded)
    with pytest.MonkeyPatch.context() as patch:
        if not native:
            patch.setattr(blosc_native, "DECOMPRESS", None)
        out = BloscStage(codec).decode(batch, None, threads=2)
    for i, raw in enumerate(raws):
        assert bytes(out.item(i)) == bytes(numcodecs.Blosc().decode(encoded[i])) == raw.tobytes()


def test_every_item_goes_through_c_blosc(monkeypatch: Any) -> None:
    """The stage calls c-blosc once per item, into that item's row of the output slab."""
    calls: list[int] = []
    real = blosc_native.DECOMPRESS

    def spy(src: int, dst: int, size: int, threads: int) -> int:
        calls.append(size)
        return real(src, dst, size, threads)

    monkeypatch.setattr(blosc_native, "DECOMPRESS", spy)
    codec = numcodecs.Blosc(cname="lz4", shuffle=1, typesize=4)
    raws = _chunks(1, [4000, 40_000, 12], 4)
    out = BloscStage(codec).decode(ByteBatch.from_buffers([codec.encode(r) for r in raws]),
                                   None, threads=2)
    assert sorted(calls) == sorted(r.size for r in raws)
    assert [bytes(out.item(i)) for i in range(3)] == [r.tobytes() for r in raws]


@pytest.mark.parametrize("native", [True, False])
def test_corrupt_block_table_names_the_item(monkeypatch: Any, native: bool) -> None:
    """A block-start table pointing past the chunk fails in c-blosc on either path and is
    reported for its item (index 1), as numcodecs reports it."""
    if not native:
        monkeypatch.setattr(blosc_native, "DECOMPRESS", None)
    codec = numcodecs.Blosc(cname="lz4", shuffle=1, blocksize=256, typesize=4)
    raws = _chunks(2, [8192, 8192, 8192], 4)
    encoded = [bytearray(codec.encode(r)) for r in raws]
    encoded[1][16:20] = (10**6).to_bytes(4, "little")  # first block start far out of range
    with pytest.raises(StageError) as info:
        BloscStage(codec).decode(ByteBatch.from_buffers([bytes(e) for e in encoded]), None, 2)
    assert info.value.index == 1
    assert "blosc" in info.value.reason


@settings(max_examples=60, deadline=None)
@given(
    cname=st.sampled_from(numcodecs.blosc.list_compressors()),
    clevel=st.integers(0, 9),
    shuffle=st.sampled_from([-1, 0, 1, 2]),
    typesize=st.sampled_from([None, 1, 2, 4, 8, 16]),
    blocksize=st.sampled_from([0, 256, 4096]),
    sizes=st.lists(st.integers(1, 70_000), min_size=1, max_size=12),
    seed=st.integers(0, 2**16),
    native=st.booleans(),
)
def test_encode_matches_numcodecs(
    cname: str, clevel: int, shuffle: int, typesize: int | None, blocksize: int,
    sizes: list[int], seed: int, native: bool,
) -> None:
    """Either path stores exactly the bytes numcodecs' encode makes of the same bytes."""
    codec = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=shuffle, blocksize=blocksize,
                            typesize=typesize)
    raws = _chunks(seed, sizes, 8)
    with pytest.MonkeyPatch.context() as patch:
        if not native:
            patch.setattr(blosc_native, "COMPRESS", None)
        out = BloscStage(codec).encode(ByteBatch.from_buffers(raws), threads=2)
    assert [bytes(out.item(i)) for i in range(len(raws))] == [
        bytes(codec.encode(raw)) for raw in raws
    ]


def test_every_item_is_compressed_by_c_blosc(monkeypatch: Any) -> None:
    calls: list[int] = []
    real = blosc_native.COMPRESS

    def spy(*args: Any) -> int:
        calls.append(args[3])
        return real(*args)

    monkeypatch.setattr(blosc_native, "COMPRESS", spy)
    codec = numcodecs.Blosc(cname="zstd", shuffle=2, typesize=4)
    raws = _chunks(3, [4000, 40_000, 12], 4)
    out = BloscStage(codec).encode(ByteBatch.from_buffers(raws), threads=2)
    assert sorted(calls) == sorted(r.size for r in raws)
    assert [bytes(numcodecs.Blosc().decode(out.item(i))) for i in range(3)] == [
        r.tobytes() for r in raws
    ]


def test_a_failed_compression_names_the_item(monkeypatch: Any) -> None:
    real = blosc_native.COMPRESS

    def fail_third(*args: Any) -> int:
        return -1 if args[3] == 333 else real(*args)

    monkeypatch.setattr(blosc_native, "COMPRESS", fail_third)
    raws = _chunks(4, [1000, 2000, 333, 4000], 1)
    with pytest.raises(StageError) as info:
        BloscStage(numcodecs.Blosc()).encode(ByteBatch.from_buffers(raws), threads=1)
    assert info.value.index == 2
    assert "blosc compression: -1" in info.value.reason


def test_an_unknown_compressor_keeps_numcodecs_error() -> None:
    """A cname this c-blosc lacks goes to numcodecs, whose error names it."""
    codec = numcodecs.Blosc(cname="lz4")
    codec.cname, codec._cname_bytes = "snappy", b"snappy"
    with pytest.raises(Exception, match="snappy"):
        BloscStage(codec).encode(ByteBatch.from_buffers([np.zeros(64, np.uint8)]), threads=1)
