"""CodecPipeline.decode / encode (bytes in hand): batched, and equal to zarr's pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, TransposeCodec, ZstdCodec
from zarr.core.array_spec import ArrayConfig, ArraySpec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.buffer.cpu import NDBuffer
from zarr.core.codec_pipeline import BatchedCodecPipeline
from zarr.core.dtype import Float64
from zarr.core.sync import sync

from cuzarr import PhasedCodecPipeline

CHAINS = {
    "bytes": [BytesCodec()],
    "transpose-zstd": [TransposeCodec(order=(1, 0)), BytesCodec(), ZstdCodec()],
    "big-gzip-crc": [BytesCodec(endian="big"), GzipCodec(), Crc32cCodec()],
    "blosc": [BytesCodec(), BloscCodec(cname="lz4", shuffle="shuffle", typesize=8)],
}


def _spec() -> ArraySpec:
    return ArraySpec(
        shape=(6, 5),
        dtype=Float64(),
        fill_value=0.0,
        config=ArrayConfig(order="C", write_empty_chunks=False),
        prototype=default_buffer_prototype(),
    )


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_decode_encode_match_zarr(name: str) -> None:
    spec = _spec()
    ours = PhasedCodecPipeline.from_codecs(CHAINS[name]).evolve_from_array_spec(spec)
    theirs = BatchedCodecPipeline.from_codecs(CHAINS[name]).evolve_from_array_spec(spec)
    rng = np.random.default_rng(1)
    arrays = [NDBuffer.from_numpy_array(rng.random((6, 5))) for _ in range(5)]
    items = [(a, spec) for a in arrays] + [(None, spec)]
    encoded_ours = list(sync(ours.encode(items)))
    encoded_theirs = list(sync(theirs.encode(items)))
    assert encoded_ours[-1] is None
    decoded = list(sync(theirs.decode([(b, spec) for b in encoded_ours])))
    back = list(sync(ours.decode([(b, spec) for b in encoded_theirs])))
    for original, a, b in zip(arrays, decoded, back, strict=False):
        np.testing.assert_array_equal(a.as_numpy_array(), original.as_numpy_array())
        np.testing.assert_array_equal(b.as_numpy_array(), original.as_numpy_array())
    assert back[-1] is None
