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

from bench.budget import CUT
from bench.engines import ENGINES

ERROR_WIDTH = 110
#: a cell whose slowest timed round took more than this many times its best is flagged:
#: its rounds disagree by more than this machine's usual noise (a few tens of percent)
NOISY_SPREAD = 1.5


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
        info = results["workloads"][workload]
        nbytes = info.get("op_nbytes", {}).get(op, info["nbytes"])
        entry["gb_per_s"] = nbytes / best / 1e9
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


def unavailable_engines(entries: list[dict[str, Any]]) -> dict[str, str]:
    """Engines that could not run here, each with why (said once, not in every table)."""
    found: dict[str, str] = {}
    for e in entries:
        if e["status"] == "unavailable":
            found.setdefault(e["engine"], _short(e["error"]))
    return found


def unavailable_lines(entries: list[dict[str, Any]]) -> list[str]:
    """"not run here" lines, engines with the same reason on one line."""
    by_reason: dict[str, list[str]] = {}
    for engine, why in unavailable_engines(entries).items():
        by_reason.setdefault(why, []).append(engine)
    return [f"not run here: {', '.join(names)} ({why})" for why, names in by_reason.items()]


def noisy_cells(entries: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(workload / op / engine, slowest round / best round) of cells past NOISY_SPREAD."""
    noisy = []
    for e in entries:
        times = e["times_s"]
        if e["status"] == "ok" and len(times) > 1 and min(times) > 0:
            spread = max(times) / min(times)
            if spread > NOISY_SPREAD:
                noisy.append((f"{e['workload']} / {e['op']} / {e['engine']}", spread))
    return noisy


def summary_lines(results: dict[str, Any], subject: str = "cuzarr") -> list[str]:
    """What a reader wants at the end: was every result right, how often `subject` was
    fastest, its median ratio, and which cells' rounds disagree too much to trust."""
    entries = results["summary"]
    checked = sum(e["rounds_ok"] for e in entries)
    failed = [e for e in entries if e["status"] == "FAILED"]
    errors = [e for e in entries if e["status"] not in ("ok", "FAILED", "unavailable", CUT)]
    rounds = results["meta"].get("rounds")
    lines = ["summary"]
    if failed:
        names = ", ".join(f"{e['workload']} / {e['op']} / {e['engine']}" for e in failed)
        lines.append(f"  WRONG DATA: {len(failed)} cell(s) returned data that differ from the "
                     f"reference: {names}")
    else:
        lines.append(f"  every result checked bit for bit against the reference data: "
                     f"{checked} timed rounds, all equal")
    if errors:
        lines.append(f"  {len(errors)} cell(s) failed to run (see the tables)")
    own = [e for e in entries if e["engine"] == subject and e["ratio_vs_best_peer"] is not None]
    if own:
        ratios = sorted(e["ratio_vs_best_peer"] for e in own)
        fastest = sum(r < 1.0 for r in ratios)
        lines.append(f"  {subject} fastest in {fastest} of {len(own)} cells; its time / the "
                     f"fastest peer's: median {statistics.median(ratios):.2f}x, best "
                     f"{ratios[0]:.2f}x, worst {ratios[-1]:.2f}x")
    lines += [f"  {line}" for line in unavailable_lines(entries)]
    noisy = noisy_cells(entries)
    if noisy:
        lines.append(f"  WARNING: in {len(noisy)} cell(s) the slowest of {rounds} rounds took "
                     f"over {NOISY_SPREAD:.1f}x the best (the machine was busy; rerun before "
                     "trusting them):")
        lines += [f"    {name}: {spread:.2f}x" for name, spread in noisy]
    return lines


def format_tables(results: dict[str, Any]) -> str:
    """A table per (workload, op), then a ratio matrix over everything, then a summary."""
    lines: list[str] = []
    entries = results["summary"]
    lines += unavailable_lines(entries)
    if lines:
        lines.append("")
    keys = list(dict.fromkeys((e["workload"], e["op"]) for e in entries))
    for workload, op in keys:
        info = results["workloads"][workload]
        lines.append(
            f"== {workload} / {op}: {info['description']}; stored "
            f"{info['stored_bytes'] / 2**20:.1f} MiB ({info['compression_ratio']:.2f}x) =="
        )
        lines.append(f"  {op_description(info, op)}")
        lines.append(
            f"  {'engine':<12} {'best s':>8} {'median s':>9} {'GB/s':>7} {'vs best peer':>13}"
        )
        group = [e for e in entries if (e["workload"], e["op"]) == (workload, op)]
        for e in group:
            if e["status"] == "unavailable":
                continue
            if e["status"] != "ok":
                lines.append(f"  {e['engine']:<12} {e['status']}: {_short(e['error'])}")
                continue
            lines.append(
                f"  {e['engine']:<12} {e['best_s']:>8.3f} {e['median_s']:>9.3f} "
                f"{e['gb_per_s']:>7.3g} {_ratio(e['ratio_vs_best_peer']):>13}"
            )
        for e in group:
            if e["ratio_vs_peers"]:
                pairs = ", ".join(f"{p} {_ratio(r)}" for p, r in e["ratio_vs_peers"].items())
                lines.append(f"  {e['engine']} vs {pairs}")
        lines.append("")
    lines += format_matrix(entries, keys)
    lines += ["", *summary_lines(results)]
    return "\n".join(lines)


def format_matrix(entries: list[dict[str, Any]], keys: list[tuple[str, str]]) -> list[str]:
    engines = list(dict.fromkeys(e["engine"] for e in entries))
    widths = [max(len(n), 9) + 2 for n in engines]
    label = max([len(f"{w} / {o}") for w, o in keys] + [13]) + 2
    lines = ["ratio vs best peer (engine best time / fastest peer best time; <1 is faster)"]
    lines.append(
        f"  {'workload / op':<{label}}"
        + "".join(f"{n:>{w}}" for n, w in zip(engines, widths, strict=True))
    )
    cells = {(e["workload"], e["op"], e["engine"]): e for e in entries}
    for workload, op in keys:
        row = f"  {workload + ' / ' + op:<{label}}"
        for name, width in zip(engines, widths, strict=True):
            e = cells.get((workload, op, name))
            if e is None:
                cell = ""
            elif e["status"] == "unavailable":
                cell = "n/a"
            elif e["status"] != "ok":
                cell = e["status"]
            else:
                cell = _ratio(e["ratio_vs_best_peer"])
            row += f"{cell:>{width}}"
        lines.append(row)
    return lines


def write_json(results: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def _machine_line(results: dict[str, Any]) -> str:
    machine = results["meta"]["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    return (
        f"{machine['date']}; {machine['processor']}, {machine['cpu_affinity']} usable cores; "
        f"{machine.get('gpu') or 'no GPU'}; Python {machine['python']}; {versions}"
    )


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return ""
    if entry["status"] == "unavailable":
        return "n/a"
    if entry["status"] != "ok":
        return f"**{entry['status']}**"
    ratio = entry["ratio_vs_best_peer"]
    suffix = "" if ratio is None else f" ({ratio:.2f}x)"
    return f"{entry['gb_per_s']:.3g}{suffix}"


def op_description(info: dict[str, Any], op: str) -> str:
    """What one run of `op` does on a workload, for table headers."""
    if not op.startswith("patches"):
        return f"{op} of the whole array"
    spec = info["spec"]
    patch = "x".join(map(str, spec["patch"]))
    if op == "patches-batched":
        return (f"the same {spec['patch_count']} random {patch} patches asked for at once "
                "(cuzarr: one read_patches job; zarr-python pipelines: concurrent reads on "
                "zarr's event loop; tensorstore: every read issued, then awaited)")
    return f"{spec['patch_count']} random {patch} patches, one selection each"


def format_markdown(results: dict[str, Any]) -> str:
    """results.md: one table per op, workloads x engines, GB/s and ratio vs best peer."""
    entries = results["summary"]
    meta = results["meta"]
    options = meta["options"]
    engines = list(dict.fromkeys(e["engine"] for e in entries))
    cells = {(e["workload"], e["op"], e["engine"]): e for e in entries}
    lines = [
        "# cuzarr benchmark results",
        "",
        f"Machine and date: {_machine_line(results)}.",
        "",
        f"Mode: {'quick' if options['quick'] else 'full'}, {meta.get('rounds')} rounds per "
        "measurement after one warm-up; every engine in its own process, rounds interleaved, "
        "every result checked bit-for-bit against the reference data. "
        + ("Fresh processes: each timed round ran in a new worker process, after one untimed "
           "read of its own (the way a user's script runs)." if options.get("fresh") else
           "Long-lived processes: one worker per engine served every round."),
        "",
        "Cells: GB/s of the best round (uncompressed bytes), and in brackets the engine's best "
        "time / the fastest peer's best time (below 1.00x is faster; peers are every engine "
        "except cuzarr's). n/a: the engine cannot run here (see notes).",
    ]
    for op in dict.fromkeys(e["op"] for e in entries):
        lines += ["", f"## {op}", ""]
        lines.append("| workload | " + " | ".join(engines) + " |")
        lines.append("|---|" + "---|" * len(engines))
        for workload in dict.fromkeys(e["workload"] for e in entries if e["op"] == op):
            info = results["workloads"][workload]
            head = (
                f"**{workload}**: {info['description']} ({info['compression_ratio']:.2f}x); "
                f"{op_description(info, op)}"
            )
            row = [_cell(cells.get((workload, op, name))) for name in engines]
            lines.append(f"| {head} | " + " | ".join(row) + " |")
    lines += ["", "## Summary", ""]
    lines += [f"- {line.strip()}" for line in summary_lines(results)[1:]]
    notes = _notes(entries)
    if meta.get("not_run"):
        notes.append(f"- not run, past the time budget: {', '.join(meta['not_run'])}")
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def _notes(entries: list[dict[str, Any]]) -> list[str]:
    """One line per distinct engine problem: unavailable engines once, errors each."""
    notes: dict[str, None] = {}
    cut = [f"{e['workload']} / {e['op']} / {e['engine']}" for e in entries
           if e["status"] == CUT]
    for e in entries:
        if e["status"] == CUT:
            continue
        if e["status"] == "unavailable":
            notes[f"- {e['engine']}: unavailable: {_short(e['error'])}"] = None
        elif e["status"] != "ok":
            notes[
                f"- {e['workload']} / {e['op']} / {e['engine']}: {e['status']}: "
                f"{_short(e['error'])}"
            ] = None
    if cut:
        notes["- cut (past the time budget): " + ", ".join(cut)] = None
    return list(notes)
