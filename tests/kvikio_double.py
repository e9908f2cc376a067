"""A test double of the kvikio calls cuzarr makes, held to kvikio 26.10's API
(tests/test_stand_ins_match_real.py compares it with the real wheel's sources):
`CuFile(file, flags="r")`, `pread(buf, size=None, file_offset=0, task_size=None)`
returning a `kvikio.cufile.IOFuture` whose `get()` is the bytes read, `close()`, and
`defaults.get/set("num_threads" | "gds_threshold" | ...)`.

It refuses what the real one refuses: a read past the end of the file raises
RuntimeError("POSIX error on pread: EOF") as kvikio's POSIX (compat mode) path does,
and reads below `gds_threshold` run synchronously inside `pread`, so their errors come
from `pread` itself, not from the future. It reads with os.pread into numpy memory and
records every read (path, size, file offset, buffer address).
"""

from __future__ import annotations

import os
import types
from typing import Any, ClassVar

import numpy as np

import strict_xp

#: the double's records for the tests, which kvikio lacks (tests/test_stand_ins_match_real.py
#: lets these, and only these, differ from kvikio)
__test_only__ = ("CuFile.reads", "CuFile.opened")

_settings: dict[str, Any] = {"num_threads": 1, "gds_threshold": 16384, "compat_mode": "ON",
                             "task_size": 4 << 20, "bounce_buffer_size": 16 << 20}


_SET_USAGE = ("Valid arguments are kvikio.defaults.set(config: dict) or "
              "kvikio.defaults.set(key: str, value: Any)")


def _get(config_name: str) -> Any:
    if config_name not in _settings:
        raise KeyError(config_name)  # kvikio's property table lookup
    return _settings[config_name]


def _set(*config: Any) -> None:
    """kvikio.defaults.set(dict) or set(key, value): a malformed call is a ValueError,
    an unknown name a KeyError, as kvikio's."""
    if len(config) == 1 and isinstance(config[0], dict):
        items = list(config[0].items())
    elif len(config) == 2 and isinstance(config[0], str):
        items = [config]
    else:
        raise ValueError(_SET_USAGE)
    for key, _ in items:
        if key not in _settings:
            raise KeyError(key)
    _settings.update(items)


defaults = types.SimpleNamespace(get=_get, set=_set)


class _IOFuture:
    """kvikio.cufile.IOFuture: what `pread` gives (never built by callers)."""

    def __init__(self, count: int | None = None, error: BaseException | None = None) -> None:
        self._count = count
        self._error = error

    def get(self) -> int:
        if self._error is not None:
            raise self._error
        return int(self._count or 0)

    def done(self) -> bool:
        return True


class CuFile:
    reads: ClassVar[list[tuple[str, int, int, int]]] = []
    opened: ClassVar[int] = 0

    def __init__(self, file: str | os.PathLike[str], flags: str = "r") -> None:
        if flags != "r":
            raise ValueError("cuzarr only reads through kvikio")
        self._path = os.fspath(file)
        self._fd = os.open(self._path, os.O_RDONLY)
        CuFile.opened += 1

    def pread(self, buf: Any, size: int | None = None, file_offset: int = 0,
              task_size: int | None = None) -> _IOFuture:
        # kvikio reads into device or host buffers: a strict device array's memory, or numpy
        memory = strict_xp.backing(buf) if strict_xp.is_device(buf) else np.asarray(buf)
        view = memory.reshape(-1).view(np.uint8)
        size = view.size if size is None else int(size)
        if size > view.size:
            raise ValueError("pread: size is larger than the buffer")
        address = int(view.__array_interface__["data"][0])
        CuFile.reads.append((self._path, size, file_offset, address))
        error = None
        if file_offset + size > os.fstat(self._fd).st_size:
            error = RuntimeError("POSIX error on pread: EOF")
        else:
            data = os.pread(self._fd, size, file_offset)
            view[: len(data)] = np.frombuffer(data, dtype=np.uint8)
        if error is not None and size < int(_settings["gds_threshold"]):
            raise error  # small reads run inside pread, synchronously
        return _IOFuture(size, error)

    def close(self) -> None:
        os.close(self._fd)
