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
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from cuzarr.io import journal
from cuzarr.io.access import access, io_is_own

__all__ = ["LocalRangeWriter", "MemoryRangeWriter", "RangeWriter", "range_writer"]

#: every method through which MemoryStore reads or writes a value
_MEMORY_IO = ("get", "get_sync", "get_partial_values", "set", "set_sync", "_set", "delete",
              "delete_sync", "set_if_not_exists")

Ranges = Sequence[tuple[int, bytes | memoryview]]

#: one lock for every MemoryStore range write: a patch is a read, a change and a set of
#: the whole value, and two of them at once on one value would lose one
_memory_lock = threading.Lock()


class RangeWriter(Protocol):
    """Writes byte ranges of existing values of one store."""

    def size(self, key: str) -> int | None:
        """The value's size in bytes, None where it does not exist."""
        ...

    def write_ranges(self, key: str, ranges: Ranges) -> None:
        """Write each (offset, bytes) range of the existing value `key` (ranges may extend
        it; they must not overlap), all or none of them."""
        ...


class LocalRangeWriter:
    """Ranges written into a LocalStore's files through the journal (`durable`: fsyncs
    too, for machine crashes and not only killed processes)."""

    def __init__(self, root: str, durable: bool = False) -> None:
        self.root = root
        self.durable = durable

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        with journal.file_lock(path):
            journal.recover(path, durable=self.durable)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None

    def write_ranges(self, key: str, ranges: Ranges) -> None:
        path = self._path(key)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no value {key!r} to write ranges of in {self.root!r}")
        with journal.file_lock(path):
            journal.write_ranges(path, ranges, durable=self.durable)


class MemoryRangeWriter:
    """Ranges patched into a MemoryStore's values, through its own sync methods."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def size(self, key: str) -> int | None:
        from zarr.core.buffer import default_buffer_prototype

        value = self.store.get_sync(key, prototype=default_buffer_prototype())
        return None if value is None else len(value)

    def write_ranges(self, key: str, ranges: Ranges) -> None:
        from zarr.core.buffer import default_buffer_prototype

        prototype = default_buffer_prototype()
        with _memory_lock:
            value = self.store.get_sync(key, prototype=prototype)
            if value is None:
                raise FileNotFoundError(f"no value {key!r} to write ranges of in {self.store}")
            data = bytearray(value.to_bytes())
            end = max((int(o) + len(d) for o, d in ranges), default=0)
            if end > len(data):
                data.extend(bytes(end - len(data)))
            for offset, chunk in ranges:
                data[int(offset) : int(offset) + len(chunk)] = chunk
            self.store.set_sync(key, prototype.buffer.from_bytes(bytes(data)))


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
