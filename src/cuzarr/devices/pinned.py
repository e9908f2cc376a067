"""Page-locked host slabs for the cuda device's io phase, sized to what is asked.

cupy's pinned memory pool rounds every request up to a power of two and never gives
memory back to the system: a slab just over 256 MiB pins 512 MiB, for the life of the
process. This pool rounds to an eighth of the request's power of two (a slab just over
256 MiB pins 288 MiB), reuses freed blocks of the same size class, and keeps at most
`keep_bytes` of them cached; a block beyond that is freed when its last view goes.
The raw allocation is a parameter: `cupy.cuda.PinnedMemory` on a GPU, numpy in CI.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["PinnedPool", "size_class"]

_MIN = 1 << 16


def size_class(nbytes: int) -> int:
    """`nbytes` rounded up to an eighth of its power of two (at least 64 KiB): at most
    12.5% more than asked, and few enough classes that freed blocks are reused."""
    nbytes = max(int(nbytes), _MIN)
    step = max(_MIN, (1 << ((nbytes - 1).bit_length() - 1)) // 8)
    return -(-nbytes // step) * step


class PinnedPool:
    """Pinned uint8 host arrays: `empty(nbytes)`; a block goes back to the pool when the
    array and every view of it are gone."""

    def __init__(self, allocate: Callable[[int], Any], keep_bytes: int = 1 << 30) -> None:
        """allocate(nbytes): a new pinned block exposing the buffer protocol (freed when
        dropped). keep_bytes: the most freed blocks kept for reuse, in bytes."""
        self._allocate = allocate
        self.keep_bytes = keep_bytes
        self._free: dict[int, list[Any]] = {}
        self._lock = threading.Lock()
        #: bytes of freed blocks held for reuse, and of blocks pinned in all (held + in use)
        self.cached_bytes = 0
        self.pinned_bytes = 0

    def empty(self, nbytes: int) -> np.ndarray:
        size = size_class(nbytes)
        with self._lock:
            blocks = self._free.get(size)
            block = blocks.pop() if blocks else None
            if block is not None:
                self.cached_bytes -= size
        if block is None:
            block = self._allocate(size)
            with self._lock:
                self.pinned_bytes += size
        array = np.frombuffer(block, dtype=np.uint8, count=size)[: int(nbytes)]
        weakref.finalize(array.base if array.base is not None else array, self._give_back,
                         block, size)
        return array

    def _give_back(self, block: Any, size: int) -> None:
        with self._lock:
            if self.cached_bytes + size <= self.keep_bytes:
                self._free.setdefault(size, []).append(block)
                self.cached_bytes += size
                return
            self.pinned_bytes -= size  # dropped: the allocator's object frees it


def cupy_pinned(cupy: Any) -> Callable[[int], Any]:
    """Raw pinned blocks from cudaHostAlloc through cupy, outside its pinned pool."""

    def allocate(nbytes: int) -> Any:
        return cupy.cuda.PinnedMemoryPointer(cupy.cuda.PinnedMemory(nbytes), 0)

    return allocate
