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

#: ndarray members cupy.ndarray does not have (host memory access)
_HOST_ONLY = frozenset({"tobytes", "tostring", "tofile", "ctypes", "data", "__array_interface__",
                        "__array_struct__", "__buffer__", "byteswap", "newbyteorder",
                        "setflags", "resize", "__index__"})
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

    def __init__(self, array: np.ndarray, base: DeviceArray | None = None) -> None:
        self._a = _check_dtype(array)
        self._base = base

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

    def set(self, host: np.ndarray, stream: Any = None) -> None:
        """Copy a host array of the same shape and dtype in (cupy.ndarray.set)."""
        if isinstance(host, DeviceArray) or not isinstance(host, np.ndarray):
            raise TypeError(f"set takes a numpy array, not {type(host)}")
        if host.shape != self.shape or host.dtype != self.dtype:
            raise ValueError("set: the host array's shape or dtype differs")
        self._a[...] = host

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
        return DeviceArray(result, base)
    if isinstance(result, np.generic):
        return DeviceArray(np.asarray(result))
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

def asarray(obj: Any, dtype: Any = None, order: Any = None) -> DeviceArray:
    """cupy.asarray: a device array as is (cast if asked), host data copied over."""
    if isinstance(obj, DeviceArray):
        if dtype is None or np.dtype(dtype) == obj.dtype:
            return obj
        return DeviceArray(obj._a.astype(dtype))
    return DeviceArray(np.array(obj, dtype=dtype, order=order or "K", copy=True))


def array(obj: Any, dtype: Any = None, copy: bool = True) -> DeviceArray:
    """cupy.array: a copy (device or host data)."""
    if isinstance(obj, DeviceArray):
        return DeviceArray(np.array(obj._a, dtype=dtype, copy=True))
    return DeviceArray(np.array(obj, dtype=dtype, copy=True))


def ascontiguousarray(obj: Any, dtype: Any = None) -> DeviceArray:
    if not isinstance(obj, DeviceArray):
        raise _implicit(obj)  # cupy.ascontiguousarray takes cupy arrays only
    result = np.ascontiguousarray(obj._a, dtype=dtype)
    return obj if result is obj._a else _wrap(result, obj)


def asnumpy(obj: Any, stream: Any = None) -> np.ndarray:
    """cupy.asnumpy: a host copy of a device array (host data passes through)."""
    if isinstance(obj, DeviceArray):
        return obj.get()
    return np.asarray(obj)


def _creator(name: str) -> Callable[..., DeviceArray]:
    make = getattr(np, name)

    def create(*args: Any, **kwargs: Any) -> DeviceArray:
        return DeviceArray(make(*_strict(args), **_strict(kwargs)))
    create.__name__ = name
    return create


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
    for fn in (asarray, array, ascontiguousarray, asnumpy):
        setattr(xp, fn.__name__, fn)
    for name in ("empty", "zeros", "ones", "full", "arange"):
        setattr(xp, name, _creator(name))
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
