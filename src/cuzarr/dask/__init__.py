"""cuzarr on dask.distributed: `enable(client)` makes every worker run cuzarr with the
client's settings (threads sized per worker), `from_zarr` and `to_zarr` read and write
dask arrays block by block, each block one batched cuzarr job (the `dask` extra)."""

from __future__ import annotations

from cuzarr.dask.arrays import from_zarr, to_zarr
from cuzarr.dask.plugin import CuzarrPlugin, enable, worker_state

__all__ = ["CuzarrPlugin", "enable", "from_zarr", "to_zarr", "worker_state"]
