"""The stand-ins CI tests the cuda device with, held to the real libraries (issue 13).

tests/nvcomp_double.py stands in for `nvidia.nvcomp`, tests/kvikio_double.py for
`kvikio`, tests/strict_xp.py for cupy. A stand-in that accepts what the real library
refuses lets code pass in CI that fails on a GPU, so every class, function, method,
keyword, default and argument type a stand-in offers is compared with the real library's
(tests/real_apis.py reads those):

- nvCOMP, from the installed module's pybind11 docstrings (nvidia-nvcomp-cu13, the
  `nvcomp-api` extra, imports without a GPU);
- kvikio, from the Python sources in its wheel (fetched once by pip into .cache/, as
  test_zarr_suites.py fetches zarr's sdist);
- cupy, installed once by pip into .cache/ (70 MB, not into the environment) and
  described by a child process, so `import cupy` keeps failing in this session.

Where one of them is missing (a plain `pip install -e .[test]`, no network) its checks
skip, saying why; `./dev test` and CI set CUZARR_REAL_APIS=required, and there a missing
library fails the run instead, so CI cannot pass without holding every stand-in to it.

Each checker is shown to fail on a double with one thing wrong.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import types
import typing
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kvikio_double
import nvcomp_double
import real_apis as ra
import strict_xp

ROOT = Path(__file__).resolve().parent.parent
NVCOMP_TYPES = "nvidia.nvcomp.nvcomp_impl."
KVIKIO_WHEEL = ("kvikio-cu13", "26.10.0")
CUPY_WHEELS = (("cupy-cuda13x", "14.2.0"), ("cuda-pathfinder", "1.9.1"))

P = inspect.Parameter


def unavailable(reason: str) -> typing.NoReturn:
    """Skip for want of a real library, or fail where the run requires them all."""
    if os.environ.get("CUZARR_REAL_APIS") == "required":
        pytest.fail(f"CUZARR_REAL_APIS=required, but {reason}")
    pytest.skip(reason)


# -- the docstring parser ---------------------------------------------------------------------

OVERLOADED = """decode(*args, **kwargs)
Overloaded function.

1. decode(self: nvidia.nvcomp.nvcomp_impl.Codec, src: nvidia.nvcomp.nvcomp_impl.Array, \
data_type: str = '', out: object = None) -> object


            Decode (decompress) a single Array.

            Args:
                src: Decode source object.

2. decode(self: nvidia.nvcomp.nvcomp_impl.Codec, srcs: nvidia.nvcomp.nvcomp_impl.BatchArray, \
data_type: str = '', out: object = None, decompression_config: \
nvidia.nvcomp.nvcomp_impl.DecompressConfig = None) -> object


          Decode (decompress) a batch of Arrays.
"""

KWARGS = """__init__(self: nvidia.nvcomp.nvcomp_impl.Codec, **kwargs) -> None


            Initialize codec.

            Args:
                algorithm: An optional name of the compression algorithm to use.
                cuda_stream: An optional cudaStream_t represented as a Python integer.
                bitstream_kind: Determines the format of the bitstream.

              LZ4 algorithm specific options:
                data_type: An optional array-protocol type string.
                  * nvcomp.BitshuffleMode.NVCOMP_BITSHUFFLE_NONE
