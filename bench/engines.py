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
    """One way to read and write a zarr array.

    `peer=False` marks an engine being evaluated (cuzarr); ratios compare it against the
    peers. `gpu=True` engines read into and write from cupy arrays (zarr's enable_gpu);
    without a usable GPU they report themselves unavailable at the handshake. An engine
    with `pipeline_path=None` is not a zarr codec pipeline: tensorstore reads the store
    itself. `setup` names a function the engine's package wants called before use (czarr
    registers its GPU codec classes over zarr's that way); `install` says how to get the
    package, for the reason given when it does not import.
    """

    name: str
    pipeline_path: str | None
    imports: tuple[str, ...] = ()
    peer: bool = True
    gpu: bool = False
    settings: tuple[tuple[str, str], ...] = ()  # cuzarr.config settings for the engine
    setup: str | None = None  # dotted path of a function called once at activation
    install: str | None = None


BATCHED = "zarr.core.codec_pipeline.BatchedCodecPipeline"
FUSED = "zarr.core.codec_pipeline.FusedCodecPipeline"
CUZARR = "cuzarr.PhasedCodecPipeline"
CZARR = "czarr.pipeline.CzarrPipeline"

ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("cuzarr", CUZARR, ("cuzarr",), peer=False, settings=(("device", "cpu"),)),
        Engine(
            "cuzarr-cuda", CUZARR, ("cuzarr",), peer=False, gpu=True,
            settings=(("device", "cuda"),),
        ),
        Engine("batched", BATCHED),
        Engine("fused", FUSED),
        Engine("batched-gpu", BATCHED, gpu=True),
        Engine("fused-gpu", FUSED, gpu=True),
        Engine("zarrs", "zarrs.ZarrsCodecPipeline", ("zarrs",)),
        Engine("tensorstore", None, ("tensorstore",)),
        # czarr (PyPI `czarr`): zarr's BatchedCodecPipeline subclassed, with nvCOMP codecs
        # registered over zarr's zstd/lz4/gzip/zlib/blosc/sharding by configure_gpu()
        Engine("czarr", CZARR, ("czarr",), gpu=True, setup="czarr.configure_gpu",
               install="pip install 'czarr[cu13]' (or czarr[cu12])"),
    )
}

VERSIONED_PACKAGES = ("zarr", "numcodecs", "numpy", "zarrs", "tensorstore", "cuzarr", "czarr")


def get_engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}") from None


def require_gpu() -> None:
    """Raise with what is missing when this process cannot put arrays on a GPU."""
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(f"no GPU engine here: cupy is not installed ({exc})") from None
    if not cupy.cuda.is_available():
        raise RuntimeError("no GPU engine here: cupy finds no CUDA device")


def activate(engine: Engine) -> tuple[type[CodecPipeline] | None, list[str]]:
    """Make `engine` zarr's codec pipeline for this process (GPU buffers for gpu engines).

    Returns the pipeline class (None for a non-pipeline engine) and the broken plugins
    that had to be skipped.
    """
    if engine.gpu:
        require_gpu()
    import_modules(engine)
    skipped = skip_broken_plugins()
    if engine.pipeline_path is None:
        return None, skipped
    if engine.setup:
        call_dotted(engine.setup)
    if engine.settings:
        import cuzarr

        cuzarr.config.set(**dict(engine.settings))
        if engine.gpu:
            cuzarr.devices.require_cuda()
    if engine.gpu:
        zarr.config.enable_gpu()
    zarr.config.set({"codec_pipeline.path": engine.pipeline_path})
    return pipeline_class(engine.pipeline_path), skipped


def import_modules(engine: Engine) -> None:
    """Import the engine's modules; one that is missing makes the engine unavailable with
    a reason that says what to install."""
    for module in engine.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            hint = f"; install: {engine.install}" if engine.install else ""
            raise RuntimeError(
                f"{engine.name} needs {module}, which does not import here ({exc}){hint}"
            ) from exc


def call_dotted(path: str) -> None:
    """Call the function at dotted `path` (module.attr) with no arguments."""
    module_name, _, attr = path.rpartition(".")
    getattr(importlib.import_module(module_name), attr)()


def pipeline_class(path: str) -> type[CodecPipeline]:
    """The codec pipeline class configured at `path`, registering it first if needed.

    Pipelines are normally registered through the `zarr.codec_pipeline` entry point. A
    source checkout that is not pip-installed has none, so a pipeline that imports but is
    not registered gets registered under its path here.
    """
    with zarr.config.set({"codec_pipeline.path": path}):
        try:
            return get_pipeline_class()
        except BadConfigError:
            module_name, _, attr = path.rpartition(".")
            cls = getattr(importlib.import_module(module_name), attr)
            if not (isinstance(cls, type) and issubclass(cls, CodecPipeline)):
                raise TypeError(f"{path} is not a CodecPipeline subclass") from None
            _pipeline_registry.register(cls, qualname=path)
            return get_pipeline_class()


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
