"""Orchestration: prepare the dataset once, then interleave engines round by round."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.budget import CUT, Deadline
from bench.client import WorkerClient
from bench.engines import ENGINES, get_engine, package_versions
from bench.plot import plot_results
from bench.report import format_markdown, summarize, write_json
from bench.workloads import all_workloads, get_workload, prepare

OPS = ("read", "patches", "patches-batched", "write")
NO_DEADLINE = Deadline()
DEFAULT_ROUNDS = 5
QUICK_ROUNDS = 2
# Engines that need a GPU; the others run everywhere.
CPU_ENGINES = tuple(name for name, engine in ENGINES.items() if not engine.gpu)


@dataclass
class Options:
    """Everything a run depends on; stored verbatim in results.json."""

    quick: bool = False
    rounds: int | None = None  # None: DEFAULT_ROUNDS, or QUICK_ROUNDS with quick
    engines: Sequence[str] = tuple(ENGINES)
    workloads: Sequence[str] | None = None  # None: all
    ops: Sequence[str] = OPS
    data: str | None = None  # None: a temp dir removed after the run
    out: str | None = None
    timeout: float = 600.0
    progress: bool = True
    # seconds the run may take: past them no new measurement starts, and those not run
    # are recorded with status "cut" (workloads not prepared by then are listed in
    # meta["not_run"]); None: no limit
    budget_s: float | None = None
    # each timed round in a new worker process, which first reads once untimed: the way a
    # user's script runs (open, read, done), against long-lived workers' warm state
    fresh: bool = False

    def resolved_workloads(self) -> list[str]:
        names = list(self.workloads) if self.workloads else list(all_workloads(self.quick))
        for name in names:
            get_workload(name, self.quick)
        return names

    @property
    def n_rounds(self) -> int:
        if self.rounds is not None:
            return self.rounds
        return QUICK_ROUNDS if self.quick else DEFAULT_ROUNDS

    def validate(self) -> None:
        for name in self.engines:
            get_engine(name)
        for op in self.ops:
            if op not in OPS:
                raise ValueError(f"unknown op {op!r}; choose from {', '.join(OPS)}")
        if self.n_rounds < 1:
            raise ValueError("rounds must be at least 1")
        if self.budget_s is not None and self.budget_s < 0:
            raise ValueError("budget_s must not be negative")
        self.resolved_workloads()


class Progress:
    """A progress bar on stderr (tqdm) over every planned measurement, warm-ups included.

    Timings go to results.json; the bar only says where the run is. Failures are
    printed above the bar as they happen.
    """

    def __init__(self, options: Options, total: int) -> None:
        self.enabled = options.progress
        self.bar: Any = None
        self.unavailable: set[str] = set()
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True)

    def note(self, message: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)

    def step(self, record: dict[str, Any], rounds: int) -> None:
        if self.bar is None:
            return
        self.bar.set_description(f"{record['workload']} {record['op']} {record['engine']}")
        self.bar.update(1)
        if record["status"] == "unavailable":
            if record["engine"] not in self.unavailable:
                self.unavailable.add(record["engine"])
                self.note(f"{record['engine']} unavailable: {record.get('error')}")
        elif record["status"] != "ok":
            self.note(progress_line(record, rounds))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def gpu_name() -> str | None:
    """The GPU's name from nvidia-smi, without importing CUDA in the runner process."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return ", ".join(names) or None


def machine_info() -> dict[str, Any]:
    return {
        "gpu": gpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
    }


