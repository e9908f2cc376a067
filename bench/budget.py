"""Time budgets: a deadline work checks before it starts, and a subprocess cut at its own.

A check that must fit a fixed window (a lent GPU machine's call) cannot let one slow step
eat the others' time: each step gets a budget, a step that overruns it is stopped and
reported as cut, and what it had done by then is kept.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CUT = "cut"


@dataclass(frozen=True)
class Deadline:
    """A point on time.monotonic() past which no new work starts (None: never)."""

    at: float | None = None

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        return cls(None if seconds is None else time.monotonic() + seconds)

    def left(self) -> float:
        """Seconds until the deadline (inf without one, negative once passed)."""
        return math.inf if self.at is None else self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0

    def timeout(self, limit: float, floor: float = 1.0) -> float:
        """A wait limited by both `limit` and the deadline, at least `floor` seconds."""
        return max(floor, min(limit, self.left()))

    def earlier(self, seconds: float) -> Deadline:
        """This deadline moved `seconds` sooner (still none without one)."""
        return Deadline(None if self.at is None else self.at - seconds)


def run_budgeted(cmd: Sequence[str], budget_s: float, log: Path, *, grace_s: float = 10.0,
                 cwd: Path | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd`, its output appended to `log`, for at most `budget_s` seconds.

    At `budget_s - grace_s` it gets SIGINT (pytest then writes its junit xml and a
    Python child its partial results); whatever is still running at `budget_s` is
    killed with its process group (the child leads a group of its own, so that group
    holds only what it started; it stays in our session, so whoever ends us can end it).
    If we are interrupted ourselves, the group is killed before the exception goes on.
    Returns the exit code, the seconds it ran and whether it was cut.
    """
    start = time.monotonic()
    grace_s = min(grace_s, budget_s / 2)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as sink:
        sink.write(f"\n===== {' '.join(cmd)} (budget {budget_s:.0f} s)\n")
        sink.flush()
        proc = subprocess.Popen(list(cmd), stdout=sink, stderr=subprocess.STDOUT, cwd=cwd,
                                env=env, process_group=0)
        cut = False
        try:
            proc.wait(timeout=max(0.0, budget_s - grace_s))
        except subprocess.TimeoutExpired:
            cut = True
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, budget_s - (time.monotonic() - start)))
            _kill_group(proc)  # it, if still running, and what it left (bench workers)
        except BaseException:
            _kill_group(proc)
            raise
        return {"returncode": proc.returncode, "elapsed_s": round(time.monotonic() - start, 1),
                "cut": cut}


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill the process group `proc` leads (ours: started with process_group=0)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
