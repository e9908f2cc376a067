"""Every kernel in cuda_kernels/, run on the CPU by the host-emulation harness, against its
numpy reference, on random inputs with odd sizes, odd grids and leftover blocks."""

from __future__ import annotations

import zlib

import google_crc32c
import numpy as np
import pytest
from blosc_frames import BIT_SHUFFLE, BYTE_SHUFFLE, raw_frame
from harness import library
from hypothesis import given, settings
from hypothesis import strategies as st

from cuzarr.kernels import reference

SETTINGS = settings(max_examples=60, deadline=None)
grids = st.integers(1, 5)
blocks = st.integers(1, 70)


@SETTINGS
@given(itemsize=st.sampled_from([2, 4, 8, 16]), n_items=st.integers(0, 300), grid=grids,
       block=blocks, seed=st.integers(0, 2**32 - 1))
def test_byteswap(itemsize: int, n_items: int, grid: int, block: int, seed: int) -> None:
    data = np.random.default_rng(seed).integers(0, 256, n_items * itemsize, dtype=np.uint8)
    expected = reference.byteswap(data, itemsize)
    library().host_byteswap(grid, 1, block, 1, data, n_items, itemsize)
    np.testing.assert_array_equal(data, expected)


def test_byteswap_reference_matches_numpy() -> None:
    values = np.arange(100, dtype="<u4") * 0x01020305
    swapped = reference.byteswap(values.view(np.uint8).copy(), 4)
    np.testing.assert_array_equal(swapped.view(">u4"), values)


@SETTINGS
@given(typesize=st.sampled_from([1, 2, 3, 4, 8, 16]), nbytes=st.integers(0, 2000),
       blocksize=st.integers(1, 700), grid_x=grids, grid_y=grids, block=blocks,
       seed=st.integers(0, 2**32 - 1))
def test_byte_shuffle_and_unshuffle(typesize: int, nbytes: int, blocksize: int, grid_x: int,
                                    grid_y: int, block: int, seed: int) -> None:
    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    offsets, lengths = reference.shuffle_blocks(nbytes, blocksize)
    shuffled = np.zeros_like(data)
    library().host_byte_shuffle(grid_x, grid_y, block, 1, data, shuffled, offsets, lengths,
                                len(offsets), typesize)
    np.testing.assert_array_equal(
        shuffled, reference.byte_shuffle(data, offsets, lengths, typesize)
    )
    back = np.zeros_like(data)
    library().host_byte_unshuffle(grid_x, grid_y, block, 1, shuffled, back, offsets, lengths,
                                  len(offsets), typesize)
    np.testing.assert_array_equal(back, data)


@SETTINGS
@given(typesize=st.sampled_from([1, 2, 3, 4, 8, 16]), nbytes=st.integers(0, 6000),
       blocksize=st.integers(1, 2500), version=st.sampled_from([2, 3]), grid_x=grids,
       grid_y=grids, block=st.sampled_from([1, 7, 32, 100, 256, 300]),
       seed=st.integers(0, 2**32 - 1), reverse=st.booleans())
def test_tiled_shuffles(typesize: int, nbytes: int, blocksize: int, version: int, grid_x: int,
                        grid_y: int, block: int, seed: int, reverse: bool) -> None:
    """The coalesced (shared-memory) encode shuffles give the reference's bytes for any
    grid and block size, tiles cut short at the end of a block included, with threads run
    in either order between barriers."""
    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    offsets, lengths = reference.shuffle_blocks(nbytes, blocksize)
    out = np.full_like(data, 0xA5)
    library(reverse).host_byte_shuffle_tiled(grid_x, grid_y, block, 1, data, out, offsets, lengths,
                                      len(offsets), typesize)
    np.testing.assert_array_equal(out, reference.byte_shuffle(data, offsets, lengths, typesize))
    out = np.full_like(data, 0xA5)
    library(reverse).host_bit_shuffle_tiled(grid_x, grid_y, block, 1, data, out, offsets, lengths,
                                     len(offsets), typesize, version)
    np.testing.assert_array_equal(
        out, reference.bit_shuffle(data, offsets, lengths, typesize, version)
    )
    # and the tiled unshuffles (one thread per item of a tile) take it back
    back = np.full_like(data, 0x5A)
    library(reverse).host_bit_unshuffle_tiled(grid_x, grid_y, 256, 1, out, back, offsets,
                                              lengths, len(offsets), typesize, version)
    np.testing.assert_array_equal(back, data)
    shuffled = reference.byte_shuffle(data, offsets, lengths, typesize)
    back = np.full_like(data, 0x5A)
    library(reverse).host_byte_unshuffle_tiled(grid_x, grid_y, 256, 1, shuffled, back, offsets,
                                               lengths, len(offsets), typesize)
    np.testing.assert_array_equal(back, data)


