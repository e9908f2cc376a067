"""Settings: scoped changes, environment variables, and pipeline selection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import cuzarr


def test_set_is_scoped_and_restores() -> None:
    before = cuzarr.config.get("threads")
    with cuzarr.config.set(threads=3, wave_bytes=4096):
        assert cuzarr.config.get("threads") == 3
        assert cuzarr.config.options().wave_bytes == 4096
    assert cuzarr.config.get("threads") == before


def test_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUZARR_THREADS", "5")
    assert cuzarr.config.get("threads") == 5
    assert cuzarr.config.options().threads == 5


def test_enable_selects_pipeline_and_restores() -> None:
    before = zarr.config.get("codec_pipeline.path")
    with cuzarr.enable(gpu=False):
        assert zarr.config.get("codec_pipeline.path") == "cuzarr.PhasedCodecPipeline"
    assert zarr.config.get("codec_pipeline.path") == before


def test_entry_point_and_env_var_select_pipeline(tmp_path: Path) -> None:
    """A fresh interpreter that never imports cuzarr finds it through the entry point."""
    code = (
        "import zarr, numpy as np\n"
        f"a = zarr.create_array({str(tmp_path)!r}, shape=(10,), chunks=(4,), dtype='i2')\n"
        "a[:] = np.arange(10)\n"
        "assert type(a.async_array.codec_pipeline).__name__ == 'PhasedCodecPipeline'\n"
        "assert (a[:] == np.arange(10)).all()\n"
        "print(type(a.async_array.codec_pipeline).__module__)\n"
    )
    env = dict(os.environ, ZARR_CODEC_PIPELINE__PATH="cuzarr.PhasedCodecPipeline")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "cuzarr"


def test_small_waves_give_the_same_result(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((40, 40)).astype("f8")
    with cuzarr.enable(gpu=False), cuzarr.config.set(wave_bytes=1):
        arr = zarr.create_array(str(tmp_path), shape=data.shape, chunks=(7, 9), dtype="f8",
                                shards=(14, 18))
        arr[:] = data
        np.testing.assert_array_equal(arr[:], data)
        np.testing.assert_array_equal(arr[3:30, 5:37], data[3:30, 5:37])
