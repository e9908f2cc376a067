"""Which patches an epoch reads, in which order, on which rank.

The rules are torch's: an epoch's order is a function of (seed, epoch) only, so every
rank computes the same global order and takes its own share (DistributedSampler:
rank r takes items r, r + world_size, ...; the order is padded with its own first
items to a multiple of world_size, or cut to one with drop_last), so all ranks run
the same number of steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["EpochPlan", "grid_starts", "random_starts"]


def random_starts(rng: np.random.Generator, n: int, array_shape: tuple[int, ...],
                  patch_shape: tuple[int, ...]) -> np.ndarray:
    """n starts uniform over every start whose patch lies inside the array."""
    high = np.asarray(array_shape, dtype=np.int64) - np.asarray(patch_shape, dtype=np.int64)
    if (high < 0).any():
        raise ValueError(f"patch shape {patch_shape} does not fit in array shape {array_shape}")
    return rng.integers(0, high + 1, size=(n, len(array_shape)), dtype=np.int64)


def grid_starts(array_shape: tuple[int, ...], patch_shape: tuple[int, ...],
                step: tuple[int, ...]) -> np.ndarray:
    """Every start on the grid of `step` (the chunk shape) whose patch lies inside the
    array, in C order."""
    axes = []
    for size, patch, stride in zip(array_shape, patch_shape, step, strict=True):
        if patch > size:
            raise ValueError(f"patch shape {patch_shape} does not fit in array shape "
                             f"{array_shape}")
        axes.append(np.arange(0, size - patch + 1, max(1, stride), dtype=np.int64))
    grids = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1).reshape(-1, len(array_shape))


@dataclass(frozen=True)
class EpochPlan:
    """One rank's share of one epoch, as batches of patch starts."""

    starts: np.ndarray  # (k, ndim): this rank's starts, in reading order
    batch_size: int
    drop_last: bool

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.starts) // self.batch_size
        return math.ceil(len(self.starts) / self.batch_size)

    def batch(self, i: int) -> np.ndarray:
        return self.starts[i * self.batch_size : (i + 1) * self.batch_size]


def share(order: np.ndarray, rank: int, world_size: int, drop_last: bool) -> np.ndarray:
    """Rank `rank`'s items of a global order (DistributedSampler's rule)."""
    total = len(order)
    if drop_last:
        per_rank = total // world_size
        order = order[: per_rank * world_size]
    else:
        per_rank = math.ceil(total / world_size) if total else 0
        padding = per_rank * world_size - total
        if padding:  # the first items again, round and round for a tiny epoch
            order = np.concatenate([order, order[np.arange(padding) % total]])
    return order[rank : per_rank * world_size : world_size]
