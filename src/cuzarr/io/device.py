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
from cuzarr.io.files import OpenFiles, fd_group
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

    def __init__(self, kvikio: Any, xp: Any, root: str, in_flight: int = 1) -> None:
        """in_flight: tiles that read at once (each holds its files and kvikio's second
        descriptor of each while it reads)."""
        self.kvikio = kvikio
        self.xp = xp
        self.root = root
        self.files_per_read = max(1, fd_group(in_flight) // 2)

    def _read_all(self, jobs: list[tuple[str, str, Any, int, int]]) -> None:
        """(key, path, device view, size, file offset) reads: all issued, then all awaited;
        every read is waited for before any file is closed or an error raised, so no read
        is still writing into the slab when it is given back."""
        opened: dict[str, Any] = {}
        futures = []
        try:
            for key, path, view, size, file_offset in jobs:
                handle = opened.get(path)
                if handle is None:
                    handle = opened[path] = self.kvikio.CuFile(path, "r")
                futures.append((key, size, handle.pread(view, size, file_offset)))
        finally:
            failure: BaseException | None = None
            for key, size, future in futures:
                try:
                    got = int(future.get())
                except Exception as e:  # a read that failed: the others are still waited for
                    failure = failure or e
                    continue
                if got != size and failure is None:
                    failure = ChunkDecodeError(key, "a byte range lies past the end of the file")
            for handle in opened.values():
                handle.close()
        if failure is not None:
            raise failure

    def whole(self, keys: list[str]) -> tuple[DeviceBatch, np.ndarray]:
        """Read each key whole into one device slab; missing keys are reported absent.

        Files are opened by us first (group by group, within the open-file budget: kvikio
        holds a second descriptor of each) and kvikio reads the very file we opened, so a
        chunk rewritten meanwhile is read in one version, at the size we saw."""
        parts = []
        group = self.files_per_read
        for lo in range(0, len(keys), group):
            names = keys[lo : lo + group]
            with OpenFiles(self.root, names, 1) as files:
                idx = np.flatnonzero(files.present)
                item_sizes = files.sizes[idx]
                offsets, total = _layout(item_sizes)
                slab = self.xp.empty(total, dtype=np.uint8)
                self._read_all([
                    (names[i], files.path(i), slab[o : o + s], int(s), 0)
                    for i, o, s in zip(idx.tolist(), offsets.tolist(), item_sizes.tolist(),
                                       strict=True)
                    if s > 0
                ])
                parts.append((slab, offsets, item_sizes, files.present.copy()))
        if len(parts) == 1:
            slab, offsets, item_sizes, present = parts[0]
            return DeviceBatch(slab, offsets, item_sizes), present
        return self._joined(parts)

    def _joined(self, parts: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]
                ) -> tuple[DeviceBatch, np.ndarray]:
        """The groups' device slabs as one (one device copy each); every group starts on a
        GDS-aligned offset, so items keep their alignment, and groups without a file take
        no room."""
        used = [int(p[1][-1] + p[2][-1]) if len(p[2]) else 0 for p in parts]
        room = [-(-u // _GDS_ALIGN) * _GDS_ALIGN for u in used]
        bases = np.cumsum([0, *room]).astype(np.int64)
        slab = self.xp.empty(max(1, int(bases[-1])), dtype=np.uint8)
        for (part, _, _, _), base, size in zip(parts, bases[:-1].tolist(), used, strict=False):
            if size:
                slab[base : base + size] = part[:size]
        offsets = np.concatenate([p[1] + b for p, b in zip(parts, bases[:-1], strict=False)])
        sizes = np.concatenate([p[2] for p in parts])
        present = np.concatenate([p[3] for p in parts])
        return DeviceBatch(slab, offsets, sizes), present

    def ranges(self, keys: list[str], key_index: np.ndarray, starts: np.ndarray,
               sizes: np.ndarray, *, max_gap_bytes: int, max_bytes: int,
               paths: list[str] | None = None) -> DeviceBatch:
        """Range i = keys[key_index[i]][starts[i] : +sizes[i]], coalesced per key. `paths`:
        what to open for each key (the open shard files' /proc paths, so the ranges come
        from the version whose index was read); root/key when None."""
        plan = coalesce(key_index, starts, sizes, max_gap_bytes=max_gap_bytes, max_bytes=max_bytes)
        group_offsets, total = _layout(plan.group_size)
        slab = self.xp.empty(total, dtype=np.uint8)
        where = paths or [os.path.join(self.root, key) for key in keys]
        self._read_all([
            (keys[int(k)], where[int(k)], slab[o : o + s], int(s), int(f))
            for k, o, s, f in zip(plan.group_key, group_offsets.tolist(),
                                  plan.group_size.tolist(), plan.group_start, strict=True)
            if s > 0
        ])
        group = plan.member_group
        member = group_offsets[group] + (plan.member_slab_offset - plan.group_slab_offset[group])
        return DeviceBatch(slab, member, np.asarray(sizes, dtype=np.int64))
