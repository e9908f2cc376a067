"""Coalesce byte ranges per key into fewer reads, on numpy arrays (no object per range)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ReadPlan", "coalesce"]

@dataclass(frozen=True)
class ReadPlan:
    """Groups to read, and where each requested range lands in the slab."""

    group_key: np.ndarray  # key index of each group
    group_start: np.ndarray  # byte offset in the key
    group_size: np.ndarray
    group_slab_offset: np.ndarray  # where the group lands in the slab
    member_slab_offset: np.ndarray  # per requested range, in request order
    member_group: np.ndarray  # per requested range: the group it is read in
    slab_nbytes: int


def coalesce(
    key_index: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    *,
    max_gap_bytes: int,
    max_bytes: int,
) -> ReadPlan:
    """Merge ranges of the same key as zarr's `coalesce_ranges` merges them (its
    `sharding_coalesce_*` settings): in order of start, a range joins the group before it
    when the gap from the group's end is at most `max_gap_bytes` and the group would then
    span at most `max_bytes`. Starts and ends must lie in [0, 2**62].

    The gap rule runs over the whole batch in numpy; only groups that would span more
    than `max_bytes` (16 MiB by default) are walked range by range, as zarr walks them.
    """
    n = len(starts)
    key_index = np.asarray(key_index, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return ReadPlan(empty, empty, empty, empty, empty, empty, 0)
    order = np.lexsort((starts, key_index))
    k, s = key_index[order], starts[order]
    e = s + sizes[order]
    # reach[i]: the furthest end of ranges 0..i of i's key. Ends are ranked key by key, so
    # a running maximum of ranks never carries one key's ends into the next key's ranges
    by_end = np.lexsort((e, k))
    rank = np.empty(n, dtype=np.int64)
    rank[by_end] = np.arange(n)
    reach = e[by_end][np.maximum.accumulate(rank)]
    split = np.ones(n, dtype=bool)
    split[1:] = (k[1:] != k[:-1]) | ((s[1:] - reach[:-1]) > max_gap_bytes)
    firsts = np.flatnonzero(split)
    span = np.maximum.reduceat(e, firsts) - s[firsts]
    bounds = np.append(firsts, n)
    for g in np.flatnonzero(span > max_bytes).tolist():
        _walk(s, e, int(bounds[g]), int(bounds[g + 1]), split, max_gap_bytes, max_bytes)
    group = np.cumsum(split) - 1
    firsts = np.flatnonzero(split)
    n_groups = len(firsts)
    g_start = s[firsts]
    g_end = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(g_end, group, e)
    g_size = g_end - g_start
    g_slab = np.zeros(n_groups, dtype=np.int64)
    if n_groups > 1:
        np.cumsum(g_size[:-1], out=g_slab[1:])
    member = np.empty(n, dtype=np.int64)
    member[order] = g_slab[group] + (s - g_start[group])
    member_group = np.empty(n, dtype=np.int64)
    member_group[order] = group
    return ReadPlan(
        group_key=k[firsts],
        group_start=g_start,
        group_size=g_size,
        group_slab_offset=g_slab,
        member_slab_offset=member,
        member_group=member_group,
        slab_nbytes=int(g_size.sum()),
    )


def _walk(s: np.ndarray, e: np.ndarray, lo: int, hi: int, split: np.ndarray, max_gap: int,
          max_bytes: int) -> None:
    """Ranges lo..hi-1 (sorted, one key) grouped range by range, zarr's way: `split[i]`
    says range i starts a group."""
    start, end = int(s[lo]), int(e[lo])
    for i in range(lo + 1, hi):
        si, ei = int(s[i]), int(e[i])
        if si - end <= max_gap and max(end, ei) - start <= max_bytes:
            split[i] = False
            end = max(end, ei)
        else:
            split[i] = True
            start, end = si, ei
