"""Fixtures for the cuzarr parity suite.

The pipeline under test comes from ``$CUZARR_TEST_PIPELINE`` (default
``cuzarr.PhasedCodecPipeline``); the oracle is zarr's default ``BatchedCodecPipeline``.
Run the suite against zarr's own fused pipeline to validate the tests themselves::

    CUZARR_TEST_PIPELINE=zarr.core.codec_pipeline.FusedCodecPipeline .venv/bin/pytest tests
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import zarr
from zarr.abc.store import Store

from parity import (
    ORACLE_PIPELINE,
    StoreFactory,
    make_store,
    pipeline_under_test,
    using_pipeline,
)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Show which pipeline the run exercises."""
    return [f"cuzarr parity: pipeline under test = {pipeline_under_test()}"]


@pytest.fixture(scope="session")
def test_pipeline() -> str:
    """Dotted path of the pipeline under test; fails loudly if it cannot be imported."""
    path = pipeline_under_test()
    with using_pipeline(path):  # imports and registers it
        pass
    return path


@pytest.fixture(scope="session")
def oracle_pipeline() -> str:
    """Dotted path of the oracle pipeline (zarr's BatchedCodecPipeline)."""
    return ORACLE_PIPELINE


@pytest.fixture
def store_factory(tmp_path: Path) -> StoreFactory:
    """``store_factory(kind="local", name=None)``: a fresh, empty store.

    ``"local"`` stores live in distinct sub-directories of ``tmp_path``.
    """
    counter = itertools.count()

    def factory(kind: str = "local", name: str | None = None) -> Store:
        root = tmp_path / (name or f"store{next(counter)}")
        if kind == "local":
            root.mkdir(parents=True, exist_ok=False)
        return make_store(kind, root)

    return factory


@pytest.fixture(autouse=True)
def _reset_zarr_config() -> Iterator[None]:
    """Restore zarr's global config after every test, whatever the test did to it."""
    saved = copy.deepcopy(zarr.config.config)
    yield
    with zarr.config.config_lock:
        zarr.config.config.clear()
        zarr.config.config.update(saved)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `cuda`-marked tests cleanly where the cuda device cannot run, saying why."""
    from cuzarr.devices import _missing_cuda_parts

    missing = _missing_cuda_parts()
    if not missing:
        return
    skip = pytest.mark.skip(reason="needs the cuda device; missing: " + ", ".join(missing))
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
