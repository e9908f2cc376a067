"""numpy references for every kernel in cuda_kernels/, and the launch tables they take.

Tests compare each kernel (run on the CPU by the host-emulation harness, or on a GPU)
with these; the cpu device may use them directly.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import google_crc32c
import numpy as np

__all__ = [
    "BLOSCLZ_BAD_DISTANCE",
    "BLOSCLZ_OVERFLOW",
    "BLOSCLZ_TRUNCATED",
    "BoxTasks",
    "adler32",
    "bit_shuffle",
    "bit_unshuffle",
    "blosclz_decompress",
    "byte_shuffle",
    "byte_unshuffle",
    "box_copy",
    "box_tasks",
    "byte_ranges",
    "byteswap",
    "crc32",
    "crc32_table",
    "crc32c",
    "crc32c_table",
    "segment_plan",
    "shuffle_blocks",
]

CRC32C_POLY = 0x82F63B78
CRC32_POLY = 0xEDB88320


def byteswap(data: np.ndarray, itemsize: int) -> np.ndarray:
    """Reverse the bytes of every `itemsize`-byte item of a flat uint8 buffer."""
    if data.size % itemsize:
        raise ValueError(f"{data.size} bytes is not a whole number of {itemsize}-byte items")
    return data.reshape(-1, itemsize)[:, ::-1].reshape(-1).copy()


def shuffle_blocks(nbytes: int, blocksize: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and lengths of the blosc blocks of an `nbytes` chunk (the last may be short)."""
    offsets = np.arange(0, nbytes, blocksize, dtype=np.uint64)
    lengths = np.minimum(np.uint64(blocksize), np.uint64(nbytes) - offsets)
    return offsets, lengths


def _shuffle_one(block: np.ndarray, typesize: int, inverse: bool) -> np.ndarray:
    quot = block.size // typesize
    body = quot * typesize
    out = block.copy()
    if inverse:
        out[:body] = block[:body].reshape(typesize, quot).T.reshape(-1)
    else:
        out[:body] = block[:body].reshape(quot, typesize).T.reshape(-1)
    return out


def _per_block(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, typesize: int,
               inverse: bool) -> np.ndarray:
    out = data.copy()
    for off, length in zip(offsets.tolist(), lengths.tolist(), strict=True):
        out[off : off + length] = _shuffle_one(data[off : off + length], typesize, inverse)
    return out


def byte_shuffle(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                 typesize: int) -> np.ndarray:
    """Blosc's byte shuffle of each block (c-blosc shuffle_generic)."""
    return _per_block(data, offsets, lengths, typesize, inverse=False)


def byte_unshuffle(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                   typesize: int) -> np.ndarray:
    """Blosc's byte unshuffle of each block (c-blosc unshuffle_generic)."""
    return _per_block(data, offsets, lengths, typesize, inverse=True)


def _bit_rows(n_items: int, version: int) -> int:
    """How many items of a block are bit-shuffled: c-blosc frames of format version 2
    (what c-blosc 1.x writes) bit-shuffle a block only when its item count is a multiple
    of 8 (else the block is stored as is); later versions bit-shuffle the largest
    multiple of 8 and copy the leftover items."""
    if version <= 2:
        return n_items if n_items % 8 == 0 else 0
    return n_items - n_items % 8


