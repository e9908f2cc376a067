"""Orchestration: prepare the dataset once, then interleave engines round by round."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.client import WorkerClient
from bench.engines import ENGINES, get_engine, package_versions
from bench.report import summarize, write_json
from bench.workloads import all_workloads, get_workload, prepare

OPS = ("read", "write")


@dataclass
class Options:
    """Everything a run depends on; stored verbatim in results.json."""

    quick: bool = False
    rounds: int = 5
    engines: Sequence[str] = tuple(ENGINES)
    workloads: Sequence[str] | None = None  # None: all
    ops: Sequence[str] = OPS
    data: str | None = None  # None: a temp dir removed after the run
    out: str | None = None
    timeout: float = 600.0
    progress: bool = True

    def resolved_workloads(self) -> list[str]:
        names = list(self.workloads) if self.workloads else list(all_workloads(self.quick))
        for name in names:
            get_workload(name, self.quick)
        return names

    def validate(self) -> None:
        for name in self.engines:
            get_engine(name)
        for op in self.ops:
            if op not in OPS:
                raise ValueError(f"unknown op {op!r}; choose from {', '.join(OPS)}")
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")
        self.resolved_workloads()


def log(options: Options, message: str) -> None:
    if options.progress:
        print(message, file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    return {
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
    try:
        for wname in options.resolved_workloads():
            workload = get_workload(wname, options.quick)
            log(options, f"preparing {wname}: {workload.describe()}")
            workloads[wname] = prepare(data_root, workload)
            base = {"workload": wname, "quick": options.quick}
            base |= {"data": str(data_root), "scratch": str(scratch)}
            for op in options.ops:
                warm_records, warm_errors = warm_up(clients, base, op, options)
                measurements += warm_records
                measurements += measure(clients, base, op, warm_errors, options)
    finally:
        for client in clients.values():
            client.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        if own_data:
            shutil.rmtree(data_root, ignore_errors=True)
        if not options.out:
            keep_logs_if_failed(log_dir, measurements, options)
    results = {
        "meta": {
            "machine": machine_info(),
            "options": asdict(options),
            "engines": engine_info(clients),
            "data_dir": None if own_data else str(data_root),
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
        "workloads": workloads,
        "measurements": measurements,
    }
    results["summary"] = summarize(results)
    if options.out:
        write_json(results, Path(options.out))
    return results


def keep_logs_if_failed(
    log_dir: Path, measurements: list[dict[str, Any]], options: Options
) -> None:
    """Worker logs live in a temp dir without --out: keep it only when something failed."""
    if all(m["status"] == "ok" for m in measurements):
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        log(options, f"worker logs kept in {log_dir}")


def warm_up(
    clients: dict[str, WorkerClient], base: dict[str, Any], op: str, options: Options
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """One full, verified, untimed-for-stats op per engine before the rounds.

    Lazy set-up (thread pools, plugin imports, first allocations) stays out of the
    stats but is kept as round 0 in results.json. An engine failing here is skipped for
    this op, so a crashing or hanging engine does not cost a timeout every round.
    """
    records: list[dict[str, Any]] = []
    errors: dict[str, dict[str, Any]] = {}
    for name, client in clients.items():
        reply = client.request({"cmd": op, **base}, options.timeout)
        record = {"workload": base["workload"], "op": op, "engine": name, "round": 0}
        records.append(record | reply | {"warmup": True})
        log(options, progress_line(records[-1], options.rounds))
        if reply["status"] != "ok":
            prefix = "" if client.unavailable else "in warm-up: "
            errors[name] = {"status": reply["status"], "error": prefix + str(reply.get("error"))}
    return records, errors


def measure(
    clients: dict[str, WorkerClient],
    base: dict[str, Any],
    op: str,
    warm_errors: dict[str, dict[str, Any]],
    options: Options,
) -> list[dict[str, Any]]:
    """All rounds of one (workload, op); each round visits every engine once.

    The starting engine rotates per round so no engine always runs right after the
    same neighbour (page-cache writeback, CPU frequency).
    """
    names = list(clients)
    rounds = options.rounds
    records = []
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if name in warm_errors:
                reply = warm_errors[name]
            else:
                reply = clients[name].request({"cmd": op, **base}, options.timeout)
            record = {"workload": base["workload"], "op": op, "engine": name, "round": r + 1}
            records.append(record | reply)
            if name not in warm_errors:
                log(options, progress_line(records[-1], rounds))
    return records


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
