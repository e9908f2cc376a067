"""Command line: `python -m bench [--quick] [--out DIR] ...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.engines import ENGINES
from bench.report import format_tables
from bench.runner import OPS, Options, run
from bench.workloads import all_workloads


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Time full reads and writes of local zarr v3 arrays with several codec "
            "pipelines, each engine in its own process, rounds interleaved across engines. "
            "Ratios are engine best time / fastest peer best time (peers: all engines "
            "except cuzarr); below 1.00x is faster."
        ),
        epilog=(
            f"engines: {', '.join(ENGINES)}; workloads: {', '.join(all_workloads(False))}; "
            f"ops: {', '.join(OPS)}"
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="64 MiB float arrays, not 256 MiB (~2 min, 2 cores)"
    )
    parser.add_argument("--out", metavar="DIR", help="write DIR/results.json and worker logs")
    parser.add_argument(
        "--rounds", type=int, default=5, metavar="N", help="rounds per measurement (default 5)"
    )
    parser.add_argument(
        "--engines", type=_csv, default=list(ENGINES), metavar="A,B", help="engines to run"
    )
    parser.add_argument("--workloads", type=_csv, metavar="X,Y", help="workloads (default all)")
    parser.add_argument("--ops", type=_csv, default=list(OPS), metavar="read,write")
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="dataset dir, kept and reused across runs (default: a temp dir removed at exit)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="per-measurement limit"
    )
    parser.add_argument("-q", "--no-progress", action="store_true", help="no per-run stderr lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    if args.out:
        print(f"\nwrote {Path(args.out) / 'results.json'}")
    return 0
