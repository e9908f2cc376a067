"""`python -m bench loader`: training-loader throughput, cuzarr's PatchLoader against the
loaders users build today, on the same random patches, rounds interleaved.

Engines, each in its best documented configuration (no engine caches chunks: zarr has no
chunk cache, tensorstore's cache pool is off by default, cuzarr has none):

- cuzarr: `cuzarr.loader.PatchLoader` (one `read_patches` job per batch, 2 batches
  prefetched on a background thread, device="cpu");
- dataloader-zarr / dataloader-zarrs: `torch.utils.data.DataLoader`, 2 worker processes
  (spawned, persistent across an epoch, prefetch_factor 2), over a map-style dataset
  whose items are `arr[box]` with zarr's default pipeline, or zarrs-python's;
- tensorstore: each batch's reads issued together and then awaited.

A round reads `batches` batches; its time runs from the first batch's arrival (worker
start-up and the first read excluded for every engine alike) to the last. Every batch is
checked against the stored data after the round. Reported: samples/s and GB/s, best and
median over rounds, the spread (slowest/fastest round), and each engine's best against
the best peer's (peers: all but cuzarr).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from bench.workloads import DEFAULT_PIPELINE, all_workloads, array_path, prepare, ref_path

ENGINES = ("cuzarr", "dataloader-zarr", "dataloader-zarrs", "tensorstore")
PEERS = ENGINES[1:]
PIPELINES = {"dataloader-zarr": DEFAULT_PIPELINE,
             "dataloader-zarrs": "zarrs.ZarrsCodecPipeline"}
BATCH = 16
SUITE_2D = ("zstd-4MiB", "sharded-zstd-1MiB", "blosc-lz4-shuffle", "gzip-1MiB",
            "zstd-64KiB", "small-2KiB")


@dataclass(frozen=True)
class LoaderWorkload:
    name: str
    path: Path
    reference: Path
    patch: tuple[int, ...]
    itemsize: int


def prepare_volume(root: Path, quick: bool) -> LoaderWorkload:
    """The 3-D case: float32, sharded zstd, 64^3 inner chunks."""
    shape = (128, 256, 256) if quick else (256, 512, 512)
    folder = root / f"volume-{'x'.join(map(str, shape))}"
    path, reference = folder / "array.zarr", folder / "ref.npy"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(11)
        z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
        data = (10 * np.sin(z / 9) * np.cos(y / 13) + np.sin(x / 7)).astype(np.float32)
        data += np.round(rng.standard_normal(shape, dtype=np.float32) * 8) / 8
        np.save(reference, data)
        with zarr.config.set({"codec_pipeline.path": DEFAULT_PIPELINE}):
            arr = zarr.create_array(str(path), shape=shape, dtype="float32",
                                    chunks=(64, 64, 64), shards=(64, 256, 256),
                                    compressors=ZstdCodec(level=1), overwrite=True)
            arr[...] = data
        (folder / "done").touch()
    return LoaderWorkload(folder.name + "-zstd-sharded", path, reference, (64, 64, 64), 4)


def suite_workloads(root: Path, quick: bool, names: tuple[str, ...]) -> list[LoaderWorkload]:
    found = all_workloads(quick)
    out = []
    for name in names:
        w = found[name]
        prepare(root, w)
        out.append(LoaderWorkload(name, array_path(root, w), ref_path(root, w), w.patch,
                                  np.dtype(w.dtype).itemsize))
    return out


def round_starts(shape: tuple[int, ...], patch: tuple[int, ...], n: int, seed: int
                 ) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s - p + 1, n) for s, p in zip(shape, patch, strict=True)],
                    axis=1)


# -- the DataLoader's dataset (importable: spawned workers unpickle it) ------------------------

class ZarrPatches:
    """Map-style dataset: item i is the patch at starts[i], read with `pipeline`."""

    def __init__(self, path: str, starts: np.ndarray, patch: tuple[int, ...],
                 pipeline: str) -> None:
        self.path, self.starts, self.patch, self.pipeline = path, starts, patch, pipeline
        self._array: Any = None

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> Any:
        import torch

        if self._array is None:  # opened in each worker, with its pipeline
            if self.pipeline.startswith("zarrs"):
                import zarrs  # noqa: F401  (registers the pipeline)
            zarr.config.set({"codec_pipeline.path": self.pipeline})
            self._array = zarr.open_array(self.path, mode="r")
        box = tuple(slice(int(a), int(a) + p) for a, p in zip(self.starts[i], self.patch,
                                                               strict=True))
        return torch.from_numpy(np.ascontiguousarray(self._array[box]))


def dataloader_batches(engine: str, w: LoaderWorkload, starts: np.ndarray) -> Iterator[Any]:
    from torch.utils.data import DataLoader

    dataset = ZarrPatches(str(w.path), starts, w.patch, PIPELINES[engine])
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=2, shuffle=False,
                        prefetch_factor=2, multiprocessing_context="spawn")
    yield from loader


def cuzarr_batches(w: LoaderWorkload, starts: np.ndarray) -> Iterator[Any]:
    import cuzarr
    from cuzarr.loader import PatchLoader

    with cuzarr.enable(gpu=False):
        arr = zarr.open_array(str(w.path), mode="r")
    with PatchLoader(arr, w.patch, BATCH, starts=starts, shuffle=False, prefetch=2,
                     device="cpu", output="torch") as loader:
        yield from loader


def tensorstore_batches(w: LoaderWorkload, starts: np.ndarray) -> Iterator[Any]:
    import tensorstore as ts

    store = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(w.path)}},
                    open=True, read=True).result()
    for lo in range(0, len(starts), BATCH):
        futures = [store[tuple(slice(int(a), int(a) + p) for a, p in
                               zip(s, w.patch, strict=True))].read()
                   for s in starts[lo : lo + BATCH]]
        yield np.stack([f.result() for f in futures])


def batches_of(engine: str) -> Callable[[LoaderWorkload, np.ndarray], Iterator[Any]]:
    if engine == "cuzarr":
        return cuzarr_batches
    if engine == "tensorstore":
        return tensorstore_batches
    return lambda w, starts: dataloader_batches(engine, w, starts)


def measure(engine: str, w: LoaderWorkload, starts: np.ndarray, reference: np.ndarray
            ) -> float:
    """Seconds from the first batch to the last (the first excluded), checked after."""
    got, first_at = [], 0.0
    for i, batch in enumerate(batches_of(engine)(w, starts)):
        if i == 0:
            first_at = time.perf_counter()
        got.append(batch)
    seconds = time.perf_counter() - first_at
    for b, batch in enumerate(got):
        values = np.asarray(batch)
        for j, start in enumerate(starts[b * BATCH : (b + 1) * BATCH]):
            box = tuple(slice(int(a), int(a) + p) for a, p in zip(start, w.patch, strict=True))
            if not np.array_equal(values[j], reference[box]):
                raise AssertionError(f"{engine} returned wrong data for patch {b * BATCH + j} "
                                     f"of {w.name}")
    return seconds


def available(engine: str) -> str | None:
    """None, or why the engine cannot run here."""
    need = {"cuzarr": ("torch",), "dataloader-zarr": ("torch",),
            "dataloader-zarrs": ("torch", "zarrs"), "tensorstore": ("tensorstore",)}[engine]
    for module in need:
        try:
            __import__(module)
        except ImportError as e:
            return f"{module} does not import: {e}"
    return None


def run(quick: bool, rounds: int, out: Path | None, data: Path | None,
        engines: tuple[str, ...] = ENGINES, workloads: tuple[str, ...] | None = None
        ) -> dict[str, Any]:
    root = data or Path(tempfile.mkdtemp(prefix="cuzarr-loader-bench-"))
    try:
        return _run(root, quick, rounds, out, engines, workloads)
    finally:
        if data is None:
            shutil.rmtree(root, ignore_errors=True)


def _run(root: Path, quick: bool, rounds: int, out: Path | None, engines: tuple[str, ...],
         workloads: tuple[str, ...] | None) -> dict[str, Any]:
    names = SUITE_2D[:2] if quick else SUITE_2D
    if workloads:
        names = tuple(n for n in names if n in workloads)
    cases = [prepare_volume(root, quick)] if not workloads or "volume" in workloads else []
    cases += suite_workloads(root, quick, names)
    skipped = {e: why for e in engines if (why := available(e))}
    runnable = [e for e in engines if e not in skipped]
    n_batches = 6 if quick else 20
    samples = n_batches * BATCH
    results: dict[str, Any] = {"meta": {"quick": quick, "rounds": rounds, "batch": BATCH,
                                        "batches_per_round": n_batches, "skipped": skipped},
                               "cases": {}}
    for w in cases:
        reference = np.load(w.reference, mmap_mode="r")
        shape = tuple(reference.shape)
        times: dict[str, list[float]] = {e: [] for e in runnable}
        for r in range(rounds):
            starts = round_starts(shape, w.patch, samples, seed=1000 + r)
            order = runnable[r % len(runnable):] + runnable[: r % len(runnable)]
            for engine in order:  # interleaved, the order rotating each round
                times[engine].append(measure(engine, w, starts, reference))
        patch_bytes = math.prod(w.patch) * w.itemsize
        counted = samples - BATCH  # the first batch is not timed
        rows = {}
        for engine, ts in times.items():
            best, median = min(ts), statistics.median(ts)
            rows[engine] = {"best_s": best, "median_s": median, "spread": max(ts) / best,
                            "samples_per_s": counted / best,
                            "median_samples_per_s": counted / median,
                            "gb_per_s": counted * patch_bytes / best / 1e9}
        peers = [rows[e]["samples_per_s"] for e in PEERS if e in rows]
        for row in rows.values():
            row["vs_best_peer"] = row["samples_per_s"] / max(peers) if peers else None
        results["cases"][w.name] = {"patch": w.patch, "rows": rows}
        print(format_case(w.name, w.patch, rows), flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "loader.json").write_text(json.dumps(results, indent=2, default=str))
        (out / "loader.md").write_text(format_markdown(results))
    return results


def format_case(name: str, patch: tuple[int, ...], rows: dict[str, Any]) -> str:
    lines = [f"== {name}: random {'x'.join(map(str, patch))} patches, batches of {BATCH} ==",
             f"  {'engine':<18} {'samples/s':>10} {'median':>10} {'GB/s':>7} {'spread':>7} "
             f"{'vs best peer':>13}"]
    for engine, row in rows.items():
        ratio = row["vs_best_peer"]
        lines.append(f"  {engine:<18} {row['samples_per_s']:>10.0f} "
                     f"{row['median_samples_per_s']:>10.0f} {row['gb_per_s']:>7.3f} "
                     f"{row['spread']:>6.2f}x {'' if ratio is None else f'{ratio:.2f}x':>13}")
    return "\n".join(lines)


def format_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [f"# Loader benchmark ({'quick' if meta['quick'] else 'full'}, {meta['rounds']} "
             f"rounds of {meta['batches_per_round']} batches of {meta['batch']})", "",
             "samples/s of each engine's best round (higher is faster); `vs best peer` is "
             "that over the fastest peer's best; spread is slowest/fastest round.", ""]
    for name, case in results["cases"].items():
        lines += [f"## {name}, {'x'.join(map(str, case['patch']))} patches", "",
                  "| engine | samples/s | median | GB/s | spread | vs best peer |",
                  "|---|---|---|---|---|---|"]
        for engine, row in case["rows"].items():
            ratio = row["vs_best_peer"]
            lines.append(f"| {engine} | {row['samples_per_s']:.0f} | "
                         f"{row['median_samples_per_s']:.0f} | {row['gb_per_s']:.3f} | "
                         f"{row['spread']:.2f}x | "
                         f"{'' if ratio is None else f'{ratio:.2f}x'} |")
        lines.append("")
    for engine, why in meta["skipped"].items():
        lines.append(f"- {engine} not run: {why}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench loader", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a 32 MiB volume and two 2-D workloads, 2 rounds of 6 batches")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, 2 with --quick)")
    parser.add_argument("--out", help="write DIR/loader.json and DIR/loader.md")
    parser.add_argument("--data", help="dataset dir, kept and reused across runs")
    parser.add_argument("--engines", help=f"comma-separated, of {', '.join(ENGINES)}")
    parser.add_argument("--workloads", help="comma-separated: volume, and suite workload names")
    args = parser.parse_args(argv)
    engines = tuple(args.engines.split(",")) if args.engines else ENGINES
    unknown = set(engines) - set(ENGINES)
    if unknown:
        print(f"error: unknown engines {sorted(unknown)}", file=sys.stderr)
        return 2
    rounds = args.rounds or (2 if args.quick else 5)
    workloads = tuple(args.workloads.split(",")) if args.workloads else None
    run(args.quick, rounds, Path(args.out) if args.out else None,
        Path(args.data) if args.data else None, engines, workloads)
    return 0
