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
from cuzarr.devices.cuda import CudaDevice
from cuzarr.devices.nvcomp_backend import NvcompBackend


@pytest.fixture
def standin() -> CudaDevice:
    """The cuda device's own code on the CPU."""
    nvcomp_double.Codec.calls.clear()
    kvikio_double.CuFile.reads.clear()
    return CudaDevice(np, NvcompBackend(nvcomp_double), HostLauncher(), kvikio=kvikio_double)
