"""`python -m bench gpu-check --out DIR`: everything a machine with a GPU runs to prove the
cuda path, in one command sized for one call on a lent H100/H200 machine (under 8 minutes,
16 cores).

Steps, each in its own process with its own time budget (a step past its budget is
stopped and reported as cut, keeping what it had done; the whole run has a budget too):

1. probes: open questions about nvCOMP 6's Python API, each settled by a small probe
   (bench.gpu_probes): buffer_sizes after decode, alignments, get_max_comp_buffer_size,
   nvCOMP-written RAW zstd frames with and without a decompression_config, corrupt streams;
2. tests: every `cuda`-marked test (pytest -m cuda, no -x): each failing test's id and
   short message, from the junit xml;
3. kernels: the kernel benchmark (bench.kernels), GB/s against the device copy rate;
4. augspurger: the CUDA issue's case (bench.gpu_read): 3.28 GB sharded zstd float32 read
   into cupy by cuzarr's cuda device and by zarr's BatchedCodecPipeline + enable_gpu,
   rounds interleaved, checked equal, best and median; raw nvCOMP on the same bytes; the
   targets (<= 130 ms on an H100, decode >= 80% of raw nvCOMP);
5. suite: a short run of the benchmark suite's GPU engines (cuzarr-cuda, batched-gpu,
   czarr where it imports, cuzarr on the cpu for scale), reads and writes of three
   workloads, 2 rounds; its results.json/md/png land in DIR/suite.

Writes DIR/gpu-check.json after every step (a cut run keeps what it did) and
DIR/gpu-check.md, a summary to paste into an issue note. Exit status: 0 when every step
ran to the end and every test and check passed, 1 otherwise, 2 when there is no usable
GPU here (the JSON and the summary then say what is missing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.budget import CUT, Deadline, run_budgeted

REPO = Path(__file__).resolve().parents[1]
TOTAL_BUDGET_S = 450.0  # the issue's limit is 8 minutes; leave the rest for start-up
MIN_STEP_S = 20.0  # a step granted less than this is skipped, not started
CHILD_MARGIN_S = 15.0  # a child stops starting work this long before its budget ends
RAW_NVCOMP_S = 20.0  # what the read case keeps back from its rounds for raw nvCOMP
DEFAULT_MIB = 3128  # the Augspurger case: 3.28 GB
SUITE_ENGINES = ("cuzarr-cuda", "batched-gpu", "czarr", "cuzarr")
SUITE_WORKLOADS = ("sharded-zstd-1MiB", "blosc-lz4-shuffle", "gzip-1MiB")
SUITE_OPS = ("read", "write")
SUITE_ROUNDS = 2
MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class Step:
    """One step of the check and the seconds it may take."""

    name: str
    budget_s: float
    what: str


STEPS = (
    Step("probes", 40, "open questions about nvCOMP 6's API, one probe each"),
    Step("tests", 140, "pytest -m cuda, every failure collected"),
    Step("kernels", 40, "kernel GB/s against the device copy rate"),
    Step("augspurger", 120, "3.28 GB sharded zstd into cupy: cuzarr vs zarr, raw nvCOMP"),
    Step("suite", 100, "bench suite, GPU engines, 3 workloads, reads and writes, 2 rounds"),
)
STEP_NAMES = tuple(s.name for s in STEPS)


# ---- junit ------------------------------------------------------------------------------


def parse_junit(path: Path) -> dict[str, Any]:
    """Counts and every failing test (id and short message) from pytest's junit xml."""
    root = ET.parse(path).getroot()
    counts = {"tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures = []
    for case in root.iter("testcase"):
        counts["tests"] += 1
        outcome = _outcome(case)
        counts[outcome] += 1
        if outcome in ("failed", "errors"):
            element = case.find("failure") if outcome == "failed" else case.find("error")
            failures.append({"id": test_id(case), "outcome": "failed" if outcome == "failed"
                             else "error", "message": short_message(element)})
    return counts | {"failures": failures}


def _outcome(case: ET.Element) -> str:
    if case.find("failure") is not None:
        return "failed"
    if case.find("error") is not None:
        return "errors"
    if case.find("skipped") is not None:
        return "skipped"
    return "passed"


def test_id(case: ET.Element) -> str:
    """pytest's node id back from a testcase: `file::Class::name` (junit_family=xunit1
    gives the file; otherwise the dotted classname is turned back into a path)."""
    name, classname, file = case.get("name", ""), case.get("classname", ""), case.get("file")
    if file:
        module = file.removesuffix(".py").replace("/", ".")
        inner = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
        return "::".join([file, *(inner.split(".") if inner else []), name])
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        candidate = REPO / Path(*parts[:cut]).with_suffix(".py")
        if candidate.exists():
            rest = parts[cut:]
            return "::".join(["/".join(parts[:cut]) + ".py", *rest, name])
    return f"{classname}::{name}" if classname else name


def short_message(element: ET.Element | None) -> str:
    """The first line of a failure's message (or of its text), at most MESSAGE_LIMIT long."""
    if element is None:
        return ""
    text = element.get("message") or (element.text or "").strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."


# ---- steps, run from the parent ---------------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment for steps: the repo (for `bench`) and its src/ on the path."""
    from bench.client import worker_env

    return worker_env()


def run_tests(out: Path, budget_s: float) -> dict[str, Any]:
    """pytest -m cuda over tests/, every failure collected (no -x); SIGINT near the end of
    the budget makes pytest stop and still write its junit xml."""
    xml = out / "cuda-tests.xml"
    xml.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rfE", "-p", "no:cacheprovider",
           "-o", "junit_family=xunit1", f"--junitxml={xml}", str(REPO / "tests")]
    run = run_budgeted(cmd, budget_s, out / "cuda-tests.log", cwd=REPO, env=child_env())
    record = _step_record(run, budget_s)
    if xml.exists():
        record["result"] = parse_junit(xml)
    else:
        record["result"] = {"error": "pytest wrote no junit xml (see cuda-tests.log)"}
        record["status"] = CUT if run["cut"] else "error"
    if record["status"] == "ok" and run["returncode"] not in (0, 1):
        record["status"] = "error"  # 2-5: interrupted, internal error, usage, no tests
    return record


