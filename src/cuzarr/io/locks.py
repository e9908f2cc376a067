"""In-process reader-writer locks, one per shard (by name): what keeps a partial shard
write and the reads and other writes of that shard in this process out of each other's way.

A partial write patches a shard file in place (`io.journal`); a reader that read it at the
same time could see a slot half written. So the write path holds a shard's lock
exclusively from reading its index to writing its last range, and the read path holds it
shared while it reads the shard's index and inner chunks. Locks of several shards are
always taken in sorted order of their names, so that two jobs never wait on each other.
Other processes are not excluded (see docs/partial-writes.md).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterable, Iterator

__all__ = ["ShardLock", "exclusive", "lock_for", "shared"]


class ShardLock:
    """Many readers or one writer; `with lock:` takes it exclusively. Not reentrant."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    def acquire(self) -> None:
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:  # interrupted or not, it no longer waits
                self._waiting_writers -= 1
                if not self._waiting_writers:
                    self._cond.notify_all()
            self._writer = True

    def release(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    def acquire_shared(self) -> None:
        with self._cond:
            # a waiting writer goes first: a stream of readers cannot starve it
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1

    def release_shared(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def __enter__(self) -> ShardLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


#: a lock lives while someone holds or waits for it: a process that touches a million
#: shards does not keep a million locks
_locks: weakref.WeakValueDictionary[str, ShardLock] = weakref.WeakValueDictionary()
_guard = threading.Lock()


def lock_for(name: str) -> ShardLock:
    """The lock of one shard (a file's absolute path, or a store's own name for a key).
    The same file reached through two paths (a symlinked root) has two locks."""
    with _guard:
        lock = _locks.get(name)
        if lock is None:
            lock = _locks[name] = ShardLock()
        return lock


@contextlib.contextmanager
def exclusive(names: Iterable[str]) -> Iterator[None]:
    """Hold the locks of `names` exclusively, taken in sorted order."""
    with contextlib.ExitStack() as stack:
        for name in sorted(set(names)):
            stack.enter_context(lock_for(name))
        yield


@contextlib.contextmanager
def shared(names: Iterable[str]) -> Iterator[None]:
    """Hold the locks of `names` shared, taken in sorted order."""
    held: list[ShardLock] = []
    try:
        for name in sorted(set(names)):
            lock = lock_for(name)
            lock.acquire_shared()
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            lock.release_shared()
