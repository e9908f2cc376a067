"""LocalStore reads into device memory: big items with kvikio (GPUDirect Storage where the
system has it, kvikio's POSIX compat mode otherwise), small ones through the host.

Whole chunks and coalesced shard ranges land in one device slab per tile. Items of
`small_bytes` or more are read by kvikio straight into the slab, every read issued
before any is awaited, each at a 4096-byte aligned device address (GDS's unit; the slab
is aligned by address, not by offset, since pool blocks are only 512-byte granular).
Smaller items are read with pread into one pinned host slab and go over in one upload:
kvikio would read each through a bounce buffer with a synchronization of its own.

Every range is checked against the size of the open file before anything is issued:
kvikio's POSIX path raises at end of file instead of returning a short count, and reads
under its `gds_threshold` run synchronously inside `pread`. kvikio is a parameter (the
module); in CI a double held to kvikio's real API reads with os.pread into numpy slabs.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cuzarr.batch import aligned_layout
from cuzarr.devices.cuda import DeviceBatch
from cuzarr.errors import ChunkDecodeError
from cuzarr.io.files import OpenFiles, _pread_into, fd_group
from cuzarr.plan.coalesce import coalesce

__all__ = ["KvikioReader", "device_address", "size_kvikio_pool"]

_GDS_ALIGN, _SMALL_ALIGN = 4096, 16
#: items below this go through the host (one pinned upload), the rest through kvikio
SMALL_BYTES = 1 << 20


def device_address(array: Any) -> int:
    """The address of an array's first byte (cupy, the strict stand-in, or numpy)."""
    interface = getattr(array, "__cuda_array_interface__", None)
    if interface is None:
        interface = array.__array_interface__
    return int(interface["data"][0])


def _aligned_empty(xp: Any, nbytes: int, align: int) -> Any:
    """A uint8 device buffer of `nbytes` whose first byte is at an `align`-byte address."""
    raw = xp.empty(nbytes + align, dtype=np.uint8)
    skip = (-device_address(raw)) % align
    return raw[skip : skip + nbytes]


def size_kvikio_pool(kvikio: Any, threads: int) -> int:
    """Make kvikio's thread pool at least `threads` wide (its default is 1: every read
    would run one at a time); returns the width. A wider setting of the user's stays."""
    defaults = kvikio.defaults
    current = int(defaults.get("num_threads"))
    if current < threads:
        defaults.set("num_threads", threads)
        return threads
    return current


