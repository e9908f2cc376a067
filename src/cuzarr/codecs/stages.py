"""Map zarr and numcodecs codec objects to batched bytes stages."""

from __future__ import annotations

from typing import Any

from cuzarr.codecs.bytes_to_bytes import (
    BloscStage,
    BytesStage,
    Crc32cStage,
    GzipStage,
    Lz4Stage,
    NumcodecsStage,
    ZlibStage,
    ZstdStage,
)

__all__ = ["numcodec_stage", "zarr_bytes_stage"]


def numcodec_stage(codec: Any, *, verify_checksums: bool, itemsize: int | None = None
                   ) -> BytesStage:
    """The batched stage for a numcodecs codec (a v2 compressor, or a wrapped v3 codec).

    `itemsize`: a v2 compressor's input item size. zarr v2 hands a compressor the chunk as
    an array of its dtype, and Blosc shuffles with that item size; our stages see bytes.
    """
    import numcodecs

    config = codec.get_config()
    codec_id = config.get("id")
    # only numcodecs' own classes take a batched stage: a subclass decodes its own way
    known = {"zstd": numcodecs.Zstd, "gzip": numcodecs.GZip, "zlib": numcodecs.Zlib,
             "blosc": numcodecs.Blosc, "lz4": numcodecs.LZ4}
    if type(codec) is not known.get(codec_id):
        return NumcodecsStage(codec)
    if codec_id == "zstd":
        return ZstdStage(level=int(config.get("level", 0)), checksum=bool(config.get("checksum")))
    if codec_id == "gzip":
        return GzipStage(level=int(config.get("level", 1)))
    if codec_id == "zlib":
        return ZlibStage(level=int(config.get("level", 1)))
    if codec_id == "blosc":
        return BloscStage(_blosc_with_typesize(codec, itemsize))
    if codec_id == "lz4":
        return Lz4Stage(codec)
    return NumcodecsStage(codec)


def _blosc_with_typesize(codec: Any, itemsize: int | None) -> Any:
    """A numcodecs.Blosc that shuffles bytes as zarr v2's call shuffles the chunk's items:
    with `itemsize` as its typesize (unless the codec names its own). Without it, a float32
    chunk is shuffled as bytes, and compresses several times worse than zarr's own."""
    if itemsize is None or getattr(codec, "_typesize", None):
        return codec
    from numcodecs import Blosc

    config = {k: v for k, v in codec.get_config().items() if k != "id"}
    return Blosc(**config, typesize=itemsize)


def zarr_bytes_stage(codec: Any, spec: Any, *, verify_checksums: bool) -> BytesStage | None:
    """The batched stage for one of zarr's BytesBytesCodecs (its exact classes only: a
    subclass, which may encode its own way, runs through its own methods); None for a codec
    without one (the chain then runs through zarr's ChunkTransform, which also keeps zarr's
    rules for a codec that elides a chunk)."""
    from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, ZstdCodec

    kind = type(codec)
    if kind is ZstdCodec:
        return ZstdStage(level=codec.level, checksum=codec.checksum)
    if kind is GzipCodec:
        return GzipStage(level=codec.level)
    if kind is BloscCodec:
        return BloscStage(codec._blosc_codec)
    if kind is Crc32cCodec:
        return Crc32cStage(verify=verify_checksums)
    numcodec = getattr(codec, "_codec", None)
    if (kind.__module__.startswith("zarr.codecs.numcodecs") and numcodec is not None
            and hasattr(numcodec, "get_config")):
        return numcodec_stage(numcodec, verify_checksums=verify_checksums)
    return None
