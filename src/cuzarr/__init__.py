"""cuzarr: a phased, batched codec pipeline for zarr-python.

Select it the zarr way::

    zarr.config.set({"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"})

or with `cuzarr.enable()` (a call, or a context manager that restores zarr's
previous settings on exit).
"""

from __future__ import annotations

from cuzarr import config
from cuzarr.enable import enable
from cuzarr.errors import (
    BloscDecodeError,
    ChecksumError,
    ChunkDecodeError,
    ConfigError,
    CuzarrError,
    DeviceMemoryError,
    DeviceUnavailableError,
    GzipDecodeError,
    Lz4DecodeError,
    ShardIndexChecksumError,
    ShardIndexError,
    UnknownSettingError,
    ZlibDecodeError,
    ZstdDecodeError,
)
from cuzarr.patch_reads import read_patches, read_patches_async
from cuzarr.pipeline import PhasedCodecPipeline
from cuzarr.timers import PhaseTime, phase_times

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
    "PhaseTime",
    "PhasedCodecPipeline",
    "config",
    "enable",
    "phase_times",
    "read_patches",
    "read_patches_async",
]
__version__ = "0.1.0"