"""


def test_parser_reads_numbered_overloads() -> None:
    first, second = ra.parse_pybind_doc(OVERLOADED, "decode")
    assert [p.name for p in first.params] == ["self", "src", "data_type", "out"]
    assert [p.name for p in second.params][-1] == "decompression_config"
    assert second.params[1].annotation == "nvidia.nvcomp.nvcomp_impl.BatchArray"
    assert [p.default for p in second.params] == [None, None, "''", "None", "None"]
    assert {p.kind for p in second.params} == {P.POSITIONAL_OR_KEYWORD}
    assert first.returns == "object"
    assert str(ra.without_self(first)) == (
        "(src: nvidia.nvcomp.nvcomp_impl.Array, data_type: str = '', out: object = None)"
        " -> object")


def test_parser_reads_one_signature() -> None:
    doc = ("get_max_comp_buffer_size(self: nvidia.nvcomp.nvcomp_impl.Codec, source: "
           "nvidia.nvcomp.nvcomp_impl.Array) -> int\n\n\n   Retrieves the maximum size.\n")
    (overload,) = ra.parse_pybind_doc(doc, "get_max_comp_buffer_size")
    assert overload.params[1] == ra.Param("source", P.POSITIONAL_OR_KEYWORD,
                                          "nvidia.nvcomp.nvcomp_impl.Array")
    assert overload.returns == "int"
    assert ra.parse_pybind_doc(doc, "another_name") == []


def test_parser_gives_kwargs_their_documented_keywords() -> None:
    (overload,) = ra.parse_pybind_doc(KWARGS, "__init__")
    assert overload.params[-1].kind == P.VAR_KEYWORD
    assert overload.keywords == {"algorithm", "cuda_stream", "bitstream_kind", "data_type"}


def test_parser_reads_defaults_lists_and_enum_reprs() -> None:
    line = ("f(self: X, kind: nvidia.nvcomp.nvcomp_impl.BitstreamKind = "
            "<BitstreamKind.NVCOMP_NATIVE: 0>, sizes: list[int] = [], table: dict[str, int] = "
            "{}, exc: Optional[type] = None, text: str = 'a, b') -> None")
    (overload,) = ra.parse_pybind_doc(line, "f")
    assert [(p.name, p.default) for p in overload.params] == [
        ("self", None), ("kind", "<BitstreamKind.NVCOMP_NATIVE: 0>"), ("sizes", "[]"),
        ("table", "{}"), ("exc", "None"), ("text", "'a, b'")]
    assert overload.params[3].annotation == "dict[str, int]"


def test_parser_reads_properties_cython_and_sphinx_escapes() -> None:
    (fget,) = ra.parse_pybind_doc("(arg0: nvidia.nvcomp.nvcomp_impl.BatchArray) -> list[int]\n",
                                  "")
    assert fget.returns == "list[int]"
    cython = ra.parse_signature("get_current_stream(int device_id=-1)", "get_current_stream")
    assert cython is not None
    assert cython.params == (ra.Param("device_id", P.POSITIONAL_OR_KEYWORD, "int", "-1"),)
    ufunc = ra.parse_signature("isnan(x, /, out=None, \\*, casting='same_kind', dtype=None)",
                               "isnan")
    assert ufunc is not None
    assert [(p.name, p.kind) for p in ufunc.params] == [
        ("x", P.POSITIONAL_ONLY), ("out", P.POSITIONAL_OR_KEYWORD),
        ("casting", P.KEYWORD_ONLY), ("dtype", P.KEYWORD_ONLY)]
    method = ra.parse_signature("_ndarray_base.get(self, stream=None, order='C', out=None)",
                                "get")
    assert method is not None and [p.name for p in method.params][1:] == [
        "stream", "order", "out"]
    star = ra.parse_signature("reshape(self, *shape, order='C')", "reshape")
    assert star is not None and star.params[1] == ra.Param("shape", P.VAR_POSITIONAL)
    assert star.params[2].kind == P.KEYWORD_ONLY


def test_parser_takes_no_signature_from_prose() -> None:
    assert ra.parse_pybind_doc("Initialize self.  See help(type(self)) for accurate signature.",
                               "__init__") == []
    assert ra.parse_pybind_doc(None, "f") == []
    assert ra.normalize_default(" 'r' ") == "'r'"
    assert ra.normalize_default("float") == "float"
    assert ra.default_text(float) == "float" and ra.default_text("") == "''"


# -- nVCOMP -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_nvcomp() -> ra.RealModule:
    try:
        import nvidia.nvcomp
    except ImportError as e:
        unavailable(f"nvidia.nvcomp does not import ({e}): pip install -e .[nvcomp-api]")
    return ra.pybind_model(nvidia.nvcomp)


def test_the_nvcomp_model_reads_the_installed_module(real_nvcomp: ra.RealModule) -> None:
    """Guards the checks below against reading nothing: every public callable of the
    installed nvCOMP yields its signatures."""
    unread = []

    def walk(item: ra.RealModule | ra.RealClass, path: str) -> None:
        for name, member in item.members.items():
            if isinstance(member, ra.RealOpaque) or (
                    isinstance(member, ra.RealFunction) and not member.overloads):
                unread.append(path + name)
            if isinstance(member, ra.RealClass):
                walk(member, f"{path}{name}.")

    walk(real_nvcomp, "")
    assert not unread
    codec = real_nvcomp.members["Codec"]
    batch = real_nvcomp.members["BatchArray"]
    assert isinstance(codec, ra.RealClass) and isinstance(batch, ra.RealClass)
    decode = codec.members["decode"]
    assert isinstance(decode, ra.RealFunction) and len(decode.overloads) == 2
    assert codec.init is not None
    assert {"algorithm", "bitstream_kind", "cuda_stream"} <= (
        codec.init.overloads[0].keywords or set())
    assert batch.init is None  # "No constructor defined!"
    assert batch.members["buffer_sizes"] == ra.RealProperty("list[int]", writable=False)
    kind = real_nvcomp.members["BitstreamKind"]
    assert isinstance(kind, ra.RealClass)
    assert kind.members["RAW"] == ra.RealValue("BitstreamKind", "BitstreamKind")
    as_arrays = real_nvcomp.members["as_arrays"]
    assert isinstance(as_arrays, ra.RealFunction) and len(as_arrays.overloads) == 2


def nvcomp_makers(double: Any) -> dict[str, Callable[[], object]]:
    """How to build what the double's calls take: an instance of each class (by name) and
    the untyped buffers."""

    def codec() -> object:
        return double.Codec(algorithm="Zstd", bitstream_kind=double.BitstreamKind.RAW)

    def buffer() -> np.ndarray:
        return np.zeros(64, dtype=np.uint8)

    makers: dict[str, Callable[[], object]] = {
        "Codec": codec, "as_arrays.buffer": buffer, "as_array.source": buffer,
        "BatchArray": lambda: double.as_arrays(buffer(), [0, 32], [32, 32]),
    }
    if hasattr(double, "as_array"):
        makers["Array"] = lambda: double.as_array(buffer())
    if hasattr(getattr(double, "Codec", None), "compression_config"):
        makers["CompressConfig"] = lambda: codec().compression_config([32, 32])  # type: ignore[attr-defined]
    return makers


def nvcomp_checker(double: Any, real: ra.RealModule) -> ra.Checker:
    makers = nvcomp_makers(double)
    instances = {name: makers[name] for name in ("Codec", "BatchArray", "Array")
                 if name in makers and hasattr(double, name)}
    return ra.Checker(double, real, NVCOMP_TYPES, instances)


def test_the_nvcomp_double_offers_only_what_nvcomp_has(real_nvcomp: ra.RealModule) -> None:
    """Every name, signature (names, order, kinds, defaults, types), property and enum
    member of tests/nvcomp_double.py is nvCOMP's."""
    problems = nvcomp_checker(nvcomp_double, real_nvcomp).check()
    assert not problems, "the nvCOMP double differs from nvCOMP:\n" + "\n".join(problems)


