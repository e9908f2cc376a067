"""How cuzarr may reach a store's values: straight through its files, through its sync
methods from the thread pool, or through its async methods on the event loop.

A fast path must never go around code a user put in the store. Files are opened directly
only for a store whose IO methods are all LocalStore's own (a subclass that maps keys,
encrypts or caches in `get`/`set` is read and written through those methods), and a
store's sync methods are used only where they are at least as new as the async ones in
its class hierarchy (a subclass that overrides `get` but inherits `get_sync` would be
bypassed by `get_sync`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

__all__ = ["StoreAccess", "access", "defining_class", "io_is_own"]

#: every method through which LocalStore reads or writes a value
_LOCAL_IO = ("get", "get_sync", "get_partial_values", "get_ranges", "get_ranges_sync", "set",
             "set_sync", "_set", "delete", "delete_sync", "set_if_not_exists")


@dataclass(frozen=True)
class StoreAccess:
    """What one store allows."""

    root: str | None  # files are read directly under this folder (writes: set_sync)
    sync_reads: bool  # get_sync from the pool serves reads
    sync_writes: bool  # set_sync / delete_sync from the pool serve writes

    @property
    def blocking_reads(self) -> bool:
        return self.root is not None or self.sync_reads


def defining_class(cls: type, name: str) -> type | None:
    """The class in `cls`'s MRO that defines attribute `name` (None: nowhere)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return None


def _current(cls: type, sync_name: str, async_name: str) -> bool:
    """True when `sync_name` is defined no higher in the hierarchy than `async_name`."""
    sync_owner = defining_class(cls, sync_name)
    async_owner = defining_class(cls, async_name)
    if sync_owner is None:
        return False
    return async_owner is None or issubclass(sync_owner, async_owner)


def io_is_own(cls: type, base: type, names: tuple[str, ...]) -> bool:
    """True when `cls` is `base` or a subclass whose methods `names` are all `base`'s own
    (a subclass that maps keys, encrypts or caches in one of them is not)."""
    return issubclass(cls, base) and all(
        getattr(cls, name, None) is getattr(base, name, None) for name in names)


@functools.cache
def _class_access(cls: type) -> tuple[bool, bool, bool]:
    from zarr.storage import LocalStore

    direct = io_is_own(cls, LocalStore, _LOCAL_IO)
    reads = _current(cls, "get_sync", "get")
    writes = _current(cls, "set_sync", "set") and _current(cls, "delete_sync", "delete")
    return direct, reads, writes


def access(store: Any) -> StoreAccess:
    """The ways cuzarr may reach `store`'s values."""
    from zarr.abc.store import _store_supports_sync_io

    direct, reads, writes = _class_access(type(store))
    sync = bool(_store_supports_sync_io(store))
    return StoreAccess(root=str(store.root) if direct else None,
                       sync_reads=sync and reads, sync_writes=sync and writes)
