"""LocalStore reads straight into device memory with kvikio (GPUDirect Storage where the
system has it, kvikio's compat mode otherwise).

Whole chunks and coalesced shard ranges land in one device slab per tile, every file
read issued before any is awaited. Items start at `align`-byte offsets: 4096 (GDS's
unit) for items of 1 MiB and more, 16 (enough for nvCOMP) below, so small chunks do not
double their footprint. kvikio is a parameter (the module): in CI a double reads with
os.pread into numpy slabs.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cuzarr.batch import aligned_layout
from cuzarr.devices.cuda import DeviceBatch
from cuzarr.errors import ChunkDecodeError
from cuzarr.plan.coalesce import coalesce

__all__ = ["KvikioReader"]

_GDS_ALIGN, _SMALL_ALIGN, _GDS_MIN = 4096, 16, 1 << 20


def _layout(sizes: np.ndarray) -> tuple[np.ndarray, int]:
    """Aligned slab offsets for items of `sizes` (GDS's unit for MiB-sized items), and
    the slab's size."""
    align = _GDS_ALIGN if sizes.size and int(sizes.max()) >= _GDS_MIN else _SMALL_ALIGN
    return aligned_layout(sizes, align)


class KvikioReader:
    """Reads of one LocalStore into device slabs."""

    def __init__(self, kvikio: Any, xp: Any, root: str) -> None:
        self.kvikio = kvikio
        self.xp = xp
        self.root = root

    def _read_all(self, jobs: list[tuple[str, Any, int, int]]) -> None:
        """(key, device view, size, file offset) reads: all issued, then all awaited."""
        files: dict[str, Any] = {}
        try:
            futures = []
            for key, view, size, file_offset in jobs:
                handle = files.get(key)
                if handle is None:
                    handle = files[key] = self.kvikio.CuFile(os.path.join(self.root, key), "r")
                futures.append((key, size, handle.pread(view, size, file_offset)))
            for key, size, future in futures:
                if int(future.get()) != size:
                    raise ChunkDecodeError(key, "a byte range lies past the end of the file")
        finally:
            for handle in files.values():
                handle.close()

    def whole(self, keys: list[str]) -> tuple[DeviceBatch, np.ndarray]:
        """Read each key whole into one device slab; missing keys are reported absent."""
        sizes = np.full(len(keys), -1, dtype=np.int64)
        for i, key in enumerate(keys):
            try:
                sizes[i] = os.stat(os.path.join(self.root, key)).st_size
            except (FileNotFoundError, NotADirectoryError):
                continue
        present = sizes >= 0
        idx = np.flatnonzero(present)
        item_sizes = sizes[idx]
        offsets, total = _layout(item_sizes)
        slab = self.xp.empty(total, dtype=np.uint8)
        self._read_all([
            (keys[i], slab[o : o + s], int(s), 0)
            for i, o, s in zip(idx.tolist(), offsets.tolist(), item_sizes.tolist(), strict=True)
            if s > 0
        ])
        return DeviceBatch(slab, offsets, item_sizes), present

    def ranges(self, keys: list[str], key_index: np.ndarray, starts: np.ndarray,
               sizes: np.ndarray, *, max_gap_bytes: int, max_bytes: int) -> DeviceBatch:
        """Range i = keys[key_index[i]][starts[i] : +sizes[i]], coalesced per key."""
        plan = coalesce(key_index, starts, sizes, max_gap_bytes=max_gap_bytes, max_bytes=max_bytes)
        group_offsets, total = _layout(plan.group_size)
        slab = self.xp.empty(total, dtype=np.uint8)
        self._read_all([
            (keys[int(k)], slab[o : o + s], int(s), int(f))
            for k, o, s, f in zip(plan.group_key, group_offsets.tolist(),
                                  plan.group_size.tolist(), plan.group_start, strict=True)
        ])
        group = _group_of(plan)
        member = group_offsets[group] + (plan.member_slab_offset - plan.group_slab_offset[group])
        return DeviceBatch(slab, member, np.asarray(sizes, dtype=np.int64))


def _group_of(plan: Any) -> np.ndarray:
    """Which coalesced group each requested range belongs to."""
    return np.searchsorted(plan.group_slab_offset, plan.member_slab_offset, side="right") - 1
