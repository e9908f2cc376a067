"""Our CUDA kernels: sources in cuda_kernels/*.cu, numpy references in `reference`.

The .cu files ship inside the wheel (cuzarr/cuda_kernels); from a source checkout they
are read from the repository's cuda_kernels/ folder.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["KERNEL_FILES", "kernel_dir", "kernel_source"]

#: kernel file -> the extern "C" kernels it defines
KERNEL_FILES: dict[str, tuple[str, ...]] = {
    "byteswap.cu": ("byteswap",),
    "shuffle.cu": ("byte_shuffle", "byte_unshuffle", "byte_unshuffle_tiled",
                   "byte_shuffle_tiled"),
    "bitshuffle.cu": ("bit_shuffle", "bit_unshuffle", "bit_unshuffle_tiled",
                      "bit_shuffle_tiled"),
    "crc32.cu": ("crc32c_segments", "crc32c_combine", "crc32_segments", "crc32_combine"),
    "adler32.cu": ("adler32_segments", "adler32_combine"),
    "box_copy.cu": ("box_copy", "box_copy_tiled"),
    "transpose.cu": ("transpose_tiled",),
    "blosclz.cu": ("blosclz_decompress",),
}


@cache
def kernel_dir() -> Path:
    """Where the .cu files are: inside the installed package, else the source tree."""
    here = Path(__file__).resolve()
    for candidate in (here.parent.parent / "cuda_kernels", here.parents[3] / "cuda_kernels"):
        if (candidate / "byteswap.cu").is_file():
            return candidate
    raise FileNotFoundError("cuzarr's CUDA kernel sources (cuda_kernels/*.cu) are not installed")


def kernel_source(name: str) -> str:
    """The CUDA C++ source of kernel file `name` (e.g. "shuffle.cu")."""
    if name not in KERNEL_FILES:
        raise KeyError(f"unknown kernel file {name!r}; known: {sorted(KERNEL_FILES)}")
    return (kernel_dir() / name).read_text()
