"""Devices: where slabs live and batched stages run. `cpu` always; `cuda` with a GPU."""

from __future__ import annotations

from typing import Any

from cuzarr.devices.base import Device
from cuzarr.devices.cpu import CpuDevice
from cuzarr.errors import DeviceUnavailableError

__all__ = ["CpuDevice", "Device", "cuda_available", "kvikio_status", "require_cuda",
           "select_device"]

#: what the cuda device cannot run without; kvikio (GPUDirect Storage reads) is optional
_CUDA_PACKAGES = ("cupy", "nvidia.nvcomp")


def _import_error(module: str) -> str | None:
    """Why `module` cannot be imported here (None when it can). A real import, not a
    lookup: a package can be found yet fail to load (kvikio without rapids-logger or
    libcufile, nvCOMP without its library)."""
    import importlib

    try:
        importlib.import_module(module)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def _missing_cuda_parts() -> list[str]:
    """What the cuda device needs and this environment lacks (empty when it can run)."""
    missing = []
    for module in _CUDA_PACKAGES:
        error = _import_error(module)
        if error is not None:
            missing.append(f"{module} ({error})")
    if not missing:
        try:
            import cupy

            if not cupy.cuda.is_available():
                missing.append("a CUDA device (cupy.cuda.is_available() is False)")
        except Exception as e:  # a broken CUDA install surfaces here
            missing.append(f"a working cupy ({type(e).__name__}: {e})")
    return missing


def kvikio_status() -> str | None:
    """None when kvikio loads here (LocalStore reads go straight to device memory), else
    why not (the cuda device then reads through pinned host memory)."""
    return _import_error("kvikio")


def cuda_available() -> bool:
    """True when the cuda device can run here."""
    return not _missing_cuda_parts()


def require_cuda() -> None:
    """Raise DeviceUnavailableError naming what the cuda device lacks here."""
    missing = _missing_cuda_parts()
    if missing:
        raise DeviceUnavailableError(
            "the cuda device cannot run here; missing: " + ", ".join(missing)
            + ". On a machine with an NVIDIA GPU, install cuzarr with its cuda13 extra (CUDA"
            " 13; cuda12 for CUDA 12): from a clone, pip install -e '.[cuda13]' (the README's"
            " Install); or read on the CPU: cuzarr.config.set(device='cpu')."
        )


def _is_host_array(array: Any) -> bool:
    import numpy as np

    return isinstance(array, np.ndarray)


_cuda: Device | None = None
#: kvikio's thread pool width the cuda device asks for (its default is 1)
KVIKIO_THREADS = 16


def _cuda_device() -> Device:
    """The process's cuda device on the current GPU (built once)."""
    global _cuda
    require_cuda()
    if _cuda is None:
        import cupy
        from nvidia import nvcomp

        from cuzarr.devices.cuda import CudaDevice
        from cuzarr.devices.nvcomp_backend import NvcompBackend, cupy_allocator
        from cuzarr.devices.pinned import PinnedPool, cupy_pinned
        from cuzarr.kernels.launch import CupyLauncher

        nvcomp.set_device_allocator(cupy_allocator(cupy))  # nvCOMP's scratch from cupy's pool
        backend = NvcompBackend(nvcomp, stream=lambda: cupy.cuda.get_current_stream().ptr)
        _cuda = CudaDevice(cupy, backend, CupyLauncher(), kvikio=_kvikio(),
                           out_of_memory=(cupy.cuda.memory.OutOfMemoryError,),
                           new_stream=cupy.cuda.Stream,
                           pinned=PinnedPool(cupy_pinned(cupy)).empty)
    return _cuda


def _kvikio() -> Any:
    """kvikio, its thread pool sized, where it loads; None (with one log line) where not."""
    import logging

    why = kvikio_status()
    if why is not None:
        logging.getLogger("cuzarr").warning(
            "cuzarr: kvikio does not load here (%s); LocalStore reads go through pinned host "
            "memory (install cuzarr[gds13] or cuzarr[gds12] for GPUDirect Storage)", why)
        return None
    import os

    import kvikio

    from cuzarr.io.device import size_kvikio_pool

    size_kvikio_pool(kvikio, min(KVIKIO_THREADS, 2 * (os.cpu_count() or 1)))
    return kvikio


def select_device(array: Any, device: str) -> Device:
    """The device for a read into (or a write from) `array`, under setting `device`.

    cpu: always the cpu device. cuda: the cuda device (an error naming what is missing
    where it cannot run). auto: the array decides, a device (cupy) array meaning cuda.
    """
    if device == "cpu":
        return CpuDevice()
    if device == "cuda" or not _is_host_array(array):
        return _cuda_device()
    return CpuDevice()
