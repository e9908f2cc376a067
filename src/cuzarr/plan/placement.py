"""Where a partial write puts the new inner chunks of a stored shard (the layout rules of
docs/partial-writes.md), as byte ranges to write into the shard and its new index table.

- An inner chunk whose new encoding is no longer than its current slot goes into that slot
  (always so for fixed-size chains).
- Any other is appended where the shard's chunk data ends: after the data where the index
  is at the start (at the file's end), over the old index where it is at the end, which is
  then written after the appended chunks, so the file still ends with its index.
- An inner chunk that became the fill value loses its entry; its slot becomes dead bytes.
- Dead bytes are the file's bytes that no entry and not the index cover. A write that would
  leave more than `max_dead` of the file dead, or a shard whose entries overlap each other
  or reach outside its chunk data (a layout no cuzarr or zarr write makes), is rewritten
  whole instead: no slot is written that another entry may still point into.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cuzarr.batch import join_bytes
from cuzarr.plan.shard import EMPTY, stored_entries

__all__ = ["Placement", "place"]


@dataclass
class Placement:
    """What one partial write of one shard does. kind: "ranges" (write `ranges`),
    "rewrite" (write the shard whole), or "delete" (no inner chunk is left)."""

    kind: str
    ranges: list[tuple[int, Any]]
    table: np.ndarray | None  # the new (n_inner, 2) uint64 index table, for "ranges"
    file_size: int  # the shard's size after the write, for "ranges"


def _live_entries_disjoint(offsets: np.ndarray, lengths: np.ndarray, lo: int,
                           hi: int) -> bool:
    """True when every live entry lies in [lo, hi) and no two overlap."""
    if not offsets.size:
        return True
    if int(offsets.min()) < lo or int((offsets + lengths).max()) > hi:
        return False
    order = np.argsort(offsets, kind="stable")
    ends = (offsets + lengths)[order]
    return bool((ends[:-1] <= offsets[order][1:]).all())


def place(table: np.ndarray, file_size: int, index_nbytes: int, index_at_start: bool,
          ids: np.ndarray, new: list[Any], order: np.ndarray, encode_index: Any,
          max_dead: float) -> Placement:
    """Plan the write of inner chunks `ids` (flat, distinct) with their new encodings `new`
    (None: the chunk is now empty) into a stored shard of `file_size` bytes whose index
    table (n_inner, 2) is `table`. `order`: zarr's layout order of the inner chunks (the
    order appended chunks take); encode_index(table) -> the index's bytes."""
    rewrite = Placement("rewrite", [], None, 0)
    table = np.array(table, dtype=np.uint64, copy=True)
    present = stored_entries(table)
    lo = index_nbytes if index_at_start else 0
    hi = file_size if index_at_start else file_size - index_nbytes
    if hi < lo:
        return rewrite
    offsets = table[present, 0]
    lengths = table[present, 1]
    limit = np.uint64(1 << 62)
    if (offsets >= limit).any() or (lengths >= limit).any():
        return rewrite
    if not _live_entries_disjoint(offsets.astype(np.int64), lengths.astype(np.int64), lo, hi):
        return rewrite

    ranges: list[tuple[int, Any]] = []
    appended: list[tuple[int, Any]] = []  # (position in zarr's order, bytes)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    for j, data in zip(ids.tolist(), new, strict=True):
        if data is None:
            table[j] = EMPTY
            continue
        size = len(data)
        if present[j] and size <= int(table[j, 1]):
            offset = int(table[j, 0])
            ranges.append((offset, data))
            table[j] = (offset, size)
        else:
            appended.append((int(rank[j]), j, data))
    live = stored_entries(table)
    if not live.any() and not appended:
        return Placement("delete", [], None, 0)

    at = hi
    tail: list[Any] = []
    for _, j, data in sorted(appended, key=lambda a: a[0]):
        table[j] = (at, len(data))
        tail.append(data)
        at += len(data)
    index = encode_index(table)
    if index_at_start:
        ranges.append((0, index))
        end = at
    else:
        tail.append(index)
        end = at + len(index)
    if appended or not index_at_start:
        ranges.append((hi, join_bytes(tail)))

    live = stored_entries(table)
    dead = end - index_nbytes - int(table[live, 1].astype(np.int64).sum())
    if end and dead > max_dead * end:
        return rewrite
    return Placement("ranges", ranges, table, end)