def test_the_nvcomp_double_refuses_wrong_types_as_pybind_does(
        real_nvcomp: ra.RealModule) -> None:
    """pybind11 raises TypeError ("incompatible function arguments") for an argument of
    the wrong type before doing anything: so must the double, for every typed parameter
    of every call it shares with nvCOMP."""
    checker = nvcomp_checker(nvcomp_double, real_nvcomp)
    checker.check()
    problems = ra.probe_types(checker, nvcomp_makers(nvcomp_double))
    assert not problems, "the nvCOMP double takes what nvCOMP refuses:\n" + "\n".join(problems)


#: a small double with nothing wrong, for the checkers to pass; each mutation below
#: breaks one thing
HONEST_NVCOMP = '''
from __future__ import annotations

import enum
from typing import Any


def _typed(value: Any, kind: type, what: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"incompatible function arguments: {what}")


def _ints(values: Any, what: str) -> None:
    _typed(values, list, what)
    for value in values:
        _typed(value, int, what)


class BitstreamKind(enum.Enum):
    NVCOMP_NATIVE = 0
    RAW = 1
    WITH_UNCOMPRESSED_SIZE = 2


class DecompressConfig:
    pass


class BatchArray:
    @property
    def buffer_sizes(self) -> list[int]:
        return list(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)


def as_arrays(buffer: Any, offsets: list[int], sizes: list[int], cuda_stream: int = 0
              ) -> BatchArray:
    _ints(offsets, "offsets")
    _ints(sizes, "sizes")
    _typed(cuda_stream, int, "cuda_stream")
    batch = object.__new__(BatchArray)
    batch._sizes = list(sizes)
    return batch


class Codec:
    def __init__(self, **kwargs: Any) -> None:
        self._algorithm = kwargs.get("algorithm", "")

    def get_required_decompression_alignment(self) -> int:
        return 8

    def decode(self, srcs: BatchArray, data_type: str = "", out: Any = None,
               decompression_config: DecompressConfig | None = None) -> BatchArray:
        _typed(srcs, BatchArray, "srcs")
        _typed(data_type, str, "data_type")
        if decompression_config is not None:
            _typed(decompression_config, DecompressConfig, "decompression_config")
        return srcs
'''

#: (what is wrong, source text replaced, replacement, what the checker must say)
NVCOMP_MUTATIONS: list[tuple[str, str | list[tuple[str, str]], str, str]] = [
    ("a module function nvCOMP lacks", "def as_arrays(buffer: Any,",
     "def bogus(x: int) -> int:\n    return x\n\n\ndef as_arrays(buffer: Any,",
     "bogus: nvidia.nvcomp has no bogus"),
    ("a method nvCOMP lacks", "    def get_required_decompression_alignment(self) -> int:",
     "    def bogus(self) -> int:\n        return 0\n\n"
     "    def get_required_decompression_alignment(self) -> int:",
     "Codec.bogus: the real Codec has no bogus"),
    ("an extra parameter", "def get_required_decompression_alignment(self) -> int:",
     "def get_required_decompression_alignment(self, extra: int = 0) -> int:",
     "Codec.get_required_decompression_alignment(extra) matches no real overload"),
    ("a renamed parameter", "def as_arrays(buffer: Any,", "def as_arrays(buf: Any,",
     "parameter 1 is 'buf', the real's 'buffer'"),
    ("another default", "cuda_stream: int = 0\n", "cuda_stream: int = 1\n",
     "'cuda_stream' defaults to 1, the real's to 0"),
    ("another type", "offsets: list[int], sizes", "offsets: list[str], sizes",
     "'offsets' is typed list[str], the real's list[int]"),
    ("an untyped config", "decompression_config: DecompressConfig | None = None",
     "decompression_config: Any = None",
     "'decompression_config' is typed Any, the real's nvidia.nvcomp.nvcomp_impl.DecompressConfig"),
    ("a keyword-only parameter", "def as_arrays(buffer: Any, offsets",
     "def as_arrays(buffer: Any, *, offsets", "keyword-only offsets"),
    ("a positional keyword of a **kwargs", "def __init__(self, **kwargs: Any) -> None:",
     "def __init__(self, algorithm: str = '', **kwargs: Any) -> None:",
     "'algorithm' can be passed positionally"),
    ("an undocumented keyword", "def __init__(self, **kwargs: Any) -> None:",
     "def __init__(self, *, algorythm: str = '', **kwargs: Any) -> None:",
     "'algorythm' is not a keyword the real documents"),
    ("an instance attribute nvCOMP lacks", "    batch._sizes = list(sizes)\n",
     "    batch._sizes = list(sizes)\n    batch.views = []\n",
     "BatchArray.views: an instance attribute of the double; the real BatchArray has no views"),
    ("a plain attribute for a property", [
        ("    @property\n    def buffer_sizes(self) -> list[int]:\n"
         "        return list(self._sizes)\n", ""),
        ("    batch._sizes = list(sizes)\n",
         "    batch._sizes = list(sizes)\n    batch.buffer_sizes = list(sizes)\n")], "",
     "BatchArray.buffer_sizes: a plain instance attribute in the double; the real one is a "
     "read-only property"),
    ("a property of another type", "return list(self._sizes)", "return tuple(self._sizes)",
     "BatchArray.buffer_sizes: gives tuple"),
    ("a property for a method", "    def get_required_decompression_alignment(self) -> int:",
     "    @property\n    def get_required_decompression_alignment(self) -> int:",
     "a property in the double; the real one is a function or method"),
    ("enum members of another type", "class BitstreamKind(enum.Enum):", "class BitstreamKind:",
     "BitstreamKind.RAW: the real one is a member of its enum BitstreamKind; the double's is "
     "int 1"),
    ("a constructor nvCOMP lacks", "class BatchArray:\n",
     "class BatchArray:\n    def __init__(self, sizes: list[int]) -> None:\n"
     "        self._sizes = sizes\n\n",
     "BatchArray.__init__: the real BatchArray has no constructor"),
    ("value equality nvCOMP lacks", "    def __len__(self) -> int:",
     "    def __eq__(self, other: object) -> bool:\n        return True\n\n"
     "    def __len__(self) -> int:",
     "BatchArray.__eq__: the real BatchArray has no __eq__"),
    ("a counter it does not declare test-only", "class Codec:\n",
     "class Codec:\n    calls = []\n\n", "Codec.calls: the real Codec has no calls"),
    ("a test-only callable", "class Codec:\n",
     "__test_only__ = ('as_arrays',)\n\n\nclass Codec:\n",
     "__test_only__ may name data only, not the callable as_arrays"),
    ("a test-only name nvCOMP has", "class Codec:\n",
     "__test_only__ = ('BitstreamKind.RAW',)\n\n\nclass Codec:\n",
     "__test_only__ names BitstreamKind.RAW, which the real library has"),
]