def run_child(step: str, args: argparse.Namespace, budget_s: float) -> dict[str, Any]:
    """A step in a child process (`python -m bench.gpu_check --child STEP`), which writes
    its results to a partial file as it goes; whatever is there when it ends is kept."""
    with tempfile.TemporaryDirectory(prefix="cuzarr-gpu-check-") as tmp:
        partial = Path(tmp) / f"{step}.json"
        cmd = [sys.executable, "-m", "bench.gpu_check", "--child", step, "--out", str(args.out),
               "--partial", str(partial), "--mib", str(args.mib), "--rounds", str(args.rounds),
               "--writer", args.writer, "--budget", f"{budget_s:.0f}"]
        run = run_budgeted(cmd, budget_s, args.out / "gpu-check.log", cwd=REPO,
                           env=child_env())
        result = json.loads(partial.read_text()) if partial.exists() else {}
    record = _step_record(run, budget_s)
    error, done = result.pop("error", None), result.pop("done", False)
    if record["status"] == "ok" and (error or not done):
        record["status"] = "error"
    if error:
        record["error"] = error
    record["result"] = result
    return record


def _step_record(run: dict[str, Any], budget_s: float) -> dict[str, Any]:
    status = CUT if run["cut"] else ("ok" if run["returncode"] in (0, 1) else "error")
    return {"status": status, "elapsed_s": run["elapsed_s"], "budget_s": round(budget_s),
            "returncode": run["returncode"]}


