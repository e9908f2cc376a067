"""The host buffer prototype used for store reads, whatever zarr's configured buffers are."""

from __future__ import annotations

from typing import Any

__all__ = ["host_prototype"]


def host_prototype() -> Any:
    """zarr's numpy-backed prototype: stored bytes always land in host memory first here."""
    from zarr.core.buffer.cpu import buffer_prototype

    return buffer_prototype
