"""`python -m bench dask`: read and write throughput of a sharded zstd array on a real
dask.distributed LocalCluster with 1 and 2 worker processes (1 thread each), for cuzarr
(`cuzarr.dask.enable` + `from_zarr`/`to_zarr`) and for dask's own `from_zarr`/`to_zarr`
with zarr's default pipeline on the same cluster: a warm-up of each engine, then rounds
interleaved (the order alternating).

Both engines get blocks of whole shards (dask's best configuration for a sharded array:
its default blocks of inner chunks make each task read part of a shard). A read is
`x.sum(dtype=float64)` (the sum is checked equal across engines: same blocks, same
reduction tree); a write stores a deterministic field made on the workers (the same
generation cost for both) into a fresh array, and two shards of it are checked against
the generator afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

DEFAULT = "zarr.core.codec_pipeline.BatchedCodecPipeline"
CUZARR = "cuzarr.PhasedCodecPipeline"
ENGINES = ("cuzarr", "dask-zarr")


def field(block_info: dict[Any, Any] | None = None) -> np.ndarray:
    """The written data: a smooth quantized field, from the block's own location."""
    assert block_info is not None
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    y = np.arange(y0, y1, dtype=np.float32)[:, None]
    x = np.arange(x0, x1, dtype=np.float32)[None, :]
    return (np.round((np.sin(y / 97) * np.cos(x / 61) * 20 + np.sin(x / 7)) * 16) / 16
            ).astype(np.float32)


