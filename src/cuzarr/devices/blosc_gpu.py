"""Blosc1 chunks decoded on the cuda device: every compressed split stream of the batch
goes to nvCOMP in one call per inner codec (lz4 raw blocks, zstd frames, zlib as raw
deflate), raw streams and memcpyed chunks are copied by one box_copy launch each, and
the blocks are unshuffled by our kernels in one launch per item size. blosclz streams
go to our kernel (blosclz_gpu), all in one launch; snappy streams have no GPU decoder:
chunks using them are decoded on the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.codecs.blosc_frame import CODECS, HEADER, BloscPlan, plan_frames
from cuzarr.kernels import launch
from cuzarr.kernels.reference import box_tasks
from cuzarr.workers import StageError

__all__ = ["decode_blosc"]

_NVCOMP = {"lz4": "LZ4", "zstd": "Zstd", "zlib": "Deflate"}


def decode_blosc(device: Any, batch: ByteBatch, host_slab: np.ndarray,
                 expected: int | None) -> ByteBatch | None:
    """Decode a batch of Blosc1 chunks on `device`; None when some chunk needs the host
    (snappy streams), so the caller can take the host path for the batch."""
    xp = device.xp
    plan = plan_frames(host_slab, batch.offsets, batch.sizes)
    if expected is not None:
        bad = np.flatnonzero(plan.nbytes != expected)
        if bad.size:
            i = int(bad[0])
            raise StageError(i, f"blosc: header says {int(plan.nbytes[i])} bytes, "
                                f"expected {expected}")
    compressed = ~plan.split_raw
    codecs = {CODECS.get(int(c), "?") for c in plan.codec[plan.split_chunk[compressed]]}
    if not codecs <= {*_NVCOMP, "blosclz"}:
        return None
    out_offsets = np.concatenate([[0], np.cumsum(plan.nbytes)[:-1]]).astype(np.int64)
    total = int(plan.nbytes.sum())
    out = xp.empty(max(1, total), dtype=np.uint8)
    tmp = xp.empty(max(1, total), dtype=np.uint8)
    src_pos = batch.offsets[plan.split_chunk] + plan.split_src
    dst_pos = out_offsets[plan.split_chunk] + plan.split_dst

    # compressed streams: one nvCOMP call per inner codec, into an aligned slab
    for name in sorted(codecs - {"blosclz"}):
        algorithm = _NVCOMP[name]
        pick = np.flatnonzero(compressed & (plan.codec[plan.split_chunk]
                                            == _code_of(name)))
        if pick.size == 0:
            continue
        starts, sizes = src_pos[pick], plan.split_cbytes[pick]
        if name == "zlib":  # 2-byte zlib header and 4-byte Adler-32 trailer around deflate
            starts, sizes = starts + 2, sizes - 6
        try:
            decoded = device._nvcomp(algorithm, ByteBatch(batch.slab, starts, sizes),
                                     plan.split_size[pick], exact=True)
        except StageError as e:
            raise StageError(int(plan.split_chunk[pick[e.index]]),
                             f"blosc {name} stream: {e.reason}") from e
        _copy(device, decoded.slab, tmp, decoded.offsets, dst_pos[pick], plan.split_size[pick])
    if "blosclz" in codecs:
        from cuzarr.devices.blosclz_gpu import decode_streams

        pick = np.flatnonzero(compressed & (plan.codec[plan.split_chunk] == _code_of("blosclz")))
        decode_streams(device, batch.slab, tmp, src_pos[pick], plan.split_cbytes[pick],
                       dst_pos[pick], plan.split_size[pick], plan.split_chunk[pick])
    # raw streams and memcpyed chunks
    raw = np.flatnonzero(plan.split_raw)
    _copy(device, batch.slab, tmp, src_pos[raw], dst_pos[raw], plan.split_size[raw])
    mem = np.flatnonzero(plan.memcpyed)
    _copy(device, batch.slab, out, batch.offsets[mem] + HEADER, out_offsets[mem],
          plan.nbytes[mem])
    _unshuffle(device, plan, tmp, out, out_offsets)
    return ByteBatch(out, out_offsets, plan.nbytes.astype(np.int64))


def _code_of(name: str) -> int:
    return next(code for code, cname in CODECS.items() if cname == name)


def _copy(device: Any, src: Any, dst: Any, src_at: np.ndarray, dst_at: np.ndarray,
          sizes: np.ndarray) -> None:
    """Byte ranges src[src_at[i] : +sizes[i]] -> dst[dst_at[i] :], one launch."""
    keep = np.flatnonzero(sizes > 0)
    if keep.size == 0:
        return
    pairs = [(src[a : a + s], dst[b : b + s])
             for a, b, s in zip(src_at[keep].tolist(), dst_at[keep].tolist(),
                                sizes[keep].tolist(), strict=True)]
    launch.box_copy(device.launcher, device.xp, src, dst, box_tasks(src, dst, pairs), 1)


def _unshuffle(device: Any, plan: BloscPlan, tmp: Any, out: Any,
               out_offsets: np.ndarray) -> None:
    """tmp -> out for every block: unshuffled per item size, or copied."""
    starts = out_offsets[plan.block_chunk] + plan.block_start
    ts = plan.typesize[plan.block_chunk]
    version = plan.version[plan.block_chunk]
    plain = np.flatnonzero(plan.block_shuffle == 0)
    _copy(device, tmp, out, starts[plain], starts[plain], plan.block_size[plain])
    for size in np.unique(ts):
        pick = np.flatnonzero((plan.block_shuffle == 1) & (ts == size))
        if pick.size:
            launch.byte_unshuffle(device.launcher, device.xp, tmp, out,
                                  starts[pick].astype(np.uint64),
                                  plan.block_size[pick].astype(np.uint64), int(size))
        for v in np.unique(version):
            pick = np.flatnonzero((plan.block_shuffle == 2) & (ts == size) & (version == v))
            if pick.size:
                launch.bit_unshuffle(device.launcher, device.xp, tmp, out,
                                     starts[pick].astype(np.uint64),
                                     plan.block_size[pick].astype(np.uint64), int(size),
                                     int(v))
