"""Shared helpers for the parity suite: pipeline selection, store access, data, write sequences.

Every test compares the codec pipeline under test (``$CUZARR_TEST_PIPELINE``, default
``cuzarr.PhasedCodecPipeline``) with zarr's default ``BatchedCodecPipeline`` (the oracle) and/or
with plain numpy. Pipelines are chosen with ``zarr.config.set`` around each array construction:
zarr binds the pipeline when an ``AsyncArray`` is built (``create``, ``open``, ``resize``), so
every operation on an array runs inside :func:`using_pipeline` for its pipeline.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numcodecs
import numpy as np
import numpy.typing as npt
import zarr
import zarr.registry
from zarr.abc.codec import CodecPipeline
from zarr.abc.store import Store
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    VLenUTF8Codec,
    ZstdCodec,
)
from zarr.codecs import numcodecs as zarr_numcodecs
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore, MemoryStore

ENV_VAR = "CUZARR_TEST_PIPELINE"
DEFAULT_TEST_PIPELINE = "cuzarr.PhasedCodecPipeline"
ORACLE_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"
METADATA_NAMES = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})

StoreFactory = Callable[..., Store]
"""``store_factory(kind="local", name=None) -> Store`` (the fixture in ``conftest.py``)."""

Selection = Any
"""Anything ``Array.__getitem__`` / ``__setitem__`` accepts (slices, ints, tuples, Ellipsis)."""


# --------------------------------------------------------------------------------------------
# pipeline selection
# --------------------------------------------------------------------------------------------


def pipeline_under_test() -> str:
    """The dotted path of the pipeline under test (``$CUZARR_TEST_PIPELINE``)."""
    return os.environ.get(ENV_VAR, "").strip() or DEFAULT_TEST_PIPELINE


def load_pipeline_class(path: str) -> type[CodecPipeline]:
    """Import ``package.module.Class`` (or ``package.Class``) and return the class."""
    module_name, _, attr = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, CodecPipeline)):
        raise TypeError(f"{path} is not a zarr CodecPipeline subclass: {cls!r}")
    return cls


def ensure_registered(path: str) -> type[CodecPipeline]:
    """Make ``path`` resolvable by ``zarr.config`` and return its class.

    zarr registers entry-point pipelines under ``module.qualname``; if the pipeline is only
    importable under another name (e.g. the package re-export ``cuzarr.PhasedCodecPipeline``)
    it is registered under ``path`` here. Whether zarr finds it *without* this help is checked
    separately by ``test_pipeline_selectable_by_config_path``.
    """
    cls = load_pipeline_class(path)
    registry = zarr.registry._pipeline_registry
    registry.lazy_load()
    if registry.get(path) is not cls:
        registry.register(cls, qualname=path)
    return cls


@contextmanager
def using_pipeline(path: str) -> Iterator[type[CodecPipeline]]:
    """Context manager: arrays built inside use the pipeline at ``path``."""
    cls = ensure_registered(path)
    with zarr.config.set({"codec_pipeline.path": path}):
        yield cls


def pipeline_of(arr: zarr.Array) -> CodecPipeline:
    """The codec pipeline bound to a (synchronous) zarr array."""
    return arr._async_array.codec_pipeline


def check_pipeline(arr: zarr.Array, path: str) -> None:
    """Assert that ``arr`` really runs the pipeline at ``path`` (no silent fallback)."""
    cls = load_pipeline_class(path)
    actual = pipeline_of(arr)
    if path == ORACLE_PIPELINE:  # exactly zarr's, not a subclass under test
        assert type(actual) is cls, f"oracle array uses {type(actual)!r}"
    assert isinstance(actual, cls), f"expected a {path} pipeline, array uses {type(actual)!r}"


def create_with(path: str, store: Store, **kwargs: Any) -> zarr.Array:
    """``zarr.create_array(store, **kwargs)`` with the pipeline at ``path``."""
    with using_pipeline(path):
        arr = zarr.create_array(store, **kwargs)
    check_pipeline(arr, path)
    return arr


def open_with(path: str, store: Store, mode: str = "r") -> zarr.Array:
    """Open the array at the root of ``store`` with the pipeline at ``path``."""
    with using_pipeline(path):
        arr = zarr.open_array(store, mode=mode)
    check_pipeline(arr, path)
    return arr


def read_with(path: str, store: Store, selection: Selection = Ellipsis) -> Any:
    """Read ``selection`` of the array in ``store`` with the pipeline at ``path``."""
    arr = open_with(path, store)
    with using_pipeline(path):
        return arr[selection]


# --------------------------------------------------------------------------------------------
# stores
# --------------------------------------------------------------------------------------------


class AsyncOnlyMemoryStore(MemoryStore):
    """A MemoryStore that declines synchronous IO, as remote stores do.

    Pipelines must then take their async paths (concurrent `get`/`set`).
    """

    _supports_sync_io = False


def make_store(kind: str, root: os.PathLike[str] | str | None = None) -> Store:
    """A fresh store: ``"local"`` (a ``LocalStore`` at ``root``), ``"memory"``, or
    ``"async-memory"`` (a MemoryStore without sync IO)."""
    if kind == "local":
        assert root is not None, "a LocalStore needs a directory"
        return LocalStore(root)
    if kind == "memory":
        return MemoryStore()
    if kind == "async-memory":
        return AsyncOnlyMemoryStore()
    raise ValueError(f"unknown store kind {kind!r}")


async def _list_keys(store: Store) -> list[str]:
    return [key async for key in store.list()]


def all_keys(store: Store) -> list[str]:
    """Every key in ``store``, sorted."""
    return sorted(sync(_list_keys(store)))


def is_metadata_key(key: str) -> bool:
    """True for zarr v2/v3 metadata documents."""
    return key.rsplit("/", 1)[-1] in METADATA_NAMES


def store_keys(store: Store) -> list[str]:
    """Sorted chunk/shard keys of ``store`` (metadata documents excluded)."""
    keys = [k for k in all_keys(store) if not is_metadata_key(k)]
    if isinstance(store, LocalStore):
        # cross-check the store listing against the directory itself
        on_disk = sorted(
            os.path.relpath(os.path.join(dirpath, name), store.root).replace(os.sep, "/")
            for dirpath, _, names in os.walk(store.root)
            for name in names
            if name not in METADATA_NAMES
        )
        assert keys == on_disk, f"store.list() {keys} disagrees with the directory {on_disk}"
    return keys


def get_bytes(store: Store, key: str) -> bytes:
    """The raw bytes stored under ``key``."""
    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    assert buf is not None, f"missing key {key!r}"
    return buf.to_bytes()


def store_contents(store: Store) -> dict[str, bytes]:
    """Chunk/shard key -> raw bytes (metadata excluded)."""
    return {key: get_bytes(store, key) for key in store_keys(store)}


def metadata_documents(store: Store) -> dict[str, Any]:
    """Metadata key -> parsed JSON document."""
    return {k: json.loads(get_bytes(store, k)) for k in all_keys(store) if is_metadata_key(k)}


# --------------------------------------------------------------------------------------------
# comparisons
# --------------------------------------------------------------------------------------------


def _bitwise(dtype: np.dtype[Any]) -> bool:
    """Whether values of ``dtype`` can be compared through their raw bytes."""
    return dtype.kind not in "OT"


def assert_same_array(actual: Any, expected: Any, what: str = "") -> None:
    """Same dtype, shape and values; NaN == NaN; fixed-size dtypes compared bit for bit.

    Bitwise comparison catches sign-of-zero, NaN payload and byte-order mistakes that
    ``==`` would hide. Use it for zarr-vs-zarr comparisons.
    """
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != {e.dtype}"
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    if _bitwise(a.dtype):
        a_bytes = np.ascontiguousarray(a).view(np.uint8)
        e_bytes = np.ascontiguousarray(e).view(np.uint8)
        if np.array_equal(a_bytes, e_bytes):
            return
    np.testing.assert_array_equal(a, e, err_msg=what, strict=True)
    # values equal but bits differ (e.g. -0.0 vs 0.0, NaN payload): still a mismatch
    if _bitwise(a.dtype):
        bad = np.flatnonzero(
            np.ascontiguousarray(a).view(np.uint8) != np.ascontiguousarray(e).view(np.uint8)
        )
        raise AssertionError(f"{what}: values equal but bytes differ at byte offsets {bad[:10]}")


def assert_equal_values(actual: Any, expected: Any, what: str = "") -> None:
    """Same shape and values (NaN == NaN, NaT == NaT); dtypes must match by kind/size.

    Use it for zarr-vs-numpy comparisons, where numpy may hold e.g. ``<i4`` and zarr ``>i4``.
    """
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    kinds = {a.dtype.kind, e.dtype.kind}
    if not kinds <= set("UT"):  # StringDType and "<U" compare as strings
        assert a.dtype.kind == e.dtype.kind, f"{what}: dtype {a.dtype} != {e.dtype}"
    if not kinds & set("OTSU"):  # string scalars come back at their own length
        assert a.dtype.itemsize == e.dtype.itemsize, f"{what}: dtype {a.dtype} != {e.dtype}"
    np.testing.assert_array_equal(a, e, err_msg=what)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------

VLEN_STR = "vlen-str"
"""Pseudo-dtype name for zarr's variable-length UTF-8 strings (``dtype=str``)."""

