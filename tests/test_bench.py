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
from bench.report import format_markdown, format_tables, summarize, summary_lines
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
    assert "every result checked bit for bit against the reference data" in proc.stdout
    assert f"to {out.resolve()}" in proc.stdout


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
    assert table.count("cuzarr-cuda broke") == 2  # once on top, once in the summary
    assert table.startswith("not run here: cuzarr-cuda (cuzarr-cuda broke)\n")
    summary = table[table.index("\nsummary\n"):]
    assert ("WRONG DATA: 1 cell(s) returned data that differ from the reference: "
            "w / read / fused") in summary
    assert "cuzarr fastest in 1 of 1 cells" in summary and "median 0.50x" in summary
    # each engine's second round took twice its first: past the noise, and said so
    assert "WARNING: in 3 cell(s) the slowest of 2 rounds took over 1.5x" in summary
    assert "w / read / zarrs: 2.00x" in summary
    assert "## Summary" in markdown


def test_a_summary_says_wrong_data_first() -> None:
    results = _fake_results({"cuzarr": "FAILED", "zarrs": 1.0})
    results["summary"] = summarize(results)
    lines = summary_lines(results)
    assert lines[1].strip().startswith("WRONG DATA: 1 cell(s)")
    assert "w / read / cuzarr" in lines[1]


