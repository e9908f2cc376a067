"""The array-level kernel entry points (tables, grids, argument lists) run through the
host-emulation launcher on numpy arrays, as the cuda device will run them with cupy."""

from __future__ import annotations

import numpy as np
import pytest
from harness import HostLauncher
from hypothesis import given, settings
from hypothesis import strategies as st

from cuzarr.kernels import launch, reference


def test_byteswap() -> None:
    values = np.arange(1000, dtype="<f8")
    data = values.view(np.uint8).copy()
    launch.byteswap(HostLauncher(), data, 8)
    np.testing.assert_array_equal(data.view(">f8"), values)
    with pytest.raises(ValueError, match="3"):
        launch.byteswap(HostLauncher(), data, 3)


@settings(max_examples=40, deadline=None)
@given(nbytes=st.integers(0, 5000), blocksize=st.integers(1, 1500),
       typesize=st.sampled_from([1, 2, 4, 8]), version=st.sampled_from([2, 3]))
def test_unshuffles(nbytes: int, blocksize: int, typesize: int, version: int) -> None:
    data = np.random.default_rng(nbytes).integers(0, 256, nbytes, dtype=np.uint8)
    offsets, lengths = reference.shuffle_blocks(nbytes, blocksize)
    shuffled = reference.byte_shuffle(data, offsets, lengths, typesize)
    out = np.zeros_like(data)
    launch.byte_unshuffle(HostLauncher(), np, shuffled, out, offsets, lengths, typesize)
    np.testing.assert_array_equal(out, data)
    shuffled = reference.bit_shuffle(data, offsets, lengths, typesize, version)
    out = np.zeros_like(data)
    launch.bit_unshuffle(HostLauncher(), np, shuffled, out, offsets, lengths, typesize, version)
    np.testing.assert_array_equal(out, data)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 20000), max_size=6))
def test_crc32c(sizes: list[int]) -> None:
    lengths = np.array(sizes, dtype=np.int64)
    offsets = (np.cumsum(lengths) - lengths).astype(np.int64)
    data = np.random.default_rng(len(sizes)).integers(0, 256, int(lengths.sum()) + 1,
                                                      dtype=np.uint8)
    launcher = HostLauncher()
    crcs = launch.crc32c(launcher, np, data, offsets, lengths)
    np.testing.assert_array_equal(crcs, reference.crc32c(data, offsets, lengths))
    assert len(launcher.launches) == (2 if sizes and sum(sizes) else (1 if sizes else 0))


def test_box_copy_scatter_of_a_batch() -> None:
    """Four decoded 3x4 chunks scattered into a 5x7 output (edge chunks partial) in one
    launch; a missing chunk becomes the fill value."""
    decoded = np.arange(4 * 12, dtype=np.int16).reshape(4, 3, 4)
    out = np.zeros((5, 7), dtype=np.int16)
    pairs = []
    for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        target = out[i * 3 : i * 3 + 3, j * 4 : j * 4 + 4]
        source = decoded[k][: target.shape[0], : target.shape[1]]
        pairs.append((None if k == 3 else source, target))
    src = decoded.reshape(-1).view(np.uint8)
    dst = out.reshape(-1).view(np.uint8)
    launcher = HostLauncher()
    fill = np.array([-7], dtype=np.int16).view(np.uint8)
    launch.box_copy(launcher, np, src, dst, reference.box_tasks(src, dst, pairs), 2, fill)
    assert len(launcher.launches) == 1
    expected = np.full((5, 7), -7, dtype=np.int16)
    expected[:3, :4] = decoded[0]
    expected[:3, 4:] = decoded[1][:, :3]
    expected[3:, :4] = decoded[2][:2]
    np.testing.assert_array_equal(out, expected)


def test_kernel_benchmark_explains_missing_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is installed; the GPU benchmark runs under the cuda marker")
    from bench import kernels

    assert kernels.main([]) == 2
    assert "cupy" in capsys.readouterr().err


def test_kernel_benchmark_cases_run_on_the_host() -> None:
    """Every case of the GPU kernel benchmark runs once on the host emulation (1 MiB), so
    a GPU run does not find a broken case, and each takes the kernel it is named for."""
    from bench import kernels

    launcher = HostLauncher()
    built = kernels.cases(np, launcher, 1 << 20)
    for name, (fn, moved) in built.items():
        fn()
        assert moved > 0, name
    names = [name for name, _, _ in launcher.launches]
    assert {"box_copy", "box_copy_tiled", "byte_shuffle_tiled", "bit_shuffle_tiled",
            "byte_unshuffle_tiled", "bit_unshuffle_tiled", "transpose_tiled",
            "blosclz_decompress", "byteswap"} <= set(names)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=2, max_size=4), n_chunks=st.integers(1, 3),
       itemsize=st.sampled_from([1, 2, 4, 8, 16]), data=st.data())
