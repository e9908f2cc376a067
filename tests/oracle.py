"""The rule every read of damaged or unusual stored bytes is held to, with zarr's own
pipeline as the oracle:

- zarr raises: cuzarr raises a ChunkDecodeError that names the store key and is also an
  instance of the class zarr raised;
- zarr returns the stored data: cuzarr returns the same;
- zarr returns other values than were stored (it sometimes reads a view past its end):
  cuzarr raises naming the key, returns what was stored, or returns what zarr returned.

`partial_ok`: the read may decode less than zarr does (blosc windows of chunks of 1 MiB
and more), so where zarr raises on damage the read never looks at, cuzarr may return the
rows exactly as stored.

Two things zarr does are not a rule to follow. It raises MemoryError (in an
ExceptionGroup) where an index entry claims terabytes, trying to read them: cuzarr raises
a ChunkDecodeError naming the key instead, before allocating anything. And where a Blosc
chunk is shorter than its header says, numcodecs reads past the buffer it was handed, so
zarr's answer depends on what memory lies there (`undefined`): cuzarr raises naming the
key or returns what was stored. The same holds for shard index entries whose end wraps
past 2**64, where zarr's answer depends on the read path and the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cuzarr.errors import ChunkDecodeError

__all__ = ["check_like_zarr"]


def _equal(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and bool(
        np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def check_like_zarr(oracle: Callable[[], Any], mine: Callable[[], Any], key: str,
                    stored: Any = None, *, partial_ok: bool = False,
                    undefined: bool = False) -> None:
    """Run `oracle` (zarr's read) and `mine` (cuzarr's) and hold them to the rule above;
    `stored` is what the read returned before the damage, where known."""
    if undefined:
        try:
            got = mine()
        except ChunkDecodeError as error:
            assert key in str(error), (key, str(error))
            return
        assert stored is not None and _equal(got, stored), "other data than was stored"
        return
    try:
        expected = oracle()
    except Exception as zarr_error:
        try:
            got = mine()
        except ChunkDecodeError as error:
            assert key in str(error), (key, str(error))
            leaves = _leaves(zarr_error)
            if not any(isinstance(leaf, MemoryError) for leaf in leaves):
                assert isinstance(error, tuple(type(leaf) for leaf in leaves)), (
                    f"zarr raised {leaves}, cuzarr {type(error).__mro__}")
            return
        assert partial_ok and stored is not None, (
            f"zarr raised {zarr_error!r}; cuzarr returned data")
        assert _equal(got, stored), "cuzarr returned other rows than were stored"
        return
    garbage = stored is not None and not _equal(expected, stored)
    try:
        got = mine()
    except ChunkDecodeError as error:
        assert garbage, f"zarr returned the stored data; cuzarr raised {error!r}"
        assert key in str(error), (key, str(error))
        return
    if garbage and _equal(got, stored):
        return
    assert np.asarray(got).dtype == np.asarray(expected).dtype
    np.testing.assert_array_equal(got, expected)