def run(options: Options) -> dict[str, Any]:
    """Run the suite and return the results dict (also written to OUT/results.json)."""
    options.validate()
    started = time.perf_counter()
    deadline = Deadline.after(options.budget_s)
    not_run: list[str] = []
    own_data = options.data is None
    data_root = Path(options.data or tempfile.mkdtemp(prefix="cuzarr-bench-data-"))
    data_root.mkdir(parents=True, exist_ok=True)
    log_dir = Path(options.out or tempfile.mkdtemp(prefix="cuzarr-bench-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    scratch = data_root / "scratch"
    scratch.mkdir(exist_ok=True)
    clients = {name: WorkerClient(get_engine(name), log_dir) for name in options.engines}
    measurements: list[dict[str, Any]] = []
    workloads: dict[str, Any] = {}
    names = options.resolved_workloads()
    total = len(names) * len(options.ops) * len(clients) * (options.n_rounds + 1)
    progress = Progress(options, total)
    try:
        for wname in names:
            if deadline.passed():
                not_run.append(wname)
                continue
            workload = get_workload(wname, options.quick)
            progress.note(f"preparing {wname}: {workload.describe()}")
            workloads[wname] = prepare(data_root, workload)
            base = {"workload": wname, "quick": options.quick}
            base |= {"data": str(data_root), "scratch": str(scratch)}
            for op in options.ops:
                workloads[wname].setdefault("op_nbytes", {})[op] = workload.op_nbytes(op)
                warm_records, warm_errors = warm_up(clients, base, op, options, progress,
                                                    deadline)
                measurements += warm_records
                measurements += measure(clients, base, op, warm_errors, options, progress,
                                        deadline)
    finally:
        progress.close()
        for client in clients.values():
            client.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        if own_data:
            shutil.rmtree(data_root, ignore_errors=True)
        if not options.out:
            keep_logs_if_failed(log_dir, measurements)
    results = {
        "meta": {
            "machine": machine_info(),
            "options": asdict(options),
            "rounds": options.n_rounds,
            "engines": engine_info(clients),
            "data_dir": None if own_data else str(data_root),
            "elapsed_s": round(time.perf_counter() - started, 1),
            "not_run": not_run,
        },
        "workloads": workloads,
        "measurements": measurements,
    }
    results["summary"] = summarize(results)
    if options.out:
        write_outputs(results, Path(options.out))
    return results


def write_outputs(results: dict[str, Any], out_dir: Path) -> None:
    """results.json, results.md and results.png (the plot is skipped, and said so in
    results.md, only where matplotlib is missing)."""
    write_json(results, out_dir)
    (out_dir / "results.md").write_text(format_markdown(results))
    plot_results(results, out_dir / "results.png")


def keep_logs_if_failed(log_dir: Path, measurements: list[dict[str, Any]]) -> None:
    """Worker logs live in a temp dir without --out: keep it only when something failed."""
    if all(m["status"] in ("ok", "unavailable") for m in measurements):
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        print(f"worker logs kept in {log_dir}", file=sys.stderr)


def warm_up(
    clients: dict[str, WorkerClient],
    base: dict[str, Any],
    op: str,
    options: Options,
    progress: Progress,
    deadline: Deadline = NO_DEADLINE,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """One full, verified, untimed-for-stats op per engine before the rounds.

    Lazy set-up (thread pools, plugin imports, first allocations) stays out of the
    stats but is kept as round 0 in results.json. An engine failing here is skipped for
    this op, so a crashing or hanging engine does not cost a timeout every round.
    """
    records: list[dict[str, Any]] = []
    errors: dict[str, dict[str, Any]] = {}
    for name, client in clients.items():
        reply = timed_request(client, {"cmd": op, **base}, options, deadline)
        record = {"workload": base["workload"], "op": op, "engine": name, "round": 0,
                  "pid": _pid(client)}
        records.append(record | reply | {"warmup": True})
        progress.step(records[-1], options.n_rounds)
        if reply["status"] != "ok":
            prefix = "" if client.unavailable or reply["status"] == CUT else "in warm-up: "
            errors[name] = {"status": reply["status"], "error": prefix + str(reply.get("error"))}
    return records, errors


def measure(
    clients: dict[str, WorkerClient],
    base: dict[str, Any],
    op: str,
    warm_errors: dict[str, dict[str, Any]],
    options: Options,
    progress: Progress,
    deadline: Deadline = NO_DEADLINE,
) -> list[dict[str, Any]]:
    """All rounds of one (workload, op); each round visits every engine once.

    The starting engine rotates per round so no engine always runs right after the
    same neighbour (page-cache writeback, CPU frequency).
    """
    names = list(clients)
    rounds = options.n_rounds
    records = []
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            client = clients[name]
            if name in warm_errors:
                reply = warm_errors[name]
            elif options.fresh:
                reply = fresh_request(client, {"cmd": op, **base}, options, deadline)
            else:
                reply = timed_request(client, {"cmd": op, **base}, options, deadline)
            record = {"workload": base["workload"], "op": op, "engine": name, "round": r + 1,
                      "pid": _pid(client)}
            records.append(record | reply)
            progress.step(records[-1], rounds)
    return records


def _pid(client: Any) -> int | None:
    """The worker process a record came from (its handshake's pid), where known."""
    return (getattr(client, "info", None) or {}).get("pid")


def fresh_request(client: WorkerClient, message: dict[str, Any], options: Options,
                  deadline: Deadline) -> dict[str, Any]:
    """The fresh-process round: a new worker process, one untimed request (it opens the
    array and reads it, as a script's first read does), then the timed one."""
    client.stop()
    first = timed_request(client, message, options, deadline)
    if first["status"] != "ok":
        return first
    return timed_request(client, message, options, deadline)


def timed_request(client: WorkerClient, message: dict[str, Any], options: Options,
                  deadline: Deadline) -> dict[str, Any]:
    """One request, or a "cut" reply without asking once the run's budget is spent; the
    request's own timeout ends at the deadline too."""
    if deadline.passed():
        return {"status": CUT, "error": f"not run: past the run's {options.budget_s:g} s budget"}
    return client.request(message, deadline.timeout(options.timeout))


def progress_line(record: dict[str, Any], rounds: int) -> str:
    step = "warm-up" if record.get("warmup") else f"{record['round']}/{rounds}"
    head = f"[{step}] {record['workload']} {record['op']} {record['engine']}"
    if record["status"] == "ok":
        return f"{head}: {record['seconds']:.3f} s"
    return f"{head}: {record['status']}: {record.get('error')}"


def engine_info(clients: dict[str, WorkerClient]) -> dict[str, Any]:
    return {
        name: {
            "pipeline_path": client.engine.pipeline_path,
            "peer": client.engine.peer,
            "handshake": client.info,
            "unavailable": client.unavailable,
        }
        for name, client in clients.items()
    }