def run_steps(args: argparse.Namespace, report: dict[str, Any],
              save: Callable[[], None]) -> None:
    """Every selected step in order, each given its budget or what the total has left."""
    total = Deadline.after(args.budget)
    for step in STEPS:
        if step.name not in args.steps:
            continue
        granted = min(step.budget_s, total.left())
        if granted < MIN_STEP_S:
            report["steps"][step.name] = {"status": "skipped", "budget_s": round(granted),
                                          "reason": "the run's total budget is spent"}
            save()
            continue
        print(f"gpu-check: {step.name} ({step.what}), up to {granted:.0f} s", file=sys.stderr)
        if step.name == "tests":
            record = run_tests(args.out, granted)
        else:
            record = run_child(step.name, args, granted)
        report["steps"][step.name] = record
        save()


# ---- steps, run in the child ------------------------------------------------------------


class Partial:
    """A child's results so far, rewritten (atomically) on every update."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def update(self, **items: Any) -> None:
        self.data.update(items)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


def child_probes(args: argparse.Namespace, partial: Partial, deadline: Deadline) -> None:
    import cupy as cp
    from nvidia import nvcomp

    from bench.gpu_probes import run_probes

    run_probes(nvcomp, cp, cp.cuda.Device().synchronize,
               on_result=lambda results: partial.update(probes=results))


def child_kernels(args: argparse.Namespace, partial: Partial, deadline: Deadline) -> None:
    from bench import kernels

    partial.update(kernels=kernels.run(256))


def child_augspurger(args: argparse.Namespace, partial: Partial, deadline: Deadline) -> None:
    from bench.gpu_read import run_case

    # the timed rounds stop early enough to leave the raw nvCOMP part its time
    run_case(args.mib, args.rounds, deadline.earlier(RAW_NVCOMP_S),
             lambda result: partial.update(case=result), writer=args.writer)


def child_suite(args: argparse.Namespace, partial: Partial, deadline: Deadline) -> None:
    from bench.runner import Options, run

    options = Options(engines=SUITE_ENGINES, workloads=SUITE_WORKLOADS, ops=SUITE_OPS,
                      rounds=SUITE_ROUNDS, out=str(args.out / "suite"), progress=False,
                      timeout=90.0, budget_s=max(1.0, deadline.left()))
    results = run(options)
    keep = ("workload", "op", "engine", "status", "error", "best_s", "median_s", "gb_per_s",
            "ratio_vs_best_peer", "ratio_vs_peers")
    partial.update(summary=[{k: e.get(k) for k in keep} for e in results["summary"]],
                   not_run=results["meta"].get("not_run", []),
                   elapsed_s=results["meta"]["elapsed_s"])


CHILD_STEPS: dict[str, Callable[[argparse.Namespace, Partial, Deadline], None]] = {
    "probes": child_probes,
    "kernels": child_kernels,
    "augspurger": child_augspurger,
    "suite": child_suite,
}


def child_main(args: argparse.Namespace) -> int:
    """Run one step; its results (or its error) go to the partial file."""
    partial = Partial(args.partial)
    deadline = Deadline.after(args.budget - CHILD_MARGIN_S)
    try:
        CHILD_STEPS[args.child](args, partial, deadline)
    except KeyboardInterrupt:
        partial.update(interrupted=True)
        return 130
    except Exception as exc:
        partial.update(error=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc().strip().splitlines()[-8:])
        traceback.print_exc()
        return 3
    partial.update(done=True)
    return 0


# ---- verdict and summary ----------------------------------------------------------------


def exit_code(report: dict[str, Any]) -> int:
    """0: every step ran to its end and every test and check passed; 1: anything else;
    2: no usable GPU."""
    if not report.get("available"):
        return 2
    return 0 if not problems(report) else 1


def problems(report: dict[str, Any]) -> list[str]:
    """What keeps the check from passing, one line each."""
    found = ["interrupted before its end"] if report.get("interrupted") else []
    for name, step in report.get("steps", {}).items():
        if step["status"] != "ok":
            why = step.get("error") or step.get("reason")
            found.append(f"{name}: {step['status']}" + (f" ({why})" if why else ""))
    tests = _result(report, "tests")
    if tests.get("failed") or tests.get("errors"):
        found.append(f"tests: {tests.get('failed', 0)} failed, {tests.get('errors', 0)} errors")
    case = _result(report, "augspurger").get("case", {})
    if case and not case.get("checked_equal"):
        found.append("augspurger: a read failed or differed from the source")
    if case.get("raw_nvcomp", {}).get("checked_equal") is False:
        found.append("augspurger: raw nvCOMP's output differed from the source")
    unsettled = [n for n, p in _result(report, "probes").get("probes", {}).items()
                 if not p.get("settled")]
    if unsettled:
        found.append(f"probes not settled: {', '.join(unsettled)}")
    suite = _result(report, "suite").get("summary", [])
    bad = [e for e in suite if e["status"] not in ("ok", "unavailable")]
    if bad:
        found.append(f"suite: {len(bad)} entries not ok")
    return found


def _result(report: dict[str, Any], step: str) -> dict[str, Any]:
    return report.get("steps", {}).get(step, {}).get("result", {}) or {}


def _fmt(value: Any, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def render_markdown(report: dict[str, Any]) -> str:
    """gpu-check.md: what ran, what passed, the figures and the open questions' answers,
    from the JSON report alone."""
    lines = ["# cuzarr GPU check", ""]
    if not report.get("available"):
        lines += ["No usable GPU here; missing: " + ", ".join(report.get("missing", [])) + ".",
                  "", "Nothing was run (exit 2)."]
        return "\n".join(lines) + "\n"
    code = exit_code(report)
    lines += [f"Device: **{report.get('device')}**; {report.get('date')}; "
              f"{report.get('elapsed_s', '-')} s of a {report.get('budget_s', '-'):g} s budget; "
              f"exit {code} ({'passed' if code == 0 else 'not passed'}).", ""]
    if report.get("versions"):
        lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()
                                           if v) + f"; kvikio {report.get('kvikio')}.", ""]
    for problem in problems(report):
        lines.append(f"- **{problem}**")
    lines += ["", "| step | status | seconds | budget |", "|---|---|---|---|"]
    for name, step in report.get("steps", {}).items():
        lines.append(f"| {name} | {step['status']} | {step.get('elapsed_s', '-')} | "
                     f"{step.get('budget_s', '-')} |")
    for section in (_md_tests, _md_case, _md_probes, _md_kernels, _md_suite):
        lines += section(report)
    return "\n".join(lines) + "\n"


def _md_tests(report: dict[str, Any]) -> list[str]:
    tests = _result(report, "tests")
    if not tests:
        return []
    lines = ["", "## cuda tests (pytest -m cuda)", ""]
    if "error" in tests:
        return [*lines, tests["error"]]
    lines.append(f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
                 f"{tests['skipped']} skipped of {tests['tests']}.")
    if report["steps"]["tests"]["status"] == CUT:
        lines.append("Cut by its budget: the counts are of the tests that ran.")
    lines += [f"- `{f['id']}` ({f['outcome']}): {f['message']}" for f in tests["failures"]]
    return lines


def _md_case(report: dict[str, Any]) -> list[str]:
    case = _result(report, "augspurger").get("case")
    if not case:
        return []
    spec = case["layout"]
    lines = ["", "## The Augspurger case", "",
             f"{spec['nbytes'] / 1e9:.2f} GB float32 {'x'.join(map(str, spec['shape']))}, "
             f"chunks {'x'.join(map(str, spec['chunks']))}, shards "
             f"{'x'.join(map(str, spec['shards']))}, {spec['compressor']}, "
             f"{_fmt(case.get('compression_ratio'), '.2f')}x; written by {case['writer']} in "
             f"{_fmt(case.get('write_s'))} s. Rounds: {case.get('rounds_done', 0)} of "
             f"{case.get('rounds_asked', '-')}"
             + (" (cut by the budget)" if case.get("cut_by_budget") else "")
             + f"; every read checked equal: {'yes' if case.get('checked_equal') else 'NO'}.",
             "", "| reader | best ms | median ms | GB/s (best) | note |", "|---|---|---|---|---|"]
    for name, e in case.get("engines", {}).items():
        lines.append(f"| {name} | {_fmt(e.get('best_ms'), '.1f')} | "
                     f"{_fmt(e.get('median_ms'), '.1f')} | {_fmt(e.get('gb_per_s'))} | "
                     f"{e.get('error', '')} |")
    raw = case.get("raw_nvcomp", {})
    if "decode" in raw:
        d = raw["decode"]
        lines.append(f"| raw nvCOMP decode (one call, {raw['chunks']} chunks) | "
                     f"{_fmt(d.get('best_ms'), '.1f')} | {_fmt(d.get('median_ms'), '.1f')} | "
                     f"{_fmt(d.get('gb_per_s'))} | output equal: "
                     f"{'yes' if raw.get('checked_equal') else 'NO'} |")
    elif raw.get("error"):
        lines.append(f"| raw nvCOMP | - | - | - | {raw['error']} |")
    if case.get("speedup_vs_zarr"):
        lines += ["", f"cuzarr is {case['speedup_vs_zarr']:.1f}x zarr Batched + enable_gpu."]
    phase = case.get("cuzarr_decode_phase", {})
    if phase.get("busy_ms"):
        lines.append(f"cuzarr's nvCOMP decode calls: {phase['calls']}, busy "
                     f"{phase['busy_ms']:.1f} ms ({_fmt(phase.get('gb_per_s'))} GB/s) in a "
                     f"{phase['read_ms']:.1f} ms read.")
    lines += ["", "Targets:"]
    for name, t in case.get("targets", {}).items():
        got = (f"{t['gb_per_s']:.1f} GB/s ({t['ms']:.1f} ms)" if name == "end_to_end" else
               f"phase {_fmt(t.get('phase_fraction'), '.0%')}, end to end "
               f"{_fmt(t.get('end_to_end_fraction'), '.0%')} of raw "
               f"{_fmt(t.get('raw_gb_per_s'))} GB/s")
        lines.append(f"- {t['target']}: {got}: **{'met' if t['met'] else 'missed'}**"
                     + (f". {t['phase_timing']}." if "phase_timing" in t else ""))
    return lines


def _md_probes(report: dict[str, Any]) -> list[str]:
    probes = _result(report, "probes").get("probes")
    if not probes:
        return []
    lines = ["", "## Open questions (nvCOMP 6)", ""]
    for p in probes.values():
        how = f"settled: {p['answer']}" if p.get("settled") else f"NOT settled: {p['error']}"
        lines.append(f"- {p['question']} **{how}**")
    return lines


def _md_kernels(report: dict[str, Any]) -> list[str]:
    found = _result(report, "kernels").get("kernels")
    if not found:
        return []
    lines = ["", "## Kernels (256 MiB buffers)", "", "| kernel | GB/s | of copy rate |",
             "|---|---|---|"]
    lines += [f"| {name} | {e['gb_per_s']:.1f} | {e['of_copy_rate']:.0%} |"
              for name, e in found.items()]
    return lines


def _md_suite(report: dict[str, Any]) -> list[str]:
    suite = _result(report, "suite")
    if not suite.get("summary"):
        return []
    lines = ["", "## Suite (GPU engines; full results in suite/results.md)", "",
             "| workload | op | engine | status | best s | GB/s | vs best peer |",
             "|---|---|---|---|---|---|---|"]
    for e in suite["summary"]:
        status = e["status"] if e["status"] == "ok" else f"{e['status']}: {e.get('error')}"
        lines.append(f"| {e['workload']} | {e['op']} | {e['engine']} | {status} | "
                     f"{_fmt(e.get('best_s'))} | {_fmt(e.get('gb_per_s'))} | "
                     f"{_fmt(e.get('ratio_vs_best_peer'), '.2f')} |")
    if suite.get("not_run"):
        lines.append(f"\nNot run (time budget): {', '.join(suite['not_run'])}.")
    return lines


# ---- entry ------------------------------------------------------------------------------


def missing_parts() -> list[str]:
    """What the check needs and this machine lacks. kvikio is not among them: the cuda
    device reads through pinned host memory without it (GPUDirect Storage needs it)."""
    from cuzarr.devices import _missing_cuda_parts

    return [m for m in _missing_cuda_parts() if not m.startswith("kvikio")]


def kvikio_note() -> str:
    """Whether LocalStore reads go through kvikio (GPUDirect Storage) here, and if not why."""
    import cuzarr.devices

    status = getattr(cuzarr.devices, "kvikio_status", None)
    if status is None:
        import importlib.util

        return "loads" if importlib.util.find_spec("kvikio") else "not installed"
    reason = status()
    return "loads" if reason is None else f"does not load ({reason}): reads go through host memory"


def machine(report: dict[str, Any]) -> None:
    """Device name, package versions and kvikio's state, into the report."""
    import cupy as cp

    from bench.engines import package_versions

    report["device"] = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    report["versions"] = package_versions() | {"cupy": cp.__version__}
    report["kvikio"] = kvikio_note()


