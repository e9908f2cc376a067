"""Errors cuzarr raises. Each one names the store key or setting it is about."""

from __future__ import annotations


class CuzarrError(Exception):
    """Base class of every error cuzarr raises on purpose."""


class ConfigError(CuzarrError, ValueError):
    """A cuzarr setting has a bad value; the message names the setting."""


class ChunkDecodeError(CuzarrError, ValueError):
    """A stored chunk, shard or shard index could not be decoded.

    `key` is the store key of the chunk (for a shard: the shard's key, with the
    inner chunk's coordinates in the message).
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"cannot decode stored chunk {key!r}: {reason}")
        self.key = key
        self.reason = reason


class ChecksumError(ChunkDecodeError):
    """A stored crc32c checksum does not match the data it guards."""


class DeviceUnavailableError(CuzarrError, RuntimeError):
    """The requested device cannot be used here; the message says what is missing."""


class DeviceMemoryError(CuzarrError, MemoryError):
    """A single chunk (or shard) needs more device memory than is free."""
