"""A redo journal for in-place writes to one file: what makes a partial shard write safe
against a process killed at any instant.

A partial shard write changes byte ranges of the shard file (inner chunk slots, appended
inner chunks, the index). Written straight into the shard, a writer killed half-way leaves
some ranges new and others old, or one torn. Here (`write_ranges`):

1. every range's new bytes go to a journal beside the file (`<file>.cuzarr-journal`):
   written under a temporary name, then renamed into place, so that the journal exists
   whole or not at all;
2. the ranges are written into the file with positioned writes;
3. the journal is removed.

`recover(path)`, run before any read or write of the file, replays a journal it finds (the
same bytes to the same places: replaying twice is harmless) and removes it. After a kill at
any instant and the next `recover`, the file is therefore wholly as before the write
(killed before step 1 ended) or wholly as after it. With `durable=True` the journal, the
file and their folder are also fsynced at each step, which extends the guarantee from a
killed process to a crashed machine (at the cost of two or three fsyncs per write).

A writer holds an exclusive flock on the file from before its journal exists until after it
is removed, and `recover` takes the same flock before it reads a journal: a process never
replays the journal of a writer in another process that is still at work (that replay could
land after the writer's next write, older bytes over newer ones). A killed writer's flock
is released with it.

A journal names the file it was made for (its device and inode numbers): a file replaced
since (zarr's LocalStore writes a new file and renames it over the old one, and so does
cuzarr's full rewrite of a shard) is not the one the journal's ranges belong to, and the
journal is dropped without being applied. A file deleted since drops its journal too.

Journal format (little-endian): b"CZJ2", u32 range count, u64 device, u64 inode, then per
range u64 offset and u64 length, then the ranges' bytes in that order, then the crc32c of
everything before it. A journal whose checksum does not match was damaged after it was
written whole: it is neither applied nor removed, and `recover` raises JournalError naming
the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import google_crc32c

from cuzarr.errors import CuzarrError
from cuzarr.io.locks import ShardLock, lock_for
from cuzarr.timers import timed

__all__ = ["JOURNAL_SUFFIX", "JournalError", "file_lock", "has_journal", "lock_name", "recover",
           "write_ranges"]

JOURNAL_SUFFIX = ".cuzarr-journal"
_TEMP_SUFFIX = ".cuzarr-journal-tmp"
_MAGIC = b"CZJ2"
_HEAD = struct.Struct("<4sIQQ")
_RANGE = struct.Struct("<QQ")
_CRC = struct.Struct("<I")

class JournalError(CuzarrError, OSError):
    """A file's journal cannot be replayed (damaged), or its ranges could not be written
    (the file was replaced meanwhile); the message names the file."""


def journal_path(path: str) -> str:
    return path + JOURNAL_SUFFIX


def lock_name(path: str) -> str:
    """The name of a file's lock in `io.locks`."""
    return os.path.abspath(path)


def file_lock(path: str) -> ShardLock:
    """The in-process lock of one file (`with file_lock(path):` holds it exclusively):
    writers of different ranges of one shard take it in turn, so that neither's journal or
    ranges are lost, and readers hold it shared. Other processes are not excluded: they
    need a lock of their own (dask's distributed Lock, say)."""
    return lock_for(lock_name(path))


def _encode(ranges: Sequence[tuple[int, bytes | memoryview]], identity: tuple[int, int]
            ) -> bytes:
    parts = [_HEAD.pack(_MAGIC, len(ranges), *identity)]
    parts += [_RANGE.pack(int(offset), len(data)) for offset, data in ranges]
    parts += [bytes(data) for _, data in ranges]
    body = b"".join(parts)
    return body + _CRC.pack(google_crc32c.value(body))


def _decode(blob: bytes, path: str) -> tuple[tuple[int, int], list[tuple[int, memoryview]]]:
    if len(blob) < _HEAD.size + _CRC.size:
        raise JournalError(f"the journal of {path!r} is damaged: {len(blob)} bytes")
    body, (crc,) = blob[: -_CRC.size], _CRC.unpack(blob[-_CRC.size :])
    if google_crc32c.value(body) != crc:
        raise JournalError(f"the journal of {path!r} is damaged: its checksum does not match "
                           f"(left in place at {journal_path(path)!r})")
    magic, count, device, inode = _HEAD.unpack_from(body)
    if magic != _MAGIC:
        raise JournalError(f"the journal of {path!r} is not a cuzarr journal")
    at = _HEAD.size
    extents = [_RANGE.unpack_from(body, at + k * _RANGE.size) for k in range(count)]
    at += count * _RANGE.size
    view = memoryview(body)
    ranges = []
    for offset, length in extents:
        ranges.append((offset, view[at : at + length]))
        at += length
    if at != len(body):
        raise JournalError(f"the journal of {path!r} is damaged: its ranges do not add up")
    return (device, inode), ranges


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _identity(info: os.stat_result) -> tuple[int, int]:
    return int(info.st_dev), int(info.st_ino)


