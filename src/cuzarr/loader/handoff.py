"""Batches from the producer thread to the training step: arrays in the output's form.

On the cpu device a batch is numpy arrays, handed over as they are (`output="numpy"`) or
as torch tensors sharing their memory (`torch.from_numpy`), copied to pinned memory
first where `pin_memory` asks (as DataLoader's pin thread does). On the cuda device
the producer reads on its own CUDA stream and records an event; the consumer's current
stream (torch's, for torch output) waits for that event before the batch is used, so
the reads overlap the step without a device-wide sync. cupy arrays become torch tensors
through DLPack, without a copy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["CpuHandoff", "CudaHandoff", "import_torch"]


def import_torch() -> Any:
    from cuzarr.errors import ConfigError

    try:
        import torch
    except ImportError as e:
        raise ConfigError(f"PatchLoader output='torch' needs PyTorch, which does not import "
                          f"here ({e}): pip install torch, or pass output='numpy' (cpu) or "
                          "output='cupy' (cuda)") from e
    return torch


class CpuHandoff:
    """numpy batches, as numpy or as torch tensors (pinned where asked and possible)."""

    def __init__(self, output: str, pin_memory: bool) -> None:
        self.output = output
        self.torch = import_torch() if output == "torch" else None
        self.pin = False
        if pin_memory:
            if self.torch is None:
                warnings.warn("pin_memory applies to torch output only; ignored", stacklevel=3)
            elif not self.torch.cuda.is_available():
                warnings.warn("pin_memory=True, but no CUDA device is available: batches "
                              "are not pinned (as torch's DataLoader does)", stacklevel=3)
            else:
                self.pin = True

    def make(self, read: Callable[[], tuple[Any, ...]]) -> tuple[tuple[Any, ...], None]:
        """On the producer thread: read, and convert (pinning copies here, off the step)."""
        arrays = read()
        if self.torch is None:
            return arrays, None
        tensors = tuple(self.torch.from_numpy(a) for a in arrays)
        if self.pin:
            tensors = tuple(t.pin_memory() for t in tensors)
        return tensors, None

    def receive(self, batch: tuple[Any, ...], ready: None) -> tuple[Any, ...]:
        return batch


class CudaHandoff:
    """cupy batches read on the producer's own stream, ready on the consumer's."""

    def __init__(self, output: str) -> None:
        import cupy

        self.cupy = cupy
        self.torch = import_torch() if output == "torch" else None
        self._stream: Any = None

    def make(self, read: Callable[[], tuple[Any, ...]]) -> tuple[tuple[Any, ...], Any]:
        if self._stream is None:  # created on the producer thread, used only there
            self._stream = self.cupy.cuda.Stream(non_blocking=True)
        with self._stream:
            arrays = read()
            ready = self._stream.record()
        return arrays, ready

    def receive(self, batch: tuple[Any, ...], ready: Any) -> tuple[Any, ...]:
        """On the consumer's thread: its current stream waits for the batch's event."""
        if self.torch is None:
            self.cupy.cuda.get_current_stream().wait_event(ready)
            return batch
        current = self.torch.cuda.current_stream()
        self.cupy.cuda.ExternalStream(current.cuda_stream).wait_event(ready)
        return tuple(self.torch.from_dlpack(a) for a in batch)
