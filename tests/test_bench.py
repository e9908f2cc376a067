"""The benchmark suite: a CI smoke run of `python -m bench --quick`, and its parts.

The smoke run asserts nothing about time, only that every engine that can run here
produced data equal to the reference for every workload and op, and that the three
result files are written.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from bench.engines import ENGINES
from bench.report import format_markdown, format_tables, summarize
from bench.runner import CPU_ENGINES, OPS
from bench.worker import Worker
from bench.workloads import all_workloads, get_workload, prepare

REPO = Path(__file__).resolve().parents[1]


def test_quick_suite_smoke(tmp_path: Path) -> None:
    """The whole --quick suite, as CI's smoke test of the benchmark."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    summary = results["summary"]
    seen = {(e["workload"], e["op"], e["engine"]) for e in summary}
    expected = {(w, op, e) for w in all_workloads(True) for op in OPS for e in ENGINES}
    assert seen == expected
    for entry in summary:
        engine = ENGINES[entry["engine"]]
        if entry["status"] == "unavailable":
            assert engine.gpu, f"{entry['engine']} should run on any machine: {entry['error']}"
            continue
        assert entry["status"] == "ok", entry
        assert entry["rounds_ok"] == results["meta"]["rounds"]
        assert entry["gb_per_s"] > 0
    assert {e["engine"] for e in summary if e["status"] == "ok"} >= set(CPU_ENGINES)
    markdown = (out / "results.md").read_text()
    assert all(f"**{name}**" in markdown for name in all_workloads(True))
    png = (out / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "ratio vs best peer" in proc.stdout


def _fake_results(times: dict[str, float | str]) -> dict:
    """A results dict with one workload/op; a str time is a failure status."""
    measurements = []
    for engine, t in times.items():
        for r in (1, 2):
            if isinstance(t, str):
                measurements.append({"workload": "w", "op": "read", "engine": engine,
                                     "round": r, "status": t, "error": f"{engine} broke"})
            else:
                measurements.append({"workload": "w", "op": "read", "engine": engine,
                                     "round": r, "status": "ok", "seconds": t * r})
    machine = {"date": "2026-11-25T00:00:00+00:00", "processor": "x86_64", "cpu_affinity": 2,
               "gpu": None, "python": "3.12", "versions": {"zarr": "3.4.2"}}
    return {
        "meta": {"machine": machine, "options": {"quick": True}, "rounds": 2},
        "workloads": {"w": {"nbytes": 10**9, "description": "1 GB", "compression_ratio": 2.0,
                            "stored_bytes": 5 * 10**8,
                            "spec": {"patch": [4, 4], "patch_count": 8}}},
        "measurements": measurements,
    }


def test_ratios_and_tables() -> None:
    results = _fake_results({"cuzarr": 0.5, "batched": 2.0, "zarrs": 1.0, "fused": "FAILED",
                             "cuzarr-cuda": "unavailable"})
    results["summary"] = summarize(results)
    by_engine = {e["engine"]: e for e in results["summary"]}
    assert by_engine["cuzarr"]["best_peer"] == "zarrs"
    assert by_engine["cuzarr"]["ratio_vs_best_peer"] == pytest.approx(0.5)
    assert by_engine["cuzarr"]["ratio_vs_peers"] == {"batched": 0.25, "zarrs": 0.5}
    assert by_engine["cuzarr"]["gb_per_s"] == pytest.approx(2.0)
    assert by_engine["cuzarr"]["median_s"] == pytest.approx(0.75)
    assert by_engine["batched"]["ratio_vs_best_peer"] == pytest.approx(2.0)
    assert by_engine["fused"]["status"] == "FAILED"
    markdown = format_markdown(results)
    row = next(line for line in markdown.splitlines() if line.startswith("| **w**"))
    cells = [c.strip() for c in row.split("|")[2:-1]]
    assert cells == ["2 (0.50x)", "0.5 (2.00x)", "1 (1.00x)", "**FAILED**", "n/a"]
    assert "- w / read / fused: FAILED: fused broke" in markdown
    assert "- cuzarr-cuda: unavailable: cuzarr-cuda broke" in markdown
    table = format_tables(results)
    assert "fused        FAILED: fused broke" in table


def test_patches_are_deterministic_and_in_bounds() -> None:
    for workload in all_workloads(quick=False).values():
        selections = workload.patch_selections()
        assert selections == workload.patch_selections()
        assert len(selections) == workload.patch_count
        for sel in selections:
            for s, n in zip(sel, workload.shape, strict=True):
                assert 0 <= s.start < s.stop <= n
        assert workload.op_nbytes("patches") == workload.patch_nbytes()


@pytest.fixture
def zarr_config_restored() -> Iterator[None]:
    """A worker sets zarr's global config for its engine; undo that for later tests."""
    saved = copy.deepcopy(zarr.config.config)
    yield
    zarr.config.config.clear()
    zarr.config.config.update(saved)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench-data")
    prepare(root, get_workload("small-2KiB", quick=True))
    (root / "scratch").mkdir()
    return root


@pytest.mark.parametrize("op", OPS)
def test_worker_catches_wrong_data(
    small_data: Path, op: str, monkeypatch: pytest.MonkeyPatch, zarr_config_restored: None
) -> None:
    """A benchmark that cannot notice wrong data would time garbage: an engine that
    reads or writes one wrong element must come back FAILED, for every op."""
    workload = get_workload("small-2KiB", quick=True)
    request = {"cmd": op, "workload": workload.name, "quick": True, "data": str(small_data),
               "scratch": str(small_data / "scratch")}
    worker = Worker(ENGINES["batched"])
    reply = worker.handle(request)
    assert reply["status"] == "ok" and reply["nbytes"] == workload.op_nbytes(op)
    access = worker.access
    real_read, real_write = access.read, access.write

    def bad_read(handle: Any, selection: Any) -> np.ndarray:
        out = np.array(real_read(handle, selection))
        out.flat[-1] ^= 1
        return out

    def bad_write(handle: Any, value: np.ndarray) -> None:
        value = value.copy()
        value.flat[12345] ^= 1
        real_write(handle, value)

    monkeypatch.setattr(access, "read", bad_read)
    monkeypatch.setattr(access, "write", bad_write)
    reply = worker.handle(request)
    assert reply["status"] == "FAILED", reply