def test_fresh_mode_times_each_round_in_a_new_process(tmp_path: Path) -> None:
    """--fresh: every timed round runs in a worker process of its own (after one untimed
    read there), and says so in results.md."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--fresh", "--workloads", "zstd-4MiB",
         "--ops", "read", "--engines", "cuzarr,zarrs", "--rounds", "2", "--out", str(out),
         "-q"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["options"]["fresh"] is True
    for engine in ("cuzarr", "zarrs"):
        rounds = [m for m in results["measurements"] if m["engine"] == engine]
        assert [m["status"] for m in rounds] == ["ok"] * 3
        pids = [m["pid"] for m in rounds]
        assert len(set(pids)) == 3 and None not in pids  # warm-up, round 1, round 2
    assert "Fresh processes: each timed round ran in a new worker process" in (
        out / "results.md").read_text()


def test_results_go_to_a_new_folder_by_default() -> None:
    from datetime import UTC, datetime

    from bench.cli import default_out

    when = datetime(2026, 12, 3, 9, 5, 7, tzinfo=UTC)
    assert default_out(True, when) == Path("bench-results/20261203-090507-quick")
    assert default_out(False, when).name == "20261203-090507-full"
    assert default_out(True, when, fresh=True).name == "20261203-090507-quick-fresh"


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

    real_read_all = access.read_all

    def bad_read_all(handle: Any, selections: Any) -> list[np.ndarray]:
        outs = [np.array(o) for o in real_read_all(handle, selections)]
        outs[-1].flat[-1] ^= 1
        return outs

    monkeypatch.setattr(access, "read", bad_read)
    monkeypatch.setattr(access, "read_all", bad_read_all)
    monkeypatch.setattr(access, "write", bad_write)
    reply = worker.handle(request)
    assert reply["status"] == "FAILED", reply


# ---- gpu-check: the parts that run without a GPU ---------------------------------------

SAMPLE_TESTS = '''
import pytest

def test_passes():
    assert True

def test_fails():
    assert 1 == 2, "one is not two"

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_errors(broken):
    pass

def test_skipped():
    pytest.skip("not here")

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n == 1

class TestGroup:
    def test_method(self):
        raise ValueError("bad value\\nsecond line")
'''


def _junit(tmp_path: Path, family: str) -> Path:
    """A real junit xml: pytest run on SAMPLE_TESTS in a directory of its own."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE_TESTS)
    xml = tmp_path / f"{family}.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
         str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "-o",
         f"junit_family={family}", f"--junitxml={xml}", str(tmp_path / "test_sample.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    return xml


def test_junit_parsing_collects_every_failure(tmp_path: Path) -> None:
    from bench.gpu_check import parse_junit

    parsed = parse_junit(_junit(tmp_path, "xunit1"))
    assert {k: parsed[k] for k in ("tests", "passed", "failed", "errors", "skipped")} == {
        "tests": 7, "passed": 2, "failed": 3, "errors": 1, "skipped": 1}
    failures = {f["id"]: f for f in parsed["failures"]}
    assert set(failures) == {"test_sample.py::test_fails", "test_sample.py::test_errors",
                             "test_sample.py::test_param[2]",
                             "test_sample.py::TestGroup::test_method"}
    assert "one is not two" in failures["test_sample.py::test_fails"]["message"]
    assert failures["test_sample.py::test_errors"]["outcome"] == "error"
    assert "fixture broke" in failures["test_sample.py::test_errors"]["message"]
    method = failures["test_sample.py::TestGroup::test_method"]["message"]
    assert "bad value" in method and "second line" not in method


def test_junit_ids_without_file_attribute(tmp_path: Path) -> None:
    """pytest's default junit family has no file attribute: ids come from classnames,
    turned back into paths where the module exists in the repo."""
    import xml.etree.ElementTree as ET

    from bench.gpu_check import parse_junit, test_id

    parsed = parse_junit(_junit(tmp_path, "xunit2"))
    assert parsed["failed"] == 3 and len(parsed["failures"]) == 4
    assert {f["id"] for f in parsed["failures"]} >= {"test_sample::test_fails",
                                                     "test_sample.TestGroup::test_method"}
    case = ET.fromstring('<testcase classname="tests.cuda.test_kernels_gpu" name="test_x[1]"/>')
    assert test_id(case) == "tests/cuda/test_kernels_gpu.py::test_x[1]"


def test_run_budgeted_cuts_a_slow_step(tmp_path: Path) -> None:
    """A child past its budget gets SIGINT (and can save what it did), one that ignores
    it is killed at the budget, and one that finishes in time is not touched."""
    from bench.budget import run_budgeted

    marker = tmp_path / "marker"
    polite = ("import time, pathlib\n"
              f"p = pathlib.Path({str(marker)!r})\n"
              "p.write_text('started')\n"
              "try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
              "    p.write_text('interrupted')\n")
    run = run_budgeted([sys.executable, "-c", polite], 6.0, tmp_path / "log", grace_s=3.0)
    assert run["cut"] and marker.read_text() == "interrupted"
    assert run["elapsed_s"] < 6.5
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    run = run_budgeted([sys.executable, "-c", stubborn], 3.0, tmp_path / "log", grace_s=1.0)
    assert run["cut"] and run["returncode"] == -9 and 2.5 < run["elapsed_s"] < 5
    run = run_budgeted([sys.executable, "-c", "print('hi')"], 30.0, tmp_path / "log")
    assert run == {"returncode": 0, "elapsed_s": run["elapsed_s"], "cut": False}
    assert "hi" in (tmp_path / "log").read_text()


def test_suite_budget_cuts_what_it_cannot_start(tmp_path: Path) -> None:
    from bench.budget import Deadline
    from bench.runner import Options, Progress, measure, run

    results = run(Options(quick=True, engines=("batched",), workloads=("small-2KiB",),
                          ops=("read",), rounds=2, out=str(tmp_path), progress=False,
                          budget_s=0))
    assert results["meta"]["not_run"] == ["small-2KiB"] and results["measurements"] == []
    assert "not run, past the time budget: small-2KiB" in (tmp_path / "results.md").read_text()

    class Unreachable:
        def request(self, *args: Any) -> dict[str, Any]:
            raise AssertionError("a cut measurement must not be sent")

    options = Options(rounds=2, progress=False, budget_s=5)
    base = {"workload": "w", "quick": True}
    records = measure({"batched": Unreachable(), "zarrs": Unreachable()}, base, "read", {},
                      options, Progress(options, 0), Deadline(at=0.0))
    assert [r["status"] for r in records] == ["cut"] * 4
    fake = _fake_results({"cuzarr": 0.5})
    fake["measurements"] = records
    fake["summary"] = summarize(fake)
    assert {e["status"] for e in fake["summary"]} == {"cut"}
    assert "- cut (past the time budget): w / read / batched, w / read / zarrs" in (
        format_markdown(fake))


def test_read_case_layout() -> None:
    from bench.gpu_read import layout

    case = layout(3128)
    assert case.shape == (23552, 34816) and case.shards == (10240, 10240)
    assert case.nbytes == 3128 << 20 and round(case.nbytes / 1e9, 2) == 3.28
    assert case.describe()["chunk_count"] == 3128
    assert layout(1024).shape == (16384, 16384)
    assert layout(7).shape == (512, 3584) and layout(7).shards == (512, 3584)
    with pytest.raises(ValueError):
        layout(0)


def test_read_case_data_is_deterministic_and_compressible() -> None:
    import zstandard
    from bench.gpu_read import make_field

    one, many = make_field((1536, 700), threads=1), make_field((1536, 700), threads=3)
    assert one.dtype == np.float32 and np.array_equal(one.view(np.uint32), many.view(np.uint32))
    ratio = one.nbytes / len(zstandard.ZstdCompressor(level=3).compress(one.tobytes()))
    assert 1.5 < ratio < 5
    assert not np.array_equal(one[:512], one[512:1024])


@pytest.mark.parametrize("writer", ["zarr", "cuzarr-cpu"])
def test_shard_index_gives_every_inner_chunk(tmp_path: Path, writer: str) -> None:
    """The raw nvCOMP measurement's input: every inner chunk's bytes, read from the shard
    indexes into one slab, decode (here with zstandard) to the array's chunks."""
    import zstandard
    from bench.gpu_read import CHUNK, Layout, gather, inner_chunks, make_field, write_array

    spec = Layout((1024, 1536), (1024, 1024))  # two shards, the second partial
    data = make_field(spec.shape)
    write_array(tmp_path / "a.zarr", spec, data, writer)
    chunks = inner_chunks(tmp_path / "a.zarr")
    assert chunks.count == 6 and len(chunks.files) == 2
    assert sorted(map(tuple, chunks.coords)) == [(r, c) for r in range(2) for c in range(3)]
    slab, offsets = gather(chunks, 64)
    assert not (offsets % 64).any()
    for k, (r, c) in enumerate(chunks.coords):
        frame = slab[offsets[k] : offsets[k] + chunks.nbytes[k]].tobytes()
        decoded = zstandard.ZstdDecompressor().decompress(frame, max_output_size=1 << 20)
        want = data[r * CHUNK[0] : (r + 1) * CHUNK[0], c * CHUNK[1] : (c + 1) * CHUNK[1]]
        assert decoded == want.tobytes()


def test_interleaved_rounds_check_and_budget() -> None:
    import time

    from bench.budget import Deadline
    from bench.gpu_read import interleaved

    truth = np.arange(10)
    order: list[str] = []

    def reader(name: str, value: Any, pause: float = 0.0) -> Any:
        def read() -> Any:
            order.append(name)
            time.sleep(pause)
            if isinstance(value, Exception):
                raise value
            return value
        return read

    readers = {"good": reader("good", truth), "other": reader("other", truth.copy()),
               "wrong": reader("wrong", truth + 1), "broken": reader("broken", OSError("gone"))}
    run = interleaved(readers, lambda got: np.array_equal(got, truth), lambda: None, 3,
                      Deadline())
    assert run["rounds_done"] == 3 and not run["cut_by_budget"]
    assert len(run["times"]["good"]) == 3 and run["times"]["wrong"] == []
    assert run["errors"] == {"wrong": "read returned data that differs from the source",
                             "broken": "OSError: gone"}
    assert order[4:] == ["good", "other", "other", "good", "good", "other"]  # rotating

    slow = {"slow": reader("slow", truth, 0.1)}
    run = interleaved(slow, lambda got: True, lambda: None, 5, Deadline.after(0.3))
    assert run["cut_by_budget"] and 1 <= run["rounds_done"] < 5


def test_targets_and_busy_time() -> None:
    from bench.gpu_read import busy_ms, layout, stats, targets

    assert busy_ms([(0, 2), (1, 3), (5, 6), (5.5, 5.6)]) == 4
    nbytes = layout(3128).nbytes
    case: dict[str, Any] = {"layout": layout(3128).describe(),
                            "engines": {"cuzarr-cuda": stats([0.140, 0.125, 0.130], nbytes)},
                            "raw_nvcomp": {"decode": stats([0.090, 0.080], nbytes)},
                            "cuzarr_decode_phase": {"busy_ms": 95.0}}
    found = targets(case)
    assert found["end_to_end"]["met"] and found["end_to_end"]["ms"] == pytest.approx(125)
    assert found["end_to_end"]["gb_per_s"] == pytest.approx(nbytes / 0.125 / 1e9)
    ratio = found["decode_vs_raw_nvcomp"]
    assert ratio["phase_fraction"] == pytest.approx(80 / 95) and ratio["met"]
    assert ratio["end_to_end_fraction"] == pytest.approx(80 / 125)
    case["engines"]["cuzarr-cuda"] = stats([0.2], nbytes)
    del case["cuzarr_decode_phase"]
    found = targets(case)
    assert not found["end_to_end"]["met"]
    assert not found["decode_vs_raw_nvcomp"]["met"]  # 80 / 200 ms, end to end stands in
    assert "end-to-end ratio stands in" in found["decode_vs_raw_nvcomp"]["phase_timing"]


def test_probes_run_against_the_nvcomp_double() -> None:
    """Every probe's own code, against the test double held to nvCOMP 6's signatures."""
    from bench.gpu_probes import QUESTIONS, run_probes

    import nvcomp_double

    seen: list[int] = []
    results = run_probes(nvcomp_double, np, lambda: None, lambda r: seen.append(len(r)))
    assert seen == list(range(1, len(QUESTIONS) + 1))
    assert {n: r["settled"] for n, r in results.items()} == dict.fromkeys(QUESTIONS, True)
    sizes = results["buffer_sizes_after_decode"]
    assert sizes["no_config"]["decoded_right"] and sizes["no_config"]["gives"] in (
        "decoded sizes", "capacities")
    assert results["max_comp_buffer_size"]["int_argument"].startswith("refused")
    assert set(results["alignments"]["alignments"]) == {"Zstd", "Deflate", "LZ4"}
    frames = results["nvcomp_raw_zstd_frames"]
    assert frames["no_config"]["ok"] and frames["config_from_compression_config"]["ok"]
    assert all(run["device_usable_after"] == "yes"
               for run in results["corrupt_stream"]["runs"].values())


def test_a_failing_probe_is_recorded_not_raised() -> None:
    from bench.gpu_probes import run_probe

    import nvcomp_double

    class NoAlignments:
        def __getattr__(self, name: str) -> Any:
            if name == "Codec":
                raise AttributeError("module has no Codec")
            return getattr(nvcomp_double, name)

    record = run_probe("alignments", NoAlignments(), np, lambda: None)
    assert record["settled"] is False and "no Codec" in record["error"]
    assert record["question"].startswith("What do get_required_decompression_alignment")


def _gpu_report() -> dict[str, Any]:
    """A report as a GPU run writes it (figures made up, structure real)."""
    from bench.gpu_read import layout, stats, targets

    nbytes = layout(3128).nbytes
    case: dict[str, Any] = {
        "layout": layout(3128).describe(), "writer": "cuzarr-cpu", "write_s": 4.2,
        "compression_ratio": 2.1, "rounds_asked": 5, "rounds_done": 5, "cut_by_budget": False,
        "checked_equal": True, "speedup_vs_zarr": 30.0,
        "engines": {"cuzarr-cuda": stats([0.120, 0.125], nbytes),
                    "zarr-batched-gpu": stats([3.6, 3.8], nbytes)},
        "cuzarr_decode_phase": {"calls": 26, "busy_ms": 100.0, "gb_per_s": 32.8,
                                "read_ms": 121.0},
        "raw_nvcomp": {"chunks": 3128, "checked_equal": True,
                       "decode": stats([0.090, 0.095], nbytes)},
    }
    case["targets"] = targets(case)
    probes = {
        "alignments": {"question": "What do alignments return?", "settled": True,
                       "answer": "Zstd: decompression 8, compression 4"},
        "corrupt_stream": {"question": "How does a corrupt stream surface?", "settled": False,
                           "error": "RuntimeError: CUDA context lost"},
    }
    tests = {"tests": 84, "passed": 82, "failed": 1, "errors": 1, "skipped": 0, "failures": [
        {"id": "tests/cuda/test_x.py::test_a[2]", "outcome": "failed",
         "message": "AssertionError: sizes differ"},
        {"id": "tests/cuda/test_y.py::test_b", "outcome": "error", "message": "fixture"}]}
    suite = {"summary": [
        {"workload": "sharded-zstd-1MiB", "op": "read", "engine": "cuzarr-cuda",
         "status": "ok", "error": None, "best_s": 0.012, "gb_per_s": 22.4,
         "ratio_vs_best_peer": 0.05},
        {"workload": "sharded-zstd-1MiB", "op": "read", "engine": "czarr",
         "status": "unavailable", "error": "czarr needs czarr, which does not import here"}],
        "not_run": ["gzip-1MiB"]}
    kernels = {"d2d copy": {"gb_per_s": 2100.0, "of_copy_rate": 1.0}}

    def step(status: str, result: dict[str, Any]) -> dict[str, Any]:
        return {"status": status, "elapsed_s": 10.0, "budget_s": 40, "returncode": 0,
                "result": result}

    return {"date": "2026-12-02T00:00:00+00:00", "budget_s": 450.0, "available": True,
            "device": "NVIDIA H200", "elapsed_s": 400.0, "versions": {"zarr": "3.4.2"},
            "kvikio": "loads", "steps": {
                "probes": step("ok", {"probes": probes}), "tests": step("ok", tests),
                "kernels": step("ok", {"kernels": kernels}),
                "augspurger": step("ok", {"case": case}), "suite": step(CUT_STATUS, suite)}}


CUT_STATUS = "cut"


def test_gpu_check_markdown_from_a_report() -> None:
    from bench.gpu_check import exit_code, problems, render_markdown

    report = _gpu_report()
    assert exit_code(report) == 1
    assert problems(report) == ["suite: cut", "tests: 1 failed, 1 errors",
                                "probes not settled: corrupt_stream"]
    md = render_markdown(report)
    assert "Device: **NVIDIA H200**" in md and "exit 1 (not passed)" in md
    assert "- `tests/cuda/test_x.py::test_a[2]` (failed): AssertionError: sizes differ" in md
    assert "82 passed, 1 failed, 1 errors, 0 skipped of 84." in md
    row = next(line for line in md.splitlines() if line.startswith("| cuzarr-cuda |"))
    assert row.startswith("| cuzarr-cuda | 120.0 | 122.5 | 27.3 |")
    assert "| raw nvCOMP decode (one call, 3128 chunks) | 90.0 |" in md
    assert ">= 25 GB/s (3.28 GB in <= 130 ms on an H100): 27.3 GB/s (120.0 ms): **met**" in md
    assert "phase 90%, end to end 75% of raw 36.4 GB/s: **met**" in md
    assert "cuzarr exposes no phase timing" in md
    assert "- What do alignments return? **settled: Zstd: decompression 8" in md
    assert "- How does a corrupt stream surface? **NOT settled: RuntimeError" in md
    assert "| sharded-zstd-1MiB | read | czarr | unavailable: czarr needs czarr" in md
    assert "Not run (time budget): gzip-1MiB." in md
    assert "| suite | cut | 10.0 | 40 |" in md

    report["steps"]["suite"]["status"] = "ok"
    report["steps"]["tests"]["result"] |= {"failed": 0, "errors": 0, "failures": []}
    report["steps"]["probes"]["result"]["probes"]["corrupt_stream"] |= {
        "settled": True, "answer": "raises RuntimeError"}
    assert exit_code(report) == 0 and "exit 0 (passed)" in render_markdown(report)
    report["steps"]["augspurger"]["result"]["case"]["checked_equal"] = False
    assert problems(report) == ["augspurger: a read failed or differed from the source"]


def test_child_records_done_or_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from bench import gpu_check

    def works(args: Any, partial: Any, deadline: Any) -> None:
        partial.update(figure=1)

    def breaks(args: Any, partial: Any, deadline: Any) -> None:
        partial.update(figure=2)
        raise ValueError("no device")

    monkeypatch.setitem(gpu_check.CHILD_STEPS, "probes", works)
    monkeypatch.setitem(gpu_check.CHILD_STEPS, "kernels", breaks)
    for step, code in (("probes", 0), ("kernels", 3)):
        partial = tmp_path / f"{step}.json"
        args = argparse.Namespace(child=step, partial=partial, budget=60.0)
        assert gpu_check.child_main(args) == code
        saved = json.loads(partial.read_text())
        assert saved["figure"] == (1 if code == 0 else 2)
        assert saved.get("done") is (True if code == 0 else None)
        assert (saved.get("error") == "ValueError: no device") is (code == 3)


def test_gpu_check_without_gpu_exits_2(tmp_path: Path) -> None:
    from cuzarr.devices import cuda_available

    if cuda_available():
        pytest.skip("a GPU is here: the check would run")
    from bench.gpu_check import main

    assert main(["--out", str(tmp_path)]) == 2
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["available"] is False and report["missing"]
    assert "No usable GPU here; missing: " in (tmp_path / "gpu-check.md").read_text()


def test_czarr_engine_says_why_it_cannot_run() -> None:
    from bench.engines import ENGINES, Engine, activate, import_modules

    czarr = ENGINES["czarr"]
    assert czarr.gpu and czarr.setup == "czarr.configure_gpu" and czarr.peer
    try:
        import cupy

        gpu = cupy.cuda.is_available()
    except ImportError:
        gpu = False
    if not gpu:
        with pytest.raises(RuntimeError, match="no GPU engine here"):
            activate(czarr)
    with pytest.raises(RuntimeError, match=r"needs no_such_module_x.*install: pip install x"):
        import_modules(Engine("x", None, ("no_such_module_x",), install="pip install x"))


class _NumpyAsCupy:
    """Just enough of cupy, on numpy, for bench.gpu_read's GPU code to run on the host:
    events read the host clock, streams and syncs do nothing."""

    ndarray, uint8, uint32, float32 = np.ndarray, np.uint8, np.uint32, np.float32
    asarray, empty, zeros, array_equal = (staticmethod(np.asarray), staticmethod(np.empty),
                                          staticmethod(np.zeros), staticmethod(np.array_equal))

    class cuda:
        class Event:
            def record(self, stream: Any = None) -> None:
                import time

                self.t = time.perf_counter()

            def synchronize(self) -> None:
                pass

        class Stream:
            ptr = 0
            null: Any = None

            def __init__(self, non_blocking: bool = False) -> None:
                pass

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: Any) -> None:
                pass

            def synchronize(self) -> None:
                pass

        class Device:
            def synchronize(self) -> None:
                pass

        @staticmethod
        def get_elapsed_time(begin: Any, end: Any) -> float:
            return (end.t - begin.t) * 1e3

        @staticmethod
        def get_current_stream() -> Any:
            return None


