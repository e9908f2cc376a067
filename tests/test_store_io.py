"""How cuzarr reaches stores: never around a store's own code, one version of a shard per
read, within the open-file limit, within its memory setting, with the array's buffers.

Each test here failed before the fix it guards (issue 12, items 1, 4, 7, 8, 9, 19, 21).
"""

from __future__ import annotations

import multiprocessing
import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, ClassVar

import google_crc32c
import numpy as np
import pytest
import zarr
from zarr.abc.store import ByteRequest
from zarr.codecs import ZstdCodec
from zarr.core.buffer import Buffer, BufferPrototype, cpu, default_buffer_prototype
from zarr.registry import register_buffer
from zarr.storage import LocalStore, MemoryStore
from zarr.testing.store import LatencyStore

from cuzarr.errors import ChunkDecodeError, ShardIndexError
from cuzarr.io.access import access

PIPE = {"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}
ORACLE = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}


# -- 1. a LocalStore subclass with IO of its own is read and written through it --------------


class _ReversedKeys(LocalStore):
    """Keeps every value under its reversed key: a store that maps keys in get/set."""

    @staticmethod
    def _map(key: str) -> str:
        return key if key.startswith("zarr.json") or key.endswith(".zarray") or \
            key.endswith("zarr.json") else key[::-1].replace("/", "_")

    async def get(self, key: str, prototype: BufferPrototype | None = None,
                  byte_range: ByteRequest | None = None) -> Buffer | None:
        return await super().get(self._map(key), prototype, byte_range)

    async def set(self, key: str, value: Buffer) -> None:
        await super().set(self._map(key), value)

    async def delete(self, key: str) -> None:
        await super().delete(self._map(key))

    async def exists(self, key: str) -> bool:
        return await super().exists(self._map(key))


class _Xor(LocalStore):
    """Stores chunk bytes xor 0x5A (a toy encryption), in get_sync/set_sync and get/set."""

    @staticmethod
    def _flip(key: str, buf: Buffer | None) -> Buffer | None:
        if buf is None or key.endswith("zarr.json"):
            return buf
        return cpu.Buffer.from_array_like(buf.as_numpy_array() ^ np.uint8(0x5A))

    def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:
        got = super().get_sync(key, prototype=prototype, byte_range=byte_range)
        return self._flip(key, got)

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        return self._flip(key, await super().get(key, prototype, byte_range))

    def set_sync(self, key: str, value: Buffer) -> None:
        super().set_sync(key, self._flip(key, value))  # type: ignore[arg-type]

    async def set(self, key: str, value: Buffer) -> None:
        await super().set(key, self._flip(key, value))  # type: ignore[arg-type]


def test_access_is_direct_only_for_localstores_own_io(tmp_path: Path) -> None:
    assert access(LocalStore(tmp_path)).root == str(tmp_path)
    assert access(_ReversedKeys(tmp_path)).root is None
    # get overridden, get_sync inherited: get_sync would go around the override
    assert access(_ReversedKeys(tmp_path)).sync_reads is False
    assert access(_Xor(tmp_path)).sync_reads is True
    assert access(MemoryStore()).sync_reads is True


@pytest.mark.parametrize("store_cls", [_ReversedKeys, _Xor])
@pytest.mark.parametrize("sharded", [False, True])
def test_localstore_subclass_io_is_used(tmp_path: Path, store_cls: type, sharded: bool) -> None:
    data = np.arange(64 * 32, dtype="f4").reshape(64, 32)
    kwargs: dict[str, Any] = {"shards": (32, 32)} if sharded else {}
    with zarr.config.set(PIPE):
        arr = zarr.create_array(store_cls(tmp_path), shape=data.shape, chunks=(16, 16),
                                dtype="f4", fill_value=-1, compressors=ZstdCodec(), **kwargs)
        arr[:] = data
        arr[3:20, 5:9] = 7
        data[3:20, 5:9] = 7
        np.testing.assert_array_equal(zarr.open_array(store_cls(tmp_path), mode="r")[:], data)
    with zarr.config.set(ORACLE):  # zarr reads what cuzarr wrote through the store
        np.testing.assert_array_equal(zarr.open_array(store_cls(tmp_path), mode="r")[:], data)
    plain = tmp_path / "c" / "0" / "0"
    if store_cls is _ReversedKeys:  # nothing under the keys cuzarr would use going around it
        assert not plain.exists()
    else:  # the bytes on disk went through the store's encryption
        assert plain.read_bytes()[:4] != b"\x28\xb5\x2f\xfd"  # a zstd magic, unencrypted


