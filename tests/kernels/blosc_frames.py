"""Hand-made Blosc1 frames whose blocks are stored raw, so c-blosc (numcodecs) only
unshuffles them: an independent check of our shuffle layouts and their edge rules."""

from __future__ import annotations

import struct

import numpy as np

from cuzarr.kernels import reference

BYTE_SHUFFLE, BIT_SHUFFLE = 0x1, 0x4
_DONT_SPLIT, _LZ4 = 0x10, 1 << 5


def raw_frame(data: np.ndarray, typesize: int, blocksize: int, shuffle: int) -> bytes:
    """A format-version-2 frame of `data`: each block shuffled, then stored uncompressed."""
    offsets, lengths = reference.shuffle_blocks(data.size, blocksize)
    shuffle_fn = reference.byte_shuffle if shuffle == BYTE_SHUFFLE else reference.bit_shuffle
    shuffled = shuffle_fn(data, offsets, lengths, typesize)
    blocks = [
        struct.pack("<i", length) + shuffled[off : off + length].tobytes()
        for off, length in zip(offsets.tolist(), lengths.tolist(), strict=True)
    ]
    starts, pos = [], 16 + 4 * len(blocks)
    for block in blocks:
        starts.append(pos)
        pos += len(block)
    flags = shuffle | _DONT_SPLIT | _LZ4
    header = struct.pack("<BBBBiii", 2, 1, flags, typesize, data.size, blocksize, pos)
    return header + struct.pack(f"<{len(blocks)}i", *starts) + b"".join(blocks)
