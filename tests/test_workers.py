"""The host thread pool helpers: every item runs exactly once, errors propagate, and
tiles run in contiguous blocks per thread."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cuzarr.workers import _Blocks, map_ranges, run_tiles


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 200), threads=st.integers(1, 6), min_items=st.integers(1, 40))
def test_map_ranges_covers_every_item_once(n: int, threads: int, min_items: int) -> None:
    seen = [0] * n
    lock = threading.Lock()

    def fn(lo: int, hi: int) -> None:
        with lock:
            for i in range(lo, hi):
                seen[i] += 1

    map_ranges(fn, n, threads, min_items=min_items)
    assert seen == [1] * n


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300), per_tile=st.integers(1, 50), threads=st.integers(1, 6),
    in_flight=st.one_of(st.none(), st.integers(1, 6)),
)
def test_run_tiles_covers_every_item_once(
    n: int, per_tile: int, threads: int, in_flight: int | None
) -> None:
    seen = [0] * n
    inner: list[int] = []
    lock = threading.Lock()

    def fn(lo: int, hi: int, inner_threads: int) -> None:
        assert 0 <= lo < hi <= n and hi - lo <= per_tile
        with lock:
            inner.append(inner_threads)
            for i in range(lo, hi):
                seen[i] += 1

    run_tiles(fn, n, per_tile, threads, in_flight)
    assert seen == [1] * n
    assert all(1 <= t <= threads for t in inner)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 100), lanes=st.integers(1, 8), order=st.randoms())
def test_blocks_hand_out_each_tile_once_in_any_interleaving(n: int, lanes: int, order) -> None:
    lanes = min(lanes, n)
    blocks = _Blocks(n, lanes)
    taken: list[int] = []
    active = list(range(lanes))
    while active:
        k = order.choice(active)
        t = blocks.take(k)
        if t is None:
            active.remove(k)
        else:
            taken.append(t)
    assert sorted(taken) == list(range(n))


def test_blocks_keep_each_lane_in_its_own_block_then_steal_from_the_back() -> None:
    blocks = _Blocks(10, 2)
    assert [blocks.take(0) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert blocks.take(1) == 5
    # lane 0 is done with its block: it steals lane 1's last tiles, lane 1 keeps its front
    assert blocks.take(0) == 9
    assert blocks.take(1) == 6
    assert blocks.take(0) == 8
    assert blocks.take(1) == 7
    assert blocks.take(0) is None and blocks.take(1) is None


def test_run_tiles_gives_each_thread_a_contiguous_run_of_tiles() -> None:
    """Two threads over 8 even tiles: without stealing, each thread's tiles form one
    contiguous run (so threads write different parts of the output)."""
    gate = threading.Barrier(2)
    by_thread: dict[int, list[int]] = {}
    lock = threading.Lock()

    def fn(lo: int, hi: int, inner_threads: int) -> None:
        with lock:
            first = threading.get_ident() not in by_thread
            by_thread.setdefault(threading.get_ident(), []).append(lo)
        if first:
            gate.wait(timeout=10)  # both lanes start before either can steal

    run_tiles(fn, 8, 1, 2)
    runs = sorted(sorted(v) for v in by_thread.values())
    assert len(runs) == 2
    assert sorted(runs[0] + runs[1]) == list(range(8))
    for run in runs:
        assert run == list(range(run[0], run[0] + len(run)))


def test_run_tiles_raises_a_tiles_error() -> None:
    def fn(lo: int, hi: int, inner_threads: int) -> None:
        if lo == 5:
            raise ValueError("tile 5")

    with pytest.raises(ValueError, match="tile 5"):
        run_tiles(fn, 8, 1, 2)