def fake_module(source: str, name: str = "fake_double") -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # our own text
    return module


def mutated(source: str, old: str | list[tuple[str, str]], new: str) -> str:
    """`source` with `old` (or each (old, new) pair) replaced once; each must be there."""
    for before, after in [(old, new)] if isinstance(old, str) else old:
        assert before in source, before
        source = source.replace(before, after, 1)
    return source


def honest_nvcomp_checker(real: ra.RealModule, source: str = HONEST_NVCOMP) -> ra.Checker:
    double = fake_module(source)
    instances = {
        "Codec": lambda: double.Codec(algorithm="Zstd"),
        "BatchArray": lambda: double.as_arrays(None, [0], [8]),
    }
    return ra.Checker(double, real, NVCOMP_TYPES, instances)


def test_an_honest_nvcomp_double_passes(real_nvcomp: ra.RealModule) -> None:
    checker = honest_nvcomp_checker(real_nvcomp)
    assert checker.check() == []
    makers = {"Codec": checker.instances["Codec"], "BatchArray": checker.instances["BatchArray"]}
    assert ra.probe_types(checker, makers) == []
    counted = HONEST_NVCOMP.replace("class Codec:\n", "__test_only__ = ('Codec.calls',)\n\n\n"
                                    "class Codec:\n    calls = []\n\n")
    assert honest_nvcomp_checker(real_nvcomp, counted).check() == []


@pytest.mark.parametrize(("old", "new", "said"), [m[1:] for m in NVCOMP_MUTATIONS],
                         ids=[m[0] for m in NVCOMP_MUTATIONS])
def test_the_nvcomp_checker_fails_a_double_with_one_thing_wrong(
        real_nvcomp: ra.RealModule, old: str | list[tuple[str, str]], new: str, said: str
        ) -> None:
    problems = honest_nvcomp_checker(real_nvcomp, mutated(HONEST_NVCOMP, old, new)).check()
    assert any(said in p for p in problems), problems


@pytest.mark.parametrize(("old", "new", "said"), [
    ('        _typed(data_type, str, "data_type")\n', "",
     "Codec.decode(data_type=...): wrong types reach the double (<object object"),
    ('    _typed(cuda_stream, int, "cuda_stream")\n', "",
     "as_arrays(cuda_stream=...): wrong types reach the double"),
    ('        _typed(srcs, BatchArray, "srcs")\n', '        srcs.buffer_sizes\n',
     "-> AttributeError"),
    ("        return srcs\n", "        raise TypeError('always')\n",
     "Codec.decode: refuses valid arguments"),
], ids=["unchecked str", "unchecked int", "another error", "refuses valid calls"])
def test_the_type_probe_fails_a_double_that_does_not_enforce_types(
        real_nvcomp: ra.RealModule, old: str, new: str, said: str) -> None:
    checker = honest_nvcomp_checker(real_nvcomp, mutated(HONEST_NVCOMP, old, new))
    checker.check()
    makers = {"Codec": checker.instances["Codec"], "BatchArray": checker.instances["BatchArray"]}
    problems = ra.probe_types(checker, makers)
    assert any(said in p for p in problems), problems


