"""Blosc1 chunks taken apart on the host, vectorized over a batch: headers, block starts
and the compressed split streams of every block (c-blosc 1.x's blosc_d rules); and the
plan for writing them (c-blosc 1.x's compute_blocksize, split_block and blosc_c rules).

The plan says, for every split stream of every chunk, where its compressed bytes are,
where its decoded bytes go and whether it is stored raw; and for every block, its
shuffle. Any device can then decompress all streams of one inner codec in one batched
call and unshuffle all blocks in one launch. `decode_host` runs the plan with host
libraries and the numpy shuffle references; it is the check for the device path.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from cuzarr.kernels import reference
from cuzarr.workers import StageError

__all__ = [
    "CODECS",
    "BloscEncodePlan",
    "BloscPlan",
    "blosc_params",
    "compute_blocksize",
    "decode_host",
    "plan_encode",
    "plan_frames",
]

HEADER = 16
MIN_BUFFERSIZE = 128  # c-blosc: blocks smaller than this per item are not split
MAX_SPLITS = 16
_SHUFFLE, _MEMCPYED, _BITSHUFFLE, _RESERVED, _DONT_SPLIT = 0x1, 0x2, 0x4, 0x8, 0x10
#: blosc's compressor codes (flags bits 5-7)
CODECS = {0: "blosclz", 1: "lz4", 2: "snappy", 3: "zlib", 4: "zstd"}


@dataclass(frozen=True)
class BloscPlan:
    """Where every piece of a batch of Blosc1 chunks is, as numpy arrays."""

    nbytes: np.ndarray  # per chunk: decoded size
    codec: np.ndarray  # per chunk: blosc compressor code
    version: np.ndarray  # per chunk: format version (bit-shuffle rule)
    typesize: np.ndarray  # per chunk
    memcpyed: np.ndarray  # per chunk: bool, payload stored as is after the header
    #: per chunk: its geometry holds together (every split block is covered by its
    #: streams, the blocks' streams tile the payload exactly, as c-blosc lays them out),
    #: so one block can be decoded alone and be where a whole decode would put it
    sound: np.ndarray
    # per block (all chunks): owning chunk, decoded offset within the chunk, size, shuffle
    block_chunk: np.ndarray
    block_start: np.ndarray
    block_size: np.ndarray
    block_shuffle: np.ndarray  # 0 none, 1 byte, 2 bit
    # per split stream: owning chunk, offset of its bytes in the chunk, their count,
    # decoded offset within the chunk, decoded size, stored raw
    split_chunk: np.ndarray
    split_src: np.ndarray
    split_cbytes: np.ndarray
    split_dst: np.ndarray
    split_size: np.ndarray
    split_raw: np.ndarray


def _i32(slab: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Little-endian int32 at each byte position of a flat slab."""
    idx = positions[:, None] + np.arange(4)[None, :]
    return np.ascontiguousarray(slab[idx]).view("<i4").reshape(-1).astype(np.int64)


