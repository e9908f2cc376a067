"""ByteBatch: many variable-length byte strings in one slab, described by numpy arrays.

Every phase passes bytes around in this form: the io phase fills a slab, each
decode stage turns one ByteBatch into the next. Carving a slot is a slice of the
slab; no Python object per chunk lives between phases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ByteBatch", "aligned_layout", "join_bytes"]


@dataclass(frozen=True)
class ByteBatch:
    """`slab[offsets[i] : offsets[i] + sizes[i]]` is item i.

    An encode stage's host output may instead keep its items as separate buffers
    (`parts`, slab None): they go to the store one by one anyway, so packing them
    would only add a copy. `packed()` makes the slab when a stage needs one.
    """

    slab: Any  # 1-D uint8 array of the device's array module (None when `parts` holds items)
    offsets: np.ndarray  # int64
    sizes: np.ndarray  # int64
    parts: tuple[Any, ...] | None = None

    def __len__(self) -> int:
        return len(self.sizes)

    def item(self, i: int) -> Any:
        if self.parts is not None:
            return self.parts[i]
        start = int(self.offsets[i])
        return self.slab[start : start + int(self.sizes[i])]

    def packed(self) -> ByteBatch:
        """This batch with its items in one slab."""
        if self.parts is None:
            return self
        return ByteBatch.from_buffers(self.parts)

    @classmethod
    def empty(cls, xp: Any = np) -> ByteBatch:
        zero = np.zeros(0, dtype=np.int64)
        return cls(xp.zeros(0, dtype=np.uint8), zero, zero)

    @classmethod
    def from_buffers(cls, buffers: Sequence[Any], *, pack: bool = True,
                     alloc: Callable[[int], np.ndarray] | None = None) -> ByteBatch:
        """Host buffers (bytes, memoryviews, uint8 arrays) as a batch, packed into one slab
        unless `pack` is False; `alloc(nbytes)` makes the slab (pinned memory, say)."""
        sizes = np.fromiter((len(b) for b in buffers), dtype=np.int64, count=len(buffers))
        offsets = np.zeros(len(buffers), dtype=np.int64)
        if len(buffers) > 1:
            np.cumsum(sizes[:-1], out=offsets[1:])
        if not buffers:
            return cls.empty()
        if not pack:
            return cls(None, offsets, sizes, tuple(buffers))
        if alloc is None:
            slab = np.concatenate([np.frombuffer(b, dtype=np.uint8) for b in buffers])
            return cls(slab, offsets, sizes)
        slab = alloc(int(sizes.sum()))
        for b, start, size in zip(buffers, offsets.tolist(), sizes.tolist(), strict=True):
            slab[start : start + size] = np.frombuffer(b, dtype=np.uint8)
        return cls(slab, offsets, sizes)

    @classmethod
    def fixed(cls, slab: Any, count: int, itemsize: int) -> ByteBatch:
        """A batch of `count` equal-sized items laid end to end (a decoded slab)."""
        offsets = np.arange(count, dtype=np.int64) * itemsize
        return cls(slab, offsets, np.full(count, itemsize, dtype=np.int64))

    def take(self, index: np.ndarray) -> ByteBatch:
        """The items at `index`, sharing the slab."""
        return ByteBatch(self.slab, self.offsets[index], self.sizes[index])

    def is_fixed(self, itemsize: int) -> bool:
        """True when the items tile the slab as rows of `itemsize` bytes, in order."""
        n = len(self.sizes)
        return bool(
            np.all(self.sizes == itemsize)
            and np.array_equal(self.offsets, np.arange(n, dtype=np.int64) * itemsize)
            and self.slab.size >= n * itemsize
        )


def aligned_layout(sizes: np.ndarray, align: int) -> tuple[np.ndarray, int]:
    """Offsets that lay items of `sizes` end to end, each starting on an `align`-byte
    boundary, and the slab size they need (at least 1, so a slab can always be made)."""
    padded = -(-np.asarray(sizes, dtype=np.int64) // align) * align
    offsets = np.zeros(len(padded), dtype=np.int64)
    if len(padded) > 1:
        np.cumsum(padded[:-1], out=offsets[1:])
    return offsets, max(1, int(padded.sum()))


def join_bytes(parts: Sequence[Any]) -> np.ndarray:
    """Byte-likes (bytes, contiguous uint8 arrays) as one uint8 array, in one copy."""
    return np.concatenate([np.frombuffer(p, dtype=np.uint8) for p in parts])