def prepare(root: Path, shape: tuple[int, int], shards: tuple[int, int]) -> Path:
    path = root / f"source-{shape[0]}x{shape[1]}.zarr"
    if (root / f"{path.name}.done").exists():
        return path
    import dask.array as da

    with zarr.config.set({"codec_pipeline.path": DEFAULT}):
        target = zarr.create_array(str(path), shape=shape, dtype="float32", chunks=(512, 512),
                                   shards=shards, compressors=ZstdCodec(level=1),
                                   overwrite=True)
        values = da.map_blocks(field, chunks=tuple((s,) * (n // s) for n, s in
                                                    zip(shape, shards, strict=True)),
                               dtype=np.float32)
        da.store(values, target, lock=False, scheduler="threads")
    (root / f"{path.name}.done").touch()
    return path


def use(client: Any, engine: str) -> None:
    """Select an engine on the workers and in this client."""
    import cuzarr
    import cuzarr.dask

    if engine == "cuzarr":
        cuzarr.dask.enable(client)
        return
    if "cuzarr" in client.run_on_scheduler(lambda dask_scheduler: list(
            dask_scheduler.worker_plugins)):
        client.unregister_worker_plugin("cuzarr")

    def default() -> None:
        zarr.config.set({"codec_pipeline.path": DEFAULT})
        cuzarr.config.reset()

    client.run(default)
    zarr.config.set({"codec_pipeline.path": DEFAULT})


def read_once(engine: str, path: Path, shards: tuple[int, int]) -> tuple[float, float]:
    import dask.array as da

    import cuzarr.dask

    start = time.perf_counter()
    if engine == "cuzarr":
        x = cuzarr.dask.from_zarr(str(path))
    else:
        x = da.from_zarr(str(path), chunks=shards)
    total = float(x.sum(dtype=np.float64).compute())
    return time.perf_counter() - start, total


def write_once(engine: str, root: Path, shape: tuple[int, int], shards: tuple[int, int]
               ) -> float:
    import dask.array as da

    import cuzarr.dask

    path = root / f"out-{engine}.zarr"
    shutil.rmtree(path, ignore_errors=True)
    target = zarr.create_array(str(path), shape=shape, dtype="float32", chunks=(512, 512),
                               shards=shards, compressors=ZstdCodec(level=1))
    values = da.map_blocks(field, chunks=tuple((s,) * (n // s) for n, s in
                                                zip(shape, shards, strict=True)),
                           dtype=np.float32)
    start = time.perf_counter()
    if engine == "cuzarr":
        cuzarr.dask.to_zarr(values, target)
    else:
        da.store(values, target, lock=False)  # what da.to_zarr does with a zarr array
    seconds = time.perf_counter() - start
    with zarr.config.set({"codec_pipeline.path": DEFAULT}):
        back = zarr.open_array(str(path), mode="r")
        for corner in [(0, 0), (shape[0] - shards[0], shape[1] - shards[1])]:
            box = tuple(slice(c, c + s) for c, s in zip(corner, shards, strict=True))
            info = {None: {"array-location": [(b.start, b.stop) for b in box]}}
            if not np.array_equal(back[box], field(info)):
                raise AssertionError(f"{engine} wrote wrong data at {corner}")
    shutil.rmtree(path, ignore_errors=True)
    return seconds


def run(quick: bool, rounds: int, out: Path | None, data: Path | None) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    shape = (8192, 4096) if quick else (16384, 16384)  # 128 MiB, 1 GiB of float32
    shards = (2048, 2048)
    root = data or Path(tempfile.mkdtemp(prefix="cuzarr-dask-bench-"))
    nbytes = shape[0] * shape[1] * 4
    results: dict[str, Any] = {"meta": {"shape": shape, "shards": shards, "inner": (512, 512),
                                        "rounds": rounds, "nbytes": nbytes}, "runs": {}}
    try:
        source = prepare(root, shape, shards)
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                times: dict[str, dict[str, list[float]]] = {
                    e: {"read": [], "write": []} for e in ENGINES}
                sums = set()
                for engine in ENGINES:  # a warm-up of each (imports, worker start-up)
                    use(client, engine)
                    read_once(engine, source, shards)
                    write_once(engine, root, shape, shards)
                for r in range(rounds):
                    for engine in ENGINES[r % 2:] + ENGINES[: r % 2]:
                        use(client, engine)
                        seconds, total = read_once(engine, source, shards)
                        times[engine]["read"].append(seconds)
                        sums.add(total)
                        times[engine]["write"].append(write_once(engine, root, shape, shards))
                if len(sums) != 1:
                    raise AssertionError(f"the engines' sums differ: {sorted(sums)}")
                rows = {}
                for engine, ops in times.items():
                    for op, ts in ops.items():
                        rows[f"{engine} {op}"] = {
                            "best_s": min(ts), "median_s": statistics.median(ts),
                            "spread": max(ts) / min(ts), "gb_per_s": nbytes / min(ts) / 1e9}
                results["runs"][str(workers)] = rows
                print(format_run(workers, rows), flush=True)
    finally:
        zarr.config.set({"codec_pipeline.path": DEFAULT})
        if data is None:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarize(results)
    results["summary"] = summary
    print("\n".join(summary))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "dask.json").write_text(json.dumps(results, indent=2))
        (out / "dask.md").write_text(format_markdown(results))
    return results


def summarize(results: dict[str, Any]) -> list[str]:
    runs = results["runs"]
    lines = []
    for op in ("read", "write"):
        for workers, rows in runs.items():
            ratio = rows[f"cuzarr {op}"]["gb_per_s"] / rows[f"dask-zarr {op}"]["gb_per_s"]
            lines.append(f"{op}, {workers} worker(s): cuzarr {ratio:.2f}x dask-zarr's throughput")
        if {"1", "2"} <= set(runs):
            scale = runs["2"][f"cuzarr {op}"]["gb_per_s"] / runs["1"][f"cuzarr {op}"]["gb_per_s"]
            lines.append(f"{op}: cuzarr with 2 workers {scale:.2f}x its 1-worker throughput")
    return lines


def format_run(workers: int, rows: dict[str, Any]) -> str:
    lines = [f"== {workers} worker(s), 1 thread each ==",
             f"  {'engine op':<18} {'best s':>8} {'median s':>9} {'GB/s':>7} {'spread':>7}"]
    for name, row in rows.items():
        lines.append(f"  {name:<18} {row['best_s']:>8.2f} {row['median_s']:>9.2f} "
                     f"{row['gb_per_s']:>7.3f} {row['spread']:>6.2f}x")
    return "\n".join(lines)


def format_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [f"# Dask benchmark: {meta['nbytes'] / 2**30:.2f} GiB float32 "
             f"{meta['shape'][0]}x{meta['shape'][1]}, shards {meta['shards']}, inner chunks "
             f"{meta['inner']}, zstd; {meta['rounds']} interleaved rounds", "",
             "| workers | engine op | best s | median s | GB/s | spread |",
             "|---|---|---|---|---|---|"]
    for workers, rows in results["runs"].items():
        for name, row in rows.items():
            lines.append(f"| {workers} | {name} | {row['best_s']:.2f} | {row['median_s']:.2f} | "
                         f"{row['gb_per_s']:.3f} | {row['spread']:.2f}x |")
    lines += ["", *[f"- {line}" for line in results["summary"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dask", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128 MiB, 1 round")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, 1 with --quick)")
    parser.add_argument("--out", help="write DIR/dask.json and DIR/dask.md")
    parser.add_argument("--data", help="dataset dir, kept and reused across runs")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    run(args.quick, rounds, Path(args.out) if args.out else None,
        Path(args.data) if args.data else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
