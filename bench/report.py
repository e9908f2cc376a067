"""Summaries, text tables and results.json.

Ratios are time ratios, engine best / reference best: below 1.00x is faster. Peers are
the engines other than the one being evaluated (cuzarr), so "vs best peer" answers
"how does this compare with the fastest alternative a user could pick today".
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.engines import ENGINES

ERROR_WIDTH = 110


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (workload, op, engine), in run order, with best/median and ratios."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    warmups: dict[tuple[str, str, str], float | None] = {}
    for m in results["measurements"]:
        key = (m["workload"], m["op"], m["engine"])
        if m.get("warmup"):
            warmups[key] = m.get("seconds")
        else:
            groups.setdefault(key, []).append(m)
    entries = [
        _entry(key, records, results) | {"warmup_s": warmups.get(key)}
        for key, records in groups.items()
    ]
    for entry in entries:
        same = [e for e in entries if (e["workload"], e["op"]) == (entry["workload"], entry["op"])]
        _add_ratios(entry, same)
    return entries


def _entry(
    key: tuple[str, str, str], records: list[dict[str, Any]], results: dict[str, Any]
) -> dict[str, Any]:
    workload, op, engine = key
    statuses = [r["status"] for r in records]
    bad = next((r for r in records if r["status"] == "FAILED"), None)
    bad = bad or next((r for r in records if r["status"] != "ok"), None)
    entry: dict[str, Any] = {
        "workload": workload,
        "op": op,
        "engine": engine,
        "peer": ENGINES[engine].peer,
        "status": bad["status"] if bad else "ok",
        "error": bad.get("error") if bad else None,
        "rounds_ok": statuses.count("ok"),
        "times_s": [r["seconds"] for r in records if r["status"] == "ok"],
        "best_s": None,
        "median_s": None,
        "gb_per_s": None,
    }
    if bad is None and entry["times_s"]:
        best = min(entry["times_s"])
        entry["best_s"] = best
        entry["median_s"] = statistics.median(entry["times_s"])
        entry["gb_per_s"] = results["workloads"][workload]["nbytes"] / best / 1e9
    return entry


def _add_ratios(entry: dict[str, Any], same: list[dict[str, Any]]) -> None:
    peers = {e["engine"]: e["best_s"] for e in same if e["peer"] and e["best_s"] is not None}
    entry["best_peer"] = min(peers, key=lambda name: peers[name]) if peers else None
    entry["ratio_vs_best_peer"] = None
    entry["ratio_vs_peers"] = {}
    if entry["best_s"] is None or not peers:
        return
    entry["ratio_vs_best_peer"] = entry["best_s"] / peers[entry["best_peer"]]
    if not entry["peer"]:
        entry["ratio_vs_peers"] = {name: entry["best_s"] / t for name, t in peers.items()}


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _short(text: str | None) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 3] + "..."


def format_tables(results: dict[str, Any]) -> str:
    """A table per (workload, op), then a ratio matrix over everything."""
    lines: list[str] = []
    entries = results["summary"]
    keys = list(dict.fromkeys((e["workload"], e["op"]) for e in entries))
    for workload, op in keys:
        info = results["workloads"][workload]
        lines.append(
            f"== {workload} / {op}: {info['description']}; stored "
            f"{info['stored_bytes'] / 2**20:.1f} MiB ({info['compression_ratio']:.2f}x) =="
        )
        lines.append(
            f"  {'engine':<9} {'best s':>8} {'median s':>9} {'GB/s':>7} {'vs best peer':>13}"
        )
        group = [e for e in entries if (e["workload"], e["op"]) == (workload, op)]
        for e in group:
            if e["status"] != "ok":
                lines.append(f"  {e['engine']:<9} {e['status']}: {_short(e['error'])}")
                continue
            lines.append(
                f"  {e['engine']:<9} {e['best_s']:>8.3f} {e['median_s']:>9.3f} "
                f"{e['gb_per_s']:>7.2f} {_ratio(e['ratio_vs_best_peer']):>13}"
            )
        for e in group:
            if e["ratio_vs_peers"]:
                pairs = ", ".join(f"{p} {_ratio(r)}" for p, r in e["ratio_vs_peers"].items())
                lines.append(f"  {e['engine']} vs {pairs}")
        lines.append("")
    lines += format_matrix(entries, keys)
    return "\n".join(lines)


def format_matrix(entries: list[dict[str, Any]], keys: list[tuple[str, str]]) -> list[str]:
    engines = list(dict.fromkeys(e["engine"] for e in entries))
    lines = ["ratio vs best peer (engine best time / fastest peer best time; <1 is faster)"]
    lines.append(f"  {'workload / op':<26}" + "".join(f"{n:>10}" for n in engines))
    cells = {(e["workload"], e["op"], e["engine"]): e for e in entries}
    for workload, op in keys:
        row = f"  {workload + ' / ' + op:<26}"
        for name in engines:
            e = cells.get((workload, op, name))
            if e is None:
                cell = ""
            elif e["status"] != "ok":
                cell = e["status"]
            else:
                cell = _ratio(e["ratio_vs_best_peer"])
            row += f"{cell:>10}"
        lines.append(row)
    return lines


def write_json(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
