"""results.png: per op, throughput per workload and engine, and below it each engine's
time over the fastest peer's (where differences under 1.5x are visible)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import unavailable_engines

#: the engine the bench is about: drawn in its own colour, with an edge, above the rest
SUBJECT = "cuzarr"
SUBJECT_COLOR = "#d62728"
PEER_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22",
               "#e377c2", "#ff7f0e")


def _colors(engines: list[str]) -> dict[str, str]:
    peers = iter(PEER_COLORS * 2)
    return {e: SUBJECT_COLOR if e == SUBJECT else next(peers) for e in engines}


def plot_results(results: dict[str, Any], path: Path) -> Path | None:
    """Grouped horizontal bars: GB/s on a log axis (engines differ by orders of magnitude
    on small chunks), and the ratio panel on a log axis centred on 1.00x. Engines that
    could not run are named, with why, under the plot; a run with no result at all
    (everything cut by its time budget, say) gets no plot."""
    entries = results["summary"]
    engines = list(dict.fromkeys(e["engine"] for e in entries if e["status"] == "ok"))
    if not engines:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ops = list(dict.fromkeys(e["op"] for e in entries))
    cells = {(e["workload"], e["op"], e["engine"]): e for e in entries}
    colors = _colors(engines)
    height = 0.8 / max(len(engines), 1)
    workloads = list(dict.fromkeys(e["workload"] for e in entries))
    missing = unavailable_engines(entries)
    row_height = 1.2 + 0.2 * len(workloads) * max(len(engines), 2)
    fig, axes = plt.subplots(
        2, len(ops), figsize=(5.5 * len(ops), 2 * row_height + 1.2 + 0.25 * len(missing)),
        squeeze=False, sharey=True,
    )
    y = np.arange(len(workloads))
    for column, op in enumerate(ops):
        speed, ratio = axes[0][column], axes[1][column]
        seen: list[float] = []
        for k, engine in enumerate(engines):
            gbps, ratios = [], []
            for workload in workloads:
                e = cells.get((workload, op, engine))
                ok = e is not None and e["status"] == "ok"
                gbps.append(e["gb_per_s"] if ok else np.nan)
                r = e.get("ratio_vs_best_peer") if ok else None
                ratios.append(np.nan if r is None else r)
                if r is not None:
                    seen.append(r)
            offset = (k - (len(engines) - 1) / 2) * height
            style: dict[str, Any] = {"height": height, "color": colors[engine], "label": engine}
            if engine == SUBJECT:
                style |= {"edgecolor": "black", "linewidth": 0.8, "zorder": 3}
            else:
                style |= {"alpha": 0.75}
            speed.barh(y + offset, gbps, **style)
            ratio.barh(y + offset, np.asarray(ratios) - 1.0, left=1.0, **style)
        speed.set_title(op)
        speed.set_xscale("log")
        speed.set_xlabel("GB/s (uncompressed bytes; higher is better)")
        ratio.set_xscale("log", base=2)
        ratio.set_xlim(min([0.5, *seen]) / 1.15, max([2.0, *seen]) * 1.15)
        ratio.axvline(1.0, color="black", linewidth=0.8)
        speed.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ratio.set_xlabel("best time / fastest peer's best time (below 1 is faster)")
        for ax in (speed, ratio):
            ax.grid(axis="x", which="both", alpha=0.3)
            ax.set_yticks(y, workloads)
        _ratio_ticks(ratio)
    axes[0][0].invert_yaxis()  # the axes share y: the first workload on top everywhere
    handles, labels = axes[0][0].get_legend_handles_labels()
    meta = results["meta"]
    machine = meta["machine"]
    mode = "quick mode (32 MiB arrays)" if meta["options"].get("quick") else "full size"
    if meta["options"].get("fresh"):
        mode += ", a fresh process per round"
    title = (f"cuzarr bench, {mode}, best of {meta.get('rounds')} rounds after a warm-up; "
             f"{machine['date'][:10]}, {machine['processor']}, {machine['cpu_affinity']} "
             f"cores, {machine.get('gpu') or 'no GPU'}")
    fig.suptitle(textwrap.fill(title, 60 * len(ops)), fontsize="medium")
    footer = [f"not run here: {name}: {why}" for name, why in missing.items()]
    bottom = (0.04 + 0.02 * len(footer)) if footer else 0.04
    fig.legend(handles, labels, loc="lower center", ncols=min(len(engines), 6), frameon=False,
               bbox_to_anchor=(0.5, bottom - 0.035))
    for i, line in enumerate(footer):
        fig.text(0.01, 0.005 + 0.02 * (len(footer) - 1 - i),
                 textwrap.shorten(line, 60 * len(ops) + 40), fontsize="small", color="dimgray")
    fig.tight_layout(rect=(0, bottom, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ratio_ticks(ax: Any) -> None:
    """Ticks at readable ratios, so that 0.8x and 1.25x can be told apart from 1x."""
    lo, hi = ax.get_xlim()
    fine = (0.67, 0.8, 1.25, 1.5)
    ticks = [t for t in (1 / 16, 1 / 8, 1 / 4, 0.5, *fine, 1, 2, 4, 8, 16, 32, 64)
             if lo <= t <= hi]
    if hi / lo > 40:  # a wide range: the fine ticks would overlap
        ticks = [t for t in ticks if t not in fine]
    elif hi / lo > 6:
        ticks = [t for t in ticks if t not in (0.67, 1.5)]
    ticks.sort()
    ax.set_xticks(ticks, [f"{t:.3g}x" if t >= 0.5 else f"1/{round(1 / t)}x" for t in ticks])
    ax.minorticks_off()