def write_report(out: Path, report: dict[str, Any]) -> None:
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu-check.md").write_text(render_markdown(report))


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="write DIR/gpu-check.json/.md")
    parser.add_argument("--mib", type=int, default=DEFAULT_MIB,
                        help=f"the read case's size in MiB (default {DEFAULT_MIB}: 3.28 GB)")
    parser.add_argument("--rounds", type=int, default=5, help="read-case rounds (default 5)")
    parser.add_argument("--budget", type=float, default=TOTAL_BUDGET_S,
                        help=f"seconds for the whole check (default {TOTAL_BUDGET_S:g})")
    parser.add_argument("--steps", type=lambda s: [p.strip() for p in s.split(",") if p.strip()],
                        default=list(STEP_NAMES), help=f"steps to run (default all: "
                        f"{','.join(STEP_NAMES)})")
    parser.add_argument("--no-suite", action="store_true", help="skip the suite step")
    parser.add_argument("--writer", choices=("cuzarr-cpu", "zarr"), default="cuzarr-cpu",
                        help="who writes the read case's array (default cuzarr-cpu: quicker)")
    parser.add_argument("--child", choices=tuple(CHILD_STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--partial", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        return child_main(args)
    unknown = set(args.steps) - set(STEP_NAMES)
    if unknown:
        print(f"gpu-check: unknown steps {sorted(unknown)}; choose from {STEP_NAMES}",
              file=sys.stderr)
        return 2
    if args.no_suite:
        args.steps = [s for s in args.steps if s != "suite"]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                              "budget_s": args.budget, "argv": sys.argv[1:], "steps": {}}
    report["missing"] = missing_parts()
    report["available"] = not report["missing"]
    if not report["available"]:
        write_report(args.out, report)
        print("gpu-check: the cuda device cannot run here; missing: "
              + ", ".join(report["missing"]), file=sys.stderr)
        return 2
    machine(report)

    def save() -> None:
        report["elapsed_s"] = round(time.monotonic() - started, 1)
        write_report(args.out, report)

    save()
    signal.signal(signal.SIGTERM, _interrupted)  # `timeout` ends us: stop the step too
    try:
        run_steps(args, report, save)
    except KeyboardInterrupt:
        report["interrupted"] = True
    report["exit_code"] = exit_code(report)
    save()
    print(render_markdown(report))
    return report["exit_code"]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