@pytest.mark.parametrize("typesize", [2, 3, 4, 8])
@pytest.mark.parametrize("n_items", [0, 1, 24, 251])
def test_shuffle_reference_matches_numcodecs(typesize: int, n_items: int) -> None:
    """One block of whole items is numcodecs.Shuffle's layout (c-blosc's generic rule;
    blocks with trailing bytes are checked against c-blosc frames with the Blosc issue)."""
    from numcodecs import Shuffle

    nbytes = n_items * typesize
    data = np.random.default_rng(nbytes).integers(0, 256, nbytes, dtype=np.uint8)
    offsets, lengths = reference.shuffle_blocks(nbytes, max(1, nbytes))
    expected = np.frombuffer(Shuffle(elementsize=typesize).encode(data), dtype=np.uint8)
    np.testing.assert_array_equal(reference.byte_shuffle(data, offsets, lengths, typesize),
                                  expected)


@SETTINGS
@given(typesize=st.sampled_from([1, 2, 3, 4, 8, 16]), nbytes=st.integers(0, 2000),
       blocksize=st.integers(1, 700), version=st.sampled_from([2, 3]), grid_x=grids,
       grid_y=grids, block=blocks, seed=st.integers(0, 2**32 - 1))
def test_bit_shuffle_and_unshuffle(typesize: int, nbytes: int, blocksize: int, version: int,
                                   grid_x: int, grid_y: int, block: int, seed: int) -> None:
    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    offsets, lengths = reference.shuffle_blocks(nbytes, blocksize)
    shuffled = np.zeros_like(data)
    library().host_bit_shuffle(grid_x, grid_y, block, 1, data, shuffled, offsets, lengths,
                               len(offsets), typesize, version)
    np.testing.assert_array_equal(
        shuffled, reference.bit_shuffle(data, offsets, lengths, typesize, version)
    )
    back = np.zeros_like(data)
    library().host_bit_unshuffle(grid_x, grid_y, block, 1, shuffled, back, offsets, lengths,
                                 len(offsets), typesize, version)
    np.testing.assert_array_equal(back, data)


@settings(max_examples=80, deadline=None)
@given(shuffle=st.sampled_from([BYTE_SHUFFLE, BIT_SHUFFLE]),
       typesize=st.sampled_from([1, 2, 3, 4, 8, 16]), nbytes=st.integers(1, 3000),
       blocksize=st.integers(1, 1024), seed=st.integers(0, 2**32 - 1))
def test_shuffle_references_match_c_blosc(shuffle: int, typesize: int, nbytes: int,
                                          blocksize: int, seed: int) -> None:
    """c-blosc unshuffles our shuffled blocks back to the data: leftover blocks, trailing
    bytes and (bit shuffle) item counts that are not multiples of 8 included."""
    from numcodecs import Blosc

    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    frame = raw_frame(data, typesize, min(blocksize, nbytes), shuffle)  # c-blosc's clamp
    np.testing.assert_array_equal(np.frombuffer(Blosc().decode(frame), dtype=np.uint8), data)


@SETTINGS
@given(sizes=st.lists(st.integers(0, 3000), min_size=0, max_size=8),
       segment=st.sampled_from([1, 7, 64, 512, 4096]), grid=grids, block=blocks,
       seed=st.integers(0, 2**32 - 1))