def load_copy(path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A fresh copy of a double module (its classes are its own, free to change)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_the_checker_names_what_is_added_to_a_copy_of_the_nvcomp_double(
        real_nvcomp: ra.RealModule, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = load_copy(Path(nvcomp_double.__file__), "nvcomp_double_copy", monkeypatch)

    def bogus_function(x: int) -> int:
        return x

    bogus_function.__module__ = copy.__name__
    copy.bogus_function = bogus_function  # type: ignore[attr-defined]
    copy.Codec.bogus_method = lambda self: 0  # type: ignore[attr-defined]
    problems = nvcomp_checker(copy, real_nvcomp).check()
    assert "bogus_function: nvidia.nvcomp has no bogus_function" in problems
    assert "Codec.bogus_method: the real Codec has no bogus_method" in problems


# -- kvikio -----------------------------------------------------------------------------------

def kvikio_sources() -> Path:
    """kvikio's Python package from its wheel (fetched by pip into .cache/ the first time;
    $CUZARR_KVIKIO_SOURCES points elsewhere), never installed or imported; skips when it
    cannot be fetched."""
    name, version = KVIKIO_WHEEL
    folder = Path(os.environ.get("CUZARR_KVIKIO_SOURCES")
                  or ROOT / ".cache" / f"{name}-{version}") / "kvikio"
    if (folder / "cufile.py").exists() and (folder / "defaults.py").exists():
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        try:  # the wheel is the same for every platform's Python sources: ask for Linux's
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary", ":all:", "--platform", "manylinux_2_28_x86_64",
                 "--python-version", "3.12", "--implementation", "cp", "--retries", "1",
                 "--timeout", "30", f"{name}=={version}", "-d", tmp],
                check=True, timeout=600, capture_output=True, text=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            detail = getattr(e, "stderr", "") or str(e)
            unavailable(f"{name}=={version}'s wheel could not be fetched (no network or no "
                        f"index?): {str(detail).strip()[-300:]}")
        (wheel,) = Path(tmp).glob("*.whl")
        staging = Path(tmp) / "kvikio"
        staging.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.startswith("kvikio/") and member.count("/") == 1 and (
                        member.endswith(".py")):
                    (staging / member.split("/")[1]).write_bytes(archive.read(member))
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.move(staging, folder)
    return folder


@pytest.fixture(scope="module")
def real_kvikio() -> tuple[ra.RealModule, Path]:
    folder = kvikio_sources()
    return ra.source_model(folder), folder


@pytest.fixture
def ten_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "ten.bin"
    path.write_bytes(bytes(range(10)))
    return path


@pytest.fixture
def opened() -> Iterator[list[Any]]:
    """Every CuFile a test opens through `open_in`, closed afterwards."""
    handles: list[Any] = []
    yield handles
    for handle in handles:
        with contextlib.suppress(Exception):  # (a double's close may be what is wrong)
            handle.close()


def kvikio_checker(double: Any, real: ra.RealModule, path: Path, opened: list[Any]
                   ) -> ra.Checker:
    def cufile() -> object:
        handle = double.CuFile(str(path), "r")
        opened.append(handle)
        return handle

    return ra.Checker(double, real, "", {"CuFile": cufile})


def pread_result_problems(double: Any, real: ra.RealModule, path: Path, opened: list[Any]
                          ) -> list[str]:
    """What CuFile.pread gives must be a kvikio IOFuture: what it offers is IOFuture's
    (its constructor is not offered: cuzarr never builds one)."""
    cufile = real.members.get("cufile")
    future = cufile.members.get("IOFuture") if isinstance(cufile, ra.RealModule) else None
    assert isinstance(future, ra.RealClass), "kvikio's sources have no cufile.IOFuture"
    handle = double.CuFile(str(path), "r")
    opened.append(handle)
    result = handle.pread(np.zeros(4, dtype=np.uint8), 4, 0)
    checker = ra.Checker(double, real)
    checker.check_class(type(result), future, "IOFuture", frozenset(), constructor=False)
    checker.check_instance(result, future, "IOFuture", frozenset())
    return checker.problems


def eof_problems(cufile: Callable[[str, str], Any], path: Path) -> list[str]:
    """kvikio's POSIX reads raise RuntimeError("POSIX error on pread: EOF") for a read
    that reaches past the end of the file, instead of returning a short count; a read
    inside the file gives its size. `path` holds 10 bytes."""
    problems = []
    for what, size, offset in [("a read within the file", 10, 0),
                               ("a read running past the end", 16, 0),
                               ("a read starting at the end", 4, 10),
                               ("a read starting past the end", 4, 20)]:
        handle = cufile(str(path), "r")
        buf = np.zeros(size, dtype=np.uint8)
        try:
            got = handle.pread(buf, size, offset).get()
        except RuntimeError as e:
            if offset + size <= 10:
                problems.append(f"{what} raised {e!r}")
            elif "EOF" not in str(e):
                problems.append(f"{what} raised {e!r}; kvikio says 'POSIX error on pread: EOF'")
            continue
        finally:
            handle.close()
        if offset + size > 10:
            problems.append(f"{what} ({size} bytes at {offset} of a 10-byte file) returned "
                            f"{got!r}; kvikio raises RuntimeError('POSIX error on pread: EOF')")
        elif got != size or buf.tobytes() != bytes(range(10))[offset : offset + size]:
            problems.append(f"{what} returned {got!r} and {buf.tobytes()!r}")
    return problems


def test_the_kvikio_double_offers_only_what_kvikio_has(
        real_kvikio: tuple[ra.RealModule, Path], ten_bytes: Path, opened: list[Any]) -> None:
    """Every name of tests/kvikio_double.py is kvikio's, with kvikio's parameter names,
    order, kinds and defaults (CuFile(file, flags), pread(buf, size=None, file_offset=0,
    task_size=None), close(), the defaults module's get/set), and pread's result offers
    only what kvikio's IOFuture does."""
    real, _ = real_kvikio
    problems = kvikio_checker(kvikio_double, real, ten_bytes, opened).check()
    if hasattr(kvikio_double, "CuFile"):
        problems += pread_result_problems(kvikio_double, real, ten_bytes, opened)
    assert not problems, "the kvikio double differs from kvikio:\n" + "\n".join(problems)


def test_the_kvikio_doubles_settings_are_kvikios(real_kvikio: tuple[ra.RealModule, Path]
                                                  ) -> None:
    """kvikio.defaults.get/set take the names kvikio documents only: an unknown name is a
    KeyError, a malformed set a ValueError."""
    defaults = getattr(kvikio_double, "defaults", None)
    if defaults is None:
        pytest.skip("the kvikio double offers no kvikio.defaults")
    _, folder = real_kvikio
    keys = ra.documented_config_keys(folder / "defaults.py")
    assert {"compat_mode", "num_threads", "gds_threshold", "task_size"} <= keys
    problems = []
    calls: list[tuple[str, Callable[[], object], type[Exception]]] = [
        ('get("no_such_setting")', lambda: defaults.get("no_such_setting"), KeyError),
        ('set("no_such_setting", 1)', lambda: defaults.set("no_such_setting", 1), KeyError),
        ('set({"no_such_setting": 1})', lambda: defaults.set({"no_such_setting": 1}), KeyError),
        ("set(1, 2)", lambda: defaults.set(1, 2), ValueError),
        ('set("num_threads", 1, 2)', lambda: defaults.set("num_threads", 1, 2), ValueError)]
    for text, call, error in calls:
        try:
            call()
        except error:
            continue
        except Exception as e:  # (reported)
            problems.append(f"defaults.{text} raised {e!r}, not {error.__name__}")
            continue
        problems.append(f"defaults.{text} was accepted; kvikio raises {error.__name__}")
    assert not problems, "\n".join(problems)


def test_the_kvikio_double_raises_at_end_of_file_as_kvikio_does(ten_bytes: Path) -> None:
    problems = eof_problems(kvikio_double.CuFile, ten_bytes)
    assert not problems, "the kvikio double reads past EOF as kvikio does not:\n" + "\n".join(
        problems)


FAKE_KVIKIO = {
    "__init__.py": "from kvikio._lib.defaults import CompatMode  # noqa: F401\n"
                   "from kvikio.cufile import CuFile\n",
    "cufile.py": '''
from typing import Optional


class IOFuture:
    __slots__ = "_handle"

    def __init__(self, handle):
        self._handle = handle

    def get(self) -> int:
        return self._handle.get()

    def done(self) -> bool:
        return self._handle.done()


class CuFile:
    def __init__(self, file, flags: str = "r"):
        self._handle = None

    def close(self) -> None:
        self._handle.close()

    @property
    def closed(self) -> bool:
        return self._handle.closed()

    def pread(self, buf, size: Optional[int] = None, file_offset: int = 0,
              task_size: Optional[int] = None) -> IOFuture:
        return IOFuture(self._handle.pread(buf, size, file_offset, task_size))
''',
    "defaults.py": '''
from typing import Any, overload


@overload
def set(config: dict[str, Any], /) -> None: ...


@overload
def set(key: str, value: Any, /) -> None: ...


def set(*config) -> None:
    """Set."""


def get(config_name: str) -> Any:
    """Get.

    - ``"compat_mode"``
    - ``"num_threads"``
    """
''',
}

HONEST_KVIKIO = '''
from __future__ import annotations

import os
import types
from typing import Any

import numpy as np

_SETTINGS = {"compat_mode": 1, "num_threads": 1}


def _get(config_name: str) -> Any:
    return _SETTINGS[config_name]


def _set(*config: Any) -> None:
    pass


defaults = types.SimpleNamespace(get=_get, set=_set)


class _Future:
    def __init__(self, count: int = 0, error: BaseException | None = None) -> None:
        self._count, self._error = count, error

    def get(self) -> int:
        if self._error is not None:
            raise self._error
        return self._count

    def done(self) -> bool:
        return True


class CuFile:
    def __init__(self, file: str, flags: str = "r") -> None:
        self._fd = os.open(file, os.O_RDONLY)

    def pread(self, buf: Any, size: int | None = None, file_offset: int = 0,
              task_size: int | None = None) -> _Future:
        view = np.asarray(buf).reshape(-1).view(np.uint8)
        size = view.size if size is None else size
        data = os.pread(self._fd, size, file_offset)
        if len(data) < size:
            return _Future(error=RuntimeError("POSIX error on pread: EOF"))
        view[:size] = np.frombuffer(data, dtype=np.uint8)
        return _Future(size)

    def close(self) -> None:
        os.close(self._fd)
'''

KVIKIO_MUTATIONS: list[tuple[str, str | list[tuple[str, str]], str, str]] = [
    ("a renamed parameter", [("def __init__(self, file: str,", "def __init__(self, path: str,"),
                             ("os.open(file,", "os.open(path,")], "",
     "parameter 1 is 'path', the real's 'file'"),
    ("a missing parameter", ",\n              task_size: int | None = None) -> _Future:",
     ") -> _Future:", "CuFile.pread(buf, size, file_offset) matches no real overload"),
    ("a required size", "size: int | None = None, file_offset",
     "size: int | None, file_offset", "'size' defaults to nothing, the real's to None"),
    ("an attribute kvikio lacks", "        self._fd = os.open(file, os.O_RDONLY)\n",
     "        self._fd = os.open(file, os.O_RDONLY)\n        self.path = file\n",
     "CuFile.path: an instance attribute of the double; the real CuFile has no path"),
    ("a method kvikio lacks", "    def close(self) -> None:",
     "    def size(self) -> int:\n        return 0\n\n    def close(self) -> None:",
     "CuFile.size: the real CuFile has no size"),
    ("a setting call of another shape", "def _get(config_name: str) -> Any:",
     "def _get(config_name: str, default: Any = None) -> Any:",
     "defaults.get(config_name, default) matches no real overload"),
    ("a future method kvikio lacks", "    def done(self) -> bool:",
     "    def wait(self) -> None:\n        pass\n\n    def done(self) -> bool:",
     "IOFuture.wait: the real IOFuture has no wait"),
    ("a public future attribute", "self._count, self._error = count, error",
     "self.count, self._error = count, error",
     "IOFuture.count: an instance attribute of the double; the real IOFuture has no count"),
]


@pytest.fixture
def fake_kvikio(tmp_path: Path) -> tuple[ra.RealModule, Path]:
    folder = tmp_path / "kvikio"
    folder.mkdir()
    for name, text in FAKE_KVIKIO.items():
        (folder / name).write_text(text)
    return ra.source_model(folder), folder


def test_the_source_reader_reads_kvikio_shaped_sources(
        fake_kvikio: tuple[ra.RealModule, Path]) -> None:
    real, folder = fake_kvikio
    cufile = real.members["CuFile"]
    assert isinstance(cufile, ra.RealClass)
    assert cufile is real.members["cufile"].members["CuFile"]  # type: ignore[union-attr]
    assert cufile.init is not None and str(cufile.init.overloads[0]) == "(file, flags: str = 'r')"
    (pread,) = cufile.members["pread"].overloads  # type: ignore[union-attr]
    assert str(pread) == ("(buf, size: Optional[int] = None, file_offset: int = 0, "
                          "task_size: Optional[int] = None) -> IOFuture")
    assert cufile.members["closed"] == ra.RealProperty("bool")
    assert isinstance(real.members["CompatMode"], ra.RealOpaque)
    defaults = real.members["defaults"]
    assert isinstance(defaults, ra.RealModule)
    assert [str(o) for o in defaults.members["set"].overloads] == [  # type: ignore[union-attr]
        "(config: dict[str, Any], /) -> None", "(key: str, value: Any, /) -> None",
        "(*config) -> None"]
    assert ra.documented_config_keys(folder / "defaults.py") == {"compat_mode", "num_threads"}


def test_an_honest_kvikio_double_passes(fake_kvikio: tuple[ra.RealModule, Path],
                                        ten_bytes: Path, opened: list[Any]) -> None:
    real, _ = fake_kvikio
    double = fake_module(HONEST_KVIKIO)
    assert kvikio_checker(double, real, ten_bytes, opened).check() == []
    assert pread_result_problems(double, real, ten_bytes, opened) == []
    assert eof_problems(double.CuFile, ten_bytes) == []


@pytest.mark.parametrize(("old", "new", "said"), [m[1:] for m in KVIKIO_MUTATIONS],
                         ids=[m[0] for m in KVIKIO_MUTATIONS])
def test_the_kvikio_checker_fails_a_double_with_one_thing_wrong(
        fake_kvikio: tuple[ra.RealModule, Path], ten_bytes: Path, opened: list[Any],
        old: str | list[tuple[str, str]], new: str, said: str) -> None:
    real, _ = fake_kvikio
    double = fake_module(mutated(HONEST_KVIKIO, old, new))
    problems = kvikio_checker(double, real, ten_bytes, opened).check()
    problems += pread_result_problems(double, real, ten_bytes, opened)
    assert any(said in p for p in problems), problems


def test_the_eof_check_fails_a_double_that_returns_a_short_count(ten_bytes: Path) -> None:
    short = HONEST_KVIKIO.replace(
        '            return _Future(error=RuntimeError("POSIX error on pread: EOF"))\n',
        "            view[: len(data)] = np.frombuffer(data, dtype=np.uint8)\n"
        "            return _Future(len(data))\n")
    assert short != HONEST_KVIKIO
    problems = eof_problems(fake_module(short).CuFile, ten_bytes)
    assert [p.split(" (")[0] for p in problems] == [
        "a read running past the end", "a read starting at the end",
        "a read starting past the end"]


# -- cupy -------------------------------------------------------------------------------------

def cupy_site() -> Path:
    """cupy (and cuda-pathfinder, the one dependency it imports) installed by pip into
    .cache/ the first time ($CUZARR_CUPY_SITE points elsewhere), not into the environment:
    only a child process imports it. Skips when it cannot be installed."""
    (name, version), _ = CUPY_WHEELS
    folder = Path(os.environ.get("CUZARR_CUPY_SITE")
                  or ROOT / ".cache" / f"{name}-{version}-site")
    if (folder / ".installed").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".partial-"))
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--retries", "1",
             "--timeout", "30", "--target", str(staging),
             *(f"{n}=={v}" for n, v in CUPY_WHEELS)],
            check=True, timeout=900, capture_output=True, text=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        detail = getattr(e, "stderr", "") or str(e)
        unavailable(f"{name}=={version} could not be installed into .cache/ (no network, or "
                    f"no wheel for this platform?): {str(detail).strip()[-300:]}")
    (staging / ".installed").touch()
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def strict_xp_offers() -> dict[str, ra.Offer]:
    """What the strict stand-in offers as cupy: its module's own attributes, the paths
    cuzarr's sources use on `xp` (the module forwards the rest to numpy), every member of
    its classes (DeviceArray as cupy.ndarray) and what a DeviceArray forwards to numpy."""
    uses = set(ra.iter_xp_uses(ROOT / "src" / "cuzarr"))
    assert "asarray" in uses, "no xp.* use found in src/cuzarr: the scan is broken"
    return ra.standin_offers(
        strict_xp.module, uses, forwards_to=np,
        samples={strict_xp.DeviceArray: lambda: strict_xp.module.asarray(np.zeros((2, 2)))})


