"""io.journal: ranges written into a file all or none, across a writer killed at any instant
(a real kill -9 of a writer process, over and over), and damaged or stale journals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cuzarr.io.journal import (
    JOURNAL_SUFFIX,
    JournalError,
    file_lock,
    recover,
    write_ranges,
)

SLOT = 4096
SLOTS = 64


def _slots(path: Path) -> np.ndarray:
    """Each slot's fill value; -1 for a slot that is not one value throughout (torn)."""
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8).reshape(SLOTS, SLOT // 4, 4)
    words = data.view("<u4")[..., 0]
    whole = (words == words[:, :1]).all(axis=1)
    return np.where(whole, words[:, 0].astype(np.int64), -1)


def _fill(value: int) -> bytes:
    return np.full(SLOT // 4, value, dtype="<u4").tobytes()


@pytest.mark.parametrize("durable", [False, True])
def test_ranges_are_written_and_the_journal_removed(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "shard"
    path.write_bytes(b"".join(_fill(0) for _ in range(SLOTS)))
    write_ranges(str(path), [(5 * SLOT, _fill(7)), (SLOTS * SLOT, _fill(9)),
                             (1 * SLOT, memoryview(_fill(3)))], durable=durable)
    assert path.stat().st_size == (SLOTS + 1) * SLOT
    assert not (tmp_path / ("shard" + JOURNAL_SUFFIX)).exists()
    data = path.read_bytes()
    assert data[5 * SLOT : 6 * SLOT] == _fill(7) and data[SLOT : 2 * SLOT] == _fill(3)
    assert data[SLOTS * SLOT :] == _fill(9) and data[:SLOT] == _fill(0)


def test_overlapping_ranges_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    path.write_bytes(bytes(100))
    with pytest.raises(ValueError, match="overlap"):
        write_ranges(str(path), [(10, b"x" * 20), (25, b"y")])
    assert path.read_bytes() == bytes(100)


def test_a_journal_left_by_a_killed_writer_is_replayed(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer stopped after its journal was in place and half its ranges were applied:
    the next recover finishes the write; a second recover finds nothing."""
    import cuzarr.io.journal as journal

    path = tmp_path / "shard"
    path.write_bytes(b"".join(_fill(0) for _ in range(SLOTS)))
    real = journal._pwrite_all

    def half(fd: int, ranges: Any, durable: bool) -> None:
        real(fd, ranges[: len(ranges) // 2], durable)
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(journal, "_pwrite_all", half)
    with pytest.raises(KeyboardInterrupt):
        write_ranges(str(path), [(k * SLOT, _fill(5)) for k in range(0, SLOTS, 4)])
    monkeypatch.setattr(journal, "_pwrite_all", real)
    assert (_slots(path) == 5).sum() == SLOTS // 8  # half applied
    assert recover(str(path)) is True
    assert (_slots(path) == 5).sum() == SLOTS // 4
    assert recover(str(path)) is False


def test_a_temporary_journal_is_dropped_and_a_damaged_one_kept(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    path.write_bytes(bytes(SLOT))
    (tmp_path / "shard.cuzarr-journal-tmp").write_bytes(b"CZJ1 half written")
    assert recover(str(path)) is False
    assert not (tmp_path / "shard.cuzarr-journal-tmp").exists()
    write_ranges(str(path), [(0, b"abc")])
    journal = tmp_path / ("shard" + JOURNAL_SUFFIX)
    # a whole journal damaged afterwards (a bit flipped on disk) is neither applied nor lost
    from cuzarr.io.journal import _encode

    info = path.stat()
    blob = bytearray(_encode([(0, b"xyz")], (info.st_dev, info.st_ino)))
    blob[-6] ^= 1
    journal.write_bytes(bytes(blob))
    with pytest.raises(JournalError, match="checksum does not match"):
        recover(str(path))
    assert journal.exists() and path.read_bytes()[:3] == b"abc"


def test_a_journal_of_a_deleted_file_is_dropped(tmp_path: Path) -> None:
    from cuzarr.io.journal import _encode

    path = tmp_path / "gone"
    (tmp_path / ("gone" + JOURNAL_SUFFIX)).write_bytes(_encode([(0, b"abc")], (1, 2)))
    assert recover(str(path)) is True
    assert not path.exists() and not (tmp_path / ("gone" + JOURNAL_SUFFIX)).exists()


def test_a_journal_is_never_replayed_onto_a_file_replaced_since(tmp_path: Path) -> None:
    """A killed in-place write's journal, then a whole new file renamed over the old one
    (zarr's LocalStore.set, or cuzarr's full rewrite): the new file is left alone."""
    from cuzarr.io.journal import _encode

    path = tmp_path / "shard"
    path.write_bytes(b"old!" * 4)
    info = path.stat()
    (tmp_path / ("shard" + JOURNAL_SUFFIX)).write_bytes(
        _encode([(0, b"JOURNALED")], (info.st_dev, info.st_ino)))
    (tmp_path / "new").write_bytes(b"new file")
    os.replace(tmp_path / "new", path)
    assert recover(str(path)) is True
    assert path.read_bytes() == b"new file"
    assert not (tmp_path / ("shard" + JOURNAL_SUFFIX)).exists()


def test_threads_writing_different_ranges_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    path.write_bytes(b"".join(_fill(0) for _ in range(SLOTS)))

    def writer(k: int) -> None:
        for round_ in range(20):
            with file_lock(str(path)):
                write_ranges(str(path), [(k * SLOT, _fill(100 * k + round_))])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _slots(path)[:8].tolist() == [100 * k + 19 for k in range(8)]


_WRITER = '''
import sys, numpy as np
from cuzarr.io.journal import write_ranges
path, seed, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
SLOT, SLOTS = 4096, 64
rng = np.random.default_rng(seed)
step = start
print("ready", flush=True)
while True:
    step += 1
    picks = rng.choice(SLOTS, size=int(rng.integers(1, 9)), replace=False)
    write_ranges(path, [(int(k) * SLOT, np.full(SLOT // 4, step, dtype="<u4").tobytes())
                        for k in picks])
'''


def _states(seed: int, start: int, before: np.ndarray, steps: int) -> list[np.ndarray]:
    """The slot values after each of the writer's first `steps` writes (index 0: before)."""
    rng = np.random.default_rng(seed)
    states, now = [before.copy()], before.copy()
    for step in range(start + 1, start + steps + 1):
        picks = rng.choice(SLOTS, size=int(rng.integers(1, 9)), replace=False)
        now[picks] = step
        states.append(now.copy())
    return states


def test_a_writer_killed_at_random_instants_leaves_every_write_whole(tmp_path: Path) -> None:
    """60 times: start a writer process looping over multi-range writes, kill -9 it after a
    random delay, recover, and find the file exactly as after one of its writes (all of
    that write's slots new, none torn, nothing of a later write)."""
    path = tmp_path / "shard"
    path.write_bytes(b"".join(_fill(0) for _ in range(SLOTS)))
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    rng = np.random.default_rng(1)
    start, replayed = 0, 0
    for kill in range(60):
        before = _slots(path)
        assert (before >= 0).all()
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(kill), str(start)],
                                env=env, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.03)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        replayed += recover(str(path))
        now = _slots(path)
        assert (now >= 0).all(), f"kill {kill}: torn slots {np.flatnonzero(now < 0)}"
        done = int(now.max()) - start if now.max() > start else 0
        states = _states(kill, start, before, done + 1)
        assert any((now == s).all() for s in states), f"kill {kill}: not a state after a write"
        start = max(start, int(now.max()))
    assert start > 60  # the writers did write
    assert replayed >= 3, replayed  # some kills landed inside a write (about 16 of 60 here)



def test_a_file_replaced_during_a_write_fails_the_write_loudly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer renames a new file over the target after the journal took its
    identity: none of the ranges land on the new file, and the write says so."""
    import cuzarr.io.journal as journal

    path = tmp_path / "shard"
    path.write_bytes(b"old!" * 4)
    real = journal._encode

    def encode_then_replace(ranges: Any, identity: tuple[int, int]) -> bytes:
        (tmp_path / "new").write_bytes(b"replaced")
        os.replace(tmp_path / "new", path)
        return real(ranges, identity)

    monkeypatch.setattr(journal, "_encode", encode_then_replace)
    with pytest.raises(JournalError, match="was replaced while its ranges were being written"):
        write_ranges(str(path), [(0, b"XY")])
    assert path.read_bytes() == b"replaced"
    assert not (tmp_path / ("shard" + JOURNAL_SUFFIX)).exists()


_PAUSED_WRITER = '''
import os, sys, time
from cuzarr.io import journal
real = journal._pwrite_all

def paused(fd, ranges, durable):
    print("in the window", flush=True)  # the journal is in place, no range written yet
    time.sleep(1.0)
    real(fd, ranges, durable)

journal._pwrite_all = paused
journal.write_ranges(sys.argv[1], [(0, b"NEW!"), (8, b"new!")])
print("done", flush=True)
'''


def test_another_process_never_replays_a_live_writers_journal(tmp_path: Path) -> None:
    """A process that finds a journal while its writer, in another process, is still at
    work waits for that writer (its flock on the file) instead of replaying the journal
    under it: a replay then would land older bytes over what the writer writes next."""
    path = tmp_path / "shard"
    path.write_bytes(b"old!" * 4)
    writer = subprocess.Popen([sys.executable, "-c", _PAUSED_WRITER, str(path)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "in the window"
    assert (tmp_path / ("shard" + JOURNAL_SUFFIX)).exists()
    started = time.perf_counter()
    assert recover(str(path)) is False  # it waited; the writer removed its journal itself
    assert time.perf_counter() - started > 0.5
    assert writer.stdout.readline().strip() == "done"
    assert writer.wait(timeout=30) == 0
    assert path.read_bytes() == b"NEW!old!new!old!"


def test_ranges_planned_from_another_file_are_not_written(tmp_path: Path) -> None:
    """A write planned from one version of a shard (its index read through one open file)
    writes nothing into a file renamed over it since: its ranges would point elsewhere."""
    path = tmp_path / "shard"
    path.write_bytes(b"old!" * 4)
    planned = os.stat(path)
    (tmp_path / "new").write_bytes(b"replaced by another writer")
    os.replace(tmp_path / "new", path)
    with pytest.raises(JournalError, match="replaced since its index was read"):
        write_ranges(str(path), [(0, b"XY")], identity=(planned.st_dev, planned.st_ino))
    assert path.read_bytes() == b"replaced by another writer"
    assert not (tmp_path / ("shard" + JOURNAL_SUFFIX)).exists()


def test_shard_locks_do_not_outlive_their_use(tmp_path: Path) -> None:
    import gc

    from cuzarr.io import locks

    names = [str(tmp_path / f"s{i}") for i in range(1000)]
    with locks.shared(names):
        assert all(name in locks._locks for name in names)
    with locks.exclusive(names[:10]):
        pass
    gc.collect()
    assert not any(name in locks._locks for name in names)
