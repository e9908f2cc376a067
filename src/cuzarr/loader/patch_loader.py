"""`PatchLoader`: random (or given, or every chunk-aligned) patches of zarr arrays, in
batches, read ahead on a background thread, each batch one `read_patches` job."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from cuzarr.errors import ConfigError
from cuzarr.loader.handoff import CpuHandoff, CudaHandoff
from cuzarr.loader.producer import Producer
from cuzarr.loader.sampling import EpochPlan, grid_starts, random_starts, share
from cuzarr.patch_reads import _async_array, read_patches
from cuzarr.plan.patches import check_patches

__all__ = ["PatchLoader"]

_OUTPUTS = {"cpu": ("torch", "numpy"), "cuda": ("torch", "cupy")}


class PatchLoader:
    """Batches of patches of one zarr array, or of several read at the same coordinates.

    `arrays` is a zarr array or a tuple (inputs, targets, ...); an array with fewer
    dimensions than the first is read at the leading coordinates of each patch (a label
    per leading index, say), with the leading part of `patch_shape`. An epoch is, in
    this order of precedence: the explicit `starts` (an (n, ndim) array; shuffled each
    epoch when `shuffle`), `samples_per_epoch` uniformly random starts (default: as many
    as the array holds whole patches), or, with `shuffle=False`, every patch whose start
    lies on the chunk grid (inner chunks for sharded arrays), in C order.

    The order of an epoch depends on `seed` and the epoch only: call `set_epoch` at the
    start of each epoch, as with torch's DistributedSampler, or every epoch repeats the
    first. `rank` and `world_size` default to torch.distributed's where it is
    initialised: each rank then reads its own share, and all ranks the same number of
    batches (the epoch is padded with its own first patches to a multiple of
    world_size, or cut with `drop_last`, which also drops a last short batch).

    Iterating yields one batch per step, a tuple of batches for a tuple of arrays:
    torch tensors (`output="torch"`), numpy arrays on the cpu device (`"numpy"`), cupy
    arrays on the cuda device (`"cupy"`). `device="auto"` picks cuda where it can run.
    A background thread keeps `prefetch` batches ready (memory: prefetch + 1 batches);
    an error it meets is raised by the `next()` that would have returned that batch.
    `close()`, a `with` block, dropping the iterator, or interpreter exit stop it.
    """

    def __init__(self, arrays: Any, patch_shape: Sequence[int], batch_size: int, *,
                 samples_per_epoch: int | None = None, starts: Any = None,
                 shuffle: bool = True, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, drop_last: bool = False, prefetch: int = 2,
                 device: str = "auto", output: str = "torch",
                 pin_memory: bool = False) -> None:
        self._single = not isinstance(arrays, (tuple, list))
        self.arrays = (arrays,) if self._single else tuple(arrays)
        if not self.arrays:
            raise ValueError("PatchLoader needs at least one array")
        found = [_async_array(a) for a in self.arrays]
        self.shape = tuple(found[0].shape)
        self.patch_shape = tuple(int(s) for s in patch_shape)
        if len(self.patch_shape) != len(self.shape) or any(
                p < 1 or p > s for p, s in zip(self.patch_shape, self.shape, strict=True)):
            raise ValueError(f"patch shape {self.patch_shape} does not fit in the array's "
                             f"shape {self.shape} (each extent from 1 to the array's)")
        for other in found[1:]:
            lead = tuple(other.shape)
            if len(lead) > len(self.shape) or self.shape[: len(lead)] != lead:
                raise ValueError(f"array of shape {lead} is not read at the coordinates of "
                                 f"the first array (shape {self.shape}): its shape must be "
                                 "a leading part of the first's")
        self.dtypes = tuple(a.metadata.dtype.to_native_dtype() for a in found)
        self._ndims = tuple(len(a.shape) for a in found)
        self.batch_size = _positive("batch_size", batch_size)
        self.prefetch = _positive("prefetch", prefetch)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self._starts = None
        if starts is not None:
            self._starts, _ = check_patches(starts, self.patch_shape, self.shape)
        if samples_per_epoch is not None:
            samples_per_epoch = _positive("samples_per_epoch", samples_per_epoch)
        self.samples_per_epoch = samples_per_epoch
        self._grid_step = _read_unit(found[0])
        self.rank, self.world_size = _distributed(rank, world_size)
        self.device = _device(device)
        if output not in _OUTPUTS[self.device]:
            raise ConfigError(f"PatchLoader output={output!r} is not one of "
                              f"{_OUTPUTS[self.device]} on the {self.device} device")
        self.output = output
        if self.device == "cuda":
            self._handoff: Any = CudaHandoff(output)
        else:
            self._handoff = CpuHandoff(output, pin_memory)
        self.epoch = 0
        self._producer: Producer | None = None

    # -- the epoch ----------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads (its order, and its random starts)."""
        self.epoch = int(epoch)

    def epoch_starts(self, epoch: int | None = None) -> np.ndarray:
        """Every rank's starts of an epoch, in order (the same on every rank)."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch])
        if self._starts is not None:
            order = self._starts
            if self.shuffle:
                order = order[rng.permutation(len(order))]
            if self.samples_per_epoch is not None:
                order = order[: self.samples_per_epoch]
            return order
        if self.shuffle:
            n = self.samples_per_epoch or max(1, math.prod(
                s // p if p else s for s, p in zip(self.shape, self.patch_shape, strict=True)))
            return random_starts(rng, n, self.shape, self.patch_shape)
        order = grid_starts(self.shape, self.patch_shape, self._grid_step)
        return order if self.samples_per_epoch is None else order[: self.samples_per_epoch]

    def plan(self, epoch: int | None = None) -> EpochPlan:
        """This rank's batches of an epoch."""
        mine = share(self.epoch_starts(epoch), self.rank, self.world_size, self.drop_last)
        return EpochPlan(mine, self.batch_size, self.drop_last)

    def __len__(self) -> int:
        return len(self.plan())

    # -- iteration ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        self.close()
        plan = self.plan()
        read = _BatchReader(self.arrays, self.patch_shape, self._ndims, self.dtypes,
                            self.device, self._handoff, plan)
        producer = Producer(read, len(plan), self.prefetch)
        self._producer = producer
        return _Batches(producer, self._handoff, self._single)

    def close(self) -> None:
        """Stop reading ahead (the iteration in progress ends)."""
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def __enter__(self) -> PatchLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PatchLoader({len(self.arrays)} array(s) of shape {self.shape}, patches "
                f"{self.patch_shape}, batch_size={self.batch_size}, device={self.device!r}, "
                f"output={self.output!r}, rank {self.rank} of {self.world_size})")


