"""Real blosclz streams from numcodecs (c-blosc 1.21), taken apart by our frame planner,
for the blosclz kernel tests: what each stream must decode to, and frames built around
a single (possibly damaged) stream so c-blosc itself says what it makes of it."""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass

import numpy as np
from numcodecs import Blosc

from cuzarr.batch import ByteBatch
from cuzarr.codecs.blosc_frame import plan_frames
from cuzarr.kernels import reference

KINDS = ("random", "walk", "ints", "constant", "far", "runs")


def make_data(kind: str, nbytes: int, seed: int) -> np.ndarray:
    """Test data: incompressible, a random walk (of bytes, of int32), one value, repeats
    9000-13000 bytes apart (blosclz's far distances, with a low-entropy tail so c-blosc's
    probe compresses it), or short runs of few values."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.integers(0, 256, nbytes, dtype=np.uint8)
    if kind == "walk":
        return np.cumsum(rng.integers(-2, 3, nbytes)).astype(np.uint8)
    if kind == "ints":
        walk = np.cumsum(rng.integers(-2, 3, nbytes // 4 + 1)).astype("<i4")
        return walk.view(np.uint8)[:nbytes].copy()
    if kind == "constant":
        return np.full(nbytes, rng.integers(0, 256), dtype=np.uint8)
    if kind == "far":
        period = int(rng.integers(9000, 13000))
        head = np.resize(rng.integers(0, 256, period, dtype=np.uint8), nbytes - nbytes // 3)
        tail = np.repeat(rng.integers(0, 4, nbytes // 3 // 50 + 1, dtype=np.uint8), 50)
        return np.concatenate([head, tail[: nbytes // 3]])
    return np.repeat(rng.integers(0, 3, nbytes // 3 + 1, dtype=np.uint8),
                     rng.integers(1, 6, nbytes // 3 + 1))[:nbytes].astype(np.uint8)


@dataclass(frozen=True)
class Streams:
    """The compressed streams of one frame: tables for the kernel, and what they decode to."""

    slab: np.ndarray  # the frame
    src_offsets: np.ndarray
    src_sizes: np.ndarray
    dst_offsets: np.ndarray  # into the chunk's pre-unshuffle buffer
    capacity: np.ndarray
    expected: np.ndarray  # the pre-unshuffle buffer: numcodecs' chunk, blocks re-shuffled


def streams(frame: bytes) -> Streams:
    """Plan `frame`; the expected buffer is c-blosc's decoded chunk with each block shuffled
    again by the references (checked against c-blosc in test_kernels_host)."""
    batch = ByteBatch.from_buffers([frame])
    plan = plan_frames(batch.slab, batch.offsets, batch.sizes)
    decoded = np.frombuffer(Blosc().decode(frame), dtype=np.uint8)
    expected = decoded.copy()
    ts = int(plan.typesize[0])
    for b in range(len(plan.block_chunk)):
        at, size = np.array([plan.block_start[b]]), np.array([plan.block_size[b]])
        if plan.block_shuffle[b] == 1:
            expected = reference.byte_shuffle(expected, at, size, ts)
        elif plan.block_shuffle[b] == 2:
            expected = reference.bit_shuffle(expected, at, size, ts, int(plan.version[0]))
    pick = np.flatnonzero(~plan.split_raw)
    return Streams(batch.slab, plan.split_src[pick], plan.split_cbytes[pick],
                   plan.split_dst[pick], plan.split_size[pick], expected)


def single_stream_frame(stream: bytes, neblock: int) -> bytes:
    """A one-block, unshuffled, unsplit blosclz frame around `stream` (c-blosc decodes it,
    or refuses it, exactly by blosclz_decompress's verdict on the stream)."""
    flags = 0x10  # dont_split; codec 0 = blosclz in bits 5-7
    cbytes = 16 + 4 + 4 + len(stream)
    header = struct.pack("<BBBBiii", 2, 1, flags, 1, neblock, neblock, cbytes)
    return header + struct.pack("<ii", 20, len(stream)) + stream


def token_kinds(stream: bytes) -> Counter:
    """The kinds of tokens in a well-formed stream (what a corpus of streams exercises):
    literal, near, far, long (length code 7, extended) and overlapping (distance < length)."""
    kinds: Counter = Counter()
    ip, ctrl = 1, stream[0] & 31
    n = len(stream)
    while True:
        if ctrl < 32:
            kinds["literal"] += 1
            ip += ctrl + 1
        else:
            length, ofs = (ctrl >> 5) + 2, (ctrl & 31) << 8
            if length == 9:
                kinds["long"] += 1
                while stream[ip] == 255:
                    length += 255
                    ip += 1
                length += stream[ip]
                ip += 1
            code = stream[ip]
            ip += 1
            distance = ofs + code + 1
            if code == 255 and ofs == 31 << 8:
                kinds["far"] += 1
                distance = (stream[ip] << 8 | stream[ip + 1]) + 8192
                ip += 2
            else:
                kinds["near"] += 1
            kinds["overlapping"] += distance < length
        if ip >= n:
            return kinds
        ctrl = stream[ip]
        ip += 1
