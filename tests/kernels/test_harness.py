"""The host harness models __syncthreads and __shared__ faithfully: a shared-memory
reduction is right with its barriers and visibly wrong without them."""

from __future__ import annotations

import numpy as np
import pytest
from harness import library


@pytest.mark.parametrize("n", [1, 63, 64, 65, 1000])
def test_barriers_make_the_reduction_right(n: int) -> None:
    values = np.random.default_rng(n).integers(-100, 100, n, dtype=np.int32)
    blocks = -(-n // 64)
    sums = np.zeros(blocks, dtype=np.int32)
    library().host_block_sums(blocks, 1, 64, 1, values, sums, n, 1)
    padded = np.zeros(blocks * 64, dtype=np.int32)
    padded[:n] = values
    np.testing.assert_array_equal(sums, padded.reshape(blocks, 64).sum(axis=1))


def test_missing_barriers_show() -> None:
    values = np.arange(1, 129, dtype=np.int32)
    sums = np.zeros(2, dtype=np.int32)
    library().host_block_sums(2, 1, 64, 1, values, sums, 128, 0)
    assert sums.tolist() != values.reshape(2, 64).sum(axis=1).tolist()