_ALPHABET = np.array(list("abcxyz019 _éßΩ中😀"))

DTYPES = (
    "bool",
    "int8",
    "uint16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "datetime64[ns]",
    "S5",
    "U4",
    VLEN_STR,
)
"""Every dtype the parity suite exercises."""

CUSTOM_FILLS: dict[str, Any] = {
    "bool": True,
    "int8": -3,
    "uint16": 7,
    "int32": -1,
    "int64": 2**40 + 1,
    "float16": float("nan"),
    "float32": float("nan"),
    "float64": -1.5,
    "complex64": 1 + 2j,
    "complex128": complex(float("nan"), 0),
    "datetime64[ns]": np.datetime64("2001-02-03T04:05:06", "ns"),
    "S5": b"zz",
    "U4": "fé",
    VLEN_STR: "fill",
}
"""A non-default fill value per dtype (NaN fills included)."""


def zarr_dtype_arg(dtype: str) -> Any:
    """What to pass as ``dtype=`` to ``zarr.create_array`` for a dtype name used here."""
    return str if dtype == VLEN_STR else dtype


def numpy_dtype(dtype: str) -> np.dtype[Any]:
    """The numpy dtype zarr hands back for a dtype name used here."""
    return np.dtypes.StringDType() if dtype == VLEN_STR else np.dtype(dtype)


