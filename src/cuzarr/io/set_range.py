"""Stores that can overwrite part of a value: the capability partial shard writes need.

zarr's store API writes whole values only (zarr PR #3907 proposed a `SupportsSetRange`
capability; no zarr release has it). cuzarr finds it itself, by the rule of `io.access`
(never go around code a user put in a store):

- a LocalStore whose IO methods are all LocalStore's own: byte ranges are written into the
  value's file through `io.journal`, all or none across a killed writer;
- a MemoryStore whose IO methods are MemoryStore's own: the value is patched in memory (a
  process that dies takes the store with it, so there is nothing to journal);
- any other store (subclasses that override IO methods included): None, and the caller
  rewrites whole values through the store's own `set`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from cuzarr.io import journal
from cuzarr.io.access import access, io_is_own

__all__ = ["LocalRangeWriter", "MemoryRangeWriter", "RangeWriter", "range_writer"]

#: every method through which MemoryStore reads or writes a value
_MEMORY_IO = ("get", "get_sync", "get_partial_values", "set", "set_sync", "_set", "delete",
              "delete_sync", "set_if_not_exists")

Ranges = Sequence[tuple[int, bytes | memoryview]]


class RangeWriter(Protocol):
    """Writes byte ranges of existing values of one store. Hold the value's lock
    (`io.locks`, named by `lock_name(key)`) around `size` and `write_ranges` and everything
    in between that depends on the value."""

    def lock_name(self, key: str) -> str:
        """The name of the value's lock in `io.locks`."""
        ...

    def size(self, key: str) -> int | None:
        """The value's size in bytes, None where it does not exist (a killed writer's
        journal is replayed first)."""
        ...

    def write_ranges(self, key: str, ranges: Ranges,
                     identity: tuple[int, int] | None = None) -> None:
        """Write each (offset, bytes) range of the existing value `key` (ranges may extend
        it; they must not overlap), all or none of them. `identity`: the (device, inode)
        of the file they were planned from, where the value is a file."""
        ...


class LocalRangeWriter:
    """Ranges written into a LocalStore's files through the journal (`durable`: fsyncs
    too, for machine crashes and not only killed processes)."""

    def __init__(self, root: str, durable: bool = False) -> None:
        self.root = root
        self.durable = durable

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key)

    def lock_name(self, key: str) -> str:
        return journal.lock_name(self._path(key))

    def size(self, key: str) -> int | None:
        path = self._path(key)
        journal.recover(path)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None

    def write_ranges(self, key: str, ranges: Ranges,
                     identity: tuple[int, int] | None = None) -> None:
        path = self._path(key)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no value {key!r} to write ranges of in {self.root!r}")
        journal.write_ranges(path, ranges, durable=self.durable, identity=identity)


class MemoryRangeWriter:
    """Ranges patched into a MemoryStore's values, through its own sync methods."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def lock_name(self, key: str) -> str:
        # the dict is what two MemoryStore objects over the same values share
        return f"memory:{id(self.store._store_dict)}:{key}"

    def size(self, key: str) -> int | None:
        from zarr.core.buffer import default_buffer_prototype

        value = self.store.get_sync(key, prototype=default_buffer_prototype())
        return None if value is None else len(value)

    def write_ranges(self, key: str, ranges: Ranges,
                     identity: tuple[int, int] | None = None) -> None:
        from zarr.core.buffer import default_buffer_prototype

        prototype = default_buffer_prototype()
        value = self.store.get_sync(key, prototype=prototype)
        if value is None:
            raise FileNotFoundError(f"no value {key!r} to write ranges of in {self.store}")
        # a new value, set whole: a reader holding the old one keeps it intact
        end = max((int(o) + len(d) for o, d in ranges), default=0)
        data = np.empty(max(end, len(value)), dtype=np.uint8)
        data[: len(value)] = value.as_numpy_array()
        data[len(value) :] = 0
        for offset, chunk in ranges:
            data[int(offset) : int(offset) + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        self.store.set_sync(key, prototype.buffer.from_array_like(data))


@functools.cache
def _memory_own_io(cls: type) -> bool:
    from zarr.storage import MemoryStore

    return io_is_own(cls, MemoryStore, _MEMORY_IO)


def range_writer(store: Any, durable: bool = False) -> RangeWriter | None:
    """How byte ranges of `store`'s values can be written, or None (rewrite whole values)."""
    root = access(store).root
    if root is not None:
        return LocalRangeWriter(root, durable)
    if _memory_own_io(type(store)):
        return MemoryRangeWriter(store)
    return None
