"""Host-side checks of compressed frames before they go to nvCOMP.

nvCOMP's behaviour on corrupt zstd/deflate input is undefined, so every frame is
checked on the host first (vectorized over the batch, from each item's first and last
bytes): magic numbers, header fields, and the decoded size the frame declares.
Each check raises StageError(i) for the first bad item.
"""

from __future__ import annotations

import numpy as np

from cuzarr.workers import StageError

__all__ = ["check_gzip", "check_zlib", "check_zstd", "zstd_content_sizes"]

_ZSTD_MAGIC = np.array([0x28, 0xB5, 0x2F, 0xFD], dtype=np.uint8)


def _first(heads: np.ndarray, mask: np.ndarray, reason: str) -> None:
    bad = np.flatnonzero(mask)
    if bad.size:
        raise StageError(int(bad[0]), reason)


def zstd_content_sizes(heads: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The frame content size each zstd frame declares (-1 where it declares none).

    heads: (n, 18) first bytes of each item (zero-padded past an item's end).
    """
    _first(heads, sizes < 6, "zstd: frame shorter than its header")
    _first(heads, ~np.all(heads[:, :4] == _ZSTD_MAGIC, axis=1), "zstd: bad frame magic")
    fhd = heads[:, 4].astype(np.int64)
    fcs_flag, single = fhd >> 6, (fhd >> 5) & 1
    _first(heads, (fhd >> 3) & 1 == 1, "zstd: reserved header bit set")
    did_bytes = np.array([0, 1, 2, 4])[fhd & 3]
    fcs_bytes = np.where(fcs_flag == 0, single, np.array([0, 2, 4, 8])[fcs_flag])
    start = 5 + (1 - single) + did_bytes
    _first(heads, start + fcs_bytes > sizes, "zstd: truncated frame header")
    content = np.full(len(heads), -1, dtype=np.int64)
    for width in (1, 2, 4, 8):
        rows = np.flatnonzero(fcs_bytes == width)
        if rows.size == 0:
            continue
        cols = start[rows, None] + np.arange(width)[None, :]
        raw = heads[rows[:, None], cols].astype(np.uint64)
        value = (raw << (np.arange(width, dtype=np.uint64) * np.uint64(8))).sum(axis=1)
        content[rows] = value.astype(np.int64) + (256 if width == 2 else 0)
    return content


def check_zstd(heads: np.ndarray, sizes: np.ndarray, expected: int | None) -> np.ndarray:
    """Validate zstd frames; returns each frame's declared size (or -1)."""
    content = zstd_content_sizes(heads, sizes)
    if expected is not None:
        _first(heads, (content >= 0) & (content != expected),
               f"zstd: frame declares a size other than the chunk's {expected} bytes")
    return content


def check_gzip(heads: np.ndarray, tails: np.ndarray, sizes: np.ndarray,
               expected: int | None) -> None:
    """gzip members: magic, deflate method, and ISIZE (decoded size mod 2**32)."""
    _first(heads, sizes < 18, "gzip: member shorter than its header and trailer")
    _first(heads, (heads[:, 0] != 0x1F) | (heads[:, 1] != 0x8B) | (heads[:, 2] != 8),
           "gzip: bad magic or compression method")
    if expected is not None:
        isize = tails[:, -4:].astype(np.uint64) @ (np.uint64(1) << np.arange(0, 32, 8,
                                                                             dtype=np.uint64))
        _first(heads, isize != np.uint64(expected % (1 << 32)),
               f"gzip: trailer declares a size other than the chunk's {expected} bytes")


def check_zlib(heads: np.ndarray, sizes: np.ndarray) -> None:
    """zlib streams: header check bits, deflate method, no preset dictionary."""
    _first(heads, sizes < 6, "zlib: stream shorter than its header and trailer")
    cmf, flg = heads[:, 0].astype(np.int64), heads[:, 1].astype(np.int64)
    _first(heads, (cmf & 0x0F) != 8, "zlib: compression method is not deflate")
    _first(heads, ((cmf << 8) | flg) % 31 != 0, "zlib: header check bits are wrong")
    _first(heads, (flg & 0x20) != 0, "zlib: preset dictionaries are not supported")
