"""A background producer that keeps a bounded number of batches ready.

One thread runs the reads (`read_patches` releases the GIL in its IO, decode and
copies, so the training step runs meanwhile); a queue of `prefetch` slots bounds
memory to prefetch batches waiting plus the one being read. The thread holds no
reference to its consumer, so a consumer dropped mid-epoch is collected, and its
finalizer stops the thread; errors travel through the queue and are raised again,
unchanged (they name the store key), by the consumer's `next()`.
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Producer"]

_POLL_S = 0.05
#: how long closing waits for a read in progress
_JOIN_S = 10.0
_DONE = object()
_live: weakref.WeakSet[Producer] = weakref.WeakSet()


class _Failure:
    """An exception raised by the producer, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _run(make: Callable[[int], Any], count: int, slots: queue.Queue[Any],
         stop: threading.Event) -> None:
    """The thread: make item 0..count-1 into `slots`, unless told to stop."""
    try:
        for i in range(count):
            if stop.is_set():
                return
            item = make(i)
            while not stop.is_set():
                try:
                    slots.put(item, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            del item
        _put_final(slots, stop, _DONE)
    except BaseException as e:  # every failure goes to the consumer (noqa: BLE001)
        _put_final(slots, stop, _Failure(e))


def _put_final(slots: queue.Queue[Any], stop: threading.Event, item: Any) -> None:
    while not stop.is_set():
        try:
            slots.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue


class Producer(Iterator[Any]):
    """Items `make(0)`, ..., `make(count - 1)`, made ahead on a thread, `prefetch` at most
    waiting. `close()` (or dropping the last reference, or interpreter exit) stops it."""

    def __init__(self, make: Callable[[int], Any], count: int, prefetch: int,
                 name: str = "cuzarr-loader") -> None:
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, not {prefetch}")
        self._slots: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_run, args=(make, count, self._slots, self._stop),
                                        name=name, daemon=True)
        self._finished = False
        self._finalizer = weakref.finalize(self, _shutdown, self._stop, self._slots,
                                           self._thread)
        _live.add(self)
        self._thread.start()

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        while True:
            try:
                item = self._slots.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._slots.empty():
                    self._finished = True
                    raise StopIteration from None
        if item is _DONE:
            self._finished = True
            self._thread.join()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def close(self, timeout: float = _JOIN_S) -> None:
        """Stop the thread and drop what it made ahead. A read in progress is waited for
        up to `timeout` seconds; one that takes longer (a store that hangs) is left to
        finish on its daemon thread, which holds nothing the caller still uses."""
        self._finished = True
        if self._finalizer.detach() is not None:
            _shutdown(self._stop, self._slots, self._thread, timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _shutdown(stop: threading.Event, slots: queue.Queue[Any], thread: threading.Thread,
              timeout: float = _JOIN_S) -> None:
    stop.set()
    while True:  # free the batches made ahead, and a put that waits for room
        try:
            slots.get_nowait()
        except queue.Empty:
            break
    if thread is not threading.current_thread() and thread.ident is not None:
        thread.join(timeout)
    while True:  # and what it put while we waited
        try:
            slots.get_nowait()
        except queue.Empty:
            break


@atexit.register
def _close_all() -> None:
    """Interpreter exit: stop every producer still running (a read in progress ends)."""
    for producer in list(_live):
        producer.close()
