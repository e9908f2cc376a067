"""One process-wide host thread pool, used by host IO and CPU decode/encode.

Work is handed out as contiguous index ranges (one task per worker), never one
task per chunk, so the pool costs a few microseconds per batch, not per chunk.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["StageError", "map_ranges"]

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


class StageError(Exception):
    """Raised inside a batched stage for item `index`; the pipeline adds the store key.

    `family`: the ChunkDecodeError subclass to raise (a checksum mismatch, say), where it
    is not the stage's own; `cause`: the codec's own exception, for stages that have no
    family (the error is then also an instance of the cause's class).
    """

    def __init__(self, index: int, reason: str, *, family: type[Exception] | None = None,
                 cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason
        self.family = family
        self.cause = cause


def _get_pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < threads:
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cuzarr")
            _pool_size = threads
        return _pool


def _reset_after_fork() -> None:
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def map_ranges(
    fn: Callable[[int, int], None], n: int, threads: int, *, min_items: int = 1
) -> None:
    """Run `fn(lo, hi)` over [0, n) split into at most `threads` contiguous ranges.

    `min_items` keeps tiny batches on the calling thread (a hop costs ~20 us).
    Exceptions propagate; the lowest failing range's error wins, so errors are
    reported in the same order a serial loop would report them. The calling thread runs
    the first range, and any range no pool thread has started by then: work never waits
    for a pool whose threads are all busy, or blocked (on a shard lock held by the
    caller, say).
    """
    if n <= 0:
        return
    parts = max(1, min(threads, n // max(1, min_items)))
    if parts == 1:
        fn(0, n)
        return
    bounds = [n * k // parts for k in range(parts + 1)]
    ranges = list(itertools.pairwise(bounds))
    pool = _get_pool(threads)
    futures = [pool.submit(fn, lo, hi) for lo, hi in ranges[1:]]
    errors = [_run_here(fn, *ranges[0])]
    for (lo, hi), future in zip(ranges[1:], futures, strict=True):
        errors.append(_run_here(fn, lo, hi) if future.cancel() else future.exception())
    for error in errors:
        if error is not None:
            raise error


def _run_here(fn: Callable[..., None], *args: int) -> BaseException | None:
    """fn(*args) on this thread; the exception it raised, or None."""
    try:
        fn(*args)
    except BaseException as e:  # raised by the caller, in range order
        return e
    return None


def run_tiles(
    fn: Callable[[int, int, int], None], n: int, per_tile: int, threads: int,
    in_flight: int | None = None,
) -> None:
    """Run `fn(lo, hi, inner_threads)` over tiles of `per_tile` items.

    With several tiles, tiles overlap one another's IO, decode and copies: the phases
    of a batch, pipelined tile by tile. At most `in_flight` tiles (default `threads`)
    run at once, which bounds memory to `in_flight * per_tile` items; each gets
    `threads // in_flight` threads for its own phases; with one tile per thread, each
    thread works through a contiguous block of tiles (`_Blocks`). One tile runs on the
    calling thread with every thread.
    """
    if n <= 0:
        return
    per_tile = max(1, per_tile)
    bounds = [*range(0, n, per_tile), n]
    tiles = list(itertools.pairwise(bounds))
    limit = max(1, min(in_flight or threads, threads))
    if len(tiles) == 1 or limit == 1:
        for lo, hi in tiles:
            fn(lo, hi, threads)
        return
    pool = _get_pool(threads)
    if limit == threads:
        blocks = _Blocks(len(tiles), min(threads, len(tiles)))

        def block(k: int) -> None:
            while (t := blocks.take(k)) is not None:
                fn(*tiles[t], 1)

        futures = [pool.submit(block, k) for k in range(blocks.lanes)]
        starts = [(block, k) for k in range(blocks.lanes)]
    else:
        lanes = min(limit, len(tiles))
        inner = max(1, threads // lanes)

        def lane(k: int) -> None:
            """Tiles k, k + lanes, ...: a lane holds one tile at a time."""
            for lo, hi in tiles[k::lanes]:
                fn(lo, hi, inner)

        futures = [pool.submit(lane, k) for k in range(lanes)]
        starts = [(lane, k) for k in range(lanes)]
    # a lane no pool thread has started runs here (see map_ranges); then wait for the rest
    here = [_run_here(*start) if f.cancel() else None
            for f, start in zip(futures, starts, strict=True)]
    errors = [e if f.cancelled() else f.exception()
              for f, e in zip(futures, here, strict=True)]
    for error in errors:
        if error is not None:
            raise error


class _Blocks:
    """Tiles 0..n-1 cut into one contiguous block per lane. A lane takes its own block
    front to back, then steals from the back of the fullest other block.

    Contiguous blocks keep the threads in different parts of the output: on a fresh
    output array the first touch of every page zeroes it in the kernel, and threads
    faulting the same (huge) pages wait on one another; interleaved tiles cost a read
    of 256 MiB in 4 MiB chunks about 10 ms of 160 here.
    """

    def __init__(self, n: int, lanes: int) -> None:
        self.lanes = lanes
        cuts = [n * k // lanes for k in range(lanes + 1)]
        self._next = cuts[:-1]
        self._end = cuts[1:]
        self._lock = threading.Lock()

    def take(self, k: int) -> int | None:
        with self._lock:
            if self._next[k] < self._end[k]:
                self._next[k] += 1
                return self._next[k] - 1
            left = [self._end[j] - self._next[j] for j in range(self.lanes)]
            j = max(range(self.lanes), key=left.__getitem__)
            if left[j] <= 0:
                return None
            self._end[j] -= 1
            return self._end[j]


def split_on(
    errors: tuple[type[BaseException], ...],
    fn: Callable[[int, int, int], None],
    too_big: Callable[[int, BaseException], BaseException],
) -> Callable[[int, int, int], None]:
    """`fn` over [lo, hi), halved and retried on one of `errors` (device memory).

    A single item that still fails raises `too_big(index, error)`. Safe for work that
    may run twice (reads write disjoint parts of their output). The halves are kept on a
    stack, not retried by recursion: a closure that calls itself is a reference cycle, and
    it would keep `fn`'s closure (a read's output, a write's value) alive after the call
    until Python's cyclic collector ran, so a loop of large reads held two outputs at once
    and each read faulted in fresh pages instead of reusing the ones just freed.
    """

    def run(lo: int, hi: int, threads: int) -> None:
        pending = [(lo, hi)]
        while pending:
            lo, hi = pending.pop()
            try:
                fn(lo, hi, threads)
            except errors as e:
                if hi - lo <= 1:
                    raise too_big(lo, e) from e
                mid = (lo + hi) // 2
                pending += [(mid, hi), (lo, mid)]

    return run
