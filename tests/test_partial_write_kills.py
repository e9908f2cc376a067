"""A writer of partial shard writes killed with SIGKILL at random instants (60 times with
durable_writes, 30 without): after
cuzarr's next open the shard is wholly as before the write in flight or wholly as after
it, for cuzarr and for zarr's own pipeline, and no journal is left behind.

The writers are forked from one process that imported zarr and cuzarr once (a fresh
interpreter per kill would spend the test's time importing); each runs the real write path
(cuzarr's pipeline, a LocalStore, zstd inner chunks whose sizes change from write to write,
so slots are reused, chunks appended and the shard compacted).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import partial_write_steps as steps
from cuzarr.io.journal import JOURNAL_SUFFIX
from parity import ORACLE_PIPELINE, read_with

KILLS = 60

_ZYGOTE = r'''
import os, signal, sys
import numpy as np
import zarr
import cuzarr
import partial_write_steps as steps

zarr.config.set({"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"})
cuzarr.config.set(durable_writes=sys.argv[2] == "durable")
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed writers are reaped at once
path = sys.argv[1]
out = sys.stdout.fileno()
for line in sys.stdin:
    first = int(line)
    pid = os.fork()
    if pid == 0:
        arr = zarr.open_array(path, mode="r+")
        k = first
        while True:
            box, values = steps.step(k)
            arr[box] = values
            os.write(out, f"done {k}\n".encode())
            k += 1
    os.write(out, f"pid {pid}\n".encode())
'''


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["durable", "plain"])
def test_killed_partial_writes_leave_every_shard_old_or_new(tmp_path: Path, test_pipeline: str,
                                                            mode: str) -> None:
    path = str(tmp_path / "a.zarr")
    steps.create(path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    zygote = subprocess.Popen([sys.executable, "-c", _ZYGOTE, path, mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    assert zygote.stdin is not None and zygote.stdout is not None
    out = zygote.stdout.fileno()
    pending = b""

    def read_lines(wait: float) -> list[str]:
        """Lines the zygote and its writers wrote, waiting up to `wait` s for more."""
        nonlocal pending
        while select.select([out], [], [], wait)[0]:
            data = os.read(out, 1 << 16)
            assert data, "the writer process ended"
            pending += data
            wait = 0.02
        *lines, pending = pending.split(b"\n")
        return [x.decode() for x in lines]

    rng = np.random.default_rng(7)
    state = np.zeros(steps.SHAPE, dtype="uint32")
    done_through = -1  # the array is the state after this step
    journals = in_flight = 0
    shard = Path(path) / "c" / "0" / "0"
    try:
        for _ in range(KILLS if mode == "durable" else KILLS // 2):
            zygote.stdin.write(f"{done_through + 1}\n".encode())
            zygote.stdin.flush()
            lines: list[str] = []
            while not any(x.startswith("pid ") for x in lines):
                lines += read_lines(5.0)
            pid = next(int(x.split()[1]) for x in lines if x.startswith("pid "))
            time.sleep(float(rng.uniform(0.03, 0.25)))
            os.kill(pid, signal.SIGKILL)
            while not _gone(pid):
                time.sleep(0.002)
            # what the writer said it finished (it may have finished one more, unsaid)
            lines += read_lines(0.05)
            said = [int(x.split()[1]) for x in lines if x.startswith("done ")]
            last = max(said, default=done_through)
            before = state
            for k in range(done_through + 1, last + 1):
                before = steps.state_after(before, k)
            after = steps.state_after(before, last + 1)
            journals += Path(str(shard) + JOURNAL_SUFFIX).exists()

            got = read_with(test_pipeline, zarr.storage.LocalStore(path))  # replays first
            assert not Path(str(shard) + JOURNAL_SUFFIX).exists()
            if np.array_equal(got, after):
                in_flight += 1
                state, done_through = after, last + 1
            else:
                assert np.array_equal(got, before), (
                    f"after a kill following write {last}, the array is neither the state "
                    "before the write in flight nor after it")
                state, done_through = before, last
            by_zarr = read_with(ORACLE_PIPELINE, zarr.storage.LocalStore(path))
            assert np.array_equal(by_zarr, state), "zarr reads other data than cuzarr"
    finally:
        zygote.kill()
        zygote.wait()
    assert done_through > KILLS // 2  # the writers wrote, between kills
    print(f"{mode}: {done_through + 1} writes, {journals} journals replayed, "
          f"{in_flight} writes found done that were not yet reported")
    if mode == "durable":
        # a test whose kills never land inside a write's ranges would prove nothing: with
        # the fsyncs the journal's window is a large part of each write (about 15% of the
        # kills land in it here); without them it is a few percent, and the kills inside
        # a write's ranges are made deterministic by test_partial_writes' crash tests
        assert journals >= 3, f"only {journals} of {KILLS} kills left a journal to replay"
