"""Build tests/kernels/host_kernels.cpp (which includes cuda_kernels/*.cu) with g++ and
expose its launchers through ctypes."""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from cuzarr.kernels import kernel_dir, launch

HERE = Path(__file__).resolve().parent

u8p = np.ctypeslib.ndpointer(dtype=np.uint8, flags="C_CONTIGUOUS")
u32p = np.ctypeslib.ndpointer(dtype=np.uint32, flags="C_CONTIGUOUS")
u64p = np.ctypeslib.ndpointer(dtype=np.uint64, flags="C_CONTIGUOUS")
i64p = np.ctypeslib.ndpointer(dtype=np.int64, flags="C_CONTIGUOUS")
i32p = np.ctypeslib.ndpointer(dtype=np.int32, flags="C_CONTIGUOUS")
UINT, ULL, INT = ctypes.c_uint, ctypes.c_ulonglong, ctypes.c_int

SIGNATURES = {
    "host_byteswap": [UINT, UINT, UINT, UINT, u8p, ULL, INT],
    "host_byte_shuffle": [UINT, UINT, UINT, UINT, u8p, u8p, u64p, u64p, ULL, INT],
    "host_byte_unshuffle": [UINT, UINT, UINT, UINT, u8p, u8p, u64p, u64p, ULL, INT],
    "host_byte_shuffle_tiled": [UINT, UINT, UINT, UINT, u8p, u8p, u64p, u64p, ULL, INT],
    "host_bit_shuffle_tiled": [UINT, UINT, UINT, UINT, u8p, u8p, u64p, u64p, ULL, INT, INT],
    "host_byte_unshuffle_tiled": [UINT, UINT, UINT, UINT, u8p, u8p, u64p, u64p, ULL, INT],
    "host_bit_unshuffle_tiled": [UINT, UINT, UINT, UINT, u8p, u8p, u64p, u64p, ULL, INT, INT],
    "host_bit_shuffle": [UINT, UINT, UINT, UINT, u8p, u8p, u64p, u64p, ULL, INT, INT],
    "host_bit_unshuffle": [UINT, UINT, UINT, UINT, u8p, u8p, u64p, u64p, ULL, INT, INT],
    "host_box_copy": [UINT, UINT, UINT, UINT, u8p, u8p, i64p, i64p, i64p, i64p, i64p, ULL, INT, INT,
                      u8p],
    "host_box_copy_tiled": [UINT, UINT, UINT, UINT, u8p, u8p, i64p, i64p, i64p, i64p, i64p, ULL,
                            INT, INT, u8p, INT, INT],
    "host_transpose_tiled": [UINT, UINT, UINT, UINT, u8p, u8p, ULL, INT, i64p, i64p, i64p, INT,
                             INT, INT],
    "host_blosclz_decompress": [UINT, UINT, UINT, UINT, u8p, u8p, i64p, i64p, i64p, i64p, ULL,
                                i64p],
    "host_block_sums": [UINT, UINT, UINT, UINT, i32p, i32p, INT, INT],
    "host_crc32c_segments": [UINT, UINT, UINT, UINT, u8p, u64p, u64p, ULL, u32p, u32p],
    "host_crc32c_combine": [UINT, UINT, UINT, UINT, u32p, u64p, u64p, u64p, ULL, u32p],
    "host_crc32_segments": [UINT, UINT, UINT, UINT, u8p, u64p, u64p, ULL, u32p, u32p],
    "host_crc32_combine": [UINT, UINT, UINT, UINT, u32p, u64p, u64p, u64p, ULL, u32p],
    "host_adler32_segments": [UINT, UINT, UINT, UINT, u8p, u64p, u64p, ULL, u32p],
    "host_adler32_combine": [UINT, UINT, UINT, UINT, u32p, u64p, u64p, u64p, ULL, u32p],
}


@cache
def library(reverse: bool = False) -> ctypes.CDLL:
    """The compiled harness (cached per source content in the temp folder). `reverse`
    runs a block's threads last to first between barriers (HOST_CUDA_REVERSE_THREADS), so
    a read of what a lower-numbered thread wrote without a barrier shows too."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise RuntimeError("the kernel host harness needs g++")
    sources = [HERE / "host_kernels.cpp", HERE / "host_cuda.h", HERE / "barrier_probe.cu",
               *sorted(kernel_dir().glob("*.cu"))]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)
                            + (b"reverse" if reverse else b"")).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"cuzarr-host-kernels-{digest}.so"
    if not target.exists():
        partial = target.with_suffix(f".{digest}.partial")
        subprocess.run(
            [compiler, "-std=c++17", "-O2", "-shared", "-fPIC", "-x", "c++",
             *(["-DHOST_CUDA_REVERSE_THREADS"] if reverse else []),
             f"-I{HERE}", f"-I{kernel_dir()}", str(HERE / "host_kernels.cpp"), "-o",
             str(partial)],
            check=True,
            capture_output=True,
        )
        partial.replace(target)
    lib = ctypes.CDLL(str(target))
    for name, argtypes in SIGNATURES.items():
        getattr(lib, name).argtypes = argtypes
        getattr(lib, name).restype = None
    return lib


_LAUNCH_LOCK = threading.Lock()


class HostLauncher:
    """Runs a kernel by name on the host emulation: the stand-in for cupy's launches.

    The emulation keeps its grid state in globals, so launches from the pipeline's
    worker threads take turns (one GPU stream, in effect)."""

    def __init__(self, kernel_arg: Callable[[Any], Any] | None = None) -> None:
        """kernel_arg: turns each argument into what the emulation takes (the strict
        stand-in's device arrays into their memory, refusing host arrays as cupy does);
        None passes numpy arrays through."""
        self.launches: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
        self.kernel_arg = kernel_arg

    def launch(self, name: str, grid: tuple[int, int], block: tuple[int, int],
               args: tuple) -> None:
        launch._file_of(name)  # the GPU launcher must find the kernel's file too
        self.launches.append((name, grid, block))
        if self.kernel_arg is not None:
            args = tuple(self.kernel_arg(a) for a in args)
        plain = [int(a) if isinstance(a, np.integer) else a for a in args]
        with _LAUNCH_LOCK:
            getattr(library(), f"host_{name}")(grid[0], grid[1], block[0], block[1], *plain)
