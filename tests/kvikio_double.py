"""A test double of the kvikio calls cuzarr makes (`CuFile(path, "r")`, `pread(buf, size,
file_offset)` returning a future whose `get()` is the bytes read, `close()`), reading with
os.pread into numpy buffers; it records every read."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np

import strict_xp


class _Done:
    def __init__(self, count: int) -> None:
        self.count = count

    def get(self) -> int:
        return self.count


class CuFile:
    reads: ClassVar[list[tuple[str, int, int]]] = []

    def __init__(self, path: str, flags: str = "r") -> None:
        if flags != "r":
            raise ValueError("cuzarr only reads through kvikio")
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)

    def pread(self, buf: Any, size: int, file_offset: int = 0) -> _Done:
        # kvikio reads into device or host buffers: a strict device array's memory, or numpy
        memory = strict_xp.backing(buf) if strict_xp.is_device(buf) else np.asarray(buf)
        view = memory.reshape(-1).view(np.uint8)[:size]
        CuFile.reads.append((self.path, size, file_offset))
        data = os.pread(self.fd, size, file_offset)
        view[: len(data)] = np.frombuffer(data, dtype=np.uint8)
        return _Done(len(data))

    def close(self) -> None:
        os.close(self.fd)
