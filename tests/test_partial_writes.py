"""Partial shard writes in place (write_in_place): the same contents as a full rewrite for
every reader (cuzarr, zarr, tensorstore, zarrs) after every step of drawn write sequences;
bytes written in proportion to the change; the shard file patched, not replaced; a writer
that crashes inside its ranges; threads writing disjoint inner chunks of one shard while
another reads it; the settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
from zarr.storage import LocalStore, MemoryStore

import cuzarr
from cuzarr.errors import ConfigError
from cuzarr.io.journal import JOURNAL_SUFFIX
from parity import ORACLE_PIPELINE, create_with, open_with, read_with, using_pipeline

SHAPE = (48, 40)
SHARD = (24, 40)
INNER = (6, 8)  # 20 inner chunks per shard


def _create(path: str, store: Any, codec: str, index_location: str,
            fill_value: int = 0) -> zarr.Array:
    inner = [BytesCodec()] + ([ZstdCodec(level=1)] if codec == "zstd" else [])
    return create_with(path, store, shape=SHAPE, chunks=SHARD, dtype="uint16", compressors=None,
                       fill_value=fill_value,
                       serializer=ShardingCodec(chunk_shape=INNER, codecs=inner,
                                                index_codecs=[BytesCodec(), Crc32cCodec()],
                                                index_location=index_location))


def _other_readers(root: Path, expected: np.ndarray) -> None:
    """tensorstore and zarrs read the store as written."""
    ts = pytest.importorskip("tensorstore")
    got = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(root)}},
                  open=True).result().read().result()
    np.testing.assert_array_equal(got, expected, err_msg="tensorstore")
    import zarrs  # noqa: F401  (registers its pipeline)

    with using_pipeline("zarrs.ZarrsCodecPipeline"):
        got = zarr.open_array(LocalStore(root), mode="r")[...]
    np.testing.assert_array_equal(got, expected, err_msg="zarrs")


_box = st.tuples(st.integers(0, SHAPE[0] - 1), st.integers(1, 14),
                 st.integers(0, SHAPE[1] - 1), st.integers(1, 18))
_write = st.tuples(_box, st.sampled_from(["random", "few", "fill", "scalar"]),
                   st.integers(0, 2**16 - 1))


def _value(kind: str, seed: int, shape: tuple[int, ...]) -> Any:
    rng = np.random.default_rng(seed)
    if kind == "fill":
        return np.zeros(shape, dtype="uint16")
    if kind == "scalar":
        return np.uint16(seed)
    spread = 4 if kind == "few" else 2**16
    return rng.integers(0, spread, shape).astype("uint16")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(_write, min_size=1, max_size=6),
       codec=st.sampled_from(["raw", "zstd"]), index_location=st.sampled_from(["end", "start"]))
def test_partial_writes_read_back_as_full_rewrites_do(
    tmp_path_factory: pytest.TempPathFactory, test_pipeline: str,
    writes: list[Any], codec: str, index_location: str,
) -> None:
    root = tmp_path_factory.mktemp("inplace")
    ours = _create(test_pipeline, LocalStore(root), codec, index_location)
    theirs = _create(ORACLE_PIPELINE, MemoryStore(), codec, index_location)
    expected = np.zeros(SHAPE, dtype="uint16")
    for (r0, rows, c0, cols), kind, seed in writes:
        box = (slice(r0, min(SHAPE[0], r0 + rows)), slice(c0, min(SHAPE[1], c0 + cols)))
        shape = tuple(len(range(*b.indices(n))) for b, n in zip(box, SHAPE, strict=True))
        value = _value(kind, seed, shape)
        with using_pipeline(test_pipeline):
            ours[box] = value
        with using_pipeline(ORACLE_PIPELINE):
            theirs[box] = value
        expected[box] = value
        np.testing.assert_array_equal(read_with(test_pipeline, LocalStore(root)), expected)
        np.testing.assert_array_equal(read_with(ORACLE_PIPELINE, LocalStore(root)), expected)
        assert sorted(p.name for p in root.rglob("*") if p.is_file() and p.parent.name
                      != root.name) == sorted(
            k.rsplit("/", 1)[-1] for k in theirs.store._store_dict if k.startswith("c/"))
        _other_readers(root, expected)
    assert not list(root.rglob("*" + JOURNAL_SUFFIX))


def _io_bytes_written() -> int:
    """Bytes this process has handed to write calls (/proc/self/io wchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


@pytest.mark.parametrize("codec", ["raw", "zstd"])
def test_a_partial_write_writes_in_proportion_to_the_change(tmp_path: Path, test_pipeline: str,
                                                            codec: str) -> None:
    """One inner chunk (16 KiB decoded) of a 4 MiB shard of 256 inner chunks: cuzarr writes
    the chunk and the 4 KiB index, twice (the journal, then the shard); zarr writes the
    shard whole."""
    inner = [BytesCodec()] + ([ZstdCodec(level=1)] if codec == "zstd" else [])
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, (1024, 1024)).astype("float32")
    patch = rng.integers(0, 1000, (64, 64)).astype("float32")
    written = {}
    for path in (test_pipeline, ORACLE_PIPELINE):
        root = tmp_path / path
        arr = create_with(path, LocalStore(root), shape=data.shape, chunks=data.shape,
                          compressors=None,
                          dtype="float32",
                          serializer=ShardingCodec(chunk_shape=(64, 64), codecs=inner))
        with using_pipeline(path):
            arr[...] = data
            shard = root / "c" / "0" / "0"
            inode, size = shard.stat().st_ino, shard.stat().st_size
            before = _io_bytes_written()
            arr[128:192, 64:128] = patch
            written[path] = _io_bytes_written() - before
        if path == test_pipeline:
            assert shard.stat().st_ino == inode, "the shard file was replaced, not patched"
            index = 256 * 16 + 4
            assert written[path] <= 2 * (64 * 64 * 4 + index) + 4096, written
        else:
            assert written[path] >= size, written  # the counter sees a whole shard
        expected = data.copy()
        expected[128:192, 64:128] = patch
        np.testing.assert_array_equal(read_with(ORACLE_PIPELINE, LocalStore(root)), expected)
    assert written[test_pipeline] * 20 < written[ORACLE_PIPELINE]


