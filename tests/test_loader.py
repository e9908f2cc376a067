"""cuzarr.loader.PatchLoader on the cpu device: sampling, ranks, targets, torch output,
errors and shutdown, against the stored data."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec
from zarr.storage import LocalStore

import cuzarr
from cuzarr.loader import PatchLoader
from cuzarr.loader.sampling import share

try:
    import torch
except ImportError:  # the torch extra is not installed: the numpy-output tests still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (the "
                                 "torch extra: pip install -e '.[torch]')")

SHAPE = (40, 48, 48)


@pytest.fixture
def volume(tmp_path: Path) -> tuple[zarr.Array, np.ndarray]:
    """A 3-D sharded zstd array whose values say where they are (i * 10^4 + j * 100 + k)."""
    i, j, k = np.indices(SHAPE)
    data = (i * 10_000 + j * 100 + k).astype("<i4")
    arr = zarr.create_array(LocalStore(tmp_path / "v"), shape=SHAPE, dtype="<i4",
                            chunks=(8, 16, 16), shards=(8, 48, 48), compressors=ZstdCodec())
    arr[:] = data
    return arr, data


def corner(patch: np.ndarray) -> tuple[int, ...]:
    """The start of a patch of the volume, read off its first value."""
    v = int(patch.reshape(-1)[0])
    return v // 10_000, v // 100 % 100, v % 100


def assert_patches_are_data(batch: np.ndarray, data: np.ndarray, shape: tuple[int, ...]
                            ) -> list[tuple[int, ...]]:
    starts = []
    for patch in batch:
        c = corner(patch)
        np.testing.assert_array_equal(patch, data[tuple(slice(a, a + s) for a, s in
                                                        zip(c, shape, strict=True))])
        starts.append(c)
    return starts


def starts_of(loader: PatchLoader, data: np.ndarray) -> list[tuple[int, ...]]:
    out = []
    for batch in loader:
        out += assert_patches_are_data(np.asarray(batch), data, loader.patch_shape)
    return out


@needs_torch
def test_batches_are_the_stored_patches_as_torch_tensors(volume: Any) -> None:
    arr, data = volume
    loader = PatchLoader(arr, (4, 8, 8), 5, samples_per_epoch=23, device="cpu")
    batches = list(loader)
    assert len(batches) == len(loader) == 5
    assert [b.shape[0] for b in batches] == [5, 5, 5, 5, 3]
    assert all(isinstance(b, torch.Tensor) and b.dtype == torch.int32 for b in batches)
    for b in batches:
        assert_patches_are_data(b.numpy(), data, (4, 8, 8))


def test_same_seed_and_epoch_same_batches_other_epochs_other_orders(volume: Any) -> None:
    arr, data = volume

    def epoch(seed: int, e: int) -> list[tuple[int, ...]]:
        loader = PatchLoader(arr, (4, 8, 8), 4, samples_per_epoch=16, seed=seed,
                             device="cpu", output="numpy")
        loader.set_epoch(e)
        return starts_of(loader, data)

    assert epoch(0, 0) == epoch(0, 0)
    assert epoch(0, 0) != epoch(0, 1)
    assert epoch(0, 0) != epoch(1, 0)
    loader = PatchLoader(arr, (4, 8, 8), 4, samples_per_epoch=16, device="cpu",
                         output="numpy")
    assert starts_of(loader, data) == starts_of(loader, data)  # no set_epoch: torch's rule


def test_random_starts_cover_every_valid_start(volume: Any) -> None:
    arr, _ = volume
    loader = PatchLoader(arr, (38, 46, 47), 1, samples_per_epoch=400, device="cpu",
                         output="numpy")
    starts = loader.epoch_starts()
    assert starts.min() == 0
    assert tuple(starts.max(axis=0)) == (2, 2, 1)  # every start up to the last valid one


def test_explicit_starts_are_each_read_once_per_epoch(volume: Any) -> None:
    arr, data = volume
    given = np.array([[0, 0, 0], [3, 4, 5], [10, 20, 30], [36, 40, 40], [1, 1, 1]])
    ordered = PatchLoader(arr, (4, 8, 8), 2, starts=given, shuffle=False, device="cpu",
                          output="numpy")
    assert starts_of(ordered, data) == [tuple(s) for s in given.tolist()]
    shuffled = PatchLoader(arr, (4, 8, 8), 2, starts=given, device="cpu", output="numpy")
    seen = starts_of(shuffled, data)
    assert sorted(seen) == sorted(tuple(s) for s in given.tolist())
    with pytest.raises(IndexError, match="patch 1 "):
        PatchLoader(arr, (4, 8, 8), 2, starts=[[0, 0, 0], [37, 0, 0]], device="cpu")


def test_unshuffled_epochs_read_every_chunk_aligned_patch_in_order(volume: Any) -> None:
    arr, data = volume
    loader = PatchLoader(arr, (8, 16, 16), 7, shuffle=False, device="cpu", output="numpy")
    expected = [(i, j, k) for i in range(0, 33, 8) for j in range(0, 33, 16)
                for k in range(0, 33, 16)]
    assert starts_of(loader, data) == expected


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_read_disjoint_shares_of_equal_length(volume: Any, world_size: int,
                                                    drop_last: bool) -> None:
    arr, data = volume
    given = np.stack([np.arange(11), np.zeros(11, int), np.arange(11)], axis=1)
    loaders = [PatchLoader(arr, (4, 8, 8), 2, starts=given, rank=r, world_size=world_size,
                           drop_last=drop_last, seed=3, device="cpu", output="numpy")
               for r in range(world_size)]
    for loader in loaders:
        loader.set_epoch(5)
    shares = [starts_of(loader, data) for loader in loaders]
    assert len({len(loader) for loader in loaders}) == 1  # the same number of steps
    assert len({len(s) for s in shares}) == 1
    everything = [s for part in shares for s in part]
    if drop_last:
        assert len(set(everything)) == len(everything)  # disjoint
        assert len(everything) <= 11
    else:
        assert set(everything) == {tuple(s) for s in given.tolist()}  # all of it
        assert len(everything) - len(set(everything)) == (-11) % world_size  # the padding


@needs_torch
def test_share_follows_distributed_sampler() -> None:
    from torch.utils.data.distributed import DistributedSampler

    for total in (1, 2, 10):
        order = np.stack([np.arange(total), -np.arange(total)], axis=1)  # (n, 2) starts
        for world in (1, 3, 4):
            for drop_last in (False, True):
                for rank in range(world):
                    sampler = DistributedSampler(range(total), num_replicas=world, rank=rank,
                                                 shuffle=False, drop_last=drop_last)
                    got = share(order, rank, world, drop_last)
                    assert got[:, 0].tolist() == list(sampler), (total, world, rank)


def test_targets_are_read_at_the_same_leading_coordinates(volume: Any, tmp_path: Path
                                                          ) -> None:
    arr, data = volume
    labels = zarr.create_array(LocalStore(tmp_path / "l"), shape=(SHAPE[0],), chunks=(16,),
                               dtype="<i8")
    labels[:] = np.arange(SHAPE[0]) * 7
    masks = zarr.create_array(LocalStore(tmp_path / "m"), shape=SHAPE, chunks=(20, 24, 24),
                              dtype="<i4")
    masks[:] = -data
    loader = PatchLoader((arr, labels, masks), (1, 8, 8), 6, samples_per_epoch=30,
                         device="cpu", output="numpy")
    for x, y, m in loader:
        assert y.shape == (len(x), 1)
        np.testing.assert_array_equal(m, -x)
        for patch, label in zip(x, y, strict=True):
            assert label[0] == corner(patch)[0] * 7
    short = zarr.create_array(LocalStore(tmp_path / "short"), shape=(3,), chunks=(3,),
                              dtype="u1")
    with pytest.raises(ValueError, match="leading part"):
        PatchLoader((arr, short), (1, 8, 8), 2, device="cpu")


def test_a_corrupt_chunk_fails_the_batch_that_needs_it_naming_its_key(volume: Any,
                                                                      tmp_path: Path) -> None:
    arr, _ = volume
    shard = tmp_path / "v" / "c" / "2" / "0" / "0"
    shard.write_bytes(b"\0" * 40 + shard.read_bytes()[40:])  # its first inner chunk's frame
    given = np.array([[0, 0, 0], [8, 0, 0], [16, 0, 0], [24, 0, 0]])
    loader = PatchLoader(arr, (4, 8, 8), 1, starts=given, shuffle=False, prefetch=2,
                         device="cpu", output="numpy")
    batches = iter(loader)
    assert corner(next(batches)[0]) == (0, 0, 0)
    assert corner(next(batches)[0]) == (8, 0, 0)
    with pytest.raises(cuzarr.CuzarrError, match="c/2/0/0"):
        next(batches)
    with pytest.raises(StopIteration):
        next(batches)


def loader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cuzarr-loader" and t.is_alive()]


def test_a_consumer_that_stops_early_leaves_no_thread(volume: Any) -> None:
    arr, _ = volume
    loader = PatchLoader(arr, (4, 8, 8), 2, samples_per_epoch=40, prefetch=2, device="cpu",
                         output="numpy")
    batches = iter(loader)
    next(batches)
    assert loader_threads()
    del batches, loader
    gc.collect()
    deadline = time.monotonic() + 10
    while loader_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not loader_threads()


def test_close_and_with_stop_a_producer_blocked_on_a_full_queue(volume: Any) -> None:
    arr, _ = volume
    with PatchLoader(arr, (4, 8, 8), 2, samples_per_epoch=40, prefetch=1,
                     device="cpu", output="numpy") as loader:
        batches = iter(loader)
        next(batches)
        time.sleep(0.2)  # the producer fills its one slot and waits for room
    assert not loader_threads()
    with pytest.raises(StopIteration):
        next(batches)


def test_close_does_not_hang_on_a_read_that_hangs(volume: Any, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    from cuzarr.loader import patch_loader

    arr, _ = volume
    release = threading.Event()
    real = patch_loader.read_patches

    def hanging(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(patch_loader, "read_patches", hanging)
    loader = PatchLoader(arr, (4, 8, 8), 2, samples_per_epoch=4, device="cpu", output="numpy")
    iter(loader)
    started = time.monotonic()
    loader._producer.close(timeout=0.3)  # type: ignore[union-attr]
    assert time.monotonic() - started < 5
    release.set()


def test_read_ahead_is_bounded_by_prefetch(volume: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cuzarr.loader import patch_loader

    arr, _ = volume
    made: list[int] = []
    real = patch_loader.read_patches

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(patch_loader, "read_patches", counting)
    loader = PatchLoader(arr, (4, 8, 8), 2, samples_per_epoch=40, prefetch=3, device="cpu",
                         output="numpy")
    batches = iter(loader)
    for consumed in range(1, 6):
        next(batches)
        time.sleep(0.15)  # a slow step: the producer runs as far ahead as it may
        assert len(made) <= consumed + 3 + 1, (consumed, len(made))
    assert len(made) >= 5 + 3  # and it did run ahead
    loader.close()


def test_interpreter_exit_with_a_loader_running_does_not_hang(volume: Any) -> None:
    arr, _ = volume
    script = (
        "import zarr, sys\n"
        "from cuzarr.loader import PatchLoader\n"
        f"arr = zarr.open_array({str(arr.store.root)!r})\n"
        "loader = PatchLoader(arr, (4, 8, 8), 2, samples_per_epoch=1000, prefetch=4, "
        "device='cpu', output='numpy')\n"
        "batches = iter(loader)\n"
        "next(batches)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_settings_are_checked_naming_them(volume: Any) -> None:
    arr, _ = volume
    with pytest.raises(cuzarr.ConfigError, match="batch_size"):
        PatchLoader(arr, (4, 8, 8), 0, device="cpu")
    with pytest.raises(cuzarr.ConfigError, match="rank must be in"):
        PatchLoader(arr, (4, 8, 8), 2, rank=2, world_size=2, device="cpu")
    with pytest.raises(cuzarr.ConfigError, match="output='cupy'"):
        PatchLoader(arr, (4, 8, 8), 2, device="cpu", output="cupy")
    with pytest.raises(cuzarr.ConfigError, match="device must be"):
        PatchLoader(arr, (4, 8, 8), 2, device="gpu")
    with pytest.raises(ValueError, match="does not fit"):
        PatchLoader(arr, (41, 8, 8), 2, device="cpu")


def test_device_cuda_without_a_gpu_says_what_is_missing(volume: Any) -> None:
    from cuzarr.devices import cuda_available

    if cuda_available():
        pytest.skip("a GPU is here")
    with pytest.raises(cuzarr.DeviceUnavailableError, match="cuda device cannot run"):
        PatchLoader(volume[0], (4, 8, 8), 2, device="cuda")


@needs_torch
def test_pin_memory_without_cuda_warns_as_dataloader_does(volume: Any) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is here: batches are pinned")
    with pytest.warns(UserWarning, match="no CUDA device"):
        loader = PatchLoader(volume[0], (4, 8, 8), 2, samples_per_epoch=4, device="cpu",
                             pin_memory=True)
    assert all(not b.is_pinned() for b in loader)


_RANK_SCRIPT = '''
import json, sys
import torch.distributed as dist
import zarr
from cuzarr.loader import PatchLoader

rank, port, root, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                        world_size=2)
loader = PatchLoader(zarr.open_array(root), (4, 8, 8), 3, samples_per_epoch=13,
                     device="cpu", output="numpy")
loader.set_epoch(2)
starts = [[int(v) for v in b.reshape(len(b), -1)[:, 0]] for b in loader]
json.dump({"rank": loader.rank, "world": loader.world_size, "len": len(loader),
           "firsts": starts}, open(out, "w"))
dist.barrier()
dist.destroy_process_group()
'''


@needs_torch
def test_ranks_default_to_torch_distributed(volume: Any, tmp_path: Path) -> None:
    """Two real processes in a gloo process group: each loader takes its rank and world
    size from torch.distributed, and they read disjoint halves of the epoch."""
    import json
    import socket

    arr, _ = volume
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(port),
                               str(arr.store.root), str(tmp_path / f"r{r}.json")])
             for r in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    results = [json.loads((tmp_path / f"r{r}.json").read_text()) for r in range(2)]
    assert [r["rank"] for r in results] == [0, 1]
    assert {r["world"] for r in results} == {2}
    assert results[0]["len"] == results[1]["len"] == 3  # 7 of 14 (13 padded) each
    firsts = [[v for batch in r["firsts"] for v in batch] for r in results]
    assert len(firsts[0]) == len(firsts[1]) == 7
    # 13 random starts, padded with the first to 14: disjoint but for that one
    assert len(set(firsts[0]) | set(firsts[1])) >= 13
