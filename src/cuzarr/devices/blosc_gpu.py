"""Blosc1 chunks on the cuda device.

Decode: every compressed split stream of the batch goes to nvCOMP in one call per inner
codec (lz4 raw blocks, zstd frames, zlib as raw deflate), blosclz streams go to our
kernel (blosclz_gpu), all in one launch, raw streams and memcpyed chunks are copied by
one box_copy launch each, and the blocks are unshuffled by our kernels in one launch per
item size.

Encode: the blocks of every chunk are shuffled in one launch, every split stream is
compressed in one nvCOMP call (zlib streams framed with their header and an Adler-32
from our kernel), and the chunks are assembled by three copy launches (compressed
streams, raw streams, memcpyed chunks) and one scatter of the header, block-start and
stream-size words, which the host works out from the compressed sizes alone. nvCOMP's
streams differ from c-blosc's compressors byte for byte but decode the same; c-blosc's
rules for block sizes, splits, flags, raw streams and memcpyed chunks are followed.

snappy streams have no GPU codec, and blosclz none for encode: chunks using them take the
host path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cuzarr.batch import ByteBatch
from cuzarr.codecs.blosc_frame import (
    CODECS,
    HEADER,
    BloscEncodePlan,
    BloscPlan,
    blosc_params,
    plan_encode,
    plan_frames,
)
from cuzarr.kernels import launch
from cuzarr.workers import StageError

__all__ = ["decode_blosc", "encode_blosc"]

_NVCOMP = {"lz4": "LZ4", "zstd": "Zstd", "zlib": "Deflate"}


def decode_blosc(device: Any, batch: ByteBatch, host_slab: np.ndarray,
                 expected: int | None) -> ByteBatch | None:
    """Decode a batch of Blosc1 chunks on `device`; None when some chunk needs the host
    (snappy streams), so the caller can take the host path for the batch."""
    xp = device.xp
    plan = plan_frames(host_slab, batch.offsets, batch.sizes, expected)
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
                                     plan.split_size[pick], exact=True, host=_to_host)
        except _HostDecodes:
            return None  # nvCOMP refused a stream: the host decodes (or names) the batch
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


class _HostDecodes(Exception):
    """nvCOMP refused some stream of the batch: the whole batch goes to the host."""


def _to_host() -> ByteBatch:
    raise _HostDecodes


def _code_of(name: str) -> int:
    return next(code for code, cname in CODECS.items() if cname == name)


def _copy(device: Any, src: Any, dst: Any, src_at: np.ndarray, dst_at: np.ndarray,
          sizes: np.ndarray) -> None:
    """Byte ranges src[src_at[i] : +sizes[i]] -> dst[dst_at[i] :], one launch."""
    device.copy_ranges(src, dst, src_at, dst_at, sizes)


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


def encode_blosc(device: Any, batch: ByteBatch, codec: Any) -> ByteBatch | None:
    """Encode every item of `batch` as a Blosc1 chunk with numcodecs.Blosc `codec`'s
    settings, on `device`; None (nothing done) for blosclz/snappy, or when a stream is
    above nvCOMP's largest chunk, so the caller can take the host path."""
    cname, clevel, shuffle, typesize, forced = blosc_params(codec)
    algorithm = _NVCOMP.get("lz4" if cname == "lz4hc" else cname)
    if algorithm is None:
        return None
    src = batch.packed()
    plan = plan_encode(src.sizes, cname, clevel, shuffle, typesize, forced)
    if plan.stream_size.size and int(plan.stream_size.max()) > device.backend.max_chunk(
            algorithm):
        return None
    xp = device.xp
    shuffled = _shuffle(device, plan, src)
    chunk_of = plan.stream_chunk
    streams = ByteBatch(shuffled, src.offsets[chunk_of] + plan.stream_src, plan.stream_size)
    stored = plan.stream_size.copy()
    compressed = None
    if len(streams):
        if cname == "zlib":
            from cuzarr.devices.cuda import zlib_head

            compressed = device._nvcomp_encode(algorithm, streams,
                                               head=device._const(zlib_head(clevel)),
                                               tail=device._adler32_trailer)
        else:
            compressed = device._nvcomp_encode(algorithm, streams)
        if compressed is None:
            return None
        stored = np.minimum(compressed.sizes, plan.stream_size)  # c-blosc: raw when >= size
    raw = stored == plan.stream_size

    n = len(src)
    body = np.bincount(chunk_of, weights=4 + stored, minlength=n).astype(np.int64)
    cbytes = HEADER + 4 * plan.nblocks + body
    memcpyed = plan.memcpyed | (cbytes > src.sizes + HEADER)
    cbytes = np.where(memcpyed, src.sizes + HEADER, cbytes)
    out_offsets = np.zeros(n, dtype=np.int64)
    np.cumsum(cbytes[:-1], out=out_offsets[1:])
    out = xp.empty(max(1, int(cbytes.sum())), dtype=np.uint8)

    # where each stream's size word goes: after the header, the block starts and the
    # streams before it in its chunk
    live = ~memcpyed[chunk_of]
    step = 4 + stored
    before = np.cumsum(step) - step
    chunk_first = np.zeros(n, dtype=np.int64)
    if len(step):
        starts = np.searchsorted(chunk_of, np.arange(n))
        chunk_first = before[np.minimum(starts, len(step) - 1)]
    word_at = (HEADER + 4 * plan.nblocks[chunk_of] + before - chunk_first[chunk_of])
    _write_words(device, out, out_offsets, plan, memcpyed, cbytes, chunk_of, word_at, stored,
                 live)

    at = out_offsets[chunk_of] + word_at + 4
    pick = np.flatnonzero(live & ~raw)
    if compressed is not None and pick.size:
        _copy(device, compressed.slab, out, compressed.offsets[pick], at[pick], stored[pick])
    pick = np.flatnonzero(live & raw)
    _copy(device, shuffled, out, streams.offsets[pick], at[pick], stored[pick])
    mem = np.flatnonzero(memcpyed)
    _copy(device, src.slab, out, src.offsets[mem], out_offsets[mem] + HEADER, src.sizes[mem])
    return ByteBatch(out, out_offsets, cbytes)


