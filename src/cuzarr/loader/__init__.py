"""Training data from zarr: `PatchLoader` reads batches of patches ahead of the step.

Each batch is one `cuzarr.read_patches` job (every chunk its patches touch fetched and
decoded once); see `PatchLoader` for sampling, distributed ranks, devices and outputs.
"""

from __future__ import annotations

from cuzarr.loader.patch_loader import PatchLoader

__all__ = ["PatchLoader"]
