"""Every kernel file compiles for sm_80 and sm_90 with nvcc (no GPU needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cuzarr.kernels import KERNEL_FILES, kernel_dir

NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on the PATH")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", sorted(KERNEL_FILES))
def test_compiles(name: str, arch: str, tmp_path: Path) -> None:
    cubin = tmp_path / f"{name}.{arch}.cubin"
    result = subprocess.run(
        [NVCC, f"-arch={arch}", "-cubin", "-o", str(cubin), str(kernel_dir() / name)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    symbols = subprocess.run(
        ["cuobjdump", "-symbols", str(cubin)], capture_output=True, text=True
    ).stdout if shutil.which("cuobjdump") else ""
    for kernel in KERNEL_FILES[name]:
        assert not symbols or kernel in symbols, f"{kernel} missing from {name}"


def test_every_kernel_is_registered() -> None:
    """KERNEL_FILES names every .cu file and exactly the extern "C" kernels each defines:
    the GPU launcher finds a kernel's module through it."""
    import re

    files = {p.name for p in kernel_dir().glob("*.cu")}
    assert files == set(KERNEL_FILES)
    for name in files:
        source = (kernel_dir() / name).read_text()
        defined = set(re.findall(r'extern "C" __global__ void (\w+)\s*\(', source))
        assert defined == set(KERNEL_FILES[name]), name