def _shuffle(device: Any, plan: BloscEncodePlan, src: ByteBatch) -> Any:
    """A copy of the source slab with every block byte- or bit-shuffled in place (one
    launch per shuffle kind); the split streams are read from it."""
    xp = device.xp
    if not bool((plan.block_shuffle != 0).any()):
        return src.slab
    shuffled = src.slab.copy()
    starts = (src.offsets[plan.block_chunk] + plan.block_start).astype(np.uint64)
    sizes = plan.block_size.astype(np.uint64)
    pick = np.flatnonzero(plan.block_shuffle == 1)
    if pick.size:
        launch.byte_shuffle(device.launcher, xp, src.slab, shuffled, starts[pick], sizes[pick],
                            plan.typesize)
    pick = np.flatnonzero(plan.block_shuffle == 2)
    if pick.size:
        launch.bit_shuffle(device.launcher, xp, src.slab, shuffled, starts[pick], sizes[pick],
                           plan.typesize, 2)
    return shuffled


def _write_words(device: Any, out: Any, out_offsets: np.ndarray, plan: BloscEncodePlan,
                 memcpyed: np.ndarray, cbytes: np.ndarray, chunk_of: np.ndarray,
                 word_at: np.ndarray, stored: np.ndarray, live: np.ndarray) -> None:
    """Headers, block starts and stream sizes of every chunk: one scatter of host-made
    bytes (memcpyed chunks get their header only). word_at: each stream's size word,
    from its chunk's start; a block starts at its first stream's size word."""
    positions = [(out_offsets[:, None] + np.arange(HEADER)[None, :]).reshape(-1)]
    values = [plan.headers(memcpyed, cbytes).reshape(-1)]
    if len(plan.stream_block):
        first = np.flatnonzero(np.r_[True, plan.stream_block[1:] != plan.stream_block[:-1]])
        block = plan.stream_block[first]
        chunk = plan.block_chunk[block]
        block_first = np.concatenate([[0], np.cumsum(plan.nblocks)[:-1]]).astype(np.int64)
        table_at = out_offsets[chunk] + HEADER + 4 * (block - block_first[chunk])
        for pos, value, keep in ((table_at, word_at[first], ~memcpyed[chunk]),
                                 (out_offsets[chunk_of] + word_at, stored, live)):
            positions.append((pos[keep][:, None] + np.arange(4)[None, :]).reshape(-1))
            values.append(value[keep].astype("<i4").view(np.uint8))
    xp = device.xp
    out[xp.asarray(np.concatenate(positions))] = xp.asarray(np.concatenate(values))
