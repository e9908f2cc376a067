"""Command line: `python -m bench [--quick] [--out DIR] ...`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.engines import ENGINES
from bench.report import format_tables
from bench.runner import DEFAULT_ROUNDS, OPS, QUICK_ROUNDS, Options, run
from bench.workloads import all_workloads


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Time reads (whole array, and random patches as a training loader draws them) "
            "and writes of local zarr v3 arrays with several engines: cuzarr, zarr's own "
            "pipelines, zarrs-python and tensorstore, with GPU variants where a GPU is "
            "present. Each engine runs in its own process, rounds interleaved across "
            "engines, every result checked. Ratios are engine best time / fastest peer best "
            "time (peers: all engines except cuzarr's); below 1.00x is faster. Writes "
            "results.json, results.md and results.png to --out (default: a new folder "
            "under ./bench-results) and prints where."
        ),
        epilog=(
            f"engines: {', '.join(ENGINES)}; workloads: {', '.join(all_workloads(False))}; "
            f"ops: {', '.join(OPS)}"
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"32 MiB float arrays, not 256 MiB, and {QUICK_ROUNDS} rounds (a few minutes)",
    )
    parser.add_argument(
        "--out", metavar="DIR",
        help="write results.json, results.md, results.png and worker logs to DIR "
        "(default: bench-results/<UTC date and time>-quick or -full)")
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help=f"rounds per measurement (default {DEFAULT_ROUNDS}, {QUICK_ROUNDS} with --quick)",
    )
    parser.add_argument(
        "--engines", type=_csv, default=list(ENGINES), metavar="A,B", help="engines to run"
    )
    parser.add_argument("--workloads", type=_csv, metavar="X,Y", help="workloads (default all)")
    parser.add_argument(
        "--ops", type=_csv, default=list(OPS), metavar="A,B", help=f"ops (default {','.join(OPS)})"
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="dataset dir, kept and reused across runs (default: a temp dir removed at exit)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="per-measurement limit"
    )
    parser.add_argument(
        "--budget", type=float, metavar="S",
        help="seconds the whole run may take: measurements not started by then are "
        "recorded as cut (default: no limit)",
    )
    parser.add_argument(
        "--fresh", action="store_true",
        help="each timed round in a new worker process that reads once untimed first (the "
        "way a user's script runs); default: one long-lived process per engine")
    parser.add_argument("-q", "--no-progress", action="store_true", help="no progress bar")
    return parser


def default_out(quick: bool, now: datetime | None = None, fresh: bool = False) -> Path:
    """A new folder per run under ./bench-results, named by when it started and its mode."""
    now = now or datetime.now(UTC)
    mode = ("quick" if quick else "full") + ("-fresh" if fresh else "")
    return Path("bench-results") / f"{now:%Y%m%d-%H%M%S}-{mode}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is None:
        args.out = str(default_out(args.quick, fresh=args.fresh))
    options = Options(
        quick=args.quick,
        rounds=args.rounds,
        engines=args.engines,
        workloads=args.workloads,
        ops=args.ops,
        data=args.data,
        out=args.out,
        timeout=args.timeout,
        progress=not args.no_progress,
        budget_s=args.budget,
        fresh=args.fresh,
    )
    try:
        options.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        results = run(options)
    except KeyboardInterrupt:
        print("interrupted; workers stopped and temp data removed", file=sys.stderr)
        return 130
    print(format_tables(results))
    out = Path(args.out)
    names = [f"results.{ext}" for ext in ("json", "md", "png") if (out / f"results.{ext}").exists()]
    print(f"\nwrote {', '.join(names)} to {out.resolve()}")
    return 0
