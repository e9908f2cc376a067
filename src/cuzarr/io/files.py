"""LocalStore values read straight from their files: `os.preadv` into one slab, from the
thread pool, with no bytes object per chunk.

Two rules keep this safe. A batch never holds more files open than a share of the
process's open-file limit (`fd_group`): a read of thousands of small chunks opens them
group by group. And a shard's index and its inner chunks are read through one open file,
so a read that races an atomic rewrite (temp file, then rename) sees one version of it.
Shards are opened after any journal a killed partial write left is replayed, and held
under their shared locks (io.locks), so a partial write of this process is never seen
half done.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.errors import ChunkDecodeError, decode_error_for
from cuzarr.io import journal, locks
from cuzarr.plan.coalesce import coalesce
from cuzarr.timers import timed
from cuzarr.workers import map_ranges

__all__ = ["IndexRead", "ShardFiles", "fd_group", "read_whole", "read_windows", "recover_journals",
           "write_file"]

_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


@dataclass(frozen=True)
class IndexRead:
    """The index bytes of every present shard, and each shard's total size when known."""

    batch: ByteBatch  # one item per present shard
    present: np.ndarray  # bool per requested key
    shard_sizes: np.ndarray | None  # int64 per present shard, or None (size unknown)


@functools.cache
def _open_file_budget() -> int:
    """Files cuzarr may hold open at once: a quarter of the soft RLIMIT_NOFILE (the rest
    is the application's), at least 64."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 16
    return max(64, soft // 4)


def fd_group(threads: int) -> int:
    """Keys one tile may open at once, where `threads` tiles run at once (the pool's
    width): the read and write paths cap their tiles at this, so that together they stay
    within the open-file budget."""
    return max(4, _open_file_budget() // max(1, threads))


def _pread_into(fd: int, view: memoryview, offset: int, key: str) -> int:
    """Fill `view` from `fd` at `offset`; returns bytes read (short only at end of file).
    An OS error names `key` (and is still the OSError it was)."""
    done = 0
    total = len(view)
    try:
        while done < total:
            got = os.preadv(fd, [view[done:]], offset + done)
            if got == 0:
                break
            done += got
    except OSError as e:
        raise decode_error_for(type(e))(key, f"reading the file failed: {e}") from e
    return done


class OpenFiles:
    """The files of some keys under `root`, open at once (opened from the pool): `fds`
    (-1 for a missing key) and `sizes`. Close with `close()` or use as a context."""

    def __init__(self, root: str, keys: list[str], threads: int) -> None:
        n = len(keys)
        self.keys = keys
        self.fds = np.full(n, -1, dtype=np.int64)
        self.sizes = np.zeros(n, dtype=np.int64)
        self.identities = np.zeros((n, 2), dtype=np.uint64)  # (device, inode) of each
        fds, sizes, identities = self.fds, self.sizes, self.identities

        def open_all(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                try:
                    fd = os.open(os.path.join(root, keys[i]), os.O_RDONLY)
                except _MISSING:
                    continue
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):  # a folder: LocalStore reads it as missing
                    os.close(fd)
                    continue
                fds[i] = fd
                sizes[i] = info.st_size
                identities[i] = (info.st_dev, info.st_ino)

        try:
            map_ranges(open_all, n, threads, min_items=16)
        except BaseException:
            self.close()
            raise

    @property
    def present(self) -> np.ndarray:
        return self.fds >= 0

    def path(self, i: int) -> str:
        """A path that opens the very file `fds[i]` holds (for readers that open paths
        themselves, such as kvikio): it stays that version after a rename over it."""
        return f"/proc/self/fd/{int(self.fds[i])}"

    def close(self) -> None:
        for fd in self.fds[self.fds >= 0].tolist():
            os.close(int(fd))
        self.fds[:] = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _groups(n: int, threads: int) -> list[tuple[int, int]]:
    size = fd_group(threads)
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


def _host_bytes(nbytes: int) -> np.ndarray:
    return np.empty(nbytes, dtype=np.uint8)


#: whole files expected to be at most this large (a chunk's decoded size, `size_hint`) are
#: read by `read_small`: one thread, no stat, opened relative to their folder
SMALL_FILE_BYTES = 64 << 10
#: folders `read_small` keeps open at once (a 3-D array's keys spread over many)
_DIR_FDS = 64
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY


@timed("io")
def read_whole(root: str, keys: list[str], threads: int,
               alloc: Callable[[int], np.ndarray], size_hint: int | None = None
               ) -> tuple[ByteBatch, np.ndarray]:
    """Each key's whole file. Returns the present keys' bytes in one slab, and presence.
    More keys than `fd_group` are read group by group (and the groups' slabs joined).
    `size_hint`: the bytes a file is expected to hold at most (a chunk's decoded size);
    small files are then read by `read_small`."""
    if size_hint is not None and size_hint <= SMALL_FILE_BYTES:
        small = read_small(root, keys, small_file_cap(size_hint), alloc)
        if small is not None:
            return small
    groups = _groups(len(keys), threads)
    if len(groups) <= 1:
        return _read_whole_group(root, keys, threads, alloc)
    parts = [_read_whole_group(root, keys[lo:hi], threads, _host_bytes) for lo, hi in groups]
    present = np.concatenate([p for _, p in parts])
    sizes = np.concatenate([b.sizes for b, _ in parts])
    offsets = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes) > 1:
        np.cumsum(sizes[:-1], out=offsets[1:])
    slab = alloc(int(sizes.sum()))
    at = 0
    for batch, _ in parts:
        slab[at : at + batch.slab.size] = batch.slab
        at += batch.slab.size
    return ByteBatch(slab, offsets, sizes), present


def small_file_cap(size_hint: int) -> int:
    """Bytes `read_small` reserves per file: what every codec zarr ships may store for a
    chunk of `size_hint` bytes (zstd's, lz4's and deflate's worst case is under 1/64
    more, plus headers of at most a few dozen bytes), so that one read finds a file's end.
    The slab holds one such place per file: the margin is kept small, since a tile's slab
    (and on the cuda device its upload) is that large."""
    return size_hint + size_hint // 64 + 256


@timed("io")
def read_small(root: str, keys: list[str], cap: int, alloc: Callable[[int], np.ndarray]
               ) -> tuple[ByteBatch, np.ndarray] | None:
    """`read_whole` for many small files, on the calling thread: per file one open
    relative to its folder's descriptor, one read into its `cap`-byte place in the slab,
    and one close. A stat and a thread pool cost more than the read itself here: a 2 KiB
    chunk's open, fstat, preadv and close from Python took 3 us on one thread and twice
    that on two (the threads take turns holding the GIL for each call). A file that
    fills its place may hold more: the batch is then read by `read_whole`'s general
    path (None). A folder, like a missing file, reads as missing."""
    n = len(keys)
    slab = alloc(n * cap)
    view = memoryview(slab)
    found: list[int] = []
    got: list[int] = []
    dirs: dict[str, int] = {}
    parent: str | None = None
    dfd = -1
    try:
        for i, key in enumerate(keys):
            head, _, leaf = key.rpartition("/")
            if head != parent:
                parent = head
                dfd = dirs.get(head, -2)
                if dfd == -2:
                    if len(dirs) >= _DIR_FDS:
                        _close_all(dirs)
                    try:
                        dfd = os.open(os.path.join(root, head) if head else root, _DIR_FLAGS)
                    except _MISSING:
                        dfd = -1
                    dirs[head] = dfd
            if dfd < 0:
                continue
            try:
                fd = os.open(leaf, os.O_RDONLY, dir_fd=dfd)
            except _MISSING:
                continue
            except OSError as e:
                raise decode_error_for(type(e))(key, f"opening the file failed: {e}") from e
            at = len(found) * cap
            try:
                size = os.readv(fd, [view[at : at + cap]])
            except IsADirectoryError:
                continue
            except OSError as e:
                raise decode_error_for(type(e))(key, f"reading the file failed: {e}") from e
            finally:
                os.close(fd)
            if size == cap:
                return None
            found.append(i)
            got.append(size)
    finally:
        _close_all(dirs)
    present = np.zeros(n, dtype=bool)
    present[found] = True
    sizes = np.asarray(got, dtype=np.int64)
    return ByteBatch(slab, np.arange(len(found), dtype=np.int64) * cap, sizes), present


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        if fd >= 0:
            os.close(fd)
    fds.clear()


def _read_whole_group(root: str, keys: list[str], threads: int,
                      alloc: Callable[[int], np.ndarray]) -> tuple[ByteBatch, np.ndarray]:
    with OpenFiles(root, keys, threads) as files:
        present = files.present
        idx = np.flatnonzero(present)
        item_sizes = files.sizes[idx]
        offsets = np.zeros(len(idx), dtype=np.int64)
        if len(idx) > 1:
            np.cumsum(item_sizes[:-1], out=offsets[1:])
        slab = alloc(int(item_sizes.sum()))
        view = memoryview(slab)
        fds = files.fds

        def read_all(lo: int, hi: int) -> None:
            for j in range(lo, hi):
                start, size = int(offsets[j]), int(item_sizes[j])
                got = _pread_into(int(fds[idx[j]]), view[start : start + size], 0,
                                  keys[idx[j]])
                if got != size:
                    raise ChunkDecodeError(keys[idx[j]], "the file shrank while it was read")

        map_ranges(read_all, len(idx), threads, min_items=8)
    return ByteBatch(slab, offsets, item_sizes), present


@timed("io")
def read_windows(root: str, keys: list[str], starts: np.ndarray, length: int, whole: int,
                 threads: int) -> tuple[ByteBatch, np.ndarray]:
    """Bytes [starts[i], starts[i] + length) of each key, whose file must hold `whole`
    bytes (an uncompressed chunk): the present keys' windows, one fixed-size slab, and
    presence."""
    groups = _groups(len(keys), threads)
    present = np.zeros(len(keys), dtype=bool)
    slabs = []
    for lo, hi in groups:
        with OpenFiles(root, keys[lo:hi], threads) as files:
            here = files.present
            idx = np.flatnonzero(here)
            bad = idx[files.sizes[idx] != whole]
            if bad.size:
                i = int(bad[0])
                raise ChunkDecodeError(keys[lo + i], f"stored {int(files.sizes[i])} bytes, "
                                                     f"expected {whole}")
            slab = np.empty(len(idx) * length, dtype=np.uint8)
            view, fds = memoryview(slab), files.fds

            def read_all(a: int, b: int, idx: np.ndarray = idx, view: memoryview = view,
                         fds: np.ndarray = fds, lo: int = lo) -> None:
                for j in range(a, b):
                    i = int(idx[j])
                    got = _pread_into(int(fds[i]), view[j * length : (j + 1) * length],
                                      int(starts[lo + i]), keys[lo + i])
                    if got != length:
                        raise ChunkDecodeError(keys[lo + i], "the file shrank while it was read")

            map_ranges(read_all, len(idx), threads, min_items=8)
        present[lo:hi] = here
        slabs.append(slab)
    slab = slabs[0] if len(slabs) == 1 else np.concatenate(slabs)
    return ByteBatch.fixed(slab, int(present.sum()), length), present


@timed("journal replay")
def recover_journals(paths: list[str], threads: int, held: bool = False) -> None:
    """Replay the journal of each of `paths` that has one (a partial write killed before
    it ended), each under its file's lock (`held`: the caller holds the locks already)."""
    found = np.zeros(len(paths), dtype=bool)

    def check(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            found[i] = journal.has_journal(paths[i])

    map_ranges(check, len(paths), threads, min_items=256)
    for i in np.flatnonzero(found).tolist():
        if held:
            journal.recover(paths[i])
            continue
        with journal.file_lock(paths[i]):
            journal.recover(paths[i])


class ShardFiles(OpenFiles):
    """The shard files of one tile, open once: their indexes and inner chunks are read
    through the same descriptors. A journal left by a killed partial write is replayed
    first, and with `lock` the shards' locks are held shared while they are open (a writer
    that holds them exclusively opens its shards with lock=False)."""

    def __init__(self, root: str, keys: list[str], threads: int, lock: bool = True) -> None:
        paths = [os.path.join(root, k) for k in keys]
        recover_journals(paths, threads, held=not lock)
        self._held = None
        if lock:
            self._held = locks.shared([journal.lock_name(p) for p in paths])
            self._held.__enter__()
        try:
            super().__init__(root, keys, threads)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(None, None, None)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()

    @timed("io")
    def index(self, nbytes: int, at_start: bool, threads: int) -> IndexRead:
        """The `nbytes`-long index at the start or end of each present shard."""
        present = self.present
        idx = np.flatnonzero(present)
        slab = np.empty(len(idx) * nbytes, dtype=np.uint8)
        view = memoryview(slab)
        got = np.zeros(len(idx), dtype=np.int64)
        fds, sizes = self.fds, self.sizes

        def work(lo: int, hi: int) -> None:
            for j in range(lo, hi):
                size = int(sizes[idx[j]])
                start = 0 if at_start else max(0, size - nbytes)
                want = min(nbytes, size)
                got[j] = _pread_into(int(fds[idx[j]]), view[j * nbytes : j * nbytes + want],
                                     start, self.keys[idx[j]])

        map_ranges(work, len(idx), threads, min_items=16)
        return IndexRead(ByteBatch(slab, np.arange(len(idx), dtype=np.int64) * nbytes, got),
                         present, sizes[idx].copy())

    @timed("io")
    def ranges(self, shard_of: np.ndarray, starts: np.ndarray, sizes: np.ndarray, *,
               max_gap_bytes: int, max_bytes: int, threads: int,
               alloc: Callable[[int], np.ndarray]) -> ByteBatch:
        """Range i = bytes [starts[i], +sizes[i]) of present shard shard_of[i], coalesced per
        shard; ranges lie inside their shard (the index was clipped to its size)."""
        plan = coalesce(shard_of, starts, sizes, max_gap_bytes=max_gap_bytes,
                        max_bytes=max_bytes)
        slab = alloc(plan.slab_nbytes)
        view = memoryview(slab)
        owners = np.flatnonzero(self.present)
        fds, keys = self.fds, self.keys

        def work(lo: int, hi: int) -> None:
            for g in range(lo, hi):
                i = int(owners[int(plan.group_key[g])])
                off, size = int(plan.group_slab_offset[g]), int(plan.group_size[g])
                if _pread_into(int(fds[i]), view[off : off + size],
                               int(plan.group_start[g]), keys[i]) != size:
                    raise ChunkDecodeError(keys[i], "the shard shrank while it was read")

        map_ranges(work, len(plan.group_key), threads, min_items=4)
        return ByteBatch(slab, plan.member_slab_offset, np.asarray(sizes, dtype=np.int64))


_IOV_MAX = max(16, min(1024, os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024))


def _writev_all(fd: int, views: list[memoryview]) -> None:
    """Write every view, in order, at the file's position (short writes continued)."""
    i = 0
    while i < len(views):
        done = os.writev(fd, views[i : i + _IOV_MAX])
        while done and i < len(views):
            if done >= len(views[i]):
                done -= len(views[i])
                i += 1
            else:
                views[i] = views[i][done:]
                done = 0


def write_file(root: str, key: str, parts: list[Any], durable: bool = False) -> None:
    """Store a LocalStore value made of `parts` (byte-likes, concatenated) as LocalStore
    does: into a temporary file beside it (named as LocalStore names them), then renamed
    over it (readers see the old value or the new one), its folders made as needed; one
    writev, no joined copy. `durable`: the file and its folder fsynced too."""
    path = os.path.join(root, key)
    temp = f"{path}.{uuid.uuid4().hex}.partial"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(temp, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(temp, flags, 0o666)
    try:
        views = [memoryview(p).cast("B") for p in parts]
        _writev_all(fd, [v for v in views if len(v)])
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        dir_fd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
