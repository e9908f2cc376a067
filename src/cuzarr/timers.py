"""Per-phase timers: where a read's or a write's time goes (the `phase_timers` setting).

With ``cuzarr.config.set(phase_timers=True)`` (or ``CUZARR_PHASE_TIMERS=1``) every phase
of the pipeline's work (io, decode, scatter; gather, fill check, encode, assemble, store
writes) adds its wall time and the CPU time of the thread that ran it (user and system,
page faults included) to a process-wide table that `phase_times` returns. A phase running
inside another counts once, in the inner one. The calls themselves (`read`, `write`) add
only their wall time, since their thread is zarr's event loop. Off, a timed function costs
one flag test per call (tiles and batches, never per chunk).

Threads run phases concurrently, so phase times add up to more than a call's wall time:
compare a phase's share of the summed CPU, or its CPU with its wall (the difference is
time the thread waited: for the GIL, for IO, for a lock).
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

__all__ = ["PhaseTime", "phase_times", "set_enabled", "timed"]

F = TypeVar("F", bound=Callable[..., Any])

_enabled = False
_lock = threading.Lock()
_totals: dict[str, list[float]] = {}
_local = threading.local()


class PhaseTime(NamedTuple):
    """One phase's totals since the last reset."""

    calls: int
    wall_s: float  # summed over the threads that ran it
    cpu_s: float  # the same threads' CPU time (nan for the whole-call phases)


def set_enabled(on: bool) -> None:
    """Switch the timers (config.options() calls this with the setting's value)."""
    global _enabled
    _enabled = bool(on)


def phase_times(reset: bool = False) -> dict[str, PhaseTime]:
    """Totals per phase since the last reset (largest CPU first); `reset`: start again."""
    with _lock:
        table = {name: PhaseTime(int(c), w, u) for name, (c, w, u) in _totals.items()}
        if reset:
            _totals.clear()
    return dict(sorted(table.items(),
                       key=lambda kv: -(0.0 if math.isnan(kv[1].cpu_s) else kv[1].cpu_s)))


def _add(name: str, wall: float, cpu: float) -> None:
    with _lock:
        row = _totals.setdefault(name, [0, 0.0, 0.0])
        row[0] += 1
        row[1] += wall
        row[2] += cpu


def timed(name: str) -> Callable[[F], F]:
    """Decorate a function as phase `name` (an async one: its wall time only)."""

    def wrap(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def call(*args: Any, **kwargs: Any) -> Any:
                if not _enabled:
                    return await fn(*args, **kwargs)
                start = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    _add(name, time.perf_counter() - start, float("nan"))

            return call  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            if not _enabled:
                return fn(*args, **kwargs)
            stack = getattr(_local, "stack", None)
            if stack is None:
                stack = _local.stack = []
            frame = [0.0, 0.0]  # time spent in phases nested in this one
            stack.append(frame)
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
                stack.pop()
                if stack:
                    stack[-1][0] += wall
                    stack[-1][1] += cpu
                _add(name, wall - frame[0], cpu - frame[1])

        return run  # type: ignore[return-value]

    return wrap
