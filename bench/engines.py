"""Engines under test: a zarr codec pipeline path plus the modules that register it."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from importlib import metadata

import zarr
from zarr.abc.codec import CodecPipeline
from zarr.core.config import BadConfigError
from zarr.registry import _pipeline_registry, get_pipeline_class


@dataclass(frozen=True)
class Engine:
    """`peer=False` marks the engine being evaluated; ratios compare it against the peers."""

    name: str
    pipeline_path: str
    imports: tuple[str, ...] = ()
    peer: bool = True


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("cuzarr", "cuzarr.PhasedCodecPipeline", ("cuzarr",), peer=False),
        Engine("batched", "zarr.core.codec_pipeline.BatchedCodecPipeline"),
        Engine("fused", "zarr.core.codec_pipeline.FusedCodecPipeline"),
        Engine("zarrs", "zarrs.ZarrsCodecPipeline", ("zarrs",)),
    )
}

VERSIONED_PACKAGES = ("zarr", "numcodecs", "numpy", "zarrs", "tensorstore", "cuzarr")


def get_engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}") from None


def activate(engine: Engine) -> tuple[type[CodecPipeline], list[str]]:
    """Make `engine` zarr's codec pipeline for this process.

    Returns the pipeline class and the broken plugins that had to be skipped.

    Pipelines are normally registered through the `zarr.codec_pipeline` entry point.
    A source checkout that is not pip-installed has no entry point, so a pipeline that
    imports but is not registered gets registered under its configured path here.
    """
    for module in engine.imports:
        importlib.import_module(module)
    skipped = skip_broken_plugins()
    zarr.config.set({"codec_pipeline.path": engine.pipeline_path})
    try:
        return get_pipeline_class(), skipped
    except BadConfigError:
        module_name, _, attr = engine.pipeline_path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), attr)
        if not (isinstance(cls, type) and issubclass(cls, CodecPipeline)):
            raise TypeError(f"{engine.pipeline_path} is not a CodecPipeline subclass") from None
        _pipeline_registry.register(cls, qualname=engine.pipeline_path)
        return get_pipeline_class(), skipped


def skip_broken_plugins() -> list[str]:
    """Load pipeline entry points one by one and drop those that fail to import.

    zarr loads every `zarr.codec_pipeline` plugin on first use, so one broken plugin
    (say a half-written cuzarr install) would otherwise fail every engine, peers included.
    """
    skipped = []
    for entry_point in list(_pipeline_registry.lazy_load_list):
        try:
            _pipeline_registry.register(entry_point.load())
        except Exception as exc:
            skipped.append(f"{entry_point.value}: {type(exc).__name__}: {exc}")
            print(f"bench: skipping pipeline plugin {skipped[-1]}", file=sys.stderr)
    _pipeline_registry.lazy_load_list.clear()
    return skipped


def package_versions() -> dict[str, str | None]:
    """Installed versions, read from metadata so nothing gets imported for them."""
    versions: dict[str, str | None] = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
