"""Benchmark workloads: array layouts, codecs and deterministic reference data.

Every process (runner and workers) rebuilds the same `Workload` from its name and the
quick flag, so only names travel over the worker protocol, never specs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

DEFAULT_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"
# Bump when data generation or layouts change, so cached --data dirs are rebuilt.
DATA_VERSION = 2
MiB = 1 << 20

FULL_FIELD = (8192, 8192)  # float32: 256 MiB
QUICK_FIELD = (2048, 4096)  # float32: 32 MiB, quick yet enough chunks for 2 cores
SMALL_IMAGE = (2048, 2048)  # uint16: 8 MiB, same in quick mode (chunk count is the point)
COMPRESSORS = (
    "zstd", "gzip", "blosc-lz4-shuffle", "blosc-zstd-bitshuffle", "none",
)


@dataclass(frozen=True)
class Workload:
    """One array layout; `chunks` is the inner chunk shape when `shards` is set.

    `patch` is the shape of the random patches the `patches` op reads, one selection
    at a time, as a training loader draws samples.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    compressor: str  # one of COMPRESSORS
    data_kind: str  # "field" (smooth float + noise) or "image" (12-bit-ish uint16)
    patch: tuple[int, ...] = (256, 256)
    patch_count: int = 64

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    @property
    def n_chunks(self) -> int:
        return int(np.prod([s // c for s, c in zip(self.shape, self.chunks, strict=True)]))

    def chunk_bytes(self) -> int:
        return int(np.prod(self.chunks)) * np.dtype(self.dtype).itemsize

    def patch_nbytes(self) -> int:
        """Bytes the whole `patches` op returns."""
        return int(np.prod(self.patch)) * np.dtype(self.dtype).itemsize * self.patch_count

    def patch_origins(self) -> np.ndarray:
        """Deterministic patch corners, uniform over the array, not aligned to chunks."""
        rng = np.random.default_rng(7)
        highs = [s - p + 1 for s, p in zip(self.shape, self.patch, strict=True)]
        return np.stack([rng.integers(0, h, self.patch_count) for h in highs], axis=1)

    def patch_selections(self) -> list[tuple[slice, ...]]:
        return [
            tuple(slice(int(o), int(o) + p) for o, p in zip(origin, self.patch, strict=True))
            for origin in self.patch_origins()
        ]

    def op_nbytes(self, op: str) -> int:
        """Bytes moved by one run of `op`, the numerator of its throughput."""
        return self.patch_nbytes() if op.startswith("patches") else self.nbytes

    def describe(self) -> str:
        """One-line human summary used in table headers."""
        text = (
            f"{self.nbytes / MiB:.0f} MiB {self.dtype} {'x'.join(map(str, self.shape))}, "
            f"{self.n_chunks} chunks of {_fmt_bytes(self.chunk_bytes())}"
        )
        if self.shards is not None:
            shard_bytes = int(np.prod(self.shards)) * np.dtype(self.dtype).itemsize
            text += f" in shards of {_fmt_bytes(shard_bytes)}"
        return f"{text}, {self.compressor}"

    def compressors(self) -> list[Any]:
        """zarr v3 codecs for the compressor name."""
        match self.compressor:
            case "zstd":
                return [ZstdCodec(level=0)]
            case "gzip":
                return [GzipCodec(level=1)]
            case "blosc-lz4-shuffle":
                return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]
            case "blosc-zstd-bitshuffle":
                return [BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")]
            case "none":
                return []
        raise ValueError(f"unknown compressor {self.compressor!r}")

    def create(self, path: Path | str) -> zarr.Array:
        """Create an empty array; the current zarr config picks its codec pipeline."""
        return zarr.create_array(
            store=str(path),
            shape=self.shape,
            dtype=self.dtype,
            chunks=self.chunks,
            shards=self.shards,
            compressors=self.compressors(),
            fill_value=0,
            overwrite=True,
        )

    def spec(self) -> dict[str, Any]:
        return {**asdict(self), "data_version": DATA_VERSION}


def _fmt_bytes(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n / 1024:g} KiB"


def all_workloads(quick: bool) -> dict[str, Workload]:
    """Every workload, keyed by name, in run order: codecs x layouts x chunk sizes.

    Chunk sizes run from 2 KiB to 16 MiB; float32 fields are 256 MiB (32 MiB quick).
    """
    field = QUICK_FIELD if quick else FULL_FIELD
    f32 = ("float32", field)
    workloads = [
        Workload("zstd-4MiB", *f32, (1024, 1024), None, "zstd", "field"),
        Workload("sharded-zstd-1MiB", *f32, (512, 512), (2048, 2048), "zstd", "field"),
        Workload("small-2KiB", "uint16", SMALL_IMAGE, (32, 32), None, "zstd", "image",
                 patch=(64, 64)),
        Workload("blosc-lz4-shuffle", *f32, (1024, 1024), None, "blosc-lz4-shuffle", "field"),
        Workload("blosc-zstd-bitshuffle", *f32, (1024, 1024), None, "blosc-zstd-bitshuffle",
                 "field"),
        Workload("gzip-1MiB", *f32, (512, 512), None, "gzip", "field"),
        Workload("zstd-64KiB", *f32, (128, 128), None, "zstd", "field"),
        Workload("sharded-blosc-64KiB", *f32, (128, 128), (2048, 2048), "blosc-lz4-shuffle",
                 "field"),
        Workload("raw-16MiB", *f32, (2048, 2048), None, "none", "field"),
    ]
    return {w.name: w for w in workloads}


def get_workload(name: str, quick: bool) -> Workload:
    try:
        return all_workloads(quick)[name]
    except KeyError:
        raise ValueError(
            f"unknown workload {name!r}; choose from {', '.join(all_workloads(quick))}"
        ) from None


@cache
def _generate(kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Deterministic data that compresses like real measurements (~2-2.5x), not constants.

    Floats are a smooth field plus unit noise quantized to 1/32 (low mantissa bits zero,
    as with fixed-precision sensors); integers are a smooth 12-bit image with small noise.
    """
    rng = np.random.default_rng(20240917)
    ny, nx = shape
    y = np.linspace(0, 6 * np.pi, ny, dtype=np.float32)[:, None]
    x = np.linspace(0, 10 * np.pi, nx, dtype=np.float32)[None, :]
    if kind == "field":
        data = 20 * np.sin(y) * np.cos(x) + 5 * np.sin(3 * x + y)
        data += rng.standard_normal(shape, dtype=np.float32)
        data *= 32
        np.round(data, out=data)
        data /= 32
        return data.astype(np.float32, copy=False)
    if kind == "image":
        image = 2000 + 800 * np.sin(y) * np.cos(x) + rng.standard_normal(shape, dtype=np.float32)
        return image.astype(np.uint16)
    raise ValueError(f"unknown data kind {kind!r}")


def make_data(workload: Workload) -> np.ndarray:
    """Reference data for a workload (cached per kind and shape within a process)."""
    data = _generate(workload.data_kind, workload.shape)
    assert data.dtype == np.dtype(workload.dtype)
    return data


def ref_path(data_root: Path, workload: Workload) -> Path:
    return data_root / workload.name / "ref.npy"


def array_path(data_root: Path, workload: Workload) -> Path:
    return data_root / workload.name / "array.zarr"


def stored_bytes(path: Path) -> int:
    """Bytes on disk for an array, metadata included, to report the compression ratio."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prepare(data_root: Path, workload: Workload) -> dict[str, Any]:
    """Write reference data and the read-benchmark array with zarr's default pipeline.

    A directory whose manifest matches the spec is reused, so `--data DIR` saves the
    generation cost on repeated runs.
    """
    wdir = data_root / workload.name
    manifest_path = wdir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("spec") == workload.spec():
            return manifest
    shutil.rmtree(wdir, ignore_errors=True)
    wdir.mkdir(parents=True)
    data = make_data(workload)
    np.save(ref_path(data_root, workload), data)
    with zarr.config.set({"codec_pipeline.path": DEFAULT_PIPELINE}):
        arr = workload.create(array_path(data_root, workload))
        arr[...] = data
    stored = stored_bytes(array_path(data_root, workload))
    manifest = {
        "spec": workload.spec(),
        "description": workload.describe(),
        "nbytes": workload.nbytes,
        "stored_bytes": stored,
        "compression_ratio": workload.nbytes / stored,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return manifest
