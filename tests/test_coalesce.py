"""cuzarr's vectorized coalescing groups byte ranges exactly as zarr's `coalesce_ranges`
does (the reads a partial shard read makes, and the bytes each group holds)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.abc.store import RangeByteRequest
from zarr.core._coalesce import coalesce_ranges

from cuzarr.plan.coalesce import coalesce

_RANGE = st.tuples(st.integers(0, 3), st.integers(0, 5000), st.integers(0, 700))


@settings(max_examples=400, deadline=None)
@given(ranges=st.lists(_RANGE, min_size=1, max_size=40), gap=st.integers(0, 600),
       most=st.integers(1, 3000))
def test_groups_are_zarrs(ranges: list[tuple[int, int, int]], gap: int, most: int) -> None:
    keys = np.array([r[0] for r in ranges], dtype=np.int64)
    starts = np.array([r[1] for r in ranges], dtype=np.int64)
    sizes = np.array([r[2] for r in ranges], dtype=np.int64)
    plan = coalesce(keys, starts, sizes, max_gap_bytes=gap, max_bytes=most)
    ours = {}
    for i in range(len(ranges)):
        ours.setdefault(int(plan.member_group[i]), set()).add(i)
    theirs = []
    for key in sorted(set(keys.tolist())):
        idx = np.flatnonzero(keys == key)
        requests = [RangeByteRequest(int(starts[i]), int(starts[i] + sizes[i])) for i in idx]
        groups, _ = coalesce_ranges(requests, max_gap_bytes=gap, max_coalesced_bytes=most)
        theirs += [{int(idx[j]) for j, _ in group} for group in groups]
    assert sorted(map(sorted, ours.values())) == sorted(map(sorted, theirs))
    # every range lies inside its group's bytes, at its place in the slab
    for i in range(len(ranges)):
        g = int(plan.member_group[i])
        assert plan.group_key[g] == keys[i]
        assert plan.group_start[g] <= starts[i]
        assert starts[i] + sizes[i] <= plan.group_start[g] + plan.group_size[g]
        assert plan.member_slab_offset[i] == (plan.group_slab_offset[g] + starts[i]
                                              - plan.group_start[g])