def plan_frames(slab: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                expected: int | None = None) -> BloscPlan:
    """Parse every chunk slab[offsets[i] : +sizes[i]]; StageError(i) for a chunk that
    c-blosc's decompress would refuse too (the checks are c-blosc 1.x's), or that does not
    declare `expected` decoded bytes. Bytes after a chunk's declared compressed size are
    ignored, as c-blosc ignores them. Every size is checked against the stored bytes
    before anything is allocated from it (a header cannot make the plan's arrays large)."""
    n = len(sizes)
    short = np.flatnonzero(sizes < HEADER)
    if short.size:
        raise StageError(int(short[0]), "blosc: chunk shorter than its 16-byte header")
    head = slab[offsets[:, None] + np.arange(4)[None, :]]
    version, flags, typesize = head[:, 0].astype(np.int64), head[:, 2], head[:, 3]
    nbytes = _i32(slab, offsets + 4)
    blocksize = _i32(slab, offsets + 8)
    cbytes = _i32(slab, offsets + 12)
    bad = np.flatnonzero(cbytes > sizes)
    if bad.size:
        i = int(bad[0])
        raise StageError(i, f"blosc: header says {int(cbytes[i])} bytes, chunk has "
                            f"{int(sizes[i])} (truncated or corrupt)")
    sizes = cbytes  # what c-blosc reads of each chunk
    bad = np.flatnonzero((nbytes < 0) | (blocksize <= 0) | (typesize == 0)
                         | (blocksize > MAX_BLOCKSIZE) | (cbytes < HEADER))
    if bad.size:
        raise StageError(int(bad[0]), "blosc: impossible sizes in the header")
    bad = np.flatnonzero((version != VERSION_FORMAT) | ((flags & _RESERVED) != 0))
    if bad.size:
        raise StageError(int(bad[0]), "blosc: a format version or flags c-blosc does not "
                                      "read")
    if expected is not None:
        bad = np.flatnonzero(nbytes != expected)
        if bad.size:
            i = int(bad[0])
            raise StageError(i, f"blosc: header says {int(nbytes[i])} bytes, expected {expected}")
    memcpyed = (flags & _MEMCPYED) != 0
    bad = np.flatnonzero(memcpyed & (sizes != HEADER + nbytes))
    if bad.size:
        raise StageError(int(bad[0]), "blosc: a memcpyed chunk's size is not its data's")
    codec = (flags >> 5).astype(np.int64)
    typesize = typesize.astype(np.int64)

    nblocks = np.where(nbytes > 0, -(-nbytes // blocksize), 0)
    nblocks = np.where(memcpyed, 0, nblocks)
    bad = np.flatnonzero(nblocks > (cbytes - HEADER) // 4)  # each block has a 4-byte start
    if bad.size:
        raise StageError(int(bad[0]), "blosc: block table past the chunk's end")
    block_chunk = np.repeat(np.arange(n), nblocks)
    first = np.concatenate([[0], np.cumsum(nblocks)[:-1]]).astype(np.int64)
    j = np.arange(int(nblocks.sum())) - first[block_chunk]
    block_start = j * blocksize[block_chunk]
    block_size = np.minimum(blocksize[block_chunk], nbytes[block_chunk] - block_start)
    leftover = block_size < blocksize[block_chunk]
    bstarts_at = HEADER + 4 * j
    bstart = _i32(slab, offsets[block_chunk] + bstarts_at)
    ts = typesize[block_chunk]
    bflags = flags[block_chunk]
    split = (((bflags & _DONT_SPLIT) == 0) & (ts <= MAX_SPLITS)
             & (block_size // ts >= MIN_BUFFERSIZE) & ~leftover)
    nsplits = np.where(split, ts, 1)
    neblock = block_size // nsplits
    shuffle = np.where(((bflags & _SHUFFLE) != 0) & (ts > 1), 1,
                       np.where(((bflags & _BITSHUFFLE) != 0) & (block_size >= ts), 2, 0))

    # split streams: walk up to 16 per block, vectorized over blocks
    chunks, srcs, cbs, dsts, outs = [], [], [], [], []
    pos = bstart.copy()
    for k in range(int(nsplits.max()) if nsplits.size else 0):
        live = np.flatnonzero(nsplits > k)
        owner = block_chunk[live]
        at = pos[live]
        bad = np.flatnonzero((at < 0) | (at + 4 > sizes[owner]))
        if bad.size:
            raise StageError(int(owner[bad[0]]), "blosc: a block starts outside the chunk")
        cb = _i32(slab, offsets[owner] + at)
        bad = np.flatnonzero((cb < 0) | (at + 4 + cb > sizes[owner]))
        if bad.size:
            raise StageError(int(owner[bad[0]]), "blosc: a stream runs past the chunk's end")
        chunks.append(owner)
        srcs.append(at + 4)
        cbs.append(cb)
        dsts.append(block_start[live] + k * neblock[live])
        outs.append(neblock[live])
        pos[live] = at + 4 + cb

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    split_size = cat(outs)
    split_cbytes = cat(cbs)
    # sound geometry: each split block covered by its streams, and the blocks' extents
    # [start, end of last stream) tile the payload [16 + 4 * nblocks, cbytes) exactly
    uncovered = (nsplits * neblock != block_size) & (nsplits > 1)
    sound = np.ones(n, dtype=bool)
    sound[block_chunk[uncovered]] = False
    if block_chunk.size:
        order = np.lexsort((bstart, block_chunk))
        owner, begin, end = block_chunk[order], bstart[order], pos[order]
        first_of = np.ones(len(order), dtype=bool)
        first_of[1:] = owner[1:] != owner[:-1]
        last_of = np.ones(len(order), dtype=bool)
        last_of[:-1] = owner[1:] != owner[:-1]
        gap = np.zeros(len(order), dtype=bool)
        gap[1:] = ~first_of[1:] & (begin[1:] != end[:-1])
        gap |= first_of & (begin != HEADER + 4 * nblocks[owner])
        gap |= last_of & (end != cbytes[owner])
        sound[owner[gap]] = False
    return BloscPlan(
        nbytes=nbytes, codec=codec, version=version, typesize=typesize, memcpyed=memcpyed,
        sound=sound,
        block_chunk=block_chunk, block_start=block_start, block_size=block_size,
        block_shuffle=shuffle, split_chunk=cat(chunks), split_src=cat(srcs),
        split_cbytes=split_cbytes, split_dst=cat(dsts), split_size=split_size,
        split_raw=split_cbytes == split_size,
    )


def _decompress(codec: str, data: bytes, size: int) -> bytes:
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "lz4":
        from numcodecs import LZ4

        return LZ4().decode(int(size).to_bytes(4, "little") + data)
    if codec == "blosclz":  # the kernel's reference, rule for rule c-blosc's decoder
        out, at = np.zeros(size, dtype=np.uint8), np.zeros(1, dtype=np.int64)
        status = int(reference.blosclz_decompress(np.frombuffer(data, dtype=np.uint8), out, at,
                                                  np.array([len(data)]), at,
                                                  np.array([size]))[0])
        if status < 0:
            raise ValueError(f"corrupt blosclz stream (error {status})")
        return out[:status].tobytes()
    raise ValueError(f"no host decoder for blosc's {codec} streams here")


def decode_host(slab: np.ndarray, offsets: np.ndarray, sizes: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Decode a batch with the plan: host stream decoders, numpy unshuffles.

    Returns (decoded slab, per-chunk offsets into it)."""
    plan = plan_frames(slab, offsets, sizes)
    out_offsets = np.concatenate([[0], np.cumsum(plan.nbytes)[:-1]]).astype(np.int64)
    out = np.empty(int(plan.nbytes.sum()), dtype=np.uint8)
    tmp = np.empty_like(out)
    for i in np.flatnonzero(plan.memcpyed):
        start, size = int(offsets[i]) + HEADER, int(plan.nbytes[i])
        out[out_offsets[i] : out_offsets[i] + size] = slab[start : start + size]
    for s in range(len(plan.split_chunk)):
        c = int(plan.split_chunk[s])
        start = int(offsets[c] + plan.split_src[s])
        data = slab[start : start + int(plan.split_cbytes[s])]
        size = int(plan.split_size[s])
        if plan.split_raw[s]:
            piece = data
        else:
            try:
                piece = np.frombuffer(_decompress(CODECS[int(plan.codec[c])], data.tobytes(),
                                                  size), dtype=np.uint8)
            except Exception as e:
                raise StageError(c, f"blosc: {CODECS[int(plan.codec[c])]} stream: {e}") from e
            if piece.size != size:
                raise StageError(c, f"blosc: a stream decoded to {piece.size} bytes, "
                                    f"expected {size}")
        at = int(out_offsets[c] + plan.split_dst[s])
        tmp[at : at + size] = piece
    for b in range(len(plan.block_chunk)):
        c = int(plan.block_chunk[b])
        at = int(out_offsets[c] + plan.block_start[b])
        size = int(plan.block_size[b])
        block = tmp[at : at + size]
        one, length = np.zeros(1, np.uint64), np.array([size], np.uint64)
        if plan.block_shuffle[b] == 1:
            block = reference.byte_unshuffle(block, one, length, int(plan.typesize[c]))
        elif plan.block_shuffle[b] == 2:
            block = reference.bit_unshuffle(block, one, length, int(plan.typesize[c]),
                                            int(plan.version[c]))
        out[at : at + size] = block
    return out, out_offsets


# -- writing -----------------------------------------------------------------------------

L1 = 32 * 1024  # c-blosc's assumed L1 cache size: the base of automatic block sizes
MAX_TYPESIZE = 255  # larger item sizes are treated as 1-byte streams
MAX_BLOCKSIZE = ((1 << 31) - 1 - MAX_TYPESIZE * 4) // 3
VERSION_FORMAT = 2  # c-blosc 1.x's format version, written in byte 0
#: compressor name -> its format code (flags bits 5-7); lz4hc writes lz4 streams
FORMATS = {"blosclz": 0, "lz4": 1, "lz4hc": 1, "snappy": 2, "zlib": 3, "zstd": 4}
_HCR = ("lz4hc", "zlib", "zstd")  # "high compression ratio" codecs get bigger blocks
#: automatic block size = L1 (x2 for HCR codecs) x this (numerator, denominator) per clevel
_CLEVEL_SCALE = {0: (1, 4), 1: (1, 2), 2: (1, 1), 3: (2, 1), 4: (4, 1), 5: (4, 1),
                 6: (8, 1), 7: (8, 1), 8: (8, 1), 9: (8, 1)}


def blosc_params(codec: Any) -> tuple[str, int, int, int, int]:
    """(cname, clevel, shuffle, typesize, forced blocksize) of a numcodecs.Blosc, resolved as
    numcodecs resolves them for a bytes (uint8) buffer: typesize defaults to 1 and
    AUTOSHUFFLE (-1) means bit-shuffle for 1-byte items, byte-shuffle otherwise."""
    config = codec.get_config()
    cname = str(config.get("cname", "lz4"))
    clevel = int(config.get("clevel", 5))
    shuffle = int(config.get("shuffle", 1))
    typesize = int(getattr(codec, "_typesize", None) or config.get("typesize") or 1)
    blocksize = int(config.get("blocksize", 0) or 0)
    if cname not in FORMATS:
        raise ValueError(f"blosc: unknown compressor {cname!r}; expected one of "
                         f"{sorted(FORMATS)}")
    if not 0 <= clevel <= 9:
        raise ValueError(f"blosc: clevel must be between 0 and 9, not {clevel}")
    if shuffle not in (-1, 0, 1, 2):
        raise ValueError(f"blosc: shuffle must be -1, 0, 1 or 2, not {shuffle}")
    if typesize <= 0 or blocksize < 0:
        raise ValueError(f"blosc: impossible typesize {typesize} or blocksize {blocksize}")
    if shuffle == -1:
        shuffle = 2 if typesize == 1 else 1
    return cname, clevel, shuffle, typesize, blocksize


def _split_block(cname: str, typesize: int, blocksize: np.ndarray) -> np.ndarray:
    """c-blosc's split_block in its default BLOSC_FORWARD_COMPAT_SPLIT mode: every codec but
    zstd splits a block into `typesize` streams when items are small and many enough."""
    return (cname != "zstd") & (typesize <= MAX_SPLITS) & (blocksize // typesize
                                                             >= MIN_BUFFERSIZE)


def compute_blocksize(nbytes: np.ndarray, cname: str, clevel: int, typesize: int,
                      forced: int) -> np.ndarray:
    """c-blosc 1.x's compute_blocksize for chunks of `nbytes` (forced = numcodecs'
    blocksize, 0 for automatic), vectorized over chunks."""
    nb = np.asarray(nbytes, dtype=np.int64)
    if forced:
        size = np.full(nb.shape, min(max(forced, MIN_BUFFERSIZE), MAX_BLOCKSIZE), np.int64)
    else:
        num, den = _CLEVEL_SCALE[clevel]
        base = L1 * (2 if cname in _HCR else 1) * num // den
        if clevel == 9 and cname in _HCR:
            base *= 2
        size = np.where(nb >= L1, base, nb)
    if clevel > 0:
        enlarged = np.clip(np.minimum(size, 1 << 18) * typesize, 1 << 16, 1 << 20)
        size = np.where(_split_block(cname, typesize, size), enlarged, size)
    size = np.minimum(size, nb)
    size = np.where(size > typesize, size // typesize * typesize, size)
    return np.where(nb < typesize, 1, size)


@dataclass(frozen=True)
class BloscEncodePlan:
    """How a batch of chunks becomes Blosc1 chunks, as numpy arrays. Chunks flagged
    memcpyed here (clevel 0, under MIN_BUFFERSIZE bytes) have no blocks or streams;
    the encoder may still store others memcpyed when they do not compress."""

    typesize: int
    nbytes: np.ndarray  # per chunk
    blocksize: np.ndarray  # per chunk
    flags: np.ndarray  # per chunk: the header's flags byte (memcpyed bit as planned)
    memcpyed: np.ndarray  # per chunk, bool
    nblocks: np.ndarray  # per chunk (0 for memcpyed chunks)
    # per block, chunk by chunk: owning chunk, offset in the chunk, size, shuffle (0/1/2)
    block_chunk: np.ndarray
    block_start: np.ndarray
    block_size: np.ndarray
    block_shuffle: np.ndarray
    # per stream, block by block: owning block, offset in the chunk, size
    stream_block: np.ndarray
    stream_src: np.ndarray
    stream_size: np.ndarray

    @property
    def stream_chunk(self) -> np.ndarray:
        return self.block_chunk[self.stream_block]

    def headers(self, memcpyed: np.ndarray, cbytes: np.ndarray) -> np.ndarray:
        """(n, 16) header bytes: version, versionlz, flags, typesize, nbytes, blocksize,
        cbytes (int32 little-endian)."""
        n = len(self.nbytes)
        head = np.zeros((n, 4), dtype=np.uint8)
        head[:, 0], head[:, 1] = VERSION_FORMAT, 1
        head[:, 2] = self.flags | np.where(memcpyed, _MEMCPYED, 0).astype(np.uint8)
        head[:, 3] = self.typesize
        words = np.stack([self.nbytes, self.blocksize, cbytes], axis=1).astype("<i4")
        return np.concatenate([head, words.view(np.uint8).reshape(n, 12)], axis=1)


def plan_encode(nbytes: np.ndarray, cname: str, clevel: int, shuffle: int, typesize: int,
                forced_blocksize: int = 0) -> BloscEncodePlan:
    """Blocks, shuffles and split streams of every chunk, as c-blosc 1.x's blosc_compress
    lays them out (resolved parameters: see `blosc_params`)."""
    nb = np.asarray(nbytes, dtype=np.int64)
    bad = np.flatnonzero(nb > (1 << 31) - 1 - HEADER)
    if bad.size:
        raise StageError(int(bad[0]), f"blosc: a chunk of {int(nb[bad[0]])} bytes is above "
                                      "Blosc1's 2 GiB limit")
    typesize = 1 if typesize > MAX_TYPESIZE else typesize
    blocksize = compute_blocksize(nb, cname, clevel, typesize, forced_blocksize)
    memcpyed = (nb < MIN_BUFFERSIZE) | (clevel == 0)
    split = _split_block(cname, typesize, blocksize)
    flags = (np.where(split, 0, _DONT_SPLIT) | (FORMATS[cname] << 5)
             | {0: 0, 1: _SHUFFLE, 2: _BITSHUFFLE}[shuffle]).astype(np.uint8)

    nblocks = np.where(memcpyed, 0, -(-nb // blocksize))
    block_chunk = np.repeat(np.arange(len(nb)), nblocks)
    first = np.concatenate([[0], np.cumsum(nblocks)[:-1]]).astype(np.int64)
    j = np.arange(int(nblocks.sum()), dtype=np.int64) - first[block_chunk]
    bs = blocksize[block_chunk]
    block_start = j * bs
    block_size = np.minimum(bs, nb[block_chunk] - block_start)
    leftover = block_size < bs
    if shuffle == 1:
        block_shuffle = np.full(len(j), 1 if typesize > 1 else 0)
    elif shuffle == 2:
        block_shuffle = np.where(block_size >= typesize, 2, 0)
    else:
        block_shuffle = np.zeros(len(j), dtype=np.int64)
    nsplits = np.where(split[block_chunk] & ~leftover, typesize, 1)
    stream_block = np.repeat(np.arange(len(j)), nsplits)
    sfirst = np.concatenate([[0], np.cumsum(nsplits)[:-1]]).astype(np.int64)
    k = np.arange(int(nsplits.sum()), dtype=np.int64) - sfirst[stream_block]
    neblock = (block_size // nsplits)[stream_block]
    return BloscEncodePlan(
        typesize=typesize, nbytes=nb, blocksize=blocksize, flags=flags, memcpyed=memcpyed,
        nblocks=nblocks, block_chunk=block_chunk, block_start=block_start,
        block_size=block_size, block_shuffle=block_shuffle.astype(np.int64),
        stream_block=stream_block, stream_src=block_start[stream_block] + k * neblock,
        stream_size=neblock,
    )
