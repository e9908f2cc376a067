"""Bytes-to-bytes stages (compressors, checksums) over a whole ByteBatch on the host.

Each stage decodes or encodes every item of a batch in one call: zstd through
zstandard's multi-frame C API, the others in contiguous ranges on the host
thread pool. A stage never sees store keys; it raises `StageError(index)` and
the pipeline names the key.
"""

from __future__ import annotations

import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import google_crc32c
import numpy as np
import zstandard

from cuzarr.batch import ByteBatch
from cuzarr.codecs import blosc_native
from cuzarr.codecs.blosc_frame import blosc_params, plan_frames
from cuzarr.errors import (
    BloscDecodeError,
    ChecksumError,
    ChunkDecodeError,
    GzipDecodeError,
    Lz4DecodeError,
    ZlibDecodeError,
    ZstdDecodeError,
    passes_through,
)
from cuzarr.workers import StageError, map_ranges

try:  # Intel ISA-L's inflate: the same streams as zlib, decoded 2-2.5x faster
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps working without it
    _inflate = zlib  # type: ignore[assignment]

try:  # libdeflate: standard gzip/zlib streams at zlib's levels, 3-4.5x faster, no larger
    import deflate as _libdeflate
except ImportError:  # pragma: no cover - a dependency; zlib/numcodecs serve without it
    _libdeflate = None

__all__ = [
    "BloscStage",
    "BytesStage",
    "Crc32cStage",
    "GzipStage",
    "Lz4Stage",
    "NumcodecsStage",
    "ZlibStage",
    "ZstdStage",
]


#: frames decoding to at least this many bytes are decoded in place, one call each
#: compressed bytes worth a hop to another pool thread when decoding small zstd frames
_BYTES_PER_RANGE = 32 << 10
_DIRECT_DECODE_BYTES = 1 << 18


def _gather(parts: list[Any], n: int, *, pack: bool) -> ByteBatch:
    """Per-item host outputs (in item order) as one batch."""
    if len(parts) != n:
        raise RuntimeError("stage produced a wrong number of items")
    return ByteBatch.from_buffers(parts, pack=pack)