def test_tiled_transpose(shape: list[int], n_chunks: int, itemsize: int,
                         data: st.DataObject) -> None:
    """Any permutation of a batch of chunks, edge tiles included (shared memory + barriers
    through the host harness)."""
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    dtype = {1: np.uint8, 2: np.int16, 4: np.float32, 8: np.int64, 16: np.complex128}[itemsize]
    rng = np.random.default_rng(sum(shape))
    src = rng.integers(0, 256, n_chunks * int(np.prod(shape)) * itemsize, dtype=np.uint8)
    dst = np.zeros_like(src)
    ran = launch.transpose(HostLauncher(), np, src, dst, n_chunks, tuple(shape), perm, itemsize)
    assert ran == (perm[-1] != len(shape) - 1)
    if ran:
        expected = src.view(dtype).reshape(n_chunks, *shape).transpose(0, *(1 + p for p in perm))
        np.testing.assert_array_equal(dst.view(dtype).reshape(expected.shape), expected)


def test_gpu_check_reports_what_is_missing(tmp_path: object) -> None:
    import importlib.util
    import json
    from pathlib import Path

    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is installed; gpu-check runs for real there")
    from bench import gpu_check

    out = Path(str(tmp_path))
    assert gpu_check.main(["--out", str(out)]) == 2
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["available"] is False
    assert any(m.startswith("cupy (") for m in report["missing"])


@pytest.mark.parametrize("typesize", [3, 16, 24])
def test_shuffles_tiled_and_wide_items(typesize: int) -> None:
    """Item sizes up to 16 take the tiled kernels, wider ones the one-thread-per-byte ones,
    both ways."""
    data = np.random.default_rng(typesize).integers(0, 256, 5000, dtype=np.uint8)
    offsets, lengths = reference.shuffle_blocks(5000, 1200)
    launcher = HostLauncher()
    out = np.zeros_like(data)
    launch.byte_unshuffle(launcher, np, reference.byte_shuffle(data, offsets, lengths, typesize),
                          out, offsets, lengths, typesize)
    np.testing.assert_array_equal(out, data)
    out = np.zeros_like(data)
    launch.bit_unshuffle(launcher, np,
                         reference.bit_shuffle(data, offsets, lengths, typesize, 3), out,
                         offsets, lengths, typesize, 3)
    np.testing.assert_array_equal(out, data)
    shuffled = np.zeros_like(data)
    launch.byte_shuffle(launcher, np, data, shuffled, offsets, lengths, typesize)
    np.testing.assert_array_equal(shuffled,
                                  reference.byte_shuffle(data, offsets, lengths, typesize))
    launch.bit_shuffle(launcher, np, data, shuffled, offsets, lengths, typesize, 3)
    np.testing.assert_array_equal(shuffled,
                                  reference.bit_shuffle(data, offsets, lengths, typesize, 3))
    tiled = typesize <= 16
    assert [name.endswith("_tiled") for name, _, _ in launcher.launches] == [tiled] * 4


def test_blosclz_decompress_one_launch() -> None:
    """Every stream of a batch in one launch of one 32-thread block per stream; the
    statuses say which stream failed; empty and mismatched tables."""
    from numcodecs import Blosc

    from cuzarr.batch import ByteBatch
    from cuzarr.codecs.blosc_frame import plan_frames

    walk = np.cumsum(np.random.default_rng(0).integers(-2, 3, 20_000)).astype("<i4")
    codec = Blosc(cname="blosclz", clevel=5, shuffle=Blosc.SHUFFLE, typesize=4, blocksize=8192)
    batch = ByteBatch.from_buffers([codec.encode(walk + k) for k in range(3)])
    plan = plan_frames(batch.slab, batch.offsets, batch.sizes)
    pick = np.flatnonzero(~plan.split_raw)
    src_at = batch.offsets[plan.split_chunk[pick]] + plan.split_src[pick]
    dst_at = np.arange(pick.size) * int(plan.split_size.max())
    sizes = plan.split_size[pick].copy()
    sizes[1] -= 1  # one stream given too little room
    out = np.zeros(int(dst_at[-1] + sizes[-1]), dtype=np.uint8)
    launcher = HostLauncher()
    status = launch.blosclz_decompress(launcher, np, batch.slab, out, src_at,
                                       plan.split_cbytes[pick], dst_at, sizes)
    assert launcher.launches == [("blosclz_decompress", (pick.size, 1), (32, 1))]
    assert status[1] == reference.BLOSCLZ_OVERFLOW
    np.testing.assert_array_equal(np.delete(status, 1), np.delete(sizes, 1))
    empty = np.zeros(0, dtype=np.int64)
    assert launch.blosclz_decompress(launcher, np, batch.slab, out, empty, empty, empty,
                                     empty).size == 0
    assert len(launcher.launches) == 1
    with pytest.raises(ValueError, match="differ"):
        launch.blosclz_decompress(launcher, np, batch.slab, out, src_at, empty, dst_at, sizes)