# -- 4. readers racing atomic rewrites of a shard --------------------------------------------


def _rewriter(shard: str, versions: list[bytes], stop: Any, count: Any) -> None:
    """Replaces the shard file again and again as zarr's LocalStore does (a temp file,
    then a rename over it), alternating two versions of different layouts."""
    temp = shard + ".rewrite"
    k = 0
    while not stop.is_set():
        with open(temp, "wb") as f:
            f.write(versions[k % 2])
        os.replace(temp, shard)
        k += 1
        count.value = k


def test_reads_racing_atomic_shard_rewrites_see_one_version(tmp_path: Path) -> None:
    """A shard rewritten atomically by another process while it is read: every read sees
    one version of it (its index and its inner chunks came from two opens of the path, so
    about one read in six failed or mixed versions)."""
    shape = (256, 256)
    values = [np.zeros(shape, "f4"), np.ones(shape, "f4") + np.arange(shape[1])]
    versions = []
    for k, value in enumerate(values):
        with zarr.config.set(ORACLE):
            arr = zarr.create_array(str(tmp_path / f"v{k}"), shape=shape, chunks=(16, 16),
                                    shards=shape, dtype="f4", compressors=ZstdCodec(),
                                    fill_value=-1)
            arr[:] = value
        versions.append((tmp_path / f"v{k}" / "c" / "0" / "0").read_bytes())
    assert len(versions[0]) != len(versions[1])
    shard = str(tmp_path / "v0" / "c" / "0" / "0")
    ctx = multiprocessing.get_context("spawn")
    stop, count = ctx.Event(), ctx.Value("q", 0)
    writer = ctx.Process(target=_rewriter, args=(shard, versions, stop, count))
    writer.start()
    torn = []
    try:
        while count.value < 10 and writer.is_alive():  # the writer has started
            time.sleep(0.01)
        with zarr.config.set(PIPE):
            arr = zarr.open_array(str(tmp_path / "v0"), mode="r")
            for _ in range(400):
                try:
                    got = arr[:]
                except ChunkDecodeError as error:
                    torn.append(str(error))
                    continue
                if not any(np.array_equal(got, v) for v in values):
                    torn.append("a read mixing two versions")
    finally:
        stop.set()
        writer.join(30)
    assert count.value > 100, "the writer barely ran"
    assert torn == []


# -- 7. shard indexes pointing near 2**64 on stores whose value sizes are unknown --------------


class _NoSyncStore(LatencyStore):
    """A MemoryStore seen through its async methods only."""

    @property
    def _supports_sync_io(self) -> bool:
        return False


def _poison_index(store: MemoryStore, key: str, n_inner: int, entry: int,
                  offset: int, length: int) -> None:
    raw = bytearray(store._store_dict[key].to_bytes())
    index = bytearray(raw[-(16 * n_inner + 4) : -4])
    struct.pack_into("<QQ", index, 16 * entry, offset, length)
    body = bytes(raw[: -(16 * n_inner + 4)])
    crc = int(google_crc32c.value(bytes(index))).to_bytes(4, "little")
    store._store_dict[key] = default_buffer_prototype().buffer.from_bytes(body + index + crc)


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("entry", [(2**64 - 100, 50), (2**63, 2**63 - 1), (8, 2**64 - 9),
                                   (2**62, 1 << 40)])