def test_raw_nvcomp_and_decode_phase_on_the_double(tmp_path: Path) -> None:
    """The read case's GPU parts on the host (the nvCOMP double, numpy for cupy): raw
    nvCOMP decodes every inner chunk to the source, and the decode-phase timer sees the
    NvcompBackend.decode calls a read makes and leaves the method as it was."""
    from bench.gpu_read import (
        CHUNK_BYTES,
        Layout,
        decode_phase,
        gather,
        inner_chunks,
        make_field,
        raw_nvcomp,
        write_array,
    )

    import nvcomp_double
    from cuzarr.devices.nvcomp_backend import NvcompBackend

    cp = _NumpyAsCupy()
    spec = Layout((1024, 1536), (1024, 1024))
    data = make_field(spec.shape)
    write_array(tmp_path / "a.zarr", spec, data, "zarr")
    raw = raw_nvcomp(tmp_path / "a.zarr", data, cp, repeats=2, nv=nvcomp_double)
    assert raw["checked_equal"] and raw["sizes_all_1MiB"] and raw["chunks"] == 6
    assert raw["decode"]["rounds"] == 2 and raw["decode"]["gb_per_s"] > 0
    assert raw["decode_without_config"]["rounds"] == 2

    chunks = inner_chunks(tmp_path / "a.zarr")
    slab, offsets = gather(chunks, 16)
    backend, original = NvcompBackend(nvcomp_double), NvcompBackend.decode

    def read() -> Any:
        out = np.zeros(chunks.count * CHUNK_BYTES, dtype=np.uint8)
        for half in (slice(0, 3), slice(3, 6)):
            n = len(range(6)[half])
            backend.decode("Zstd", slab, offsets[half], chunks.nbytes[half], out,
                           np.arange(n) * CHUNK_BYTES + half.start * CHUNK_BYTES,
                           np.full(n, CHUNK_BYTES))
        return out

    phase = decode_phase(read, lambda got: bool(got.any()), cp)
    assert phase["calls"] == 2 and phase["algorithms"] == ["Zstd"]
    assert phase["decoded_bytes"] == 6 * CHUNK_BYTES and phase["checked_equal"]
    assert 0 < phase["busy_ms"] <= phase["read_ms"]
    assert NvcompBackend.decode is original