class BytesStage(ABC):
    """One bytes->bytes codec, applied to all items of a batch."""

    name: str = "bytes-stage"
    #: what a decode failure raises (what zarr raises for this codec); None: an error that
    #: is also an instance of the codec's own exception
    error: ClassVar[type[ChunkDecodeError] | None] = None

    @abstractmethod
    def decode(self, batch: ByteBatch, expected: int | None, threads: int) -> ByteBatch:
        """Decode every item; `expected` is each item's decoded size when known."""

    @abstractmethod
    def encode(self, batch: ByteBatch, threads: int) -> ByteBatch:
        """Encode every item."""

    def _per_item(
        self, batch: ByteBatch, threads: int, fn: Any, min_items: int = 8, *, pack: bool = True
    ) -> ByteBatch:
        """Run `fn(view) -> bytes-like` over every item on the thread pool, in order.

        Encoders pass pack=False: their outputs go to the store one by one.
        """
        out: list[Any] = [None] * len(batch)

        def work(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                view = batch.item(i)
                try:
                    out[i] = fn(view)
                except StageError:
                    raise
                except Exception as e:
                    if passes_through(e):
                        raise
                    raise StageError(i, f"{self.name}: {type(e).__name__}: {e}",
                                     cause=e) from e

        map_ranges(work, len(batch), threads, min_items=_items_per_hop(batch, min_items))
        return _gather(out, len(batch), pack=pack)


#: an item this large is worth a hop to another thread on its own
_BIG_ITEM = 256 << 10


def _items_per_hop(batch: ByteBatch, small: int, decoded: int = 0) -> int:
    """Items per thread hop: `small` for small items, 1 when items (stored, or `decoded`)
    are large, so that a read of two 4 MiB chunks uses two threads."""
    if len(batch) and max(int(batch.sizes.max()), decoded) >= _BIG_ITEM:
        return 1
    return small


def _check_sizes(name: str, batch: ByteBatch, expected: int | None) -> None:
    if expected is None:
        return
    bad = np.flatnonzero(batch.sizes != expected)
    if bad.size:
        i = int(bad[0])
        raise StageError(i, f"{name}: decoded {int(batch.sizes[i])} bytes, expected {expected}")


@dataclass(frozen=True)
class ZstdStage(BytesStage):
    """Zstandard frames: small ones decoded by zstandard's multi-frame C API in ranges on
    our pool, large ones straight into their rows of the output slab."""

    level: int = 0
    checksum: bool = False
    name: str = field(default="zstd", init=False)
    error: ClassVar[type[ChunkDecodeError] | None] = ZstdDecodeError

    def decode(self, batch: ByteBatch, expected: int | None, threads: int) -> ByteBatch:
        n = len(batch)
        if n == 0:
            return batch
        if expected is not None and expected >= _DIRECT_DECODE_BYTES:
            return self._decode_into_rows(batch, expected, threads)
        slab = np.ascontiguousarray(batch.slab)
        segments = np.stack([batch.offsets, batch.sizes], axis=1).astype("<u8")
        parts: list[Any] = [None] * n
        failed: list[int] = []

        def work(lo: int, hi: int) -> None:
            """One multi-frame C call per range: zstandard's own `threads` would start new
            threads on every call (~150 us), ours are a standing pool."""
            frames = zstandard.BufferWithSegments(slab, segments[lo:hi].tobytes())
            # zstandard refuses decompressed_sizes=None: the argument is left out instead
            sizes: dict[str, Any] = {}
            if expected is not None:
                sizes["decompressed_sizes"] = np.full(hi - lo, expected, dtype="<u8").tobytes()
            try:
                result = zstandard.ZstdDecompressor().multi_decompress_to_buffer(
                    frames, threads=0, **sizes
                )
            except (zstandard.ZstdError, ValueError):  # ValueError: zstandard's argument checks
                failed.append(lo)
                return
            for i in range(lo, hi):
                parts[i] = result[i - lo]

        # the C call decodes one frame and ignores what follows it: a batch with an item
        # whose frame does not end where the item does (trailing bytes, a second frame)
        # takes the slow path, as numcodecs would refuse it
        if not np.array_equal(zstd_frame_lengths(slab, batch.offsets, batch.sizes),
                              batch.sizes):
            return self._decode_each(batch, expected, threads)
        ranges = max(1, min(threads, int(batch.sizes.sum()) // _BYTES_PER_RANGE))
        map_ranges(work, n, ranges)
        if failed:
            return self._decode_each(batch, expected, threads)
        if expected is not None:
            out = np.empty(n * expected, dtype=np.uint8)
            for i in range(n):
                part = parts[i]
                if len(part) != expected:
                    raise StageError(i, f"zstd: decoded {len(part)} bytes, expected {expected}")
                out[i * expected : (i + 1) * expected] = np.frombuffer(part, dtype=np.uint8)
            return ByteBatch.fixed(out, n, expected)
        return ByteBatch.from_buffers(parts)

    def _decode_into_rows(self, batch: ByteBatch, expected: int, threads: int) -> ByteBatch:
        """Large frames: decompress each straight into its row of the output slab."""
        from numcodecs import Zstd

        n = len(batch)
        out = np.empty(n * expected, dtype=np.uint8)
        slab, offsets, sizes = batch.slab, batch.offsets, batch.sizes
        failed: list[int] = []

        def work(lo: int, hi: int) -> None:
            codec = Zstd()
            for i in range(lo, hi):
                start = int(offsets[i])
                frame = slab[start : start + int(sizes[i])]
                try:
                    # numcodecs fills the front of a too-large `out` without complaint:
                    # a frame must declare exactly the row's size (else the slow path
                    # decodes it and reports the size it has)
                    if zstandard.get_frame_parameters(frame).content_size != expected:
                        raise ValueError("content size differs")
                    codec.decode(frame, out=out[i * expected : (i + 1) * expected])
                except Exception:
                    failed.append(i)
                    return

        map_ranges(work, n, threads)
        if failed:
            return self._decode_each(batch, expected, threads)
        return ByteBatch.fixed(out, n, expected)

    def decode_prefixes(self, batch: ByteBatch, expected: int, prefixes: np.ndarray,
                        threads: int) -> ByteBatch:
        """Each frame decoded only as far as its first `prefixes[i]` bytes (a read that
        needs the leading rows of a chunk, where the `zstd_prefix_reads` setting opts in),
        into a slab of `expected`-byte rows; the bytes past a prefix are left undefined.
        zstd decodes front to back, so a prefix costs its share of the frame. Only an item
        that is one plain frame declaring `expected` bytes, without a content checksum, is
        decoded part way; any other (a checksum to verify, no declared size, several or
        skippable frames, bytes after the frame, a walk of its blocks that does not end
        where the item does) is decoded whole and its size checked, as on a whole read."""
        n = len(batch)
        out = np.empty(n * expected, dtype=np.uint8)
        view = memoryview(out)
        slab, offsets, sizes = batch.slab, batch.offsets, batch.sizes
        walked = zstd_frame_lengths(slab, offsets, sizes,
                                    max_blocks=max(64, 2 * expected // _ZSTD_BLOCK_MAX))

        def work(lo: int, hi: int) -> None:
            dctx = _thread_decompressor()
            for i in range(lo, hi):
                start = int(offsets[i])
                frame = slab[start : start + int(sizes[i])]
                row = view[i * expected : (i + 1) * expected]
                want = int(prefixes[i])
                try:
                    plain = walked[i] == len(frame)
                    if plain:
                        params = zstandard.get_frame_parameters(frame)
                        plain = params.content_size == expected and not params.has_checksum
                    if not plain:
                        data = _zstd_whole(frame)
                        if len(data) != expected:
                            raise StageError(i, f"zstd: decoded {len(data)} bytes, "
                                                f"expected {expected}")
                        row[:] = data
                    elif want > 0:
                        reader = dctx.stream_reader(frame, read_size=len(frame))
                        if reader.readinto(row[:want]) != want:
                            raise ValueError("truncated frame")
                except StageError:
                    raise
                except Exception as e:
                    raise StageError(i, f"zstd: corrupt frame ({type(e).__name__}: {e})") from e

        map_ranges(work, n, threads, min_items=_items_per_hop(batch, 8, expected))
        return ByteBatch.fixed(out, n, expected)

    def _decode_each(self, batch: ByteBatch, expected: int | None, threads: int) -> ByteBatch:
        """Slow path: one frame at a time, to find and name the bad item (or frames without
        a content size)."""

        out = self._per_item(batch, threads, _zstd_whole)
        _check_sizes(self.name, out, expected)
        return out

    def encode(self, batch: ByteBatch, threads: int) -> ByteBatch:
        n = len(batch)
        if n == 0:
            return batch
        if int(batch.sizes.max()) >= _DIRECT_DECODE_BYTES or bool((batch.sizes == 0).any()):
            from numcodecs import Zstd

            codec = Zstd(level=self.level, checksum=self.checksum)
            return self._per_item(batch, threads, codec.encode, min_items=1, pack=False)
        compressor = zstandard.ZstdCompressor(
            level=self.level, write_checksum=self.checksum, write_content_size=True
        )
        packed = batch.packed()
        segments = np.stack([packed.offsets, packed.sizes], axis=1).astype("<u8")
        result = compressor.multi_compress_to_buffer(
            zstandard.BufferWithSegments(np.ascontiguousarray(packed.slab), segments.tobytes()),
            threads=min(threads, n),
        )
        return ByteBatch.from_buffers([result[i] for i in range(n)], pack=False)


_local = threading.local()


def _thread_decompressor() -> zstandard.ZstdDecompressor:
    """This thread's zstd decompressor: its context keeps its window buffers between
    frames, instead of allocating (and faulting in) new ones for every read."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def _zstd_whole(view: Any) -> bytes:
    """Whole zstd frames (any content size, checksums verified where present). Like
    numcodecs (zarr), an item of several frames decodes to all of them, and bytes after
    the last frame that are not a frame are an error, not ignored."""
    parts, data = [], view
    while True:
        dobj = zstandard.ZstdDecompressor().decompressobj()
        try:
            parts.append(dobj.decompress(data))
        except zstandard.ZstdError as e:
            raise ValueError(f"corrupt frame ({e})") from e
        if not dobj.eof:
            raise ValueError("truncated frame")
        data = dobj.unused_data
        if not data:
            return parts[0] if len(parts) == 1 else b"".join(parts)


_ZSTD_MAGIC = 0xFD2FB528
_DICT_ID_BYTES = np.array([0, 1, 2, 4], dtype=np.int64)


#: the most a zstd block decodes to (RFC 8878 3.1.1.2.4)
_ZSTD_BLOCK_MAX = 128 << 10


def zstd_frame_lengths(slab: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                       max_blocks: int = 64) -> np.ndarray:
    """The length each item's first zstd frame spans (header, blocks, checksum; RFC 8878
    3.1.1), for the whole batch at once in numpy: one pass per block, not per item. An
    item that is not a well-formed frame, or whose headers run past its end, gets a length
    that differs from its size (size + 1), and so does one with more than `max_blocks`
    blocks (the walk is bounded: a frame zero-filled after its header is a run of empty
    raw blocks; whoever sees a length other than the size decodes the item whole, which
    zstd itself does at C speed)."""
    n = len(sizes)
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    lengths = sizes + 1
    ok = sizes >= 6  # magic, descriptor, one block header at least

    def byte(at: np.ndarray) -> np.ndarray:
        """slab[offsets + at], 0 where that lies past an item's end."""
        inside = at < sizes
        out = np.zeros(n, dtype=np.int64)
        out[inside] = slab[(offsets + at)[inside]]
        return out

    zero = np.zeros(n, dtype=np.int64)
    magic = byte(zero) | byte(zero + 1) << 8 | byte(zero + 2) << 16 | byte(zero + 3) << 24
    ok &= magic == _ZSTD_MAGIC
    descriptor = byte(zero + 4)
    single = (descriptor >> 5) & 1
    fcs_flag = descriptor >> 6
    fcs_bytes = np.where(fcs_flag == 0, single, 1 << fcs_flag)
    at = 5 + (1 - single) + _DICT_ID_BYTES[descriptor & 3] + fcs_bytes
    checksum = (descriptor >> 2) & 1
    ok &= (descriptor & 8) == 0  # reserved bit
    active = ok.copy()
    for _ in range(max_blocks):
        if not active.any():
            break
        ok &= ~active | (at + 3 <= sizes)
        active &= ok
        header = byte(at) | byte(at + 1) << 8 | byte(at + 2) << 16
        kind = (header >> 1) & 3
        ok &= ~active | (kind != 3)
        active &= ok
        at = np.where(active, at + 3 + np.where(kind == 1, 1, header >> 3), at)
        active &= (header & 1) == 0
    ok &= ~active  # still walking after max_blocks blocks
    at += 4 * checksum
    lengths[ok] = at[ok]
    return lengths


def _gunzip(view: Any) -> bytes:
    """gzip data read as Python's gzip module (numcodecs' GZip, so zarr) reads it: members
    one after another, the zero bytes that may pad a member skipped; after a member comes
    another member or the end."""
    data: Any = view
    parts = []
    while len(data):
        dobj = _inflate.decompressobj(wbits=31)
        parts.append(dobj.decompress(data))
        if not dobj.eof:
            raise ValueError("the stream ends before its end-of-stream marker")
        data = dobj.unused_data.lstrip(b"\0")
        if len(data) and data[:2] != b"\x1f\x8b":
            raise ValueError(f"bytes after a gzip member are not a gzip member "
                             f"({bytes(data[:2])!r})")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _libdeflate_encoder(name: str, level: int) -> Callable[[Any], bytes] | None:
    """libdeflate's `name` ("gzip_compress" or "zlib_compress") at `level`; None where
    libdeflate is missing or the level is outside 1-9, and zlib serves."""
    if _libdeflate is None or not 1 <= level <= 9:
        return None
    compress = getattr(_libdeflate, name)
    return lambda view: bytes(compress(view, level))  # its bytearray -> bytes for the store


def _unzlib(view: Any) -> bytes:
    return _inflate.decompress(view)


@dataclass(frozen=True)
class GzipStage(BytesStage):
    """gzip members, as numcodecs.GZip writes them."""

    level: int = 5
    name: str = field(default="gzip", init=False)
    error: ClassVar[type[ChunkDecodeError] | None] = GzipDecodeError

    def decode(self, batch: ByteBatch, expected: int | None, threads: int) -> ByteBatch:
        out = self._per_item(batch, threads, _gunzip)
        _check_sizes(self.name, out, expected)
        return out

    def encode(self, batch: ByteBatch, threads: int) -> ByteBatch:
        from numcodecs import GZip

        one = _libdeflate_encoder("gzip_compress", self.level) or GZip(self.level).encode
        return self._per_item(batch, threads, one, pack=False)


@dataclass(frozen=True)
class ZlibStage(BytesStage):
    """zlib streams (numcodecs.Zlib)."""

    level: int = 1
    name: str = field(default="zlib", init=False)
    error: ClassVar[type[ChunkDecodeError] | None] = ZlibDecodeError

    def decode(self, batch: ByteBatch, expected: int | None, threads: int) -> ByteBatch:
        out = self._per_item(batch, threads, _unzlib)
        _check_sizes(self.name, out, expected)
        return out

    def encode(self, batch: ByteBatch, threads: int) -> ByteBatch:
        level = self.level
        one = _libdeflate_encoder("zlib_compress", level) or (lambda v: zlib.compress(v, level))
        return self._per_item(batch, threads, one, pack=False)


@dataclass(frozen=True)
class Crc32cStage(BytesStage):
    """A 4-byte little-endian CRC32C appended to the data (zarr's crc32c codec)."""

    verify: bool = True
    name: str = field(default="crc32c", init=False)

    def decode(self, batch: ByteBatch, expected: int | None, threads: int) -> ByteBatch:
        short = np.flatnonzero(batch.sizes < 4)
        if short.size:
            raise StageError(int(short[0]), "crc32c: item shorter than its 4-byte checksum")
        if self.verify:
            slab, offsets, sizes = batch.slab, batch.offsets, batch.sizes

            def work(lo: int, hi: int) -> None:
                for i in range(lo, hi):
                    start, end = int(offsets[i]), int(offsets[i] + sizes[i])
                    stored = int.from_bytes(slab[end - 4 : end].tobytes(), "little")
                    if google_crc32c.value(slab[start : end - 4]) != stored:
                        raise StageError(i, "crc32c checksum mismatch", family=ChecksumError)

            map_ranges(work, len(batch), threads, min_items=64)
        out = ByteBatch(batch.slab, batch.offsets, batch.sizes - 4)
        _check_sizes(self.name, out, expected)
        return out

    def encode(self, batch: ByteBatch, threads: int) -> ByteBatch:
        def one(view: Any) -> bytes:
            crc = google_crc32c.value(view)
            return bytes(view) + int(crc).to_bytes(4, "little")

        return self._per_item(batch, threads, one, min_items=64, pack=False)


_BLOSC_HEADER = 16


@dataclass(frozen=True)
class BloscStage(BytesStage):
    """Blosc1 chunks; headers validated for the whole batch in numpy, then c-blosc per item."""

    codec: Any  # numcodecs.Blosc
    name: str = field(default="blosc", init=False)
    error: ClassVar[type[ChunkDecodeError] | None] = BloscDecodeError

    def _headers(self, batch: ByteBatch) -> tuple[np.ndarray, np.ndarray]:
        short = np.flatnonzero(batch.sizes < _BLOSC_HEADER)
        if short.size:
            raise StageError(int(short[0]), "blosc: item shorter than the 16-byte header")
        idx = batch.offsets[:, None] + np.arange(_BLOSC_HEADER)[None, :]
        header = np.asarray(batch.slab[idx.ravel()]).reshape(-1, _BLOSC_HEADER)
        words = np.ascontiguousarray(header[:, 4:16]).view("<i4").reshape(-1, 3)
        nbytes, cbytes = words[:, 0].astype(np.int64), words[:, 2].astype(np.int64)
        # c-blosc reads a chunk for the length its header declares: bytes after that
        # (padding) are ignored, as zarr's numcodecs call ignores them
        bad = np.flatnonzero(cbytes > batch.sizes)
        if bad.size:
            i = int(bad[0])
            raise StageError(
                i, f"blosc: header says {int(cbytes[i])} compressed bytes, item has "
                f"{int(batch.sizes[i])} (truncated or corrupt)"
            )
        return nbytes, cbytes

    def decode(self, batch: ByteBatch, expected: int | None, threads: int) -> ByteBatch:
        n = len(batch)
        if n == 0:
            return batch
        nbytes, _ = self._headers(batch)
        if expected is not None:
            _check_declared(nbytes, expected)
        offsets = np.zeros(n, dtype=np.int64)
        np.cumsum(nbytes[:-1], out=offsets[1:])
        out = np.empty(int(nbytes.sum()), dtype=np.uint8)
        slab, src_off, src_size = batch.slab, batch.offsets, batch.sizes
        codec = self.codec

        def numcodecs_work(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                s, d = int(src_off[i]), int(offsets[i])
                try:
                    codec.decode(slab[s : s + int(src_size[i])], out=out[d : d + int(nbytes[i])])
                except Exception as e:
                    raise StageError(i, f"blosc: {e}") from e

        work = numcodecs_work
        if blosc_native.DECOMPRESS is not None and isinstance(slab, np.ndarray):
            work = _native_blosc_decode(np.ascontiguousarray(slab), src_off, out, offsets,
                                        nbytes)
        map_ranges(work, n, threads, min_items=_items_per_hop(batch, 4, int(nbytes.max())))
        return ByteBatch(out, offsets, nbytes)

    def decode_windows(self, batch: ByteBatch, expected: int, windows: np.ndarray,
                       threads: int) -> ByteBatch:
        """Bytes windows[i, 0]:windows[i, 1] of each chunk decoded into that part of its
        `expected`-byte row of one slab, the rest of the row left undefined: c-blosc's
        getitem decodes only the blocks the window lies in (a patch of a few rows of a
        4 MiB chunk decodes a quarter of it or less). Every chunk's frame is checked first
        (plan_frames: header, block table, stream sizes), so getitem only reads inside the
        chunk; a chunk whose geometry does not hold together (a split block its streams do
        not cover, blocks that do not tile the payload: what a lying header looks like),
        and a window that is not whole items of the chunk's typesize, is decoded whole, so
        that c-blosc checks every block of it."""
        n = len(batch)
        getitem, decompress = blosc_native.GETITEM, blosc_native.DECOMPRESS
        if n == 0 or getitem is None or decompress is None or not isinstance(batch.slab,
                                                                             np.ndarray):
            return self.decode(batch, expected, threads)
        slab = np.ascontiguousarray(batch.slab)
        plan = plan_frames(slab, batch.offsets, batch.sizes, expected)
        out = np.empty(n * expected, dtype=np.uint8)
        src_base, dst_base = slab.ctypes.data, out.ctypes.data
        starts, typesizes = batch.offsets.tolist(), plan.typesize.tolist()
        lows, highs = windows[:, 0].tolist(), windows[:, 1].tolist()
        sound = plan.sound.tolist()

        def work(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                low, high, ts = lows[i], highs[i], typesizes[i]
                src, dst = src_base + starts[i], dst_base + i * expected
                if high <= low:
                    continue
                if (not sound[i] or (low == 0 and high == expected) or low % ts
                        or high % ts):
                    ret, want = decompress(src, dst, expected, 1), expected
                else:
                    ret, want = getitem(src, low // ts, (high - low) // ts, dst + low), high - low
                if ret != want:
                    raise StageError(i, f"blosc: error during blosc decompression: {ret}")

        map_ranges(work, n, threads, min_items=_items_per_hop(batch, 4, expected))
        return ByteBatch.fixed(out, n, expected)

    def encode(self, batch: ByteBatch, threads: int) -> ByteBatch:
        from numcodecs.blosc import list_compressors

        # numcodecs' own call where c-blosc was not found, for items held apart, and for a
        # compressor this build lacks (numcodecs' error names it)
        if (blosc_native.COMPRESS is None or batch.parts is not None
                or not isinstance(batch.slab, np.ndarray)
                or self.codec.get_config().get("cname") not in list_compressors()):
            return self._per_item(batch, threads, self.codec.encode, min_items=4, pack=False)
        return self._encode_native(batch, threads)

    def _encode_native(self, batch: ByteBatch, threads: int) -> ByteBatch:
        """Every item compressed by c-blosc straight into its slot of one output slab (room
        for the item plus c-blosc's overhead), with the arguments numcodecs passes for a
        bytes item (`blosc_params`): one ctypes call per item, the GIL released for each,
        so two threads are not kept waiting for each other's Python."""
        cname_str, clevel, shuffle, typesize, blocksize = blosc_params(self.codec)
        cname, compress = cname_str.encode(), blosc_native.COMPRESS
        slab = np.ascontiguousarray(batch.slab)
        room = batch.sizes + blosc_native.MAX_OVERHEAD
        out_offsets = np.zeros(len(batch), dtype=np.int64)
        np.cumsum(room[:-1], out=out_offsets[1:])
        out = np.empty(int(room.sum()), dtype=np.uint8)
        src_base, dst_base = slab.ctypes.data, out.ctypes.data
        starts, sizes = batch.offsets.tolist(), batch.sizes.tolist()
        dests, rooms = out_offsets.tolist(), room.tolist()
        written = [0] * len(batch)

        def work(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                cbytes = compress(clevel, shuffle, typesize, sizes[i], src_base + starts[i],
                                  dst_base + dests[i], rooms[i], cname, blocksize, 1)
                if cbytes <= 0:
                    raise StageError(i, f"blosc: error during blosc compression: {cbytes}")
                written[i] = cbytes

        map_ranges(work, len(batch), threads, min_items=_items_per_hop(batch, 4))
        # like every encoder's, the items go out as separate buffers (views of the slab)
        parts = [out[d : d + w] for d, w in zip(dests, written, strict=True)]
        return _gather(parts, len(batch), pack=False)


def _check_declared(nbytes: np.ndarray, expected: int) -> None:
    """StageError for the first blosc chunk whose header declares other than `expected`."""
    bad = np.flatnonzero(nbytes != expected)
    if bad.size:
        i = int(bad[0])
        raise StageError(i, f"blosc: header says {int(nbytes[i])} bytes, expected {expected}")


def _native_blosc_decode(
    slab: np.ndarray, src_offsets: np.ndarray, out: np.ndarray, offsets: np.ndarray,
    nbytes: np.ndarray,
) -> Callable[[int, int], None]:
    """`work(lo, hi)` decoding items lo..hi-1 with c-blosc's own function (blosc_native):
    the GIL is released for each whole call. The headers were checked first (cbytes is the
    item's size), so c-blosc reads only the item and writes only its row of `out`."""
    decompress = blosc_native.DECOMPRESS
    src_base, dst_base = slab.ctypes.data, out.ctypes.data
    starts, dests, sizes = src_offsets.tolist(), offsets.tolist(), nbytes.tolist()

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            size = sizes[i]
            ret = decompress(src_base + starts[i], dst_base + dests[i], size, 1)
            if ret <= 0 or ret != size:
                raise StageError(i, f"blosc: error during blosc decompression: {ret}")

    return work


@dataclass(frozen=True)
class NumcodecsStage(BytesStage):
    """Any other numcodecs bytes codec, run per item on the thread pool."""

    codec: Any
    name: str = field(default="numcodecs", init=False)

    def decode(self, batch: ByteBatch, expected: int | None, threads: int) -> ByteBatch:
        out = self._per_item(batch, threads, self.codec.decode)
        _check_sizes(f"numcodecs.{self.codec.codec_id}", out, expected)
        return out

    def encode(self, batch: ByteBatch, threads: int) -> ByteBatch:
        return self._per_item(batch, threads, self.codec.encode, pack=False)


LZ4_PREFIX = 4


@dataclass(frozen=True)
class Lz4Stage(NumcodecsStage):
    """numcodecs.LZ4: a 4-byte little-endian decoded size, then one raw LZ4 block. Its own
    stage so that devices can see the format (the cuda device sends the blocks to nvCOMP);
    on the host it is numcodecs per item, like any numcodecs codec."""

    name: str = field(default="lz4", init=False)
    error: ClassVar[type[ChunkDecodeError] | None] = Lz4DecodeError

    @staticmethod
    def declared_sizes(heads: np.ndarray, sizes: np.ndarray, expected: int | None
                       ) -> np.ndarray:
        """The decoded size each item's prefix declares, checked against the item and
        `expected`; heads: (n, 4) first bytes of each item. StageError(i) for a bad item."""
        short = np.flatnonzero(sizes < LZ4_PREFIX)
        if short.size:
            raise StageError(int(short[0]), "lz4: item shorter than its 4-byte size prefix")
        declared = np.ascontiguousarray(heads[:, :LZ4_PREFIX]).view("<u4").reshape(-1)
        declared = declared.astype(np.int64)
        if expected is not None:
            bad = np.flatnonzero(declared != expected)
            if bad.size:
                i = int(bad[0])
                raise StageError(i, f"lz4: prefix declares {int(declared[i])} bytes, "
                                    f"expected {expected}")
        return declared