def test_shard_index_near_2_64_is_an_error_not_an_allocation(kind: str,
                                                             entry: tuple[int, int]) -> None:
    memory = MemoryStore()
    store = memory if kind == "sync" else _NoSyncStore(memory)
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(store, shape=(64,), chunks=(16,), shards=(64,), dtype="i4",
                                compressors=ZstdCodec())
        arr[:] = np.arange(64)
    _poison_index(memory, "c/0", 4, 1, *entry)
    with zarr.config.set(ORACLE), pytest.raises(Exception) as oracle:
        zarr.open_array(store, mode="r")[:]
    with zarr.config.set(PIPE):
        arr = zarr.open_array(store, mode="r")
        with pytest.raises(ChunkDecodeError, match="c/0") as error:
            arr[:]
        assert isinstance(error.value, type(oracle.value))
        # the other inner chunks read as stored
        np.testing.assert_array_equal(arr[32:64], np.arange(32, 64))


def test_shard_index_error_says_shard_index(tmp_path: Path) -> None:
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(str(tmp_path), shape=(64,), chunks=(16,), shards=(32,),
                                dtype="i4")
        arr[:] = np.arange(64)
    victim = tmp_path / "c" / "1"
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 0xFF  # the index's crc32c
    victim.write_bytes(bytes(raw))
    with zarr.config.set(PIPE), pytest.raises(ShardIndexError,
                                              match=r"the shard index of 'c/1'"):
        zarr.open_array(str(tmp_path), mode="r")[:]


# -- 8. more chunk files than the open-file limit ----------------------------------------------


_FD_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np, zarr
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    path, sharded = sys.argv[1], sys.argv[2] == "1"
    kwargs = {"shards": (8, 8)} if sharded else {}
    with zarr.config.set({"codec_pipeline.path": "cuzarr.PhasedCodecPipeline"}):
        arr = zarr.create_array(path, shape=(8 * 1500, 8), chunks=(8, 4), dtype="f8",
                                compressors=zarr.codecs.ZstdCodec(), fill_value=0, **kwargs)
        data = np.arange(arr.size, dtype="f8").reshape(arr.shape)
        arr[:] = data
        assert np.array_equal(arr[:], data)
        arr[:, 1] = -1                       # a column write: every chunk read and merged
        data[:, 1] = -1
        assert np.array_equal(zarr.open_array(path, mode="r")[:], data)
    print("ok")
""")


@pytest.mark.parametrize("threads", [2, 8])
@pytest.mark.parametrize("sharded", [False, True])
def test_more_chunks_than_open_file_limit(tmp_path: Path, sharded: bool, threads: int) -> None:
    """3,000 chunk (or 1,500 shard) files read and merged in one call, with a soft limit of
    256 open files, by 2 or 8 threads (each tile holds its files while it reads)."""
    env = {**os.environ, "CUZARR_THREADS": str(threads)}
    result = subprocess.run([sys.executable, "-c", _FD_SCRIPT, str(tmp_path / "a"),
                             "1" if sharded else "0"], capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# -- 9. memory of reads from stores without sync IO ----------------------------------------------


_MEMORY_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, zarr
    from zarr.storage import MemoryStore
    from zarr.testing.store import LatencyStore
    import cuzarr

    class CopyingStore(LatencyStore):
        # an async-only store whose get returns new memory, as a remote store's does
        @property
        def _supports_sync_io(self):
            return False
        async def get(self, key, prototype=None, byte_range=None):
            buf = await super().get(key, prototype, byte_range)
            return None if buf is None else prototype.buffer.from_bytes(buf.to_bytes())

    def peak_rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    pipeline, codec = sys.argv[1], sys.argv[2]
    wave = 64 << 20
    cuzarr.config.set(wave_bytes=wave)
    memory = MemoryStore()
    store = CopyingStore(memory, get_latency=0, set_latency=0)
    compressors = {"raw": None, "zstd": zarr.codecs.ZstdCodec(level=1)}[codec]
    shape = (4096, 8192)  # 256 MiB of float64
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        arr = zarr.create_array(store, shape=shape, chunks=(256, 1024), dtype="f8",
                                compressors=compressors)
        rng = np.random.default_rng(0)
        arr[:] = np.round(rng.standard_normal(shape), 1)
    out = np.empty(shape, "f8")
    out[:] = 0  # the output's pages are resident before the peak is taken
    with zarr.config.set({"codec_pipeline.path": pipeline}):
        arr = zarr.open_array(store, mode="r")
        arr[:64]  # warm-up: pools, caches
        reset_peak()
        base = peak_rss()
        arr.get_basic_selection(Ellipsis, out=zarr.core.buffer.cpu.NDBuffer.from_numpy_array(out))
        print((peak_rss() - base) / wave)
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("codec", ["raw", "zstd"])
def test_async_store_read_memory_within_wave_setting(codec: str) -> None:
    """Peak memory beyond the output, in units of `wave_bytes`, of a 256 MiB read from an
    async-only store that returns fresh buffers: at most about 1.2 (it was 2.8)."""
    result = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT,
                             "cuzarr.PhasedCodecPipeline", codec],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ratio = float(result.stdout.strip().splitlines()[-1])
    assert ratio <= 1.25, f"peak memory {ratio:.2f} x wave_bytes"


# -- 19. the array's buffer prototype is what the store sees -------------------------------------


class _TaggedBuffer(cpu.Buffer):
    """A Buffer class of our own, configured as zarr's buffer."""


