"""Many boxes of one shape as one read: which chunk parts go to which patch.

A training step reads n patches; neighbouring patches share chunks. Planning them
together lists every (patch, chunk) overlap once, vectorized over all patches, and
names each chunk once however many patches touch it, so the read fetches and decodes
it once and copies its parts to every patch (`Fanout`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Fanout", "PatchPairs", "ShardFanout", "boxes", "check_patches", "patch_pairs",
           "shard_order"]


def check_patches(starts: Any, shape: Sequence[int], array_shape: tuple[int, ...]
                  ) -> tuple[np.ndarray, tuple[int, ...]]:
    """`starts` as an (n, ndim) int64 array and `shape` as a tuple, both checked: every
    patch must lie inside the array (IndexError naming the first that does not)."""
    ndim = len(array_shape)
    box = tuple(int(s) for s in shape)
    if len(box) != ndim:
        raise ValueError(f"patch shape {box} has {len(box)} dimensions; the array has {ndim}")
    if any(s < 0 for s in box):
        raise ValueError(f"patch shape {box} has a negative extent")
    raw = np.asarray(starts)
    if raw.size == 0:
        raw = raw.reshape(0, ndim)
    if raw.ndim != 2 or raw.shape[1] != ndim:
        raise ValueError(f"starts must be an (n, {ndim}) array of integers, not shape "
                         f"{raw.shape}")
    if raw.dtype.kind not in "iu":
        if raw.dtype.kind == "b" or (raw.size and not np.array_equal(raw, np.round(raw))):
            raise TypeError(f"starts must be integers, not {raw.dtype}")
        raw = raw.astype(np.int64)
    if raw.dtype.kind == "u" and raw.size and int(raw.max()) > np.iinfo(np.int64).max:
        bad = int(np.flatnonzero((raw > np.iinfo(np.int64).max).any(axis=1))[0])
        raise IndexError(_outside(bad, raw[bad], box, array_shape))
    found = raw.astype(np.int64)
    limit = np.asarray(array_shape, dtype=np.int64) - np.asarray(box, dtype=np.int64)
    bad = np.flatnonzero(((found < 0) | (found > limit)).any(axis=1)) if found.size else []
    if len(bad):
        raise IndexError(_outside(int(bad[0]), found[bad[0]], box, array_shape))
    return np.ascontiguousarray(found), box


def _outside(i: int, start: np.ndarray, box: tuple[int, ...], array_shape: tuple[int, ...]
             ) -> str:
    corner = tuple(int(s) for s in start)
    return (f"patch {i} (start {corner}, shape {box}) lies outside the array of shape "
            f"{array_shape}")


@dataclass(frozen=True)
class PatchPairs:
    """Every overlap of a patch with a chunk, sorted by chunk (then patch).

    `chunk_coords` lists the touched chunks once each; pair i copies elements
    [lo[i], hi[i]) of chunk `chunk[i]` to [at[i], at[i] + hi[i] - lo[i]) of patch
    `patch[i]`.
    """

    chunk_coords: np.ndarray  # (u, ndim) grid coordinates of each touched chunk
    chunk: np.ndarray  # (p,) index into chunk_coords, ascending
    patch: np.ndarray  # (p,)
    lo: np.ndarray  # (p, ndim)
    hi: np.ndarray  # (p, ndim)
    at: np.ndarray  # (p, ndim)

    def union(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each (u, ndim): the box of each chunk that some patch needs."""
        if not len(self.chunk):
            empty = np.zeros((0, self.lo.shape[1]), dtype=np.int64)
            return empty, empty
        first = np.flatnonzero(np.r_[True, self.chunk[1:] != self.chunk[:-1]])
        return (np.minimum.reduceat(self.lo, first, axis=0),
                np.maximum.reduceat(self.hi, first, axis=0))

    def chunk_selections(self) -> list[tuple[slice, ...]]:
        return boxes(self.lo, self.hi)

    def out_selections(self) -> list[tuple[Any, ...]]:
        """Each pair's target in the (n, *shape) result: (patch, slices...)."""
        return [(p, *box) for p, box in zip(self.patch.tolist(),
                                            boxes(self.at, self.at + self.hi - self.lo),
                                            strict=True)]


def boxes(lo: np.ndarray, hi: np.ndarray) -> list[tuple[slice, ...]]:
    """Row i as a tuple of slices lo[i, d]:hi[i, d] (built a dimension at a time: a
    64-patch read has ~10^3 of them, and a Python loop per box costs a tenth of it)."""
    columns = [map(slice, lo[:, d].tolist(), hi[:, d].tolist()) for d in range(lo.shape[1])]
    if not columns:
        return [()] * len(lo)
    return list(zip(*columns, strict=True))


