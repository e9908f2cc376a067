"""Interoperability with tensorstore, an independent zarr implementation.

Arrays written by the pipeline under test must be readable by tensorstore (``zarr3`` / ``zarr``
drivers) and equal the numpy source, including never-written and emptied chunks (fill value).
The reverse direction is checked as well: chunks written by tensorstore into an array created
by zarr must decode identically through the pipeline under test and the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)
from zarr.storage import LocalStore

from parity import (
    ORACLE_PIPELINE,
    SEQUENCES_BY_ID,
    StoreFactory,
    apply_ops,
    assert_equal_values,
    assert_same_array,
    create_with,
    fill_array,
    random_data,
    read_with,
    store_keys,
    using_pipeline,
)

ts = pytest.importorskip("tensorstore")


@dataclass(frozen=True)
class TsCase:
    """A configuration tensorstore can read."""

    id: str
    kwargs: dict[str, Any]
    dtype: str = "int32"
    shape: tuple[int, ...] = (23, 29)
    fill_value: Any = field(default=None)

    @property
    def driver(self) -> str:
        """tensorstore driver name for this zarr format."""
        return "zarr" if self.kwargs.get("zarr_format") == 2 else "zarr3"

    def create_kwargs(self) -> dict[str, Any]:
        """``zarr.create_array`` keyword arguments."""
        out: dict[str, Any] = {"shape": self.shape, "dtype": self.dtype, "chunks": (8, 7)}
        if self.kwargs.get("zarr_format") != 2:
            out |= {"filters": None, "compressors": None, "serializer": BytesCodec()}
        if self.fill_value is not None:
            out["fill_value"] = self.fill_value
        return out | self.kwargs


def _shard(index_location: str, codecs: list[Any]) -> dict[str, Any]:
    return {
        "shape": (35, 45),
        "chunks": (16, 20),
        "serializer": ShardingCodec(
            chunk_shape=(8, 5), codecs=codecs, index_location=index_location
        ),
    }


CASES = (
    TsCase("v3-bytes", {}),
    TsCase("v3-bytes-big", {"serializer": BytesCodec(endian="big")}, dtype="float64"),
    TsCase("v3-zstd", {"compressors": [ZstdCodec(level=1)]}, dtype="int64"),
    TsCase("v3-zstd-checksum", {"compressors": [ZstdCodec(level=3, checksum=True)]}),
    TsCase("v3-gzip", {"compressors": [GzipCodec(level=5)]}, dtype="uint16"),
    TsCase(
        "v3-blosc-lz4-bitshuffle",
        {"compressors": [BloscCodec(cname="lz4", shuffle="bitshuffle")]},
        dtype="float32",
    ),
    TsCase(
        "v3-blosc-zstd-shuffle",
        {"compressors": [BloscCodec(cname="zstd", shuffle="shuffle")]},
        dtype="complex64",
    ),
    TsCase("v3-crc32c", {"compressors": [Crc32cCodec()]}, dtype="int8"),
    TsCase("v3-transpose", {"filters": [TransposeCodec(order=(1, 0))]}, dtype="float64"),
    TsCase("v3-bool-true-fill", {"compressors": [ZstdCodec()]}, dtype="bool", fill_value=True),
    TsCase(
        "v3-float-nan-fill",
        {"compressors": [ZstdCodec()]},
        dtype="float32",
        fill_value=float("nan"),
    ),
    TsCase("v3-shard-start-fixed", _shard("start", [BytesCodec()])),
    TsCase("v3-shard-end-fixed", _shard("end", [BytesCodec()]), dtype="uint16"),
    TsCase(
        "v3-shard-start-zstd-crc",
        _shard("start", [BytesCodec(), ZstdCodec(level=1), Crc32cCodec()]),
        dtype="float64",
    ),
    TsCase(
        "v3-shard-end-transpose-gzip",
        _shard("end", [TransposeCodec(order=(1, 0)), BytesCodec(endian="big"), GzipCodec()]),
    ),
    TsCase("v3-shards-arg", {"shape": (35, 45), "chunks": (8, 5), "shards": (16, 20)}),
    TsCase(
        "v3-shard-nested",
        {
            "shape": (35, 45),
            "chunks": (16, 20),
            "serializer": ShardingCodec(
                chunk_shape=(8, 10),
                codecs=[ShardingCodec(chunk_shape=(4, 5), codecs=[BytesCodec(), ZstdCodec()])],
            ),
        },
    ),
    TsCase("v2-none", {"zarr_format": 2, "compressors": None, "filters": None}),
    TsCase(
        "v2-blosc",
        {"zarr_format": 2, "compressors": numcodecs.Blosc(cname="lz4", shuffle=2)},
        dtype="float64",
    ),
    TsCase("v2-zstd", {"zarr_format": 2, "compressors": numcodecs.Zstd(level=1)}, dtype="int64"),
    TsCase("v2-zlib", {"zarr_format": 2, "compressors": numcodecs.Zlib(level=1)}),
    TsCase(
        "v2-order-F-blosc",
        {"zarr_format": 2, "order": "F", "compressors": numcodecs.Blosc(cname="zstd")},
        dtype="uint16",
    ),
    TsCase(
        "v2-bigendian-f8",
        {"zarr_format": 2, "compressors": numcodecs.Zstd(level=1)},
        dtype=">f8",
    ),
)


def ts_read(driver: str, path: Path) -> np.ndarray:
    """Read a whole zarr array from ``path`` with tensorstore."""
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}
    return np.asarray(ts.open(spec, open=True).result().read().result())


@pytest.mark.parametrize("seq_id", ["full", "overlapping", "fill-region"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_tensorstore_reads_pipeline_output(
    case: TsCase, seq_id: str, tmp_path: Path, test_pipeline: str
) -> None:
    """tensorstore reads what the pipeline under test wrote, equal to the numpy source."""
    path = tmp_path / "array"
    path.mkdir()
    kwargs = case.create_kwargs() | {"config": {"write_empty_chunks": False}}
    store = LocalStore(path)
    arr = create_with(test_pipeline, store, **kwargs)
    ops = SEQUENCES_BY_ID[seq_id].build(
        kwargs["shape"], case.dtype, arr.fill_value, np.random.default_rng(2)
    )
    with using_pipeline(test_pipeline):
        apply_ops(arr, ops)
    expected = fill_array(kwargs["shape"], case.dtype, arr.fill_value)
    apply_ops(expected, ops)

    got = ts_read(case.driver, path)
    assert_equal_values(got, expected, "tensorstore read of pipeline output")
    if seq_id != "full":
        assert store_keys(store), "sequence should leave chunks behind"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_pipeline_reads_tensorstore_output(
    case: TsCase, store_factory: StoreFactory, tmp_path: Path, test_pipeline: str
) -> None:
    """Chunks written by tensorstore decode the same through the pipeline and the oracle."""
    store = store_factory(name="ts-written")
    arr = create_with(ORACLE_PIPELINE, store, **case.create_kwargs())
    shape = arr.shape
    rng = np.random.default_rng(4)
    data = random_data(shape, case.dtype, rng)
    region = tuple(slice(2, n - 3) for n in shape)
    spec = {"driver": case.driver, "kvstore": {"driver": "file", "path": str(store.root)}}
    handle = ts.open(spec, open=True).result()
    handle[region].write(data[region]).result()
    expected = fill_array(shape, case.dtype, arr.fill_value)
    expected[region] = data[region]

    got = read_with(test_pipeline, store)
    assert_equal_values(got, expected, "pipeline read of tensorstore output")
    assert_same_array(got, read_with(ORACLE_PIPELINE, store), "pipeline vs oracle")
