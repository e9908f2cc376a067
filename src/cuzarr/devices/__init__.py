"""Devices: where slabs live and batched stages run. `cpu` always; `cuda` with a GPU."""

from __future__ import annotations

from typing import Any

from cuzarr.devices.base import Device
from cuzarr.devices.cpu import CpuDevice
from cuzarr.errors import DeviceUnavailableError

__all__ = ["CpuDevice", "Device", "cuda_available", "require_cuda", "select_device"]

_CUDA_PACKAGES = ("cupy", "nvidia.nvcomp", "kvikio")


def _missing_cuda_parts() -> list[str]:
    """What the cuda device needs and this environment lacks (empty when it can run)."""
    import importlib.util

    missing = []
    for module in _CUDA_PACKAGES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(module)
    if "cupy" not in missing:
        try:
            import cupy

            if not cupy.cuda.is_available():
                missing.append("a CUDA device (cupy.cuda.is_available() is False)")
        except Exception as e:  # a broken CUDA install surfaces here
            missing.append(f"a working cupy ({type(e).__name__}: {e})")
    return missing


def cuda_available() -> bool:
    """True when the cuda device can run here."""
    return not _missing_cuda_parts()


def require_cuda() -> None:
    """Raise DeviceUnavailableError naming what the cuda device lacks here."""
    missing = _missing_cuda_parts()
    if missing:
        raise DeviceUnavailableError(
            "the cuda device cannot run here; missing: " + ", ".join(missing)
            + ". Install cuzarr[cuda12] or cuzarr[cuda13] on a machine with an NVIDIA GPU,"
            " or set cuzarr.config.set(device='cpu')."
        )


def _is_host_array(array: Any) -> bool:
    import numpy as np

    return isinstance(array, np.ndarray)


_cuda: Device | None = None


def _cuda_device() -> Device:
    """The process's cuda device on the current GPU (built once)."""
    global _cuda
    require_cuda()
    if _cuda is None:
        import cupy
        from nvidia import nvcomp

        from cuzarr.devices.cuda import CudaDevice
        from cuzarr.devices.nvcomp_backend import NvcompBackend
        from cuzarr.kernels.launch import CupyLauncher

        backend = NvcompBackend(nvcomp, stream=lambda: cupy.cuda.get_current_stream().ptr)
        import kvikio

        _cuda = CudaDevice(cupy, backend, CupyLauncher(), kvikio=kvikio,
                           out_of_memory=(cupy.cuda.memory.OutOfMemoryError,),
                           new_stream=cupy.cuda.Stream, pinned=_pinned_empty)
    return _cuda


def _pinned_empty(nbytes: int) -> Any:
    """Page-locked host memory from cupy's pinned memory pool (blocks are reused, not
    freed back to the system)."""
    import cupyx

    return cupyx.empty_pinned((nbytes,), dtype="uint8")


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
