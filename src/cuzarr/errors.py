"""Errors cuzarr raises. Each one names the store key or setting it is about.

A chunk that cannot be decoded raises a `ChunkDecodeError` naming its store key. So that
code written against zarr's own pipeline keeps working, the error is also an instance of
what zarr raises for that codec: `ZstdDecodeError` and `BloscDecodeError` are
RuntimeErrors (numcodecs' zstd and blosc raise those), `GzipDecodeError` is a
`gzip.BadGzipFile`, an `EOFError` and a `zlib.error` (Python's gzip module raises one of
the three, depending on the damage), `ZlibDecodeError` a `zlib.error`. A codec without a
family of its own (a numcodecs or third-party codec run per chunk) raises a
ChunkDecodeError that is also an instance of the exception the codec raised. Errors zarr
and numcodecs raise on purpose (the pickle codec's refusal, say) pass through unchanged.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from typing import Any

__all__ = [
    "BloscDecodeError",
    "ChecksumError",
    "ChunkDecodeError",
    "ConfigError",
    "CuzarrError",
    "DeviceMemoryError",
    "DeviceUnavailableError",
    "GzipDecodeError",
    "Lz4DecodeError",
    "ShardIndexChecksumError",
    "ShardIndexError",
    "UnknownSettingError",
    "ZlibDecodeError",
    "ZstdDecodeError",
    "decode_error_for",
]


class CuzarrError(Exception):
    """Base class of every error cuzarr raises on purpose."""


class ConfigError(CuzarrError, ValueError):
    """A cuzarr setting has a bad value; the message names the setting."""


class UnknownSettingError(ConfigError, KeyError):
    """No cuzarr setting has this name; the message lists the known ones (and the
    closest, for a misspelling). Also a KeyError, as a mapping lookup would raise."""

    __str__ = Exception.__str__


class ChunkDecodeError(CuzarrError, ValueError):
    """A stored chunk, shard or shard index could not be decoded.

    `key` is the store key of the chunk (for a shard: the shard's key, with the
    inner chunk's coordinates in the message).
    """

    #: what the key names, in the message
    what = "stored chunk"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"cannot decode {self.what} {key!r}: {reason}")
        self.key = key
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from (key, reason), not from the formatted message (dask ships errors
        # from workers to the client by pickling them)
        cause = type(self).__dict__.get("_cause")
        return _rebuild, (cause, None if cause else type(self), self.key, self.reason)


class ChecksumError(ChunkDecodeError):
    """A stored crc32c checksum does not match the data it guards."""


class ShardIndexError(ChunkDecodeError):
    """A shard's index is truncated, fails its checksum, or points outside the shard."""

    what = "the shard index of"


class ShardIndexChecksumError(ShardIndexError, ChecksumError):
    """A shard's index fails its crc32c checksum."""


class ZstdDecodeError(ChunkDecodeError, RuntimeError):
    """A zstd frame is corrupt, truncated or of the wrong size (numcodecs: RuntimeError)."""


class BloscDecodeError(ChunkDecodeError, RuntimeError):
    """A Blosc chunk is corrupt, truncated or of the wrong size (numcodecs: RuntimeError)."""


class Lz4DecodeError(ChunkDecodeError, RuntimeError):
    """A numcodecs LZ4 block is corrupt or of the wrong size (numcodecs: RuntimeError)."""


class GzipDecodeError(ChunkDecodeError, gzip.BadGzipFile, EOFError, zlib.error):
    """A gzip member is corrupt or truncated (Python's gzip: BadGzipFile, EOFError or
    zlib.error, depending on the damage)."""


class ZlibDecodeError(ChunkDecodeError, zlib.error):
    """A zlib stream is corrupt or truncated (zlib.error)."""


class DeviceUnavailableError(CuzarrError, RuntimeError):
    """The requested device cannot be used here; the message says what is missing."""


class DeviceMemoryError(CuzarrError, MemoryError):
    """A single chunk (or shard) needs more device memory than is free."""


@functools.cache
def decode_error_for(cause: type[BaseException]) -> type[ChunkDecodeError]:
    """A ChunkDecodeError subclass that is also a `cause` (what a codec without a family
    of its own raised); plain ChunkDecodeError where the two cannot be combined."""
    if issubclass(cause, ChunkDecodeError) or not issubclass(cause, Exception):
        return ChunkDecodeError
    if cause in (Exception, ValueError):
        return ChunkDecodeError
    try:
        cls = type(f"{cause.__name__}ChunkDecodeError", (ChunkDecodeError, cause),
                   {"_cause": cause, "__module__": __name__,
                    "__doc__": f"ChunkDecodeError that is also a {cause.__qualname__}."})
        cls("<key>", "probe")  # a cause whose constructor needs other arguments
    except TypeError:
        return ChunkDecodeError
    return cls


def _rebuild(cause: type[BaseException] | None, cls: type[ChunkDecodeError] | None, key: str,
             reason: str) -> ChunkDecodeError:
    """Unpickle a ChunkDecodeError: a cause's class is made again on this side."""
    made = decode_error_for(cause) if cause is not None else cls
    assert made is not None
    return made(key, reason)


def passes_through(error: BaseException) -> bool:
    """True for errors zarr and numcodecs raise on purpose (not about damaged bytes):
    they reach the caller unchanged."""
    from numcodecs.errors import UnsafeDecodeError
    from zarr.errors import BaseZarrError

    return isinstance(error, (BaseZarrError, UnsafeDecodeError))