class _BatchReader:
    """Batch i of a plan as arrays (the producer thread's work; no loader reference)."""

    def __init__(self, arrays: tuple[Any, ...], patch_shape: tuple[int, ...],
                 ndims: tuple[int, ...], dtypes: tuple[np.dtype, ...], device: str,
                 handoff: Any, plan: EpochPlan) -> None:
        self.arrays, self.patch_shape, self.ndims, self.dtypes = arrays, patch_shape, ndims, dtypes
        self.device, self.handoff, self.plan = device, handoff, plan

    def __call__(self, i: int) -> Any:
        starts = self.plan.batch(i)
        return self.handoff.make(lambda: self._read(starts))

    def _read(self, starts: np.ndarray) -> tuple[Any, ...]:
        """Into new arrays of the loader's device (they pick cuzarr's device, whatever
        zarr's GPU setting or cuzarr's `device` setting say elsewhere)."""
        xp: Any = np
        if self.device == "cuda":
            import cupy

            xp = cupy
        shapes = [self.patch_shape[:d] for d in self.ndims]
        outs = [xp.empty((len(starts), *s), dtype=t)
                for s, t in zip(shapes, self.dtypes, strict=True)]
        return tuple(read_patches(self.arrays, starts, shapes, out=outs))


class _Batches(Iterator[Any]):
    """One epoch's batches, as the consumer sees them."""

    def __init__(self, producer: Producer, handoff: Any, single: bool) -> None:
        self._producer, self._handoff, self._single = producer, handoff, single

    def __next__(self) -> Any:
        batch, ready = next(self._producer)
        batch = self._handoff.receive(batch, ready)
        return batch[0] if self._single else batch

    def close(self) -> None:
        self._producer.close()


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"PatchLoader {name} must be a positive integer, not {value!r}")
    return int(value)


def _read_unit(array: Any) -> tuple[int, ...]:
    """The chunk shape reads fetch and decode (zarr's `chunks`: inner chunks of a sharded
    array)."""
    return tuple(int(c) for c in array.chunks)


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size): as given, else torch.distributed's where initialised, else (0, 1)."""
    if rank is None or world_size is None:
        default_rank, default_world = 0, 1
        try:
            import torch.distributed as dist
        except ImportError:
            dist = None
        if dist is not None and dist.is_available() and dist.is_initialized():
            default_rank, default_world = dist.get_rank(), dist.get_world_size()
        rank = default_rank if rank is None else rank
        world_size = default_world if world_size is None else world_size
    world_size = _positive("world_size", world_size)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not (
            0 <= rank < world_size):
        raise ConfigError(f"PatchLoader rank must be in [0, {world_size}), not {rank!r}")
    return int(rank), world_size


def _device(device: str) -> str:
    from cuzarr.devices import cuda_available, require_cuda

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"PatchLoader device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda":
        require_cuda()
    return device