def test_quick_loader_bench_smoke(tmp_path: Path) -> None:
    """`python -m bench loader --quick`, one round on the 3-D case: every engine runs and
    its batches are checked against the stored data."""
    pytest.importorskip("torch")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from bench.loader import main; "
         f"sys.exit(main(['--quick', '--rounds', '1', '--out', {str(out)!r}, "
         f"'--data', {str(tmp_path / 'data')!r}, '--workloads', 'volume']))"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "loader.json").read_text())
    (case,) = results["cases"].values()
    from bench.loader import ENGINES as LOADER_ENGINES

    assert set(case["rows"]) | set(results["meta"]["skipped"]) == set(LOADER_ENGINES)
    assert {"cuzarr", "dataloader-zarr", "tensorstore"} <= set(case["rows"])
    assert all(row["samples_per_s"] > 0 for row in case["rows"].values())
    assert "| cuzarr |" in (out / "loader.md").read_text()


def test_quick_partial_writes_bench_smoke(tmp_path: Path) -> None:
    """`python -m bench partial-writes --quick`, one round: every engine writes 1, 16 and
    256 inner chunks of both shards, and every array reads back as written (the bench
    raises otherwise); cuzarr's writes go in place (its shard file is the same size)."""
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "partial-writes", "--quick", "--rounds", "1",
         "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((out / "partial-writes.json").read_text())
    assert set(results["cases"]) == {"raw", "zstd"}
    for case in results["cases"].values():
        assert "zarr" in case["checked_by"]
        assert set(case["rows"]) == {"1", "16", "256"}
        for per in case["rows"].values():
            assert {"cuzarr", "zarr"} <= set(per)
            assert per["cuzarr"]["best_s"] > 0 and "vs_zarr" in per["cuzarr"]
    raw = results["cases"]["raw"]
    assert raw["cuzarr_shard_file_bytes"] == raw["shard_bytes"] + 4096 * 16 + 4
    assert "| 256 |" in (out / "partial-writes.md").read_text()


def test_quick_dask_bench_smoke(tmp_path: Path) -> None:
    """`python -m bench dask --quick`: both engines on 1 and 2 real workers, results
    checked (equal sums, written shards equal to the generator)."""
    pytest.importorskip("distributed")
    from bench.cluster import run as dask_bench

    results = dask_bench(quick=True, rounds=1, out=tmp_path / "out", data=tmp_path / "data")
    assert set(results["runs"]) == {"1", "2"}
    for rows in results["runs"].values():
        assert set(rows) == {"cuzarr read", "cuzarr write", "dask-zarr read", "dask-zarr write"}
        assert all(row["gb_per_s"] > 0 for row in rows.values())
    assert "| 2 | cuzarr read |" in (tmp_path / "out" / "dask.md").read_text()
