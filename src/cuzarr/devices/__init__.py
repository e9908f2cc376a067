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


def select_device(array: Any, device: str) -> Device:
    """The device for a read into (or a write from) `array`, under setting `device`.

    auto: a host (numpy) array means cpu. A device array (cupy) needs the cuda
    device, which arrives with its own issue; until then such arrays are served
    by the cpu device through one device-to-host/host-to-device copy.
    """
    if device == "cuda":
        require_cuda()
    return CpuDevice()
