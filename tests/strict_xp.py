"""A strict stand-in for cupy: numpy underneath, but host/device mixing fails as on a GPU.

numpy standing in for cupy lets code pass in CI that fails on a GPU, because numpy
happily mixes the "device" arrays with host ones. Here device arrays are `DeviceArray`,
a wrapper (not an ndarray subclass: numpy takes a subclass as a host array in
np.asarray, indexing and assignment without asking it) that holds a numpy array and
follows cupy's rules where they matter:

- `__array__` raises TypeError: `np.asarray(d)`, `np.array(d)`, `host[d]`,
  `host[...] = d` fail (cupy: "Implicit conversion to a NumPy array is not allowed").
- numpy functions and ufuncs on device arrays run (cupy's `__array_function__` and
  `__array_ufunc__` dispatch to cupy) and give device arrays, 0-d ones for reductions;
  a plain numpy array among the operands is a TypeError (cupy: "Unsupported type").
- `d[...] = host_array` fails (cupy's basic-index update takes a non-cupy value as a
  scalar fill: "non-scalar numpy.ndarray cannot be used for fill"); numpy and Python
  scalars are fine. This is stricter than cupy for advanced-index assignment, which may
  copy a host value implicitly: here every host value goes over by an explicit asarray.
- numpy integer or boolean arrays as indices of a device array are fine (cupy copies
  them to the device); a 0-d result is a 0-d device array, as cupy returns.
- no buffer protocol, `tobytes`, `tofile`, `ctypes`, `data` as memory, or
  `__array_interface__` (cupy has none of them); `__cuda_array_interface__` instead.
- `int()`, `float()`, `bool()` of a one-element array, `tolist()` and `item()` work
  (cupy synchronizes and copies); `__index__` is absent, so a device scalar cannot
  index a host array.
- `.get()`, `asnumpy()` give plain numpy copies; `asarray`, `array`, `.set()` copy
  host data in.
- non-native byte orders are refused (cupy has no non-native dtypes).

`backing(d)` is the device memory itself, as a numpy array: only the stand-ins for
what runs on the GPU (the kernel launcher, the nvCOMP and kvikio doubles) may use it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["DeviceArray", "backing", "is_device", "kernel_arg", "module"]

#: ndarray members cupy.ndarray does not have (host memory access, and numpy-only API)
_HOST_ONLY = frozenset({"tobytes", "tostring", "tofile", "ctypes", "data", "__array_interface__",
                        "__array_struct__", "__buffer__", "byteswap", "newbyteorder",
                        "setflags", "resize", "__index__", "getfield", "setfield",
                        "to_device"})
_SCALARS = (bool, int, float, complex, np.generic, type(None))


def _implicit(what: Any) -> TypeError:
    return TypeError(f"Unsupported type {type(what)}: a host array where a device array "
                     "is required (implicit host-to-device transfer)")


def _check_dtype(array: np.ndarray) -> np.ndarray:
    dtype = array.dtype
    if dtype.fields is None and not dtype.isnative and dtype.itemsize > 1:
        raise ValueError(f"Unsupported dtype {dtype}: cupy has no non-native byte order")
    return array


class DeviceArray:
    """A device array: numpy memory that host code may not touch implicitly."""

    __slots__ = ("__weakref__", "_a", "_base")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None,
                 order: str = "C") -> None:
        """cupy.ndarray(shape, ...): new (uninitialized) device memory; the stand-in
        cannot view foreign device memory (memptr) or lay out strides by hand."""
        if memptr is not None or strides is not None:
            raise NotImplementedError("the strict stand-in allocates its own memory only")
        self._a = _check_dtype(np.empty(shape, dtype=dtype, order=order))  # type: ignore[call-overload]
        self._base = None

    @classmethod
    def _of(cls, array: np.ndarray, base: DeviceArray | None = None) -> DeviceArray:
        """numpy memory as a device array (inside the stand-ins only)."""
        device = object.__new__(cls)
        device._a = _check_dtype(array)
        device._base = base
        return device

    # -- the implicit conversions cupy refuses ---------------------------------------------

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __buffer__(self, flags: int) -> memoryview:
        raise TypeError("a device array has no buffer protocol")

    def __getattr__(self, name: str) -> Any:
        if name in _HOST_ONLY or name.startswith("__"):
            raise AttributeError(f"DeviceArray (cupy.ndarray) has no attribute {name!r}")
        value = getattr(self._a, name)
        if callable(value):
            def method(*args: Any, **kwargs: Any) -> Any:
                return _wrap(value(*_unwrap(args), **_unwrap(kwargs)), self)
            return method
        return _wrap(value, self)

    # -- what cupy has ---------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @property
    def dtype(self) -> np.dtype:
        return self._a.dtype

    @property
    def base(self) -> DeviceArray | None:
        """The array whose memory this one views (cupy: the owner, never a chain)."""
        return self._base

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        face = self._a.__array_interface__
        return {"shape": face["shape"], "typestr": face["typestr"], "data": face["data"],
                "strides": face["strides"], "descr": face["descr"], "version": 3}

    def get(self, stream: Any = None) -> np.ndarray:
        """A host copy (cupy.ndarray.get)."""
        return np.array(self._a, copy=True)

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        """Copy a host array of the same shape and dtype in (cupy.ndarray.set)."""
        if isinstance(arr, DeviceArray) or not isinstance(arr, np.ndarray):
            raise TypeError(f"set takes a numpy array, not {type(arr)}")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError("set: the host array's shape or dtype differs")
        self._a[...] = arr

    # -- methods whose signature is cupy's, not numpy's (cupy takes fewer arguments) -------

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return _wrap(getattr(self._a, name)(*_unwrap(args), **_unwrap(kwargs)), self)

    def all(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._call("all", axis=axis, out=out, keepdims=keepdims)

    def any(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._call("any", axis=axis, out=out, keepdims=keepdims)

    def max(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._call("max", axis=axis, out=out, keepdims=keepdims)

    def min(self, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return self._call("min", axis=axis, out=out, keepdims=keepdims)

    def sum(self, axis: Any = None, dtype: Any = None, out: Any = None,
            keepdims: bool = False) -> Any:
        return self._call("sum", axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def prod(self, axis: Any = None, dtype: Any = None, out: Any = None,
             keepdims: Any = None) -> Any:
        return self._call("prod", axis=axis, dtype=dtype, out=out,
                          keepdims=bool(keepdims))

    def mean(self, axis: Any = None, dtype: Any = None, out: Any = None,
             keepdims: bool = False) -> Any:
        return self._call("mean", axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def std(self, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0,
            keepdims: bool = False) -> Any:
        return self._call("std", axis=axis, dtype=dtype, out=out, ddof=ddof,
                          keepdims=keepdims)

    def var(self, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0,
            keepdims: bool = False) -> Any:
        return self._call("var", axis=axis, dtype=dtype, out=out, ddof=ddof,
                          keepdims=keepdims)

    def clip(self, min: Any = None, max: Any = None, out: Any = None) -> Any:
        return self._call("clip", min=min, max=max, out=out)

    def item(self) -> Any:
        return self._a.item()

    def view(self, dtype: Any = None, type: Any = None) -> Any:
        if type is not None:
            raise NotImplementedError("the strict stand-in has no view(type=...)")
        return self._call("view") if dtype is None else self._call("view", dtype)

    def argsort(self, axis: int = -1, kind: Any = None) -> Any:
        return self._call("argsort", axis=axis, kind=kind)

    def sort(self, axis: int = -1, kind: Any = None) -> None:
        self._a.sort(axis=axis, kind=kind)

    def argpartition(self, kth: Any, axis: int = -1) -> Any:
        return self._call("argpartition", kth, axis=axis)

    def partition(self, kth: Any, axis: int = -1) -> None:
        self._a.partition(_unwrap(kth), axis=axis)

    def take(self, indices: Any, axis: Any = None, out: Any = None) -> Any:
        return self._call("take", indices, axis=axis, out=out)

    def put(self, indices: Any, values: Any, mode: str = "wrap") -> None:
        self._a.put(_unwrap(indices), _unwrap(values), mode=mode)

    def astype(self, dtype: Any, order: str = "K", casting: Any = None, subok: Any = None,
               copy: bool = True) -> DeviceArray:
        result = self._a.astype(dtype, order=order, casting=casting or "unsafe", copy=copy)
        return self if result is self._a else DeviceArray._of(result)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterator[DeviceArray]:
        return (self[i] for i in range(len(self)))

    def __int__(self) -> int:
        return int(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __repr__(self) -> str:
        return f"DeviceArray({self._a!r})"

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_unwrap(key)], self)

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, np.ndarray) and value.ndim > 0:
            raise TypeError("non-scalar numpy.ndarray cannot be assigned to a device array: "
                            "copy it over with asarray first")
        if not isinstance(value, (DeviceArray, np.ndarray, *_SCALARS)):
            raise TypeError(f"Unsupported type {type(value)} assigned to a device array")
        self._a[_unwrap(key)] = _unwrap(value)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any,
                        **kwargs: Any) -> Any:
        result = getattr(ufunc, method)(*_strict(inputs), **_strict(kwargs))
        out = kwargs.get("out")
        if out is not None:
            return out[0] if isinstance(out, tuple) and len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func: Callable[..., Any], types_: Any, args: Any,
                           kwargs: Any) -> Any:
        return _wrap(func(*_strict(args), **_strict(kwargs)), _first_device(args))


def _binary(name: str) -> Callable[[DeviceArray, Any], Any]:
    op = getattr(np.ndarray, name)

    def method(self: DeviceArray, other: Any) -> Any:
        return _wrap(op(self._a, _strict(other)))
    method.__name__ = name
    return method


def _inplace(name: str) -> Callable[[DeviceArray, Any], Any]:
    op = getattr(np.ndarray, name)

    def method(self: DeviceArray, other: Any) -> Any:
        op(self._a, _strict(other))
        return self
    method.__name__ = name
    return method


def _unary(name: str) -> Callable[[DeviceArray], Any]:
    op = getattr(np.ndarray, name)

    def method(self: DeviceArray) -> Any:
        return _wrap(op(self._a))
    method.__name__ = name
    return method


for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor",
            "lshift", "rshift", "matmul"):
    setattr(DeviceArray, f"__{_op}__", _binary(f"__{_op}__"))
    setattr(DeviceArray, f"__r{_op}__", _binary(f"__r{_op}__"))
    if _op != "matmul":  # cupy has no in-place matmul
        setattr(DeviceArray, f"__i{_op}__", _inplace(f"__i{_op}__"))
for _op in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(DeviceArray, f"__{_op}__", _binary(f"__{_op}__"))
for _op in ("neg", "pos", "abs", "invert"):
    setattr(DeviceArray, f"__{_op}__", _unary(f"__{_op}__"))


def _first_device(args: Any) -> DeviceArray | None:
    for a in args:
        if isinstance(a, DeviceArray):
            return a
        if isinstance(a, (list, tuple)):
            found = _first_device(a)
            if found is not None:
                return found
    return None


def _unwrap(value: Any) -> Any:
    """Device arrays as their memory (inside this module and the GPU stand-ins only)."""
    if isinstance(value, DeviceArray):
        return value._a
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _strict(value: Any) -> Any:
    """`_unwrap`, refusing host arrays among the operands (cupy functions and ufuncs
    raise TypeError for numpy arrays; numpy scalars, dtypes and Python values are fine)."""
    if isinstance(value, np.ndarray):
        raise _implicit(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_strict(v) for v in value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    return _unwrap(value)


def _wrap(result: Any, parent: DeviceArray | None = None) -> Any:
    """numpy results as device arrays: views keep their owner as base (as cupy's do),
    numpy scalars become 0-d device arrays (cupy reductions and indexing give those)."""
    if isinstance(result, np.ndarray):
        base = None
        if (parent is not None and result.base is not None
                and np.may_share_memory(result, parent._a)):
            base = parent._base if parent._base is not None else parent
        return DeviceArray._of(result, base)
    if isinstance(result, np.generic):
        return DeviceArray._of(np.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r, parent) for r in result)
    if isinstance(result, list):
        return [_wrap(r, parent) for r in result]
    return result


def is_device(value: Any) -> bool:
    return isinstance(value, DeviceArray)


def kernel_arg(value: Any) -> Any:
    """A kernel argument as the host emulation takes it: device arrays as their memory,
    scalars as they are; a host array is refused (cupy's kernels take cupy arrays and
    scalars only: a numpy table must be copied over first)."""
    if isinstance(value, np.ndarray):
        raise _implicit(value)
    return _unwrap(value)


def backing(value: Any) -> np.ndarray:
    """The device memory behind a device array, as numpy: for the GPU stand-ins only
    (kernels, nvCOMP, kvikio), which run on that memory. Host arrays are refused."""
    if not isinstance(value, DeviceArray):
        raise _implicit(value)
    return value._a


# -- the module (what cuzarr calls as `xp`) ---------------------------------------------------

def asarray(a: Any, dtype: Any = None, order: Any = None) -> DeviceArray:
    """cupy.asarray: a device array as is (cast if asked), host data copied over."""
    if isinstance(a, DeviceArray):
        if dtype is None or np.dtype(dtype) == a.dtype:
            return a
        return DeviceArray._of(a._a.astype(dtype))
    return DeviceArray._of(np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj: Any, dtype: Any = None, copy: bool = True) -> DeviceArray:
    """cupy.array: a copy (device or host data)."""
    if isinstance(obj, DeviceArray):
        return DeviceArray._of(np.array(obj._a, dtype=dtype, copy=True))
    return DeviceArray._of(np.array(obj, dtype=dtype, copy=True))


def ascontiguousarray(a: Any, dtype: Any = None) -> DeviceArray:
    if not isinstance(a, DeviceArray):
        raise _implicit(a)  # cupy.ascontiguousarray takes cupy arrays only
    result = np.ascontiguousarray(a._a, dtype=dtype)
    return a if result is a._a else _wrap(result, a)


def asnumpy(a: Any, stream: Any = None) -> np.ndarray:
    """cupy.asnumpy: a host copy of a device array (host data passes through)."""
    if isinstance(a, DeviceArray):
        return a.get()
    return np.asarray(a)


def empty(shape: Any, dtype: Any = float, order: str = "C") -> DeviceArray:
    return DeviceArray._of(np.empty(shape, dtype, order))  # type: ignore[call-overload]


def zeros(shape: Any, dtype: Any = float, order: str = "C") -> DeviceArray:
    return DeviceArray._of(np.zeros(shape, dtype, order))  # type: ignore[call-overload]


def ones(shape: Any, dtype: Any = float, order: str = "C") -> DeviceArray:
    return DeviceArray._of(np.ones(shape, dtype, order))  # type: ignore[call-overload]


def full(shape: Any, fill_value: Any, dtype: Any = None, order: str = "C") -> DeviceArray:
    return DeviceArray._of(np.full(shape, _strict(fill_value), dtype, order))  # type: ignore[call-overload]


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None) -> DeviceArray:
    return DeviceArray._of(np.arange(start, stop, step, dtype=dtype))


def broadcast_to(array: Any, shape: Any) -> DeviceArray:
    if not isinstance(array, DeviceArray):
        raise _implicit(array)
    return _wrap(np.broadcast_to(array._a, shape), array)


def isnan(x: Any, /, out: Any = None, *, casting: str = "same_kind", dtype: Any = None) -> Any:
    """cupy.isnan (a cupy ufunc takes fewer keywords than numpy's)."""
    result = np.isnan(_strict(x), out=_unwrap(out), casting=casting, dtype=dtype)
    return out if out is not None else _wrap(result)


class _Stream:
    """cupy.cuda.Stream as far as cuzarr uses it (the stand-in's copies are synchronous)."""

    ptr = 0

    def synchronize(self) -> None:
        pass

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


_STREAM = _Stream()


def _module() -> types.ModuleType:
    xp = types.ModuleType("strict_xp.cupy", "the strict cupy stand-in")
    xp.ndarray = DeviceArray  # type: ignore[attr-defined]
    for fn in (asarray, array, ascontiguousarray, asnumpy, empty, zeros, ones, full, arange,
               broadcast_to, isnan):
        setattr(xp, fn.__name__, fn)
    xp.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        get_current_stream=lambda: _STREAM, Stream=_Stream)

    def other(name: str) -> Any:
        """Everything else: numpy's function under cupy's rule (device arrays only)."""
        fn = getattr(np, name)
        if isinstance(fn, type) or not callable(fn):
            return fn

        def call(*args: Any, **kwargs: Any) -> Any:
            return _wrap(fn(*_strict(args), **_strict(kwargs)), _first_device(args))
        call.__name__ = name
        return call

    xp.__getattr__ = other  # type: ignore[attr-defined]
    return xp


#: the module to pass as `xp`
module = _module()