register_buffer(_TaggedBuffer)


class _StrictStore(MemoryStore):
    """Accepts only _TaggedBuffer values and prototypes, as a store tied to a buffer class."""

    def _check(self, prototype: Any) -> None:
        if prototype is not None and prototype.buffer is not _TaggedBuffer:
            raise TypeError(f"prototype buffer {prototype.buffer}")

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self._check(prototype)
        return await super().get(key, prototype, byte_range)

    def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:
        self._check(prototype)
        return super().get_sync(key, prototype=prototype, byte_range=byte_range)

    async def set(self, key: str, value: Buffer) -> None:
        if "zarr.json" not in key and type(value) is not _TaggedBuffer:
            raise TypeError(f"value of class {type(value).__name__}")
        await super().set(key, value)

    def set_sync(self, key: str, value: Buffer) -> None:
        if "zarr.json" not in key and type(value) is not _TaggedBuffer:
            raise TypeError(f"value of class {type(value).__name__}")
        super().set_sync(key, value)


@pytest.mark.parametrize("sharded", [False, True])
def test_store_sees_the_configured_buffer_class(sharded: bool) -> None:
    store = _StrictStore()
    data = np.arange(1000, dtype="i4").reshape(10, 100)
    kwargs: dict[str, Any] = {"shards": (10, 50)} if sharded else {}
    config = {**PIPE, "buffer": f"{__name__}._TaggedBuffer"}
    with zarr.config.set(config):
        arr = zarr.create_array(store, shape=data.shape, chunks=(5, 10), dtype="i4", **kwargs)
        arr[:] = data
        arr[2:4, 5:50] = -3
        data[2:4, 5:50] = -3
        np.testing.assert_array_equal(arr[:], data)


# -- 21. per-array coalescing limits ---------------------------------------------------------------


class _CountingStore(MemoryStore):
    """Counts the byte-range requests made of it (zarr opens a read-only copy of a store:
    the list is the class's)."""

    ranges: ClassVar[list[Any]] = []

    def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:
        if byte_range is not None and "zarr.json" not in key:
            self.ranges.append(byte_range)
        return super().get_sync(key, prototype=prototype, byte_range=byte_range)

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        if byte_range is not None and "zarr.json" not in key:
            self.ranges.append(byte_range)
        return await super().get(key, prototype, byte_range)


