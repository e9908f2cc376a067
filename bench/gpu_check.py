"""`python -m bench gpu-check --out DIR`: everything a machine with a GPU runs to prove the
cuda path, in one command (for the device machine: one call, few minutes).

1. the `cuda`-marked test suite (pytest -m cuda), counted;
2. the kernel benchmark (bench.kernels): GB/s against the device copy rate;
3. a read benchmark: a zstd-compressed sharded float32 array read into cupy with
   cuzarr's cuda device and with zarr's BatchedCodecPipeline + enable_gpu, same run;
4. the benchmark suite's GPU engines (cuzarr-cuda, batched-gpu, fused-gpu, and cuzarr on
   the cpu for scale) on the GPU_WORKLOADS, reads and writes, full size: among them blosc
   lz4 + shuffle against zarr Batched + enable_gpu (the Blosc issue's benchmark). Its
   results.json/md/png land in DIR/suite.

Writes DIR/gpu-check.json. Without a usable GPU it writes what is missing and exits 2.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _pytest_cuda(out: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
         f"--junitxml={out / 'cuda-tests.xml'}", str(REPO / "tests")],
        capture_output=True, text=True, cwd=REPO,
    )
    (out / "cuda-tests.log").write_text(result.stdout + result.stderr)
    counts = {k: 0 for k in ("passed", "failed", "skipped", "errors")}
    tail = (result.stdout.strip().splitlines() or [""])[-1]
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", tail):
        counts["errors" if word.startswith("error") else word] = int(number)
    counts["returncode"] = result.returncode
    return counts


def _read_benchmark(mib: int, rounds: int) -> dict[str, Any]:
    """Read a sharded zstd float32 array into cupy: cuzarr (cuda) vs zarr Batched + GPU."""
    import cupy as cp
    import zarr
    from zarr.codecs import ZstdCodec

    side = int(((mib << 20) // 4) ** 0.5)
    side -= side % 512
    rng = np.random.default_rng(0)
    data = (np.sin(np.arange(side * side, dtype=np.float32).reshape(side, side) / 500)
            + rng.normal(0, 0.01, (side, side)).astype(np.float32)).round(3)
    shard = (10240, 10240) if side >= 10240 else (side, side)  # 400 chunks of 1 MiB
    results: dict[str, Any] = {"shape": [side, side], "chunk": [512, 512], "shard": shard}
    with tempfile.TemporaryDirectory() as tmp:
        zarr.create_array(tmp, shape=data.shape, chunks=(512, 512),
                          shards=shard,
                          dtype="f4", compressors=ZstdCodec(level=3))[:] = data
        expected = cp.asarray(data)
        engines = {
            "cuzarr-cuda": "cuzarr.PhasedCodecPipeline",
            "zarr-batched-gpu": "zarr.core.codec_pipeline.BatchedCodecPipeline",
        }
        for name, path in engines.items():
            times = []
            with zarr.config.enable_gpu(), zarr.config.set({"codec_pipeline.path": path}):
                arr = zarr.open_array(tmp)
                for _ in range(rounds + 1):
                    cp.cuda.Device().synchronize()
                    start = time.perf_counter()
                    got = arr[:]
                    cp.cuda.Device().synchronize()
                    times.append(time.perf_counter() - start)
                    if not bool(cp.array_equal(got, expected)):
                        raise AssertionError(f"{name} read wrong data")
            best = min(times[1:])
            results[name] = {"best_s": best, "gb_per_s": data.nbytes / best / 1e9,
                             "times_s": times}
        results["speedup"] = (results["zarr-batched-gpu"]["best_s"]
                              / results["cuzarr-cuda"]["best_s"])
    return results


GPU_ENGINES = ("cuzarr-cuda", "batched-gpu", "fused-gpu", "cuzarr")
GPU_WORKLOADS = ("blosc-lz4-shuffle", "sharded-zstd-1MiB", "zstd-4MiB", "gzip-1MiB",
                 "small-2KiB")


def _suite(out: Path, rounds: int, *, quick: bool = False,
           workloads: tuple[str, ...] = GPU_WORKLOADS) -> dict[str, Any]:
    """The bench suite's GPU engines, reads and writes; returns its per-entry summary."""
    from bench.runner import Options, run

    options = Options(quick=quick, engines=GPU_ENGINES, workloads=workloads,
                      ops=("read", "write"), rounds=rounds, out=str(out / "suite"),
                      progress=False)
    results = run(options)
    keep = ("workload", "op", "engine", "status", "error", "best_s", "gb_per_s",
            "ratio_vs_peers")
    return {"summary": [{k: e.get(k) for k in keep} for e in results["summary"]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="write DIR/gpu-check.json")
    parser.add_argument("--mib", type=int, default=1024,
                        help="read benchmark size in MiB (the issue's target case: 3128)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-suite", action="store_true",
                        help="skip step 4 (the suite's GPU engines, a few minutes)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from cuzarr.devices import _missing_cuda_parts

    report: dict[str, Any] = {"missing": _missing_cuda_parts()}
    if report["missing"]:
        report["available"] = False
        (args.out / "gpu-check.json").write_text(json.dumps(report, indent=2))
        print("gpu-check: the cuda device cannot run here; missing: "
              + ", ".join(report["missing"]), file=sys.stderr)
        return 2
    report["available"] = True
    import cupy as cp

    report["device"] = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    report["tests"] = _pytest_cuda(args.out)
    from bench import kernels

    report["kernels"] = kernels.run(256)
    try:
        report["read"] = _read_benchmark(args.mib, args.rounds)
    except Exception as e:  # report, do not hide, a failing GPU read
        report["read"] = {"error": f"{type(e).__name__}: {e}"}
    (args.out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str))
    if not args.no_suite:
        try:
            report["suite"] = _suite(args.out, min(args.rounds, 3))
        except Exception as e:
            report["suite"] = {"error": f"{type(e).__name__}: {e}"}
        (args.out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: report[k] for k in ("device", "tests")}, indent=2))
    suite_ok = all(e["status"] == "ok" for e in report.get("suite", {}).get("summary", []))
    ok = report["tests"]["failed"] == 0 and "error" not in report["read"] and suite_ok
    return 0 if ok and "error" not in report.get("suite", {}) else 1
