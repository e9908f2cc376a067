"""c-blosc's own decompress function, called without numcodecs' Python wrapper.

numcodecs links c-blosc into `numcodecs.blosc` and exports its C symbols. Its Python wrapper
costs several microseconds a call under the GIL (a process and fork check that calls
`getpid`, buffer wrapping, a size query): for a shard of 64 KiB chunks that is about as long
as decompressing one, and two threads spend it waiting for each other. The same C function
called through ctypes, with the sizes our vectorized header check already has, releases the
GIL for the whole call. The arguments are the ones numcodecs passes off the main thread
(`blosc_decompress_ctx`, one internal thread), so the bytes are the same. Where the symbol
cannot be found, `DECOMPRESS` is None and the stage keeps numcodecs' calls. (Compression
gains nothing this way: measured on 64 KiB chunks, its per-call cost is small next to the
work.)
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["DECOMPRESS"]


def _load() -> Any:
    """blosc_decompress_ctx(src, dest, destsize, nthreads) -> decoded bytes, <= 0 on error."""
    try:
        from numcodecs import blosc as numcodecs_blosc

        decompress = ctypes.CDLL(numcodecs_blosc.__file__).blosc_decompress_ctx
    except (ImportError, OSError, AttributeError):
        return None
    decompress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    decompress.restype = ctypes.c_int
    return decompress


DECOMPRESS: Any = _load()