def test_the_strict_cupy_stand_in_offers_only_what_cupy_has() -> None:
    """Every function, attribute and method the strict stand-in offers exists in cupy
    (cupy.ndarray for DeviceArray's), and every call the stand-in accepts (parameter
    names, kinds, defaults) is one cupy's signature accepts too."""
    offers = strict_xp_offers()
    assert {"ndarray", "ndarray.get", "asarray", "empty", "cuda.get_current_stream"} <= set(
        offers)
    cupy = ra.cupy_api(offers, cupy_site())
    assert cupy["asarray"].params is not None, "cupy.asarray's signature was not read"
    problems = ra.compare_offers(offers, cupy)
    assert not problems, "the strict stand-in differs from cupy:\n" + "\n".join(problems)


FAKE_CUPY = {
    "asarray": ra.CupyMember(True, "function", (
        ra.Param("a"), ra.Param("dtype", default="None"), ra.Param("order", default="None"),
        ra.Param("copy", P.KEYWORD_ONLY, default="None"))),
    "ndarray": ra.CupyMember(True, "class"),
    "ndarray.__init__": ra.CupyMember(True, "function", (ra.Param("shape"),)),
    "ndarray.shape": ra.CupyMember(True, "property"),
    "ndarray.set": ra.CupyMember(True, "function", (
        ra.Param("arr"), ra.Param("stream", default="None"))),
    "ndarray.__len__": ra.CupyMember(True, "function"),
}