def patch_pairs(starts: np.ndarray, shape: tuple[int, ...], chunk_shape: tuple[int, ...],
                order_key: Any = None) -> PatchPairs:
    """The (patch, chunk) overlaps of boxes `shape` at `starts` on a regular grid of
    `chunk_shape`. Chunks are numbered, and pairs sorted, by `order_key(coords)` (an
    int64 per chunk: the default is C order over coordinates), so a caller can make
    the chunks of one shard consecutive."""
    n, ndim = starts.shape
    chunk = np.asarray(chunk_shape, dtype=np.int64)
    size = np.asarray(shape, dtype=np.int64)
    if n == 0 or int(size.prod()) == 0:
        zeros = np.zeros((0, ndim), dtype=np.int64)
        return PatchPairs(zeros, np.zeros(0, np.int64), np.zeros(0, np.int64), zeros, zeros,
                          zeros)
    first = starts // chunk
    counts = (starts + size - 1) // chunk - first + 1  # (n, ndim)
    most = counts.max(axis=0)
    steps = np.indices(tuple(int(k) for k in most)).reshape(ndim, -1).T  # (m, ndim)
    valid = (steps[None, :, :] < counts[:, None, :]).all(axis=2)  # (n, m)
    patch, step = np.nonzero(valid)
    coords = first[patch] + steps[step]
    origin = coords * chunk
    lo = np.maximum(starts[patch] - origin, 0)
    hi = np.minimum(starts[patch] + size - origin, chunk)
    at = origin + lo - starts[patch]
    if order_key is None:
        extent = coords.max(axis=0) + 1
        key = np.ravel_multi_index(tuple(coords.T), tuple(int(e) for e in extent))
    else:
        key = np.asarray(order_key(coords), dtype=np.int64)
    order = np.lexsort((patch, key))
    key, patch = key[order], patch[order]
    unique, first_of, inverse = np.unique(key, return_index=True, return_inverse=True)
    del unique
    coords = coords[order]
    return PatchPairs(coords[first_of], inverse.astype(np.int64), patch.astype(np.int64),
                      lo[order], hi[order], at[order])


@dataclass(frozen=True)
class Fanout:
    """Decoded chunks copied to several places: pair i copies `chunk_sels[i]` of the
    job's chunk `source[i]` (ascending) to `out_sels[i]` of the output."""

    source: np.ndarray
    chunk_sels: list[tuple[slice, ...]]
    out_sels: list[tuple[Any, ...]]

    @classmethod
    def of(cls, pairs: PatchPairs) -> Fanout:
        return cls(pairs.chunk, pairs.chunk_selections(), pairs.out_selections())

    def within(self, lo: int, hi: int) -> tuple[int, int]:
        """The pairs [a, b) whose chunk lies in the job's chunks [lo, hi)."""
        a, b = np.searchsorted(self.source, [lo, hi])
        return int(a), int(b)


@dataclass(frozen=True)
class ShardFanout(Fanout):
    """A `Fanout` over inner chunks of shards: inner chunk j is `inner_id[j]` (C order in
    its shard) of the job's shard `inner_shard[j]` (ascending); `rows[j]` the [first,
    stop) leading-axis rows of it that some patch needs (for partial decodes)."""

    inner_shard: np.ndarray = None  # type: ignore[assignment]
    inner_id: np.ndarray = None  # type: ignore[assignment]
    rows: np.ndarray = None  # type: ignore[assignment]

    def inner_within(self, lo: int, hi: int) -> tuple[int, int]:
        """The inner chunks [a, b) of the job's shards [lo, hi)."""
        a, b = np.searchsorted(self.inner_shard, [lo, hi])
        return int(a), int(b)


def shard_order(shard_shape: tuple[int, ...], inner_shape: tuple[int, ...],
                grid_shape: tuple[int, ...]) -> Any:
    """An `order_key` for inner-chunk coordinates that numbers shards in C order, and
    the inner chunks of each shard in C order after it (shard by shard)."""
    per_shard = tuple(s // i for s, i in zip(shard_shape, inner_shape, strict=True))
    n_inner = math.prod(per_shard)

    def key(coords: np.ndarray) -> np.ndarray:
        cps = np.asarray(per_shard, dtype=np.int64)
        shard = np.ravel_multi_index(tuple((coords // cps).T), grid_shape)
        local = np.ravel_multi_index(tuple((coords % cps).T), per_shard)
        return shard.astype(np.int64) * n_inner + local

    return key