def test_rewrite_mode_replaces_the_shard_file(tmp_path: Path, test_pipeline: str) -> None:
    arr = _create(test_pipeline, LocalStore(tmp_path), "raw", "end")
    with using_pipeline(test_pipeline):
        arr[...] = 7
        shard = tmp_path / "c" / "0" / "0"
        inode = shard.stat().st_ino
        arr[0:6, 0:8] = 9
        assert shard.stat().st_ino == inode
        with cuzarr.config.set(shard_writes="rewrite"):
            arr[0:6, 8:16] = 9
        assert shard.stat().st_ino != inode
    with pytest.raises(ConfigError, match="shard_writes"):
        cuzarr.config.set(shard_writes="sometimes")
    with pytest.raises(ConfigError, match="shard_dead_fraction"):
        cuzarr.config.set(shard_dead_fraction=0)


def test_a_memory_store_is_patched_too(test_pipeline: str) -> None:
    store = MemoryStore()
    arr = _create(test_pipeline, store, "zstd", "end")
    expected = np.arange(np.prod(SHAPE), dtype="uint16").reshape(SHAPE)
    with using_pipeline(test_pipeline):
        arr[...] = expected
        arr[3:9, 5:30] = 1
    expected[3:9, 5:30] = 1
    np.testing.assert_array_equal(read_with(ORACLE_PIPELINE, store), expected)


_CRASH = r'''
import os, sys
import numpy as np
import zarr
import cuzarr
from cuzarr.io import journal

zarr.config.set({"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"})
where = sys.argv[2]
real_apply = journal._pwrite_all

def crash_in_apply(fd, ranges, durable):
    if where == "apply":  # the first range written, then the process dies
        real_apply(fd, ranges[:1], durable)
        os._exit(9)
    if where == "before-apply":
        os._exit(9)
    return real_apply(fd, ranges, durable)

journal._pwrite_all = crash_in_apply
if where == "before-rename":
    real_replace = os.replace
    def crash_replace(a, b):
        if str(b).endswith(journal.JOURNAL_SUFFIX):
            os._exit(9)
        return real_replace(a, b)
    os.replace = crash_replace
arr = zarr.open_array(sys.argv[1], mode="r+")
arr[0:12, 0:40] = np.full((12, 40), 5, dtype="uint16")
arr[30:36, 0:40] = np.arange(240, dtype="uint16").reshape(6, 40)
'''


