"""Runner-side handle on one worker process, with timeouts and crash recovery."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from bench.engines import Engine

REPO_ROOT = Path(__file__).resolve().parent.parent
STDERR_TAIL = 4000
# A native crash prints "Fatal Python error: ..."; a Python one ends with "SomeError: ...".
TELLING = (re.compile(r"^Fatal Python error"), re.compile(r"^[\w.]+(Error|Exception)\b"))


def worker_env() -> dict[str, str]:
    """Put the repo root (for `bench`) and `src/` (an uninstalled cuzarr) on the path."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT)]
    if (REPO_ROOT / "src").is_dir():
        paths.insert(0, str(REPO_ROOT / "src"))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class WorkerClient:
    """Starts `python -m bench.worker` lazily and restarts it after a crash or timeout.

    An engine whose worker fails its handshake (import error, bad config) is marked
    unavailable for the rest of the run rather than restarted for every measurement.
    """

    def __init__(self, engine: Engine, log_dir: Path) -> None:
        self.engine = engine
        self.log_path = log_dir / f"worker-{engine.name}.log"
        self.info: dict[str, Any] | None = None
        self.unavailable: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log: IO[str] | None = None

    def _start(self, timeout: float) -> None:
        self._log = open(self.log_path, "a")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", "--engine", self.engine.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=REPO_ROOT,
            env=worker_env(),
        )
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc, self._lines), daemon=True).start()
        try:
            hello = self._receive(timeout)
        except TimeoutError:
            self._kill()
            self.unavailable = f"no handshake within {timeout:.0f} s"
            return
        if hello is None or not hello.get("ready"):
            reason = hello.get("error") if hello else self._death_note()
            self.unavailable = str(reason)
            self.stop()
        else:
            self.info = hello

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)
        lines.put(None)

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        """Next reply, or None when the worker died; TimeoutError when it stays silent."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        return None if line is None else json.loads(line)

    def _death_note(self) -> str:
        """Why the worker died: exit code or signal, and the most telling stderr line."""
        code = self._proc.wait(timeout=10) if self._proc else None
        how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exit {code}"
        tail = self.log_path.read_text(errors="replace")[-STDERR_TAIL:].splitlines()
        lines = [line.strip() for line in tail if line.strip()]
        for pattern in TELLING:
            matches = [line for line in lines if pattern.match(line)]
            if matches:
                lines = matches
                break
        last = (lines or ["no stderr"])[-1]
        return f"worker {how}: {last} (log: {self.log_path})"

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request; any failure comes back as an error reply, never raised."""
        if self.unavailable:
            return {"status": "unavailable", "error": self.unavailable}
        if self._proc is None or self._proc.poll() is not None:
            self._start(timeout)
            if self.unavailable:
                return {"status": "unavailable", "error": self.unavailable}
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
            reply = self._receive(timeout)
        except BrokenPipeError:
            reply = None
        except TimeoutError:
            self._kill()
            return {"status": "error", "error": f"timeout after {timeout:.0f} s"}
        if reply is None:
            note = self._death_note()
            self.stop()
            return {"status": "error", "error": note}
        return reply

    def _kill(self) -> None:
        """For a hung worker: no polite quit, it would not be read."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self.stop()

    def stop(self) -> None:
        """Ask politely, then kill; only this client's own process is touched."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    assert proc.stdin is not None
                    proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                    proc.stdin.close()
                    proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
            proc.wait()
            if proc.stdin is not None and not proc.stdin.closed:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None
