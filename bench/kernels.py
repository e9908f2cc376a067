"""GPU kernel benchmark: each kernel's throughput against the device-to-device copy rate.

    python -m bench.kernels [--mib 256] [--out DIR]

Needs a CUDA device with cupy; prints GB/s per kernel and its fraction of the copy
rate, and writes DIR/kernels.json when --out is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _time(cp: Any, fn: Callable[[], None], repeats: int = 20) -> float:
    """Best seconds of `fn` over `repeats` runs, timed with CUDA events."""
    fn()
    best = float("inf")
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, stop) / 1e3)
    return best


def _blosclz_case(xp: Any, launcher: Any, nbytes: int) -> tuple[Callable[[], None], int]:
    """blosclz_decompress over every compressed stream of `nbytes` of 1 MiB numcodecs
    chunks (an int32 random walk, byte-shuffled, clevel 5); moves the decoded bytes."""
    from numcodecs import Blosc

    from cuzarr.batch import ByteBatch
    from cuzarr.codecs.blosc_frame import plan_frames
    from cuzarr.kernels import launch

    walk = np.cumsum(np.random.default_rng(1).integers(-2, 3, 1 << 18)).astype("<i4")
    codec = Blosc(cname="blosclz", clevel=5, shuffle=Blosc.SHUFFLE, typesize=4)
    batch = ByteBatch.from_buffers([codec.encode(walk + k) for k in range(max(1, nbytes >> 20))])
    plan = plan_frames(batch.slab, batch.offsets, batch.sizes)
    pick = np.flatnonzero(~plan.split_raw)
    out_at = np.concatenate([[0], np.cumsum(plan.nbytes)[:-1]])
    tables = (batch.offsets[plan.split_chunk[pick]] + plan.split_src[pick],
              plan.split_cbytes[pick], out_at[plan.split_chunk[pick]] + plan.split_dst[pick],
              plan.split_size[pick])
    src, out = xp.asarray(batch.slab), xp.empty(int(plan.nbytes.sum()), dtype=np.uint8)
    return (lambda: launch.blosclz_decompress(launcher, xp, src, out, *tables),
            int(plan.split_size[pick].sum()))


def cases(xp: Any, launcher: Any, nbytes: int) -> dict[str, tuple[Callable[[], None], int]]:
    """name -> (one run of the kernel on `nbytes`-sized buffers of array module `xp`,
    bytes it moves). Built apart from the timing so that CI runs every case once on the
    host emulation (numpy and the harness launcher)."""
    from cuzarr.kernels import launch, reference

    src = xp.asarray(np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8))
    dst = xp.empty_like(src)
    offsets, lengths = reference.shuffle_blocks(nbytes, 256 << 10)
    chunk_offsets, chunk_lengths = reference.shuffle_blocks(nbytes, 1 << 20)
    side = int((nbytes // 4) ** 0.5) // 256 * 256
    grid = src[: side * side * 4].view(xp.float32).reshape(side, side)
    out = xp.empty_like(grid)
    out_bytes = out.reshape(-1).view(xp.uint8)
    blocks = [(i, j) for i in range(0, side, 256) for j in range(0, side, 256)]
    transposed = reference.box_tasks(
        src, out_bytes, [(grid[i : i + 256, j : j + 256].T, out[i : i + 256, j : j + 256])
                         for i, j in blocks])
    straight = reference.box_tasks(
        src, out_bytes, [(grid[i : i + 256, j : j + 256], out[i : i + 256, j : j + 256])
                         for i, j in blocks])
    return {
        "d2d copy": (lambda: dst.__setitem__(slice(None), src), nbytes),
        "byteswap (4)": (lambda: launch.byteswap(launcher, dst, 4), nbytes),
        "byte_shuffle (4)": (lambda: launch.byte_shuffle(
            launcher, xp, src, dst, offsets, lengths, 4), nbytes),
        "byte_unshuffle (4)": (lambda: launch.byte_unshuffle(
            launcher, xp, src, dst, offsets, lengths, 4), nbytes),
        "bit_shuffle (4)": (lambda: launch.bit_shuffle(
            launcher, xp, src, dst, offsets, lengths, 4, 2), nbytes),
        "bit_unshuffle (4)": (lambda: launch.bit_unshuffle(
            launcher, xp, src, dst, offsets, lengths, 4, 2), nbytes),
        "crc32c (1 MiB buffers)": (lambda: launch.crc32c(
            launcher, xp, src, chunk_offsets, chunk_lengths), nbytes),
        "transpose_tiled (2-D, float32)": (lambda: launch.transpose(
            launcher, xp, src, dst, 1, (side, side), (1, 0), 4), side * side * 4),
        "box_copy (scatter of 256x256 float32 boxes)": (lambda: launch.box_copy(
            launcher, xp, src, out_bytes, straight, 4), side * side * 4),
        "box_copy (transposing scatter)": (lambda: launch.box_copy(
            launcher, xp, src, out_bytes, transposed, 4), side * side * 4),
        "blosclz_decompress (decoded)": _blosclz_case(xp, launcher, nbytes),
    }


def run(mib: int) -> dict[str, Any]:
    """Time every kernel on `mib` MiB buffers; returns name -> GB/s and copy fraction."""
    import cupy as cp

    from cuzarr.kernels import launch

    results = {}
    for name, (fn, moved) in cases(cp, launch.CupyLauncher(), mib << 20).items():
        seconds = _time(cp, fn)
        results[name] = {"seconds": seconds, "gb_per_s": moved / seconds / 1e9}
    copy_rate = results["d2d copy"]["gb_per_s"]
    for entry in results.values():
        entry["of_copy_rate"] = entry["gb_per_s"] / copy_rate
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kernels", description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="buffer size (default 256 MiB)")
    parser.add_argument("--out", type=Path, help="write DIR/kernels.json")
    args = parser.parse_args(argv)
    from cuzarr.devices import _missing_cuda_parts

    missing = [m for m in _missing_cuda_parts() if "nvcomp" not in m and "kvikio" not in m]
    if missing:
        print("bench.kernels needs a CUDA device with cupy; missing: " + ", ".join(missing),
              file=sys.stderr)
        return 2
    results = run(args.mib)
    for name, entry in results.items():
        print(f"{name:44s} {entry['gb_per_s']:8.1f} GB/s  {entry['of_copy_rate']:6.1%} of copy")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "kernels.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
