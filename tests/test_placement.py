"""plan.placement: the layout rules of partial shard writes, on index tables alone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cuzarr.plan.placement import place
from cuzarr.plan.shard import EMPTY

N = 8  # inner chunks
INDEX = N * 16 + 4
ORDER = np.arange(N)


def _index(table: np.ndarray) -> bytes:
    return np.ascontiguousarray(table, dtype="<u8").tobytes() + b"\0\0\0\0"


def _table(entries: dict[int, tuple[int, int]]) -> np.ndarray:
    table = np.full((N, 2), EMPTY, dtype=np.uint64)
    for j, (offset, size) in entries.items():
        table[j] = (offset, size)
    return table


def _packed(sizes: dict[int, int], at_start: bool) -> tuple[np.ndarray, int]:
    """A table laid out as zarr lays one out, and the shard's size."""
    at = INDEX if at_start else 0
    entries = {}
    for j in sorted(sizes):
        entries[j] = (at, sizes[j])
        at += sizes[j]
    return _table(entries), at + (0 if at_start else INDEX)


def _apply(blob: bytearray, ranges: list) -> bytearray:
    for offset, data in ranges:
        end = offset + len(data)
        if end > len(blob):
            blob.extend(bytes(end - len(blob)))
        blob[offset:end] = bytes(data)
    return blob


@pytest.mark.parametrize("at_start", [False, True])
def test_a_chunk_that_fits_goes_into_its_slot(at_start: bool) -> None:
    table, size = _packed({j: 100 for j in range(N)}, at_start)
    plan = place(table, size, INDEX, at_start, np.array([3]), [b"x" * 100], ORDER, _index, 0.5)
    assert plan.kind == "ranges" and plan.file_size == size
    assert (int(table[3, 0]), b"x" * 100) in [
        (o, bytes(d)) for o, d in plan.ranges]
    assert plan.table is not None and plan.table[3].tolist() == table[3].tolist()
    # the slot, and the index where it is: nothing else
    written = sum(len(d) for _, d in plan.ranges)
    assert written == 100 + INDEX


@pytest.mark.parametrize("at_start", [False, True])
def test_a_chunk_that_grows_is_appended_and_the_file_ends_with_its_index(at_start: bool) -> None:
    table, size = _packed({j: 100 for j in range(N)}, at_start)
    plan = place(table, size, INDEX, at_start, np.array([2, 5]), [b"a" * 150, b"b" * 90],
                 ORDER, _index, 0.9)
    assert plan.kind == "ranges" and plan.table is not None
    data_end = size if at_start else size - INDEX
    assert plan.table[2].tolist() == [data_end, 150]  # after the data
    assert plan.table[5].tolist() == [int(table[5, 0]), 90]  # its own slot, shorter
    assert plan.file_size == size + 150
    blob = _apply(bytearray(size), plan.ranges)
    assert len(blob) == plan.file_size
    index = bytes(blob[:INDEX]) if at_start else bytes(blob[-INDEX:])
    assert index == _index(plan.table)
    assert bytes(blob[data_end : data_end + 150]) == b"a" * 150


def test_appended_chunks_take_zarrs_order() -> None:
    table, size = _packed({0: 10}, False)
    order = np.array([7, 6, 5, 4, 3, 2, 1, 0])
    plan = place(table, size, INDEX, False, np.array([1, 6]), [b"1" * 5, b"6" * 5], order,
                 _index, 0.9)
    assert plan.table is not None and int(plan.table[6, 0]) < int(plan.table[1, 0])


def test_a_chunk_that_became_fill_loses_its_entry_and_the_last_one_deletes_the_shard() -> None:
    table, size = _packed({1: 50, 4: 50}, False)
    plan = place(table, size, INDEX, False, np.array([4]), [None], ORDER, _index, 0.9)
    assert plan.kind == "ranges" and plan.table is not None
    assert plan.table[4].tolist() == [int(EMPTY), int(EMPTY)]
    assert plan.table[1].tolist() == table[1].tolist()
    gone = place(table, size, INDEX, False, np.array([1, 4]), [None, None], ORDER, _index, 0.9)
    assert gone.kind == "delete"


def test_a_write_past_the_dead_fraction_rewrites_the_shard() -> None:
    table, size = _packed({j: 100 for j in range(N)}, False)
    # every chunk grows and moves: 800 dead bytes of 1740 (0.46)
    first = place(table, size, INDEX, False, np.arange(N), [b"z" * 101] * N, ORDER, _index,
                  0.5)
    assert first.kind == "ranges" and first.table is not None
    # again: 1608 dead of 2556 (0.63), past a half: the shard is rewritten (compacted)
    second = place(first.table, first.file_size, INDEX, False, np.arange(N), [b"y" * 102] * N,
                   ORDER, _index, 0.5)
    assert second.kind == "rewrite"
    assert place(first.table, first.file_size, INDEX, False, np.arange(N), [b"y" * 102] * N,
                 ORDER, _index, 0.7).kind == "ranges"


def test_entries_that_overlap_or_reach_outside_the_data_are_never_patched() -> None:
    overlapping = _table({0: (0, 100), 1: (50, 100)})
    plan = place(overlapping, 200 + INDEX, INDEX, False, np.array([0]), [b"q" * 10], ORDER,
                 _index, 0.9)
    assert plan.kind == "rewrite"
    into_index = _table({0: (0, 100), 1: (100, 100 + INDEX)})
    plan = place(into_index, 200 + INDEX, INDEX, False, np.array([0]), [b"q" * 10], ORDER,
                 _index, 0.9)
    assert plan.kind == "rewrite"
    shared_ok = _table({0: (0, 100), 1: (100, 100)})
    assert place(shared_ok, 200 + INDEX, INDEX, False, np.array([0]), [b"q" * 10], ORDER,
                 _index, 0.9).kind == "ranges"


def test_ranges_never_overlap() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        at_start = bool(rng.integers(2))
        sizes = {int(j): int(rng.integers(1, 64)) for j in rng.choice(N, 5, replace=False)}
        table, size = _packed(sizes, at_start)
        ids = rng.choice(N, int(rng.integers(1, N + 1)), replace=False)
        new = [None if rng.random() < 0.2 else b"n" * int(rng.integers(1, 80)) for _ in ids]
        plan = place(table, size, INDEX, at_start, ids, new, ORDER, _index, 1.0)
        if plan.kind != "ranges":
            continue
        spans = sorted((o, o + len(d)) for o, d in plan.ranges)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
        blob = _apply(bytearray(size), plan.ranges)
        assert plan.table is not None
        for j, data in zip(ids.tolist(), new, strict=True):
            if data is not None:
                off, n = (int(v) for v in plan.table[j])
                assert bytes(blob[off : off + n]) == data
