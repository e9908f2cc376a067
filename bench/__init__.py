"""Benchmarks for cuzarr against zarr-python's own pipelines and zarrs.

Run `python -m bench --help`. `smoke` is the hook for tests: a one-round quick run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_SMOKE_ENGINES = ("cuzarr", "batched")


def smoke(
    out_dir: str | Path,
    engines: Sequence[str] = DEFAULT_SMOKE_ENGINES,
    workloads: Sequence[str] | None = None,
    ops: Sequence[str] = ("read", "write"),
) -> dict[str, Any]:
    """Run the quick suite, one round per engine, and return the results dict.

    Writes OUT_DIR/results.json and worker logs; check `results["summary"]` entries'
    `status` ("ok", "FAILED" for wrong data, "error").
    """
    from bench.runner import Options, run

    options = Options(
        quick=True,
        rounds=1,
        engines=tuple(engines),
        workloads=workloads,
        ops=tuple(ops),
        out=str(out_dir),
        progress=False,
    )
    return run(options)


__all__ = ["smoke"]