def fake_standin(extra: str = "") -> dict[str, ra.Offer]:
    source = '''
class ndarray:
    def __init__(self, shape):
        self._shape = shape

    @property
    def shape(self):
        return self._shape

    def set(self, arr, stream=None):
        pass

    def __len__(self):
        return 0


def asarray(a, dtype=None, order=None):
    return ndarray(a)
''' + extra
    return ra.standin_offers(fake_module(source), [], forwards_to=None, samples={})


def test_an_honest_cupy_stand_in_passes() -> None:
    offers = fake_standin()
    assert set(offers) == set(FAKE_CUPY)
    assert ra.compare_offers(offers, FAKE_CUPY) == []


@pytest.mark.parametrize(("extra", "said"), [
    ("\n\ndef bogus() -> None:\n    pass\n", "xp.bogus: the stand-in offers it, cupy has no bogus"),
    ("\n\ndef asarray(a, dtype=None, order=None, *, like=None):\n    pass\n",
     "takes keyword 'like'; cupy does not"),
    ("\n\ndef asarray(a, dtype=float):\n    pass\n", "'dtype' defaults to float, cupy's to None"),
    ("\n\ndef asarray(obj):\n    pass\n",
     "takes 'obj' by keyword; cupy's positional argument 1 is named 'a'"),
    ("\n\ndef asarray(*, dtype=None):\n    pass\n", "cupy requires 'a'"),
    ("\n\ndef asarray(*args, **kwargs):\n    pass\n", "takes *args; cupy takes no extra"),
    ("\n\nndarray.set = lambda self, host, stream=None: None\n",
     "xp.ndarray.set: the stand-in accepts (host, stream = None)"),
    ("\n\nndarray.shape = lambda self: None\n", "xp.ndarray.shape: a function in the stand-in"),
    ("\n\nndarray.tofile = lambda self, f: None\n", "xp.ndarray.tofile: the stand-in offers it"),
    ("\n\nndarray.__index__ = lambda self: 0\n", "xp.ndarray.__index__: the stand-in offers it"),
], ids=["a function cupy lacks", "a keyword cupy lacks", "another default", "a renamed argument",
        "a missing argument", "anything goes", "a renamed method argument",
        "a method for a property", "a method cupy lacks", "a protocol cupy lacks"])
