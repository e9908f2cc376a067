"""The kernels on a real GPU (cupy + NVRTC), against the same numpy references as the
host-emulation tests. Skipped without a CUDA device."""

from __future__ import annotations

import numpy as np
import pytest

from cuzarr.kernels import launch, reference

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def gpu() -> tuple:
    import cupy

    return cupy, launch.CupyLauncher()


@pytest.mark.parametrize("itemsize", [2, 4, 8, 16])
def test_byteswap(gpu: tuple, itemsize: int) -> None:
    cp, launcher = gpu
    data = np.random.default_rng(itemsize).integers(0, 256, 1_000_003 * itemsize, dtype=np.uint8)
    device = cp.asarray(data)
    launch.byteswap(launcher, device, itemsize)
    np.testing.assert_array_equal(cp.asnumpy(device), reference.byteswap(data, itemsize))


@pytest.mark.parametrize("typesize", [1, 2, 4, 8])
@pytest.mark.parametrize("version", [2, 3])
def test_unshuffles(gpu: tuple, typesize: int, version: int) -> None:
    cp, launcher = gpu
    nbytes, blocksize = 3_000_017, 262_144
    data = np.random.default_rng(typesize).integers(0, 256, nbytes, dtype=np.uint8)
    offsets, lengths = reference.shuffle_blocks(nbytes, blocksize)
    for shuffle, unshuffle, extra in [
        (reference.byte_shuffle, launch.byte_unshuffle, ()),
        (reference.bit_shuffle, launch.bit_unshuffle, (version,)),
    ]:
        shuffled = shuffle(data, offsets, lengths, typesize, *extra)
        out = cp.zeros(nbytes, dtype=cp.uint8)
        unshuffle(launcher, cp, cp.asarray(shuffled), out, offsets, lengths, typesize, *extra)
        np.testing.assert_array_equal(cp.asnumpy(out), data)


def test_crc32c(gpu: tuple) -> None:
    cp, launcher = gpu
    lengths = np.array([0, 1, 4095, 4096, 4097, 1 << 20, 3_000_001], dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    data = np.random.default_rng(0).integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    crcs = launch.crc32c(launcher, cp, cp.asarray(data), offsets, lengths)
    np.testing.assert_array_equal(cp.asnumpy(crcs), reference.crc32c(data, offsets, lengths))


@pytest.mark.parametrize("kind", ["crc32", "adler32"])
def test_zlib_checksums(gpu: tuple, kind: str) -> None:
    """The gzip (crc32) and zlib (adler32) trailers' checksums equal zlib's."""
    cp, launcher = gpu
    lengths = np.array([0, 1, 5551, 5553, 4096, 4097, 1 << 20, 3_000_001], dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    data = np.random.default_rng(1).integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    data[offsets[-1] :] = 0xFF  # the largest Adler-32 sums
    got = getattr(launch, kind)(launcher, cp, cp.asarray(data), offsets, lengths)
    np.testing.assert_array_equal(cp.asnumpy(got), getattr(reference, kind)(data, offsets, lengths))


@pytest.mark.parametrize("typesize", [1, 2, 4, 8, 16])
def test_shuffles_for_encode(gpu: tuple, typesize: int) -> None:
    """The blosc encoder's byte and bit shuffles equal the numpy references."""
    cp, launcher = gpu
    nbytes, blocksize = 1_000_003, 65_536
    data = np.random.default_rng(typesize).integers(0, 256, nbytes, dtype=np.uint8)
    offsets, lengths = reference.shuffle_blocks(nbytes, blocksize)
    out = cp.zeros(nbytes, dtype=cp.uint8)
    launch.byte_shuffle(launcher, cp, cp.asarray(data), out, offsets, lengths, typesize)
    np.testing.assert_array_equal(cp.asnumpy(out),
                                  reference.byte_shuffle(data, offsets, lengths, typesize))
    launch.bit_shuffle(launcher, cp, cp.asarray(data), out, offsets, lengths, typesize, 2)
    np.testing.assert_array_equal(cp.asnumpy(out),
                                  reference.bit_shuffle(data, offsets, lengths, typesize, 2))


def test_box_copy_scatter(gpu: tuple) -> None:
    cp, launcher = gpu
    decoded = cp.arange(8 * 64 * 64, dtype=cp.float32).reshape(8, 64, 64)
    stored_t = decoded.transpose(0, 2, 1)  # chunks stored transposed
    out = cp.zeros((128, 256), dtype=cp.float32)
    pairs = []
    for k in range(8):
        i, j = divmod(k, 4)
        pairs.append((stored_t[k], out[i * 64 : (i + 1) * 64, j * 64 : (j + 1) * 64]))
    src = decoded.reshape(-1).view(cp.uint8)
    dst = out.reshape(-1).view(cp.uint8)
    launch.box_copy(launcher, cp, src, dst, reference.box_tasks(src, dst, pairs), 4)
    expected = cp.asnumpy(stored_t).reshape(2, 4, 64, 64).transpose(0, 2, 1, 3).reshape(128, 256)
    np.testing.assert_array_equal(cp.asnumpy(out), expected)


@pytest.mark.parametrize("perm", [(1, 0), (2, 0, 1), (0, 2, 1), (1, 2, 0)])
def test_tiled_transpose(gpu: tuple, perm: tuple[int, ...]) -> None:
    cp, launcher = gpu
    shape = (100, 130, 70)[: len(perm)]
    src = cp.random.random((3, *shape)).astype(cp.float32)
    dst = cp.empty_like(src)
    ran = launch.transpose(launcher, cp, src.reshape(-1).view(cp.uint8),
                           dst.reshape(-1).view(cp.uint8), 3, shape, perm, 4)
    assert ran
    expected = cp.asnumpy(src).transpose(0, *(1 + p for p in perm))
    np.testing.assert_array_equal(cp.asnumpy(dst).reshape(expected.shape), expected)
