"""results.png: throughput per workload per engine, one panel per op."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_results(results: dict[str, Any], path: Path) -> Path | None:
    """Grouped horizontal bars of GB/s (log scale: engines differ by orders of magnitude
    on small chunks). Engines that failed or could not run get no bar; a run with no
    result at all (everything cut by its time budget, say) gets no plot."""
    entries = results["summary"]
    engines = list(dict.fromkeys(e["engine"] for e in entries if e["status"] == "ok"))
    if not engines:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = list(dict.fromkeys(e["op"] for e in entries))
    cells = {(e["workload"], e["op"], e["engine"]): e for e in entries}
    colors = plt.get_cmap("tab10")
    height = 0.8 / max(len(engines), 1)
    n_workloads = len({e["workload"] for e in entries})
    fig, axes = plt.subplots(
        1, len(ops), figsize=(5.5 * len(ops), 1.8 + 0.2 * n_workloads * max(len(engines), 2)),
        squeeze=False, sharey=True,
    )
    workloads = list(dict.fromkeys(e["workload"] for e in entries))
    y = np.arange(len(workloads))
    for ax, op in zip(axes[0], ops, strict=True):
        for k, engine in enumerate(engines):
            values = []
            for workload in workloads:
                e = cells.get((workload, op, engine))
                ok = e is not None and e["status"] == "ok"
                values.append(e["gb_per_s"] if ok else np.nan)
            offset = (k - (len(engines) - 1) / 2) * height
            ax.barh(y + offset, values, height=height, color=colors(k % 10), label=engine)
        ax.set_title(op)
        ax.set_xscale("log")
        ax.set_xlabel("GB/s (uncompressed bytes; higher is better)")
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.set_yticks(y, workloads)
        ax.invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=min(len(engines), 6), frameon=False)
    machine = results["meta"]["machine"]
    fig.suptitle(
        f"cuzarr bench, {machine['date'][:10]}, {machine['processor']}, "
        f"{machine['cpu_affinity']} cores, {machine.get('gpu') or 'no GPU'}",
        fontsize="medium",
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
