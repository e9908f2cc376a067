"""The strict cupy stand-in refuses what cupy refuses, so the strict runs can fail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import strict_xp

xp = strict_xp.module

REFUSED: dict[str, Callable[[Any, np.ndarray], Any]] = {
    "np.asarray": lambda d, h: np.asarray(d),
    "np.concatenate mixed": lambda d, h: np.concatenate([d, h]),
    "ufunc mixed": lambda d, h: d + h,
    "reflected mixed": lambda d, h: h == d,
    "host indexed by device": lambda d, h: h[d],
    "host = device": lambda d, h: h.__setitem__(Ellipsis, d),
    "device = host": lambda d, h: d.__setitem__(Ellipsis, h),
    "memoryview": lambda d, h: memoryview(d),
    "np.frombuffer": lambda d, h: np.frombuffer(d, dtype=np.uint8),
    "tobytes": lambda d, h: d.tobytes(),
    "ctypes": lambda d, h: d.ctypes,
    "kernel arg": lambda d, h: strict_xp.kernel_arg(h),
    "xp function on host": lambda d, h: xp.concatenate([h]),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_mixing_host_and_device_fails(name: str) -> None:
    device, host = xp.arange(4, dtype=np.int64), np.arange(4, dtype=np.int64)
    with pytest.raises((TypeError, AttributeError)):
        REFUSED[name](device, host)


def test_what_cupy_allows_works() -> None:
    """Explicit transfers, device-only numpy calls, numpy index arrays, scalar reads."""
    device = xp.asarray(np.arange(6, dtype=np.int64))
    assert isinstance(np.flatnonzero(device > 2), strict_xp.DeviceArray)
    assert int(np.max(device)) == 5 and bool((device >= 0).all())
    np.testing.assert_array_equal(xp.asnumpy(device[np.array([0, 5])]), [0, 5])
    device[1:3] = 7
    assert device.get().tolist() == [0, 7, 7, 3, 4, 5]
    view = device[2:].reshape(2, 2).view(np.uint8)
    assert view.base is device  # views name their owner, as cupy's do
    assert isinstance(strict_xp.kernel_arg(view), np.ndarray)