@contextlib.contextmanager
def _locked_file(path: str) -> Iterator[int | None]:
    """`path` open for writing under an exclusive flock (None where it does not exist).
    The flock keeps the journal step of other processes out: a process replaying a journal
    while its writer is still at work, or after that writer went on to a newer write, would
    put older bytes over newer ones. A killed writer's flock goes with it."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # and the flock with it


def _pwrite_all(fd: int, ranges: Sequence[tuple[int, Any]], durable: bool) -> None:
    for offset, data in ranges:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], offset + done)
    if durable:
        os.fsync(fd)


def _same_file(fd: int, path: str) -> bool:
    """True when `path` still names the file `fd` holds open."""
    try:
        return _identity(os.stat(path)) == _identity(os.fstat(fd))
    except FileNotFoundError:
        return False


@timed("store writes")
def write_ranges(path: str, ranges: Sequence[tuple[int, bytes | memoryview]], *,
                 durable: bool = False, identity: tuple[int, int] | None = None) -> None:
    """Write each (offset, bytes) range into the existing file at `path`, all or none of
    them across a kill (see the module's protocol). Ranges may extend the file; they must
    not overlap. `identity`: the (device, inode) of the file the ranges were planned
    from; where `path` is another file now, nothing is written (JournalError). Hold
    `file_lock(path)` around it where other threads write the file."""
    order = sorted(ranges, key=lambda r: r[0])
    for (a, da), (b, _) in itertools.pairwise(order):
        if a + len(da) > b:
            raise ValueError(f"ranges at {a} and {b} of {path!r} overlap")
    with _locked_file(path) as fd:
        if fd is None:
            raise FileNotFoundError(f"no file {path!r} to write ranges of")
        _replay(fd, path)
        if identity is not None and _identity(os.fstat(fd)) != identity:
            raise JournalError(f"{path!r} was replaced since its index was read; none of the "
                               "ranges planned from it were written")
        identity = _identity(os.fstat(fd))
        temp = path + _TEMP_SUFFIX
        with open(temp, "wb") as f:
            f.write(_encode(order, identity))
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if not _same_file(fd, path):  # renamed over since it was opened: write nothing
            _remove(temp)
            raise JournalError(f"{path!r} was replaced while its ranges were being written; "
                               "none of them were written")
        os.replace(temp, journal_path(path))
        if durable:
            _fsync_dir(path)
        _pwrite_all(fd, order, durable)
        _remove(journal_path(path))
        if durable:
            _fsync_dir(path)


def has_journal(path: str) -> bool:
    """True when `path` has a journal to replay."""
    return os.path.lexists(journal_path(path))


_CANNOT_WRITE = (errno.EACCES, errno.EPERM, errno.EROFS)


def recover(path: str) -> bool:
    """Replay and remove the journal of `path`, if one is there (True when one was); a
    temporary journal left by a writer killed before its rename is removed unread. A
    replay is rare, and always fsynced (a replayed write is then as durable as a durable
    write). Hold `file_lock(path)` where other threads of this process may be writing the
    file."""
    if not has_journal(path):
        if os.path.lexists(path + _TEMP_SUFFIX):  # harmless; removed where we may
            with contextlib.suppress(OSError):
                os.unlink(path + _TEMP_SUFFIX)
        return False
    try:
        with _locked_file(path) as fd:
            if fd is None:  # the file was deleted since: its journal is of nothing
                _remove(journal_path(path))
                _remove(path + _TEMP_SUFFIX)
                return True
            return _replay(fd, path)
    except OSError as e:
        if e.errno not in _CANNOT_WRITE:
            raise
        raise JournalError(f"{path!r} has the journal of an unfinished partial write, which "
                           f"cannot be replayed ({e}); until a process allowed to write the "
                           "file opens it, it may hold part of that write") from e


def _replay(fd: int, path: str) -> bool:
    """recover(), with `path` open as `fd` under its flock."""
    journal = journal_path(path)
    try:
        with open(journal, "rb") as f:
            blob = f.read()
    except FileNotFoundError:
        _remove(path + _TEMP_SUFFIX)
        return False
    identity, ranges = _decode(blob, path)
    if _identity(os.fstat(fd)) == identity:  # a file replaced since is left alone
        _pwrite_all(fd, ranges, True)
    _remove(journal)
    _remove(path + _TEMP_SUFFIX)
    _fsync_dir(path)
    return True


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
