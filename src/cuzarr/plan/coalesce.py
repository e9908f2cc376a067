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
    """Merge ranges of the same key whose gap is at most `max_gap_bytes`.

    A merged group is also cut where it would grow past `max_bytes` (at the first
    range starting beyond a `max_bytes` boundary of the group, so one group may
    exceed the limit by at most one range). This mirrors zarr's
    `sharding_coalesce_*` settings.
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
    new = np.ones(n, dtype=bool)
    new[1:] = (k[1:] != k[:-1]) | ((s[1:] - reach[:-1]) > max_gap_bytes)
    gap_group = np.cumsum(new) - 1
    group_first = np.flatnonzero(new)
    within = (s - s[group_first][gap_group]) // max(1, max_bytes)
    split = np.ones(n, dtype=bool)
    split[1:] = (gap_group[1:] != gap_group[:-1]) | (within[1:] != within[:-1])
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
