"""Every worker of a dask.distributed cluster runs cuzarr, with the client's settings.

A registered WorkerPlugin runs on every worker now and on any that joins or restarts
later: it selects cuzarr's pipeline in zarr's config (so arrays a task opens get it) and
applies the cuzarr settings the client gave. Unless the settings name `threads`, each
worker sizes cuzarr's pool from its own `nthreads`, so N workers on one machine share its
cores instead of each starting os.cpu_count() threads.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from cuzarr import config
from cuzarr.errors import ConfigError

__all__ = ["CuzarrPlugin", "enable", "worker_state"]

PIPELINE = "cuzarr.PhasedCodecPipeline"
NAME = "cuzarr"


class CuzarrPlugin(WorkerPlugin):
    """Selects cuzarr and its settings on a worker (see `enable`)."""

    name = NAME

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = dict(settings)

    def setup(self, worker: Any) -> None:
        import zarr

        settings = dict(self.settings)
        if "threads" not in settings:
            settings["threads"] = worker.state.nthreads
        config.set(**settings)
        zarr.config.set({"codec_pipeline.path": PIPELINE})


def enable(client: Any, **settings: Any) -> None:
    """Run cuzarr on every worker of `client`'s cluster, with these cuzarr settings
    (`cuzarr.config` names: threads, device, wave_bytes, ...), now and on workers that
    join or restart later. Settings are checked here, so a bad one fails in the client,
    naming it. The client selects cuzarr's pipeline too (its cuzarr settings are left as
    they are): a zarr array opened in the client, by xarray say, is pickled into tasks
    with the pipeline it was opened with."""
    unknown = set(settings) - set(config.describe())
    if unknown:
        raise ConfigError(f"unknown cuzarr settings {sorted(unknown)}; known: "
                          f"{sorted(config.describe())}")
    with config.set(**settings):  # validated, then restored: the client's own are kept
        pass
    import zarr

    # arrays opened here (xarray's included) carry their pipeline into tasks when pickled
    zarr.config.set({"codec_pipeline.path": PIPELINE})
    client.register_plugin(CuzarrPlugin(settings), name=NAME)


def worker_state() -> dict[str, Any]:
    """What a process runs with (for `client.run(worker_state)`): zarr's pipeline path and
    cuzarr's resolved settings."""
    import zarr

    resolved = config.options()
    return {"codec_pipeline.path": zarr.config.get("codec_pipeline.path"),
            **{name: getattr(resolved, name) for name in resolved.__dataclass_fields__}}