def test_crc32c(sizes: list[int], segment: int, grid: int, block: int, seed: int) -> None:
    lengths = np.array(sizes, dtype=np.uint64)
    offsets = np.zeros(len(sizes), dtype=np.uint64)
    if len(sizes) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    data = np.random.default_rng(seed).integers(0, 256, int(lengths.sum()) + 1, dtype=np.uint8)
    seg_off, seg_len, first, count = reference.segment_plan(offsets, lengths, segment)
    seg_crc = np.zeros(max(1, len(seg_off)), dtype=np.uint32)
    lib = library()
    lib.host_crc32c_segments(grid, 1, block, 1, data, seg_off, seg_len, len(seg_off),
                             reference.crc32c_table(), seg_crc)
    out = np.zeros(max(1, len(sizes)), dtype=np.uint32)
    lib.host_crc32c_combine(grid, 1, block, 1, seg_crc, seg_len, first, count, len(sizes), out)
    expected = reference.crc32c(data, offsets, lengths)
    np.testing.assert_array_equal(out[: len(sizes)], expected)


def test_crc32c_reference_is_google_crc32c() -> None:
    data = np.frombuffer(b"123456789", dtype=np.uint8)
    crc = reference.crc32c(data, np.array([0]), np.array([9]))
    assert int(crc[0]) == 0xE3069283 == google_crc32c.value(b"123456789")


@SETTINGS
@given(kind=st.sampled_from(["crc32", "adler32"]),
       sizes=st.lists(st.integers(0, 12_000), min_size=0, max_size=8),
       segment=st.sampled_from([1, 7, 64, 511, 4096, 6000]), grid=grids, block=blocks,
       fill=st.sampled_from(["random", "ff"]), seed=st.integers(0, 2**32 - 1))
def test_zlib_checksums(kind: str, sizes: list[int], segment: int, grid: int, block: int,
                        fill: str, seed: int) -> None:
    """crc32 (gzip trailer) and adler32 (zlib trailer) kernels equal zlib on odd sizes,
    empty buffers, segments longer than Adler-32's 5552-byte reduction run, and all-0xFF
    data (the largest Adler sums)."""
    lengths = np.array(sizes, dtype=np.uint64)
    offsets = np.zeros(len(sizes), dtype=np.uint64)
    if len(sizes) > 1:
        np.cumsum(lengths[:-1], out=offsets[1:])
    total = int(lengths.sum()) + 1
    data = (np.random.default_rng(seed).integers(0, 256, total, dtype=np.uint8)
            if fill == "random" else np.full(total, 0xFF, dtype=np.uint8))
    seg_off, seg_len, first, count = reference.segment_plan(offsets, lengths, segment)
    seg = np.zeros(max(1, len(seg_off)), dtype=np.uint32)
    out = np.zeros(max(1, len(sizes)), dtype=np.uint32)
    lib = library()
    if kind == "crc32":
        lib.host_crc32_segments(grid, 1, block, 1, data, seg_off, seg_len, len(seg_off),
                                reference.crc32_table(), seg)
        lib.host_crc32_combine(grid, 1, block, 1, seg, seg_len, first, count, len(sizes), out)
        expected = reference.crc32(data, offsets, lengths)
    else:
        lib.host_adler32_segments(grid, 1, block, 1, data, seg_off, seg_len, len(seg_off), seg)
        lib.host_adler32_combine(grid, 1, block, 1, seg, seg_len, first, count, len(sizes), out)
        expected = reference.adler32(data, offsets, lengths)
    np.testing.assert_array_equal(out[: len(sizes)], expected)


def test_zlib_checksum_references_are_zlib() -> None:
    data = np.frombuffer(b"123456789", dtype=np.uint8)
    where, size = np.array([0]), np.array([9])
    assert int(reference.crc32(data, where, size)[0]) == 0xCBF43926 == zlib.crc32(b"123456789")
    assert int(reference.adler32(data, where, size)[0]) == 0x091E01DE
    assert int(reference.adler32(data, where, np.array([0]))[0]) == 1
