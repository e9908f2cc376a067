"""The cuda device's stand-in: numpy for cupy, the nvCOMP double, the host-emulation launcher."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernels"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import HostLauncher

import kvikio_double
import nvcomp_double
import strict_xp
from cuzarr.devices.cuda import CudaDevice
from cuzarr.devices.nvcomp_backend import NvcompBackend


def make_standin(kind: str, monkeypatch: pytest.MonkeyPatch) -> CudaDevice:
    """The cuda device's own code on the CPU: "numpy" as its array module, or "strict",
    the cupy stand-in of tests/strict_xp.py, where mixing host and device arrays fails
    as it does on a GPU (kernels and nVCOMP take device arrays only)."""
    nvcomp_double.Codec.calls.clear()
    kvikio_double.CuFile.reads.clear()
    if kind == "numpy":
        return CudaDevice(np, NvcompBackend(nvcomp_double), HostLauncher(),
                          kvikio=kvikio_double)
    monkeypatch.setattr(nvcomp_double, "DEVICE_ONLY", True)
    return CudaDevice(strict_xp.module, NvcompBackend(nvcomp_double),
                      HostLauncher(strict_xp.kernel_arg), kvikio=kvikio_double)


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> CudaDevice:
    """The cuda device with numpy standing in for cupy."""
    return make_standin("numpy", monkeypatch)


@pytest.fixture(params=["numpy", "strict"])
def either_standin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
                   ) -> CudaDevice:
    """Both stand-ins: modules whose tests hold on a GPU too run on each."""
    return make_standin(request.param, monkeypatch)
