"""c-blosc's own decompress and compress functions, called without numcodecs' Python wrapper.

numcodecs links c-blosc into `numcodecs.blosc` and exports its C symbols. Its Python wrapper
costs several microseconds a call under the GIL (a process and fork check that calls
`getpid`, buffer wrapping, a size query): for a shard of 64 KiB chunks that is about as long
as decompressing one, and two threads spend it waiting for each other's GIL. The same C
functions called through ctypes, with the sizes our vectorized header checks already have,
release the GIL for the whole call. The arguments are the ones numcodecs passes off the main
thread (the `_ctx` functions, one internal thread), so the bytes are the same. Where a
symbol cannot be found it is None here, and the blosc stage keeps numcodecs' calls.
`blosc_getitem` (thread-safe: its context is its own) decodes only the blocks a byte range
lies in; our own frame parser checks every block and stream offset of the chunk first.
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["COMPRESS", "DECOMPRESS", "GETITEM", "MAX_OVERHEAD"]


#: c-blosc's BLOSC_MAX_OVERHEAD: a compressed chunk is at most this much larger than its input
MAX_OVERHEAD = 16

_SIGNATURES = {
    # (src, dest, destsize, nthreads) -> decoded bytes, <= 0 on error
    "blosc_decompress_ctx": [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int],
    # (src, start, nitems, dest) -> bytes written (nitems * the chunk's typesize), < 0 on
    # error: decodes only the blocks holding items start..start+nitems-1
    "blosc_getitem": [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p],
    # (clevel, doshuffle, typesize, nbytes, src, dest, destsize, compressor, blocksize,
    #  nthreads) -> compressed bytes, 0 when it does not fit, < 0 on error
    "blosc_compress_ctx": [
        ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p,
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
    ],
}


def _load(name: str) -> Any:
    """The c-blosc function `name` from numcodecs' extension, typed; None if not found."""
    try:
        from numcodecs import blosc as numcodecs_blosc

        function = getattr(ctypes.CDLL(numcodecs_blosc.__file__), name)
    except (ImportError, OSError, AttributeError):
        return None
    function.argtypes = _SIGNATURES[name]
    function.restype = ctypes.c_int
    return function


DECOMPRESS: Any = _load("blosc_decompress_ctx")
COMPRESS: Any = _load("blosc_compress_ctx")
GETITEM: Any = _load("blosc_getitem")