def random_data(shape: Sequence[int], dtype: str, rng: np.random.Generator) -> npt.NDArray[Any]:
    """Partly compressible random data of ``dtype`` (low-entropy values + some extremes)."""
    shape = tuple(shape)
    size = int(np.prod(shape, dtype=np.int64))
    dt = numpy_dtype(dtype)
    if dtype == VLEN_STR:
        lengths = rng.integers(0, 9, size)
        words = ["".join(rng.choice(_ALPHABET, n)) for n in lengths]
        return np.array(words, dtype=dt).reshape(shape)
    if dt.kind == "b":
        return (rng.random(size) < 0.5).reshape(shape)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        out = rng.integers(0, 10, size).astype(dt)
        wild = rng.random(size) < 0.15
        out[wild] = rng.integers(int(info.min), int(info.max), int(wild.sum()), endpoint=True)
        return out.reshape(shape)
    if dt.kind == "f":
        out = (rng.integers(-20, 20, size) / 4).astype(dt)
        wild = rng.random(size) < 0.15
        out[wild] = (rng.standard_normal(int(wild.sum())) * 1e3).astype(dt)
        specials = np.array([np.inf, -np.inf, -0.0, np.nan], dtype=dt)
        idx = rng.choice(size, min(size, 4), replace=False)
        out[idx] = specials[: len(idx)]
        return out.reshape(shape)
    if dt.kind == "c":
        real = random_data(shape, f"f{dt.itemsize // 2}", rng)
        imag = random_data(shape, f"f{dt.itemsize // 2}", rng)
        out = np.empty(shape, dtype=dt)
        out.real, out.imag = real, imag
        return out
    if dt.kind == "M":
        out = rng.integers(-(2**62), 2**62, size).astype("i8").view(dt)
        return out.reshape(shape)
    if dt.kind == "S":
        lengths = rng.integers(1, dt.itemsize + 1, size)
        letters = np.array(list(b"abcxyz019"), dtype=np.uint8)
        words = [bytes(rng.choice(letters, n)) for n in lengths]
        return np.array(words, dtype=dt).reshape(shape)
    if dt.kind == "U":
        lengths = rng.integers(1, dt.itemsize // 4 + 1, size)
        words = ["".join(rng.choice(_ALPHABET, n)) for n in lengths]
        return np.array(words, dtype=dt).reshape(shape)
    raise NotImplementedError(f"no random data for dtype {dtype!r}")


def random_scalar(dtype: str, rng: np.random.Generator, avoid: Any = None) -> Any:
    """A random scalar of ``dtype``, different from ``avoid`` when possible."""
    value: Any = None
    for _ in range(20):
        value = random_data((1,), dtype, rng)[0]
        if avoid is None or not _scalar_equal(value, avoid):
            return value
    return value


def _scalar_equal(a: Any, b: Any) -> bool:
    try:
        return bool(np.asarray(a) == np.asarray(b)) or (
            np.asarray(a).dtype.kind in "fc" and bool(np.isnan(a)) and bool(np.isnan(b))
        )
    except (TypeError, ValueError):
        return False


def resolve_fill_value(create_kwargs: dict[str, Any]) -> Any:
    """The fill value zarr (the oracle) gives an array created with ``create_kwargs``."""
    return create_with(ORACLE_PIPELINE, MemoryStore(), **create_kwargs).fill_value


def fill_array(shape: Sequence[int], dtype: str, fill_value: Any) -> npt.NDArray[Any]:
    """A numpy array of ``shape`` holding ``fill_value`` everywhere."""
    return np.full(tuple(shape), fill_value, dtype=numpy_dtype(dtype))


# --------------------------------------------------------------------------------------------
# write sequences
# --------------------------------------------------------------------------------------------

WriteOp = tuple[Selection, Any]
"""``(selection, value)``: ``arr[selection] = value``; value is an array or a scalar."""


@dataclass(frozen=True)
class WriteSequence:
    """A named recipe producing write operations for a given shape / dtype / fill value."""

    id: str
    build: Callable[[tuple[int, ...], str, Any, np.random.Generator], list[WriteOp]]


def _region_shape(shape: tuple[int, ...], sel: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(len(range(*s.indices(n))) for s, n in zip(sel, shape, strict=True))


def _seq_full(shape: tuple[int, ...], dtype: str, fill: Any, rng: np.random.Generator) -> list:
    return [(Ellipsis, random_data(shape, dtype, rng))]


def _unaligned_slab(shape: tuple[int, ...], lo: float, hi: float) -> tuple[slice, ...]:
    return tuple(slice(int(n * lo) + 1, max(int(n * lo) + 2, int(n * hi) - 1)) for n in shape)


def _seq_partial(shape: tuple[int, ...], dtype: str, fill: Any, rng: np.random.Generator) -> list:
    sel = _unaligned_slab(shape, 0.2, 0.8)
    return [(sel, random_data(_region_shape(shape, sel), dtype, rng))]


def _seq_scalar(shape: tuple[int, ...], dtype: str, fill: Any, rng: np.random.Generator) -> list:
    sel = _unaligned_slab(shape, 0.1, 0.7)
    return [(sel, random_scalar(dtype, rng, avoid=fill))]


def _seq_fill_region(
    shape: tuple[int, ...], dtype: str, fill: Any, rng: np.random.Generator
) -> list:
    # full write, then the fill value over the first half along axis 0 (whole chunks included)
    # and over an unaligned slab: chunks that become all-fill must vanish when
    # write_empty_chunks=False and stay when it is True.
    first_half = (slice(0, shape[0] // 2 + 1), *(slice(None) for _ in shape[1:]))
    return [
        (Ellipsis, random_data(shape, dtype, rng)),
        (first_half, fill),
        (_unaligned_slab(shape, 0.5, 0.9), fill),
    ]


def _seq_overlapping(
    shape: tuple[int, ...], dtype: str, fill: Any, rng: np.random.Generator
) -> list:
    a = _unaligned_slab(shape, 0.0, 0.7)
    b = _unaligned_slab(shape, 0.35, 1.0)
    tail = tuple(slice(n // 2, None, 2) for n in shape)  # strided
    point = tuple(n // 2 for n in shape)
    return [
        (a, random_data(_region_shape(shape, a), dtype, rng)),
        (b, random_data(_region_shape(shape, b), dtype, rng)),
        (tail, random_data(_region_shape(shape, tail), dtype, rng)),
        (point, random_scalar(dtype, rng, avoid=fill)),
        (_unaligned_slab(shape, 0.3, 0.6), fill),
    ]


WRITE_SEQUENCES: tuple[WriteSequence, ...] = (
    WriteSequence("full", _seq_full),
    WriteSequence("partial", _seq_partial),
    WriteSequence("scalar", _seq_scalar),
    WriteSequence("fill-region", _seq_fill_region),
    WriteSequence("overlapping", _seq_overlapping),
)
SEQUENCES_BY_ID = {s.id: s for s in WRITE_SEQUENCES}


def apply_ops(target: Any, ops: Sequence[WriteOp]) -> None:
    """``target[sel] = value`` for each op (a zarr array or a numpy array)."""
    for sel, value in ops:
        target[sel] = value


# --------------------------------------------------------------------------------------------
# the parity check
# --------------------------------------------------------------------------------------------


@dataclass
class ParityResult:
    """What :func:`run_parity` produced, for extra assertions."""

    test_store: Store
    oracle_store: Store
    expected: npt.NDArray[Any]
    fill_value: Any
    keys: list[str] = field(default_factory=list)


def run_parity(
    create_kwargs: dict[str, Any],
    ops: Sequence[WriteOp],
    test_store: Store,
    oracle_store: Store,
    *,
    dtype: str,
    test_pipeline: str,
    oracle: str = ORACLE_PIPELINE,
    exact_bytes: bool = False,
) -> ParityResult:
    """Write ``ops`` with each pipeline into its own store, then cross-check everything.

    Asserts: each pipeline's own view, both cross-reads (test pipeline reads the oracle's
    store and vice versa) and numpy agree bit for bit; the chunk/shard keys are the same; the
    metadata documents, dtype and fill value are the same; optionally the stored bytes too.
    """
    arrays = {}
    for path, store in ((test_pipeline, test_store), (oracle, oracle_store)):
        arr = create_with(path, store, **create_kwargs)
        with using_pipeline(path):
            apply_ops(arr, ops)
        arrays[path] = arr
    fill_value = arrays[oracle].fill_value
    expected = fill_array(create_kwargs["shape"], dtype, fill_value)
    apply_ops(expected, ops)

    reference = read_with(oracle, oracle_store)
    assert_equal_values(reference, expected, "oracle read of oracle store vs numpy")
    for reader, store, writer in (
        (test_pipeline, test_store, test_pipeline),
        (test_pipeline, oracle_store, oracle),
        (oracle, test_store, test_pipeline),
    ):
        got = read_with(reader, store)
        assert_same_array(got, reference, f"read by {reader} of data written by {writer}")

    test_keys, oracle_keys = store_keys(test_store), store_keys(oracle_store)
    assert test_keys == oracle_keys, "stored chunk/shard keys differ"

    assert metadata_documents(test_store) == metadata_documents(oracle_store)
    reopened = open_with(test_pipeline, test_store)
    assert reopened.dtype == arrays[oracle].dtype
    assert_same_array(
        np.asarray(reopened.fill_value), np.asarray(fill_value), "fill value after reopen"
    )

    if exact_bytes:
        got_bytes, want_bytes = store_contents(test_store), store_contents(oracle_store)
        for key in oracle_keys:
            assert got_bytes[key] == want_bytes[key], f"stored bytes differ for key {key!r}"
    return ParityResult(test_store, oracle_store, expected, fill_value, oracle_keys)


# --------------------------------------------------------------------------------------------
# codec configurations and layouts (the catalog the parity tests cross)
# --------------------------------------------------------------------------------------------


def _no_filters(ndim: int) -> list[Any]:
    return []


def _transpose(ndim: int) -> list[Any]:
    """(1, 0) on 2-D arrays, a non-trivial cyclic permutation on 3-D ones."""
    order = (1, 0) if ndim == 2 else (2, 0, 1) if ndim == 3 else tuple(reversed(range(ndim)))
    return [TransposeCodec(order=order)]


@dataclass(frozen=True)
class CodecCase:
    """One codec configuration; ``kwargs(ndim)`` feeds ``zarr.create_array``."""

    id: str
    zarr_format: int
    dtype: str = "int32"
    filters: Callable[[int], list[Any]] = _no_filters
    serializer: Any = None  # v3 only; None -> BytesCodec() (or "auto" for strings)
    compressors: Sequence[Any] | Any = ()
    order: str | None = None
    #: cuzarr must store the oracle's bytes exactly. Every codec but deflate is deterministic
    #: and cuzarr calls it with zarr's settings; gzip and zlib go through libdeflate (equally
    #: standard streams at zlib's levels, other bytes), so those cases compare contents only
    exact_bytes: bool = True

    def _serializer(self) -> Any:
        if self.serializer is not None:
            return self.serializer
        return VLenUTF8Codec() if self.dtype == VLEN_STR else BytesCodec()

    def kwargs(self, ndim: int) -> dict[str, Any]:
        """Codec-related ``create_array`` keyword arguments."""
        out: dict[str, Any] = {"zarr_format": self.zarr_format, "dtype": zarr_dtype_arg(self.dtype)}
        if self.zarr_format == 3:
            out |= {
                "filters": self.filters(ndim) or None,
                "serializer": self._serializer(),
                "compressors": list(self.compressors) or None,
            }
        else:
            filters = self.filters(ndim)
            out |= {
                "filters": filters or ("auto" if self.dtype == VLEN_STR else None),
                "compressors": self.compressors or None,
            }
        if self.order is not None:
            out["order"] = self.order
        return out

    def inner_codecs(self, ndim: int) -> list[Any]:
        """The v3 chain as a flat codec list, for an explicit ``ShardingCodec``."""
        assert self.zarr_format == 3
        return [*self.filters(ndim), self._serializer(), *self.compressors]


BLOSC_CNAMES = ("lz4", "lz4hc", "blosclz", "zstd", "zlib")
BLOSC_SHUFFLES = ("noshuffle", "shuffle", "bitshuffle")
_BLOSC_DTYPES = ("uint16", "float64", "int32", "float32", "int64")

V3_CODECS: tuple[CodecCase, ...] = (
    CodecCase("v3-bytes-le", 3, "int32", serializer=BytesCodec(endian="little")),
    CodecCase("v3-bytes-be", 3, "float64", serializer=BytesCodec(endian="big")),
    CodecCase("v3-transpose-bytes", 3, "uint16", filters=_transpose),
    CodecCase("v3-zstd1", 3, "int64", compressors=(ZstdCodec(level=1),)),
    CodecCase("v3-zstd-checksum", 3, "float32", compressors=(ZstdCodec(level=3, checksum=True),)),
    CodecCase("v3-gzip", 3, "int16", compressors=(GzipCodec(level=5),), exact_bytes=False),
    *(
        CodecCase(
            f"v3-blosc-{cname}-{shuffle}",
            3,
            _BLOSC_DTYPES[i % len(_BLOSC_DTYPES)],
            compressors=(BloscCodec(cname=cname, clevel=5, shuffle=shuffle),),
        )
        for i, (cname, shuffle) in enumerate(itertools.product(BLOSC_CNAMES, BLOSC_SHUFFLES))
    ),
    CodecCase("v3-zstd-crc32c", 3, "int32", compressors=(ZstdCodec(level=1), Crc32cCodec())),
    CodecCase("v3-crc32c", 3, "uint8", compressors=(Crc32cCodec(),)),
    # zstd not the last stage to decode: its frames' decoded size is not the chunk's
    CodecCase("v3-crc32c-zstd", 3, "int32", compressors=(Crc32cCodec(), ZstdCodec(level=1))),
    CodecCase("v3-gzip-zstd", 3, "uint16", compressors=(GzipCodec(level=1), ZstdCodec()),
              exact_bytes=False),
    CodecCase(
        "v3-transpose-gzip-crc32c",
        3,
        "float64",
        filters=_transpose,
        compressors=(GzipCodec(level=1), Crc32cCodec()),
        exact_bytes=False,
    ),
    CodecCase("v3-numcodecs-bz2", 3, "int32", compressors=(zarr_numcodecs.BZ2(level=1),)),
    CodecCase("v3-numcodecs-lzma", 3, "float32", compressors=(zarr_numcodecs.LZMA(preset=1),)),
    CodecCase("v3-vlen-str", 3, VLEN_STR, compressors=(ZstdCodec(level=1),)),
    CodecCase("v3-vlen-str-raw", 3, VLEN_STR),
)

V2_CODECS: tuple[CodecCase, ...] = (
    CodecCase("v2-none", 2, "int32"),
    CodecCase("v2-zstd", 2, "float64", compressors=numcodecs.Zstd(level=1)),
    CodecCase("v2-gzip", 2, "int16", compressors=numcodecs.GZip(level=5), exact_bytes=False),
    CodecCase("v2-blosc", 2, "float32", compressors=numcodecs.Blosc(cname="lz4", shuffle=1)),
    # zarr v2 hands Blosc the chunk as an array of its dtype: the item size is its typesize
    *(
        CodecCase(f"v2-blosc-{cname}-{shuffle}-{dtype}", 2, dtype,
                  compressors=numcodecs.Blosc(cname=cname, shuffle=shuffle))
        for cname, shuffle, dtype in (
            ("zstd", -1, "uint8"), ("lz4", -1, "int64"), ("lz4hc", 2, "int16"),
            ("zlib", 1, "complex128"),
        )
    ),
    CodecCase("v2-zlib", 2, "uint32", compressors=numcodecs.Zlib(level=1), exact_bytes=False),
    CodecCase("v2-lz4", 2, "int64", compressors=numcodecs.LZ4()),
    CodecCase(
        "v2-delta-zstd",
        2,
        "int32",
        filters=lambda ndim: [numcodecs.Delta(dtype="<i4")],
        compressors=numcodecs.Zstd(level=1),
    ),
    CodecCase(
        "v2-shuffle-zlib",
        2,
        "float64",
        filters=lambda ndim: [numcodecs.Shuffle(elementsize=8)],
        compressors=numcodecs.Zlib(level=1),
    ),
    CodecCase("v2-order-F", 2, "int32", order="F"),
    CodecCase(
        "v2-order-F-blosc",
        2,
        "float64",
        order="F",
        compressors=numcodecs.Blosc(cname="zstd", shuffle=2),
    ),
    CodecCase("v2-bigendian-i4", 2, ">i4"),
    CodecCase("v2-bigendian-f8-zstd", 2, ">f8", compressors=numcodecs.Zstd(level=1)),
    CodecCase("v2-vlen-str", 2, VLEN_STR, compressors=numcodecs.Zstd(level=1)),
)

ALL_CODECS = V3_CODECS + V2_CODECS
CODECS_BY_ID = {c.id: c for c in ALL_CODECS}

# --------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Array shape plus chunking: regular chunks, ``shards=`` or an explicit ShardingCodec."""

    id: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]  # chunk shape; the shard shape when ``sharding`` is set
    shards: tuple[int, ...] | None = None
    sharding: Callable[[list[Any]], ShardingCodec] | None = None
    outer_compressors: tuple[Any, ...] = field(default=())

    @property
    def v2_ok(self) -> bool:
        """Whether zarr format 2 can express this layout."""
        return self.shards is None and self.sharding is None

    def kwargs(self, case: CodecCase) -> dict[str, Any]:
        """Full ``create_array`` keyword arguments for ``case`` laid out like this."""
        ndim = len(self.shape)
        out = case.kwargs(ndim) | {"shape": self.shape, "chunks": self.chunks}
        if self.shards is not None:
            out["shards"] = self.shards
        if self.sharding is not None:
            out |= {
                "filters": None,
                "serializer": self.sharding(case.inner_codecs(ndim)),
                "compressors": list(self.outer_compressors) or None,
            }
        return out


def _sharding(**kwargs: Any) -> Callable[[list[Any]], ShardingCodec]:
    return lambda codecs: ShardingCodec(codecs=codecs, **kwargs)


def _nested(outer: tuple[int, ...], inner: tuple[int, ...]) -> Callable[..., ShardingCodec]:
    def build(codecs: list[Any]) -> ShardingCodec:
        inner_codec = ShardingCodec(chunk_shape=inner, codecs=codecs, index_location="start")
        return ShardingCodec(chunk_shape=outer, codecs=[inner_codec], index_location="end")

    return build


LAYOUTS: dict[str, Layout] = {
    layout.id: layout
    for layout in (
        Layout("plain", (24, 30), (8, 10)),
        Layout("edge", (23, 29), (8, 7)),
        Layout("plain3d-edge", (6, 10, 9), (3, 4, 5)),
        Layout("shards", (35, 45), (8, 5), shards=(16, 20)),
        Layout(
            "shard-idx-start",
            (35, 45),
            (16, 20),
            sharding=_sharding(chunk_shape=(8, 5), index_location="start"),
        ),
        Layout(
            "shard-idx-end",
            (35, 45),
            (16, 20),
            sharding=_sharding(chunk_shape=(8, 5), index_location="end"),
        ),
        Layout(
            "shard-colex-bigidx",
            (35, 45),
            (16, 20),
            sharding=_sharding(
                chunk_shape=(4, 10),
                index_location="start",
                subchunk_write_order="colexicographic",
                index_codecs=[BytesCodec(endian="big")],
            ),
        ),
        Layout("shard-nested", (35, 45), (16, 20), sharding=_nested((8, 10), (4, 5))),
        Layout(
            "shard-outer-zstd",
            (35, 45),
            (16, 20),
            sharding=_sharding(chunk_shape=(8, 5)),
            outer_compressors=(ZstdCodec(level=1),),
        ),
        Layout("shards3d", (7, 10, 9), (2, 5, 3), shards=(4, 10, 6)),
        Layout("shard3d-nested", (7, 10, 9), (4, 10, 6), sharding=_nested((2, 5, 6), (2, 5, 3))),
    )
}
SHARDED_LAYOUTS = tuple(k for k, v in LAYOUTS.items() if not v.v2_ok)