def test_the_cupy_comparison_fails_a_stand_in_with_one_thing_wrong(extra: str, said: str
                                                                    ) -> None:
    problems = ra.compare_offers(fake_standin(extra), FAKE_CUPY)
    assert any(said in p for p in problems), problems


def test_the_stand_in_offers_what_it_forwards_to_numpy() -> None:
    """The stand-in's forwarding (`__getattr__` to numpy) counts as offered: a used name
    resolves to numpy's signature, and an instance's forwarded methods are listed."""
    offers = strict_xp_offers()
    forwarded = [path for path in offers
                 if "." not in path and path not in vars(strict_xp.module)]
    assert forwarded, "no use of xp resolves through the forwarding: nothing to check"
    for path in forwarded:
        assert offers[path].params == ra.signature_params(
            inspect.signature(getattr(np, path))), path
    assert offers["empty"].params == ra.signature_params(
        inspect.signature(strict_xp.module.empty))  # its own, cupy's signature
    assert offers["ndarray.reshape"].kind == "function"
    assert offers["ndarray.ndim"].kind == "attribute"
    assert "ndarray.tobytes" not in offers  # refused by the stand-in, so not offered


def test_uses_of_xp_are_found(tmp_path: Path) -> None:
    source = "def f(xp, self):\n    xp.cuda.get_current_stream()\n    self.xp.empty(3)\n"
    (tmp_path / "m.py").write_text(source)
    assert set(ra.iter_xp_uses(tmp_path)) == {"cuda", "cuda.get_current_stream", "empty"}
