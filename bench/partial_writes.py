"""`python -m bench partial-writes`: writes of a few inner chunks of a big stored shard,
cuzarr (in place, through its journal) against zarr's default pipeline and zarrs-python
(both rewrite the whole shard), rounds interleaved.

One shard of 4096 inner chunks (64x64 float32 inner chunks: a 64 MiB shard uncompressed;
16x16 with --quick: 4 MiB), uncompressed and zstd (level 1), on a LocalStore; each
engine writes its own copy. A round writes 1, 16 and 256 inner chunks (a 1x1, 4x4 and
16x16 box of them, at a random aligned place) with each engine, the order rotating each
round; writes accumulate, so cuzarr's zstd shard gathers dead bytes and is compacted when
they pass half the file, as in use. No engine fsyncs (zarr's LocalStore does not; cuzarr's
durable_writes is off by default). After the rounds every engine's array is read back by
zarr's pipeline (and cuzarr's by tensorstore where installed) and checked against the
writes. Reported: best and median seconds per write, the spread (slowest/fastest round),
and cuzarr's best over each peer's best.
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
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec, ShardingCodec, ZstdCodec

from bench.workloads import DEFAULT_PIPELINE

ENGINES = {"cuzarr": "cuzarr.PhasedCodecPipeline", "zarr": DEFAULT_PIPELINE,
           "zarrs": "zarrs.ZarrsCodecPipeline"}
COUNTS = (1, 16, 256)  # inner chunks per write: 1x1, 4x4, 16x16 boxes
CODECS = ("raw", "zstd")
GRID = 64  # inner chunks per side: 4096 per shard


def _available(engine: str) -> str | None:
    if engine == "zarrs":
        try:
            import zarrs  # noqa: F401  (registers its pipeline)
        except ImportError as e:
            return f"zarrs does not import: {e}"
    return None


def _create(root: Path, codec: str, inner: int, data: np.ndarray) -> None:
    codecs: list[Any] = [BytesCodec()] + ([ZstdCodec(level=1)] if codec == "zstd" else [])
    with zarr.config.set({"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}):
        arr = zarr.create_array(root, shape=data.shape, chunks=data.shape, dtype="float32",
                                compressors=None, fill_value=0,
                                serializer=ShardingCodec(chunk_shape=(inner, inner),
                                                         codecs=codecs))
        arr[...] = data


def _open(root: Path, engine: str) -> Any:
    with zarr.config.set({"codec_pipeline.path": ENGINES[engine]}):
        return zarr.open_array(root, mode="r+")


def _boxes(rng: np.random.Generator, inner: int) -> dict[int, tuple[slice, slice]]:
    out = {}
    for count in COUNTS:
        side = math.isqrt(count)
        r, c = (int(rng.integers(0, GRID - side + 1)) * inner for _ in range(2))
        out[count] = (slice(r, r + side * inner), slice(c, c + side * inner))
    return out


def run_case(root: Path, codec: str, quick: bool, rounds: int, engines: list[str]
             ) -> dict[str, Any]:
    inner = 16 if quick else 64
    n = GRID * inner
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1 << 12, (n, n)).astype("float32")
    base = root / f"{codec}-base"
    _create(base, codec, inner, data)
    arrays = {}
    for engine in engines:
        copy = root / f"{codec}-{engine}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(base, copy)
        arrays[engine] = _open(copy, engine)
    expected = data.copy()
    times: dict[int, dict[str, list[float]]] = {c: {e: [] for e in engines} for c in COUNTS}
    for r in range(rounds):
        boxes = _boxes(np.random.default_rng(100 + r), inner)
        order = engines[r % len(engines):] + engines[: r % len(engines)]
        for count, box in boxes.items():
            value = np.random.default_rng(1000 * r + count).integers(
                0, 1 << 12, (box[0].stop - box[0].start, box[1].stop - box[1].start)
            ).astype("float32")
            expected[box] = value
            for engine in order:
                arr = arrays[engine]
                with zarr.config.set({"codec_pipeline.path": ENGINES[engine]}):
                    t0 = time.perf_counter()
                    arr[box] = value
                    times[count][engine].append(time.perf_counter() - t0)
    for engine in engines:  # every engine's writes read back by zarr's own pipeline
        with zarr.config.set({"codec_pipeline.path": DEFAULT_PIPELINE}):
            got = zarr.open_array(root / f"{codec}-{engine}", mode="r")[...]
        if not np.array_equal(got, expected):
            raise AssertionError(f"{engine}'s {codec} array reads back wrong after its writes")
    checked_by = ["zarr"]
    try:
        import tensorstore as ts

        got = ts.open({"driver": "zarr3", "kvstore": {
            "driver": "file", "path": str(root / f"{codec}-cuzarr")}}).result().read().result()
        if not np.array_equal(got, expected):
            raise AssertionError(f"tensorstore reads cuzarr's {codec} array wrong")
        checked_by.append("tensorstore")
    except ImportError:
        pass
    shard = root / f"{codec}-cuzarr" / "c" / "0" / "0"
    rows: dict[str, Any] = {}
    for count in COUNTS:
        per = {}
        for engine, ts_ in times[count].items():
            best = min(ts_)
            per[engine] = {"best_s": best, "median_s": statistics.median(ts_),
                           "spread": max(ts_) / best}
        if "cuzarr" in per:
            for peer in (e for e in per if e != "cuzarr"):
                per["cuzarr"][f"vs_{peer}"] = per["cuzarr"]["best_s"] / per[peer]["best_s"]
        rows[str(count)] = per
    return {"shard_bytes": int(data.nbytes), "inner": inner, "rows": rows,
            "checked_by": checked_by, "cuzarr_shard_file_bytes": shard.stat().st_size}


def format_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [f"# Partial shard writes ({'quick' if meta['quick'] else 'full'}, "
             f"{meta['rounds']} rounds)", "",
             "Seconds per write of N inner chunks of one stored shard of 4096 (best and "
             "median over rounds; spread = slowest/fastest round); `cuzarr/x` = cuzarr's "
             "best over x's best (below 1 is faster).", ""]
    for codec, case in results["cases"].items():
        mib = case["shard_bytes"] / (1 << 20)
        lines += [f"## {codec}: a {mib:.0f} MiB shard of {case['inner']}x{case['inner']} "
                  f"float32 inner chunks (checked by {', '.join(case['checked_by'])})", ""]
        engines = list(next(iter(case["rows"].values())))
        peers = [e for e in engines if e != "cuzarr"]
        head = "| inner chunks | " + " | ".join(f"{e} best / median / spread" for e in engines)
        head += "".join(f" | cuzarr/{p}" for p in peers) + " |"
        lines += [head, "|" + "---|" * (1 + len(engines) + len(peers))]
        for count, per in case["rows"].items():
            cells = [f"{per[e]['best_s'] * 1e3:.2f} ms / {per[e]['median_s'] * 1e3:.2f} ms / "
                     f"{per[e]['spread']:.2f}x" for e in engines]
            ratios = [f"{per['cuzarr'][f'vs_{p}']:.4f}x" if "cuzarr" in per else ""
                      for p in peers]
            lines.append(f"| {count} | " + " | ".join(cells + ratios) + " |")
        lines += ["", f"cuzarr's shard file after the rounds: "
                  f"{case['cuzarr_shard_file_bytes'] / (1 << 20):.1f} MiB", ""]
    for engine, why in meta["skipped"].items():
        lines.append(f"- {engine} not run: {why}")
    return "\n".join(lines) + "\n"


def run(quick: bool, rounds: int, out: Path | None, engines: list[str]) -> dict[str, Any]:
    skipped = {e: why for e in engines if (why := _available(e))}
    runnable = [e for e in engines if e not in skipped]
    results: dict[str, Any] = {"meta": {"quick": quick, "rounds": rounds, "skipped": skipped},
                               "cases": {}}
    root = Path(tempfile.mkdtemp(prefix="cuzarr-partial-writes-"))
    try:
        for codec in CODECS:
            results["cases"][codec] = run_case(root, codec, quick, rounds, runnable)
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = format_markdown(results)
    print(text, flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "partial-writes.json").write_text(json.dumps(results, indent=2))
        (out / "partial-writes.md").write_text(text)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench partial-writes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 4 MiB shard, 2 rounds")
    parser.add_argument("--rounds", type=int, help="rounds (default 7, 2 with --quick)")
    parser.add_argument("--out", help="write DIR/partial-writes.json and .md")
    parser.add_argument("--engines", help=f"comma-separated, of {', '.join(ENGINES)}")
    args = parser.parse_args(argv)
    engines = args.engines.split(",") if args.engines else list(ENGINES)
    unknown = set(engines) - set(ENGINES)
    if unknown:
        print(f"error: unknown engines {sorted(unknown)}", file=sys.stderr)
        return 2
    run(args.quick, args.rounds or (2 if args.quick else 7),
        Path(args.out) if args.out else None, engines)
    return 0