@pytest.mark.parametrize("gap", [0, 1 << 20])
def test_per_array_coalesce_config_is_used(gap: int) -> None:
    """One column of inner chunks of a shard, which lie apart in the shard: cuzarr makes
    as many range requests as zarr's own pipeline under the array's own gap limit (a gap
    of 0 bytes reads them apart, 1 MiB in one range with the index)."""
    store = _CountingStore()
    config = {"sharding_coalesce_max_gap_bytes": gap}
    data = np.arange(64 * 64).reshape(64, 64)
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(store, shape=(64, 64), chunks=(16, 16), shards=(64, 64),
                                dtype="i4", compressors=ZstdCodec(), config=config)
        arr[:] = data
    counts = []
    for pipeline in (ORACLE, PIPE):
        with zarr.config.set(pipeline):
            arr = zarr.open_array(store, mode="r", config=config)
            _CountingStore.ranges.clear()
            np.testing.assert_array_equal(arr[:, :16], data[:, :16])
            counts.append(len(_CountingStore.ranges))
    assert counts[0] == counts[1]
    assert counts[1] == 2 if gap else counts[1] > 2


class _DeletedAfterIndex(MemoryStore):
    """Deletes a shard right after its index is read (another process deleting it while
    a read runs): the read of its inner chunks then finds it gone."""

    def _gone_after(self, key: str, byte_range: Any) -> None:
        from zarr.abc.store import SuffixByteRequest

        if isinstance(byte_range, SuffixByteRequest):
            self._store_dict.pop(key, None)

    def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:
        got = super().get_sync(key, prototype=prototype, byte_range=byte_range)
        self._gone_after(key, byte_range)
        return got

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:
        got = await super().get(key, prototype, byte_range)
        self._gone_after(key, byte_range)
        return got


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_shard_deleted_during_a_read_reads_as_missing(kind: str) -> None:
    """zarr's sharding returns the fill value where a shard is gone by the time its inner
    chunks are read; so does cuzarr (it raised)."""
    results = []
    for config in (ORACLE, PIPE):
        memory = _DeletedAfterIndex()
        store = memory if kind == "sync" else _NoSyncStore(memory, get_latency=0,
                                                           set_latency=0)
        with zarr.config.set(config):
            arr = zarr.create_array(store, shape=(64,), chunks=(8,), shards=(32,), dtype="i4",
                                    fill_value=-9, compressors=ZstdCodec())
            arr[:] = np.arange(64)
            results.append(zarr.open_array(store, mode="r")[4:20])
    np.testing.assert_array_equal(results[1], results[0])
    np.testing.assert_array_equal(results[1], np.full(16, -9))


def test_a_key_that_is_a_folder_reads_as_missing(tmp_path: Path) -> None:
    """A chunk key whose path is a folder (a 2-d array's chunks under a 1-d array's keys)
    is missing to LocalStore: the fill value, not an IsADirectoryError."""
    with zarr.config.set(ORACLE):
        arr = zarr.create_array(str(tmp_path / "a"), shape=(4, 4), chunks=(2, 2), dtype="i4")
        arr[:] = 1
        zarr.create_array(str(tmp_path / "b"), shape=(4,), chunks=(2,), dtype="i4",
                          fill_value=7)
    (tmp_path / "a" / "zarr.json").write_bytes((tmp_path / "b" / "zarr.json").read_bytes())
    tmp_path = tmp_path / "a"
    assert (tmp_path / "c" / "0").is_dir()
    results = [_read_all(tmp_path, config) for config in (ORACLE, PIPE)]
    np.testing.assert_array_equal(results[1], results[0])


def _read_all(path: Path, config: dict[str, str]) -> np.ndarray:
    with zarr.config.set(config):
        return zarr.open_array(str(path), mode="r")[:]


def test_zarrs_gpu_buffers_are_not_what_stores_are_read_into() -> None:
    """Under zarr.config.enable_gpu() the array's prototype holds zarr's GPU buffers; store
    reads and writes use host buffers (bytes are staged on the host and go over in one copy
    per tile), while any other configured class is what the store sees."""
    from zarr.core.buffer import gpu

    from cuzarr.io.host import store_prototype

    gpu_prototype = BufferPrototype(buffer=gpu.Buffer, nd_buffer=gpu.NDBuffer)
    assert store_prototype(gpu_prototype) is cpu.buffer_prototype
    tagged = BufferPrototype(buffer=_TaggedBuffer, nd_buffer=cpu.NDBuffer)
    assert store_prototype(tagged) is tagged