def _bit_shuffle_one(block: np.ndarray, typesize: int, version: int, inverse: bool) -> np.ndarray:
    n = _bit_rows(block.size // typesize, version)
    out = block.copy()
    if n == 0:
        return out
    body = block[: n * typesize]
    if inverse:
        rows = np.unpackbits(body.reshape(typesize * 8, n // 8), axis=1, bitorder="little")
        bits = rows.reshape(typesize, 8, n).transpose(2, 0, 1)  # [item, byte, bit]
        out[: n * typesize] = np.packbits(bits.reshape(n, typesize * 8), axis=1,
                                          bitorder="little").reshape(-1)
    else:
        bits = np.unpackbits(body.reshape(n, typesize), axis=1, bitorder="little")
        rows = bits.reshape(n, typesize, 8).transpose(1, 2, 0)  # [byte, bit, item]
        out[: n * typesize] = np.packbits(rows.reshape(typesize * 8, n), axis=1,
                                          bitorder="little").reshape(-1)
    return out


def bit_shuffle(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, typesize: int,
                version: int = 2) -> np.ndarray:
    """Blosc's bit shuffle of each block: bit k of byte j of item e goes to bit (e % 8) of
    byte e // 8 of bit-row j * 8 + k (bitshuffle's trans_bit_elem)."""
    out = data.copy()
    for off, length in zip(offsets.tolist(), lengths.tolist(), strict=True):
        out[off : off + length] = _bit_shuffle_one(data[off : off + length], typesize, version,
                                                   inverse=False)
    return out


def bit_unshuffle(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, typesize: int,
                  version: int = 2) -> np.ndarray:
    """The inverse of `bit_shuffle`."""
    out = data.copy()
    for off, length in zip(offsets.tolist(), lengths.tolist(), strict=True):
        out[off : off + length] = _bit_shuffle_one(data[off : off + length], typesize, version,
                                                   inverse=True)
    return out


@cache
def crc_table(poly: int) -> np.ndarray:
    """The 256-entry byte table of a reflected CRC-32 polynomial (uint32)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(poly), table >> 1)
    return table.astype(np.uint32)


def crc32c_table() -> np.ndarray:
    """The byte table of CRC32C (Castagnoli), for crc32c_segments."""
    return crc_table(CRC32C_POLY)


def crc32_table() -> np.ndarray:
    """The byte table of zlib's CRC-32, for crc32_segments."""
    return crc_table(CRC32_POLY)


def _per_buffer(fn: Any, data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray
                ) -> np.ndarray:
    return np.array([fn(data[o : o + n]) for o, n in zip(np.asarray(offsets).tolist(),
                                                         np.asarray(lengths).tolist(),
                                                         strict=True)], dtype=np.uint32)


def crc32(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """zlib's CRC-32 of each buffer data[offsets[i] : offsets[i] + lengths[i]]."""
    return _per_buffer(zlib.crc32, data, offsets, lengths)


def adler32(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """zlib's Adler-32 of each buffer data[offsets[i] : offsets[i] + lengths[i]]."""
    return _per_buffer(zlib.adler32, data, offsets, lengths)


def crc32c(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC32C of each buffer data[offsets[i] : offsets[i] + lengths[i]] (google-crc32c)."""
    return _per_buffer(google_crc32c.value, data, offsets, lengths)


def segment_plan(
    offsets: np.ndarray, lengths: np.ndarray, segment: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut each buffer into `segment`-byte pieces (the last one shorter) for the checksum
    kernels' *_segments launches (crc32.cu, adler32.cu).

    Returns (seg_offsets, seg_lengths, first_segment per buffer, n_segments per buffer).
    """
    lengths = np.asarray(lengths, dtype=np.uint64)
    offsets = np.asarray(offsets, dtype=np.uint64)
    counts = (lengths + np.uint64(segment - 1)) // np.uint64(segment)
    first = np.zeros(len(lengths), dtype=np.uint64)
    if len(lengths) > 1:
        np.cumsum(counts[:-1], out=first[1:])
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(lengths)), counts.astype(np.int64))
    within = np.arange(total, dtype=np.uint64) - first[owner]
    seg_offsets = offsets[owner] + within * np.uint64(segment)
    seg_lengths = np.minimum(np.uint64(segment), lengths[owner] - within * np.uint64(segment))
    return seg_offsets, seg_lengths.astype(np.uint64), first, counts.astype(np.uint64)


@dataclass(frozen=True)
class BoxTasks:
    """The tables of one box_copy launch (byte offsets and strides, signed)."""

    src: np.ndarray  # int64 per task; < 0 means "write the fill item"
    dst: np.ndarray  # int64 per task
    extents: np.ndarray  # int64 (n_tasks, ndim)
    src_strides: np.ndarray  # int64 (n_tasks, ndim)
    dst_strides: np.ndarray  # int64 (n_tasks, ndim)

    @property
    def ndim(self) -> int:
        return int(self.extents.shape[1])


def address(array: Any) -> int:
    """The data address of a numpy or cupy array."""
    interface = getattr(array, "__cuda_array_interface__", None) or array.__array_interface__
    return int(interface["data"][0])


def box_tasks(src_base: Any, dst_base: Any, pairs: list[tuple[Any, Any]]) -> BoxTasks:
    """Tables for copying each (source view, destination view) pair of equal shape.

    Views are numpy (or cupy) arrays into the src_base / dst_base buffers; a source of
    None means fill. Views of any strides work: slices with steps, transposes, dropped
    axes (give both the same shape). All pairs must have the same number of dimensions.
    """
    src_addr, dst_addr = address(src_base), address(dst_base)
    n = len(pairs)
    ndim = pairs[0][1].ndim if n else 0
    tables = BoxTasks(
        np.empty(n, np.int64), np.empty(n, np.int64), np.empty((n, ndim), np.int64),
        np.zeros((n, ndim), np.int64), np.empty((n, ndim), np.int64),
    )
    for t, (src_view, dst_view) in enumerate(pairs):
        if src_view is not None and src_view.shape != dst_view.shape:
            raise ValueError(f"box {t}: shapes differ, {src_view.shape} vs {dst_view.shape}")
        tables.extents[t] = dst_view.shape
        tables.dst[t] = address(dst_view) - dst_addr
        tables.dst_strides[t] = dst_view.strides
        if src_view is None:
            tables.src[t] = -1
        else:
            tables.src[t] = address(src_view) - src_addr
            tables.src_strides[t] = src_view.strides
    return tables


def byte_ranges(src_at: np.ndarray, dst_at: np.ndarray, sizes: np.ndarray) -> BoxTasks:
    """Tables for 1-D byte copies src[src_at[i] : +sizes[i]] -> dst[dst_at[i] :], built
    without a Python object per range (empty ranges are dropped)."""
    keep = np.flatnonzero(np.asarray(sizes) > 0)
    n = keep.size
    return BoxTasks(
        np.asarray(src_at, dtype=np.int64)[keep], np.asarray(dst_at, dtype=np.int64)[keep],
        np.asarray(sizes, dtype=np.int64)[keep].reshape(n, 1), np.ones((n, 1), np.int64),
        np.ones((n, 1), np.int64),
    )


def box_copy(src: np.ndarray, dst: np.ndarray, tasks: BoxTasks, itemsize: int,
             fill: np.ndarray) -> None:
    """numpy reference of the box_copy kernel: src and dst are flat uint8 buffers."""
    item = np.dtype(f"V{itemsize}")
    for t in range(len(tasks.dst)):
        shape = tuple(int(e) for e in tasks.extents[t])
        target = np.ndarray(shape, dtype=item, buffer=dst, offset=int(tasks.dst[t]),
                            strides=tuple(int(x) for x in tasks.dst_strides[t]))
        if tasks.src[t] < 0:  # read from the fill buffer, through the task's strides
            target[...] = np.ndarray(shape, dtype=item, buffer=fill,
                                     strides=tuple(int(x) for x in tasks.src_strides[t]))
        else:
            target[...] = np.ndarray(shape, dtype=item, buffer=src, offset=int(tasks.src[t]),
                                     strides=tuple(int(x) for x in tasks.src_strides[t]))


#: blosclz_decompress status codes (a stream that c-blosc would refuse), as in blosclz.cu
BLOSCLZ_TRUNCATED, BLOSCLZ_OVERFLOW, BLOSCLZ_BAD_DISTANCE = -1, -2, -3
_BLOSCLZ_MAX_DISTANCE = 8191


def _blosclz_one(data: bytes, cap: int) -> tuple[int, bytearray]:
    """One stream, rule for rule as c-blosc 1.21's blosclz_decompress (see blosclz.cu):
    (decoded size or error code, the bytes written before it stopped)."""
    n = len(data)
    out = bytearray()
    if n == 0:
        return 0, out
    ip, ctrl = 1, data[0] & 31
    while True:
        if ctrl >= 32:
            length, ofs = (ctrl >> 5) - 1, (ctrl & 31) << 8
            if length == 6:
                while True:
                    if ip + 1 >= n:
                        return BLOSCLZ_TRUNCATED, out
                    code = data[ip]
                    ip += 1
                    length += code
                    if length > cap:
                        return BLOSCLZ_OVERFLOW, out
                    if code != 255:
                        break
            elif ip + 1 >= n:
                return BLOSCLZ_TRUNCATED, out
            code = data[ip]
            ip += 1
            length += 3
            distance = ofs + code + 1
            if code == 255 and ofs == 31 << 8:
                if ip + 1 >= n:
                    return BLOSCLZ_TRUNCATED, out
                distance = (data[ip] << 8 | data[ip + 1]) + _BLOSCLZ_MAX_DISTANCE + 1
                ip += 2
            op = len(out)
            if op + length > cap:
                return BLOSCLZ_OVERFLOW, out
            if distance > op:
                return BLOSCLZ_BAD_DISTANCE, out
            if ip >= n:
                return op, out  # c-blosc drops a match that ends the stream
            ctrl = data[ip]
            ip += 1
            piece = out[op - distance : op - distance + length]
            out += (piece * (length // distance + 1))[:length]
        else:
            length = ctrl + 1
            if len(out) + length > cap:
                return BLOSCLZ_OVERFLOW, out
            if ip + length > n:
                return BLOSCLZ_TRUNCATED, out
            out += data[ip : ip + length]
            ip += length
            if ip >= n:
                return len(out), out
            ctrl = data[ip]
            ip += 1


def blosclz_decompress(src: np.ndarray, dst: np.ndarray, src_offsets: np.ndarray,
                       src_sizes: np.ndarray, dst_offsets: np.ndarray,
                       dst_capacity: np.ndarray) -> np.ndarray:
    """Reference of the blosclz_decompress kernel: decodes stream i,
    src[src_offsets[i] : +src_sizes[i]], into dst[dst_offsets[i] :] (at most dst_capacity[i]
    bytes; what a failing stream wrote before it failed stays, as on the device) and
    returns int64 statuses: decoded sizes, or BLOSCLZ_* error codes."""
    status = np.zeros(len(src_sizes), dtype=np.int64)
    for s, (a, n, b, cap) in enumerate(zip(src_offsets.tolist(), src_sizes.tolist(),
                                           dst_offsets.tolist(), dst_capacity.tolist(),
                                           strict=True)):
        status[s], written = _blosclz_one(src[a : a + n].tobytes(), cap)
        dst[b : b + len(written)] = np.frombuffer(bytes(written), dtype=np.uint8)
    return status
