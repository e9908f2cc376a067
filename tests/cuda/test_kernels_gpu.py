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


def _blosclz_frames() -> list[bytes]:
    """numcodecs blosclz chunks of 256 KiB: clevels, shuffles, item sizes, block sizes."""
    from numcodecs import Blosc

    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.integers(-2, 3, 1 << 16)).astype("<i4").view(np.uint8)
    pattern = np.resize(rng.integers(0, 256, 10_007, dtype=np.uint8), 1 << 18)
    frames = []
    for clevel in (1, 3, 5, 7, 9):
        for shuffle in (0, 1, 2):
            for typesize, data in ((4, walk), (1, pattern), (8, walk)):
                for blocksize in (0, 16384):
                    frames.append(Blosc(cname="blosclz", clevel=clevel, shuffle=shuffle,
                                        typesize=typesize, blocksize=blocksize).encode(data))
    return frames


def test_blosclz(gpu: tuple) -> None:
    """Thousands of real streams in one launch decode as c-blosc does (the numpy reference,
    itself checked against c-blosc by the host tests) and as numcodecs does end to end."""
    from numcodecs import Blosc

    from cuzarr.batch import ByteBatch
    from cuzarr.codecs.blosc_frame import plan_frames

    cp, launcher = gpu
    frames = _blosclz_frames()
    batch = ByteBatch.from_buffers(frames)
    plan = plan_frames(batch.slab, batch.offsets, batch.sizes)
    pick = np.flatnonzero(~plan.split_raw)
    assert pick.size > 300
    out_at = np.concatenate([[0], np.cumsum(plan.nbytes)[:-1]])
    src_at = batch.offsets[plan.split_chunk[pick]] + plan.split_src[pick]
    dst_at = out_at[plan.split_chunk[pick]] + plan.split_dst[pick]
    sizes, cbytes = plan.split_size[pick], plan.split_cbytes[pick]
    out = cp.zeros(int(plan.nbytes.sum()), dtype=cp.uint8)
    status = launch.blosclz_decompress(launcher, cp, cp.asarray(batch.slab), out, src_at, cbytes,
                                       dst_at, sizes)
    np.testing.assert_array_equal(cp.asnumpy(status), sizes)
    expected = np.zeros(out.size, dtype=np.uint8)
    reference.blosclz_decompress(batch.slab, expected, src_at, cbytes, dst_at, sizes)
    np.testing.assert_array_equal(cp.asnumpy(out), expected)
    # and whole chunks through the cuda device, against numcodecs
    from cuzarr.devices import _cuda_device
    from cuzarr.devices.blosc_gpu import decode_blosc

    device = _cuda_device()
    decoded = decode_blosc(device, device.to_device(batch), batch.slab, None)
    for i, frame in enumerate(frames):
        assert cp.asnumpy(decoded.item(i)).tobytes() == bytes(Blosc().decode(frame))


def test_blosclz_damaged_streams(gpu: tuple) -> None:
    """Damaged and truncated streams: the same statuses and bytes as the reference, and
    nothing written outside each stream's range (guards between the outputs)."""
    cp, launcher = gpu
    frames = _blosclz_frames()[:12]
    from cuzarr.batch import ByteBatch
    from cuzarr.codecs.blosc_frame import plan_frames

    batch = ByteBatch.from_buffers(frames)
    plan = plan_frames(batch.slab, batch.offsets, batch.sizes)
    pick = np.flatnonzero(~plan.split_raw)
    rng = np.random.default_rng(1)
    slab = batch.slab.copy()
    src_at = batch.offsets[plan.split_chunk[pick]] + plan.split_src[pick]
    cbytes = plan.split_cbytes[pick].copy()
    for k in range(pick.size):
        hits = src_at[k] + rng.integers(0, cbytes[k], rng.integers(0, 4))
        slab[hits] = rng.integers(0, 256, hits.size, dtype=np.uint8)
        if rng.integers(0, 2):
            cbytes[k] = rng.integers(0, cbytes[k] + 1)
    sizes = plan.split_size[pick]
    guard = 256
    dst_at = np.concatenate([[0], np.cumsum(sizes + guard)[:-1]]) + guard
    total = int(dst_at[-1] + sizes[-1] + guard)
    out = cp.full(total, 0xA5, dtype=cp.uint8)
    status = launch.blosclz_decompress(launcher, cp, cp.asarray(slab), out, src_at, cbytes,
                                       dst_at, sizes)
    expected = np.full(total, 0xA5, dtype=np.uint8)
    ref_status = reference.blosclz_decompress(slab, expected, src_at, cbytes, dst_at, sizes)
    np.testing.assert_array_equal(cp.asnumpy(status), ref_status)
    np.testing.assert_array_equal(cp.asnumpy(out), expected)
    assert (ref_status != sizes).any() and (ref_status == sizes).any()
