"""`cuzarr.enable()`: select the pipeline (and GPU buffers where the cuda device can run)."""

from __future__ import annotations

from typing import Any

PIPELINE_PATH = "cuzarr.PhasedCodecPipeline"


class _Enabled:
    """What `enable()` returns: ignore it, or use it as a context manager to restore zarr."""

    def __init__(self, previous: dict[str, Any]) -> None:
        self._previous = previous

    def __enter__(self) -> _Enabled:
        return self

    def __exit__(self, *exc: object) -> None:
        import zarr

        zarr.config.set(self._previous)


def enable(*, gpu: bool | None = None) -> _Enabled:
    """Make zarr use `cuzarr.PhasedCodecPipeline`.

    gpu: None selects GPU buffers (cupy outputs) only when the cuda device is
    usable here; True requires it (and explains what is missing otherwise);
    False keeps host buffers.
    """
    import zarr

    from cuzarr.devices import cuda_available, require_cuda

    keys = ("codec_pipeline.path", "buffer", "ndbuffer")
    previous = {key: zarr.config.get(key) for key in keys}
    settings: dict[str, Any] = {"codec_pipeline.path": PIPELINE_PATH}
    if gpu is True:
        require_cuda()
    if gpu is True or (gpu is None and cuda_available()):
        settings.update(buffer="zarr.buffer.gpu.Buffer", ndbuffer="zarr.buffer.gpu.NDBuffer")
    zarr.config.set(settings)
    return _Enabled(previous)