@pytest.mark.parametrize("where", ["before-rename", "before-apply", "apply"])
def test_a_writer_that_dies_inside_its_write_leaves_old_or_new(tmp_path: Path,
                                                                test_pipeline: str,
                                                                where: str) -> None:
    root = tmp_path / "a.zarr"
    arr = _create(test_pipeline, LocalStore(root), "zstd", "end")
    old = np.arange(np.prod(SHAPE), dtype="uint16").reshape(SHAPE)
    with using_pipeline(test_pipeline):
        arr[...] = old
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(root), where],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    journal = root / "c" / "0" / "0"
    pending = Path(str(journal) + JOURNAL_SUFFIX).exists()
    assert pending == (where != "before-rename")
    got = read_with(test_pipeline, LocalStore(root))
    new = old.copy()
    new[0:12, 0:40] = 5
    np.testing.assert_array_equal(got, old if where == "before-rename" else new)
    assert not Path(str(journal) + JOURNAL_SUFFIX).exists()
    np.testing.assert_array_equal(read_with(ORACLE_PIPELINE, LocalStore(root)), got)


def _ones_with_a_pending_journal(root: Path, test_pipeline: str) -> tuple[zarr.Array, Path]:
    """A raw sharded array of 1s whose first shard has the journal a killed write left: 3s
    into the first inner chunk's slot (6x8 uint16 at offset 0). Returns (array, shard)."""
    from cuzarr.io.journal import _encode

    arr = _create(test_pipeline, LocalStore(root), "raw", "end")
    with using_pipeline(test_pipeline):
        arr[...] = 1
    shard = root / "c" / "0" / "0"
    info = shard.stat()
    Path(str(shard) + JOURNAL_SUFFIX).write_bytes(
        _encode([(0, np.full(6 * 8, 3, dtype="<u2").tobytes())], (info.st_dev, info.st_ino)))
    return arr, shard


def test_zarrs_own_pipeline_gets_a_killed_write_replayed_first(tmp_path: Path,
                                                               test_pipeline: str) -> None:
    """A write cuzarr hands to zarr's pipeline (a device value without a GPU, say) must not
    rewrite a shard with a journal pending: the journal would be lost or, worse, replayed
    onto the newer file later. The pipeline replays it first."""
    root = tmp_path / "a.zarr"
    arr, shard = _ones_with_a_pending_journal(root, test_pipeline)
    pipeline = arr._async_array.codec_pipeline
    pipeline._zarr_io([(arr._async_array.store_path / "c/0/0", None, None, None, True)])
    assert not Path(str(shard) + JOURNAL_SUFFIX).exists()
    got = read_with(ORACLE_PIPELINE, LocalStore(root))
    assert (got[0:6, 0:8] == 3).all() and (got[6:, :] == 1).all()


def test_threads_writing_disjoint_inner_chunks_of_one_shard_lose_nothing(
    tmp_path: Path, test_pipeline: str
) -> None:
    """Eight writers, each its own row of inner chunks of one zstd shard (encodings change
    size: slots reused, chunks appended, the shard compacted), and a reader throughout that
    must only ever see a version some writer wrote, never a torn one."""
    root = tmp_path / "a.zarr"
    shape = (48, 64)
    arr = create_with(test_pipeline, LocalStore(root), shape=shape, chunks=shape,
                      compressors=None,
                      dtype="uint32", fill_value=0,
                      serializer=ShardingCodec(chunk_shape=(6, 16),
                                               codecs=[BytesCodec(), ZstdCodec(level=1)]))
    rounds = 12
    versions = {t: [np.zeros((6, 64), dtype="uint32")] for t in range(8)}
    for t in range(8):
        for r in range(rounds):
            rng = np.random.default_rng(100 * t + r)
            versions[t].append((rng.integers(0, [3, 1 << 20][r % 2], (6, 64)) + r)
                               .astype("uint32"))
    stop = threading.Event()
    errors: list[BaseException] = []
    seen = [0]

    def writer(t: int) -> None:
        try:
            with using_pipeline(test_pipeline):
                for r in range(rounds):
                    arr[6 * t : 6 * t + 6, :] = versions[t][r + 1]
        except BaseException as e:
            errors.append(e)

    def reader() -> None:
        try:
            mine = open_with(test_pipeline, LocalStore(root))
            with using_pipeline(test_pipeline):
                while not stop.is_set():
                    got = mine[...]
                    for t in range(8):
                        part = got[6 * t : 6 * t + 6]
                        for c in range(4):
                            block = part[:, 16 * c : 16 * c + 16]
                            assert any(np.array_equal(block, v[:, 16 * c : 16 * c + 16])
                                       for v in versions[t]), f"torn inner chunk ({t}, {c})"
                    seen[0] += 1
        except BaseException as e:
            errors.append(e)

    watcher = threading.Thread(target=reader)
    watcher.start()
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stop.set()
    watcher.join()
    assert not errors, errors
    assert seen[0] > 0
    final = np.concatenate([versions[t][-1] for t in range(8)])
    np.testing.assert_array_equal(read_with(ORACLE_PIPELINE, LocalStore(root)), final)
    assert os.path.getsize(root / "c" / "0" / "0") < 4 * final.nbytes  # compacted as it went


