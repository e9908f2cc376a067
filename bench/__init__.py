"""Benchmarks for cuzarr against zarr-python's own pipelines, zarrs-python and tensorstore.

Run `python -m bench --help` (bench.cli); the pieces: workloads (arrays and reference
data), engines (what runs them), runner/client/worker (one process per engine, rounds
interleaved), report and plot (results.json, results.md, results.png). `python -m bench
gpu-check` (bench.gpu_check) and `python -m bench.kernels` are the GPU-only checks.
"""