class KvikioReader:
    """Reads of one LocalStore into device slabs, for the cuda device `device` (its `xp`,
    pinned `host_empty` and `upload_into`)."""

    def __init__(self, kvikio: Any, device: Any, root: str, in_flight: int = 1,
                 small_bytes: int | None = None) -> None:
        """in_flight: tiles that read at once (each holds its files and kvikio's second
        descriptor of each while it reads). small_bytes: items below it go through the
        host (SMALL_BYTES when None)."""
        self.kvikio = kvikio
        self.device = device
        self.xp = device.xp
        self.root = root
        self.small_bytes = SMALL_BYTES if small_bytes is None else small_bytes
        self.files_per_read = max(1, fd_group(in_flight) // 2)

    # -- reading into one slab ---------------------------------------------------------------

    def _fill(self, slab: Any, jobs: list[tuple[str, int, str, int, int, int]]) -> None:
        """(key, fd, path, slab offset, size, file offset) reads into `slab`: small ones
        into one pinned host slab and one upload, big ones by kvikio. Ranges were checked
        against the files' sizes by the caller."""
        small = [j for j in jobs if j[4] < self.small_bytes]
        big = [j for j in jobs if j[4] >= self.small_bytes]
        if small:
            self._through_host(slab, small)
        if big:
            self._read_all([(key, path, slab[at : at + size], size, offset)
                            for key, _, path, at, size, offset in big])

    def _through_host(self, slab: Any, jobs: list[tuple[str, int, str, int, int, int]]
                      ) -> None:
        """Small reads: pread into one pinned host slab laid out as the device span they
        cover, then one upload of that span."""
        lo = min(j[3] for j in jobs)
        hi = max(j[3] + j[4] for j in jobs)
        host = self.device.host_empty(hi - lo)
        view = memoryview(host)
        for key, fd, _, at, size, offset in jobs:
            if _pread_into(fd, view[at - lo : at - lo + size], offset, key) != size:
                raise ChunkDecodeError(key, "the file shrank while it was read")
        self.device.upload_into(slab[lo:hi], host)

    def _read_all(self, jobs: list[tuple[str, str, Any, int, int]]) -> None:
        """(key, path, device view, size, file offset) reads by kvikio: all issued, then all
        awaited; every read issued is waited for before any file is closed or an error
        raised, so no read still writes into the slab when it is given back."""
        opened: dict[str, Any] = {}
        futures = []
        failure: BaseException | None = None
        try:
            for key, path, view, size, file_offset in jobs:
                handle = opened.get(path)
                if handle is None:
                    handle = opened[path] = self.kvikio.CuFile(path, "r")
                futures.append((key, size, handle.pread(view, size, file_offset)))
        except Exception as e:  # a read that raised as it was issued: wait for the others
            failure = e
        for key, size, future in futures:
            try:
                got = int(future.get())
            except Exception as e:
                failure = failure or e
                continue
            if got != size and failure is None:
                failure = ChunkDecodeError(key, f"read {got} of {size} bytes: the file "
                                                "shrank while it was read")
        for handle in opened.values():
            handle.close()
        if failure is not None:
            raise failure

    # -- whole chunks ------------------------------------------------------------------------

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
                offsets, total = self._layout(item_sizes)
                slab = _aligned_empty(self.xp, total, _GDS_ALIGN)
                self._fill(slab, [
                    (names[i], int(files.fds[i]), files.path(i), o, s, 0)
                    for i, o, s in zip(idx.tolist(), offsets.tolist(), item_sizes.tolist(),
                                       strict=True)
                    if s > 0
                ])
                parts.append((slab, offsets, item_sizes, files.present.copy()))
        if len(parts) == 1:
            slab, offsets, item_sizes, present = parts[0]
            return DeviceBatch(slab, offsets, item_sizes), present
        return self._joined(parts)

    def _layout(self, sizes: np.ndarray) -> tuple[np.ndarray, int]:
        """Slab offsets: small items packed at 16 bytes first, then the big ones at 4096
        (kvikio's reads, GDS's unit); the slab's size."""
        small = sizes < self.small_bytes
        offsets = np.zeros(sizes.size, dtype=np.int64)
        small_at, small_total = aligned_layout(sizes[small], _SMALL_ALIGN)
        big_at, big_total = aligned_layout(sizes[~small], _GDS_ALIGN)
        base = -(-small_total // _GDS_ALIGN) * _GDS_ALIGN if small.any() else 0
        offsets[small] = small_at
        offsets[~small] = big_at + base
        return offsets, base + (big_total if (~small).any() else 0) or 1

    def _joined(self, parts: list[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]
                ) -> tuple[DeviceBatch, np.ndarray]:
        """The groups' device slabs as one (one device copy each); every group starts on a
        GDS-aligned offset, so items keep their alignment, and groups without a file take
        no room."""
        used = [int((p[1] + p[2]).max()) if len(p[2]) else 0 for p in parts]
        room = [-(-u // _GDS_ALIGN) * _GDS_ALIGN for u in used]
        bases = np.cumsum([0, *room]).astype(np.int64)
        slab = _aligned_empty(self.xp, max(1, int(bases[-1])), _GDS_ALIGN)
        for (part, _, _, _), base, size in zip(parts, bases[:-1].tolist(), used, strict=False):
            if size:
                slab[base : base + size] = part[:size]
        offsets = np.concatenate([p[1] + b for p, b in zip(parts, bases[:-1], strict=False)])
        sizes = np.concatenate([p[2] for p in parts])
        present = np.concatenate([p[3] for p in parts])
        return DeviceBatch(slab, offsets, sizes), present

    # -- byte ranges of shards ---------------------------------------------------------------

    def ranges(self, keys: list[str], key_index: np.ndarray, starts: np.ndarray,
               sizes: np.ndarray, *, max_gap_bytes: int, max_bytes: int,
               paths: list[str] | None = None) -> DeviceBatch:
        """Range i = keys[key_index[i]][starts[i] : +sizes[i]], coalesced per key. `paths`:
        what to open for each key (the open shard files' /proc paths, so the ranges come
        from the version whose index was read); root/key when None. A range past the end
        of its file is an error naming the key, found before any read is issued."""
        plan = coalesce(key_index, starts, sizes, max_gap_bytes=max_gap_bytes, max_bytes=max_bytes)
        group_offsets, total = self._layout(plan.group_size)
        slab = _aligned_empty(self.xp, total, _GDS_ALIGN)
        where = paths or [os.path.join(self.root, key) for key in keys]
        used = sorted({int(k) for k in plan.group_key})
        fds: dict[int, int] = {}
        try:
            for k in used:
                try:
                    fds[k] = os.open(where[k], os.O_RDONLY)
                except OSError as e:
                    raise ChunkDecodeError(keys[k], f"opening the file failed: {e}") from e
            file_size = {k: os.fstat(fd).st_size for k, fd in fds.items()}
            ends = plan.group_start + plan.group_size
            for k, end in zip(plan.group_key.tolist(), ends.tolist(), strict=True):
                if end > file_size[int(k)]:
                    raise ChunkDecodeError(keys[int(k)],
                                           "a byte range lies past the end of the file")
            self._fill(slab, [
                (keys[int(k)], fds[int(k)], where[int(k)], o, s, int(f))
                for k, o, s, f in zip(plan.group_key, group_offsets.tolist(),
                                      plan.group_size.tolist(), plan.group_start, strict=True)
                if s > 0
            ])
        finally:
            for fd in fds.values():
                os.close(fd)
        group = plan.member_group
        member = group_offsets[group] + (plan.member_slab_offset - plan.group_slab_offset[group])
        return DeviceBatch(slab, member, np.asarray(sizes, dtype=np.int64))