@pytest.mark.parametrize("region", [(slice(0, 6), slice(0, 8)), (slice(None), slice(None))])
def test_a_read_only_store_refuses_writes_as_zarr_does(tmp_path: Path, test_pipeline: str,
                                                      region: tuple[slice, ...]) -> None:
    """In place or whole, cuzarr's own file writes check the store as LocalStore.set does,
    and nothing changes."""
    arr = _create(test_pipeline, LocalStore(tmp_path), "zstd", "end")
    with using_pipeline(test_pipeline):
        arr[...] = 3
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    errors = {}
    for path in (test_pipeline, ORACLE_PIPELINE):
        with using_pipeline(path):
            readonly = zarr.open_array(LocalStore(tmp_path, read_only=True), mode="r")
            with pytest.raises(ValueError) as caught:
                readonly[region] = 4
            errors[path] = str(caught.value)
    assert errors[test_pipeline] == errors[ORACLE_PIPELINE]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("region", [(slice(0, 6), slice(0, 8)), (slice(None), slice(None))])
def test_a_write_after_a_killed_write_replays_its_journal_without_waiting_on_itself(
    tmp_path: Path, test_pipeline: str, region: tuple[slice, ...]
) -> None:
    """The first write after a kill (no read in between) replays the journal under the
    shard lock it already holds: partial (the shard merged) and whole (replaced)."""
    root = tmp_path / "a.zarr"
    arr, shard = _ones_with_a_pending_journal(root, test_pipeline)

    def write() -> None:
        with using_pipeline(test_pipeline):
            arr[region] = 7

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(60)
    assert not writer.is_alive(), "the write hung on its own shard lock"
    expected = np.ones(SHAPE, dtype="uint16")
    expected[0:6, 0:8] = 3  # the replayed write
    expected[region] = 7
    np.testing.assert_array_equal(read_with(ORACLE_PIPELINE, LocalStore(root)), expected)
    assert not Path(str(shard) + JOURNAL_SUFFIX).exists()


_STARVED = r'''
import contextlib, sys, threading, time
import numpy as np, zarr
from zarr.codecs import BytesCodec, ShardingCodec, ZstdCodec
import cuzarr
import cuzarr.write_in_place as wip

zarr.config.set({"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"})
cuzarr.config.set(threads=2, wave_bytes=1 << 20, device="cpu")
arr = zarr.create_array(sys.argv[1], shape=(512, 512 * 12), chunks=(512, 512),
                        dtype="uint16", fill_value=0, compressors=None,
                        serializer=ShardingCodec(chunk_shape=(32, 32),
                                                 codecs=[BytesCodec(), ZstdCodec(level=1)]))
data = np.random.default_rng(0).integers(0, 50, arr.shape).astype("uint16")
arr[...] = data
real, started = wip._read_stored, threading.Event()

@contextlib.contextmanager
def slow(*args, **kwargs):  # the write holds its shard locks a while
    started.set()
    time.sleep(1.0)
    with real(*args, **kwargs) as stored:
        yield stored

wip._read_stored = slow
seen = []

def reader(k):  # multi-tile reads whose pool lanes block on the write's shards
    started.wait()
    time.sleep(0.2 * k)
    seen.append(arr[:, : 512 * 10])

readers = [threading.Thread(target=reader, args=(k,)) for k in range(2)]
for t in readers:
    t.start()
arr[1:511, 0:1024] = 5
for t in readers:
    t.join()
data[1:511, 0:1024] = 5
assert all(np.array_equal(s, data[:, : 512 * 10]) for s in seen)
print("done")
'''


def test_reads_blocked_on_a_writes_shards_do_not_starve_its_pool_work(
    tmp_path: Path, test_pipeline: str
) -> None:
    """A write holding its shards' locks hands its decode and encode to the pool, whose
    threads may all be read tiles waiting for those very locks: the write runs that work
    itself instead of waiting for a free thread (workers.map_ranges)."""
    proc = subprocess.run([sys.executable, "-c", _STARVED, str(tmp_path / "a.zarr")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr[-3000:]
