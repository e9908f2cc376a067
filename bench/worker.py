"""Worker process: one engine per process, measuring on request.

Protocol: JSON lines. The worker first writes a handshake (`ready` true or false), then
answers each request line with one reply line. Requests look like
``{"cmd": "read"|"patches"|"patches-batched"|"write"|"quit", "workload": NAME,
"quick": BOOL, "data": DIR, "scratch": DIR}``; replies carry ``status`` ("ok", "FAILED"
for wrong data, "error") with ``seconds`` and ``nbytes`` (the bytes the op moved). The
protocol uses a private copy of stdout, and fd 1 is pointed at stderr, so stray prints
from an engine cannot corrupt it.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import shutil
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import zarr

from bench.engines import Engine, activate, get_engine
from bench.workloads import DEFAULT_PIPELINE, Workload, array_path, get_workload, ref_path

# zarr's own pipeline and codec classes on host buffers: the judge of what every engine
# wrote. The codec classes are read before any engine is activated, since an engine's
# setup may register its own over them (czarr does).
CPU_DEFAULT = {
    "codec_pipeline.path": DEFAULT_PIPELINE,
    "buffer": "zarr.buffer.cpu.Buffer",
    "ndbuffer": "zarr.buffer.cpu.NDBuffer",
    **{f"codecs.{name}": path for name, path in zarr.config.get("codecs").items()},
}


class WrongData(Exception):
    """The engine returned or stored data that differs from the reference."""


class ZarrAccess:
    """Reads and writes through zarr-python with the engine's codec pipeline."""

    def __init__(self, engine: Engine) -> None:
        self.pipeline_cls, self.skipped_plugins = activate(engine)
        self.gpu = engine.gpu

    def _check_pipeline(self, arr: zarr.Array) -> None:
        """Guard against zarr silently building a different pipeline than configured."""
        pipeline = arr.async_array.codec_pipeline
        assert self.pipeline_cls is not None
        if not isinstance(pipeline, self.pipeline_cls):
            raise RuntimeError(
                f"array uses {type(pipeline).__name__}, expected {self.pipeline_cls.__name__}"
            )

    def open(self, path: Path) -> Any:
        arr = zarr.open_array(store=str(path), mode="r")
        self._check_pipeline(arr)
        return arr

    def read(self, handle: Any, selection: Any) -> Any:
        return handle[selection]

    def create(self, workload: Workload, path: Path) -> Any:
        """Create, then open the array as a user would: its codecs are then the classes
        zarr's registry gives for the stored metadata (an engine's own, where it has
        registered some), not the instances the workload created it with."""
        workload.create(path)
        arr = zarr.open_array(store=str(path), mode="r+")
        self._check_pipeline(arr)
        return arr

    def write(self, handle: Any, value: Any) -> None:
        handle[...] = value

    def read_all(self, handle: Any, selections: list[tuple[slice, ...]]) -> list[Any]:
        """Many boxes of one shape in one go, each engine its best way: cuzarr as one
        `read_patches` job; the other zarr-python pipelines as concurrent reads on
        zarr's event loop (zarr has no batched selection API)."""
        import asyncio

        from zarr.core.sync import sync

        if self.pipeline_cls is not None and self.pipeline_cls.__module__.startswith("cuzarr"):
            import cuzarr

            starts = np.array([[s.start for s in sel] for sel in selections], dtype=np.int64)
            shape = tuple(s.stop - s.start for s in selections[0])
            return list(cuzarr.read_patches(handle, starts, shape))
        array = handle.async_array

        async def all_of() -> list[Any]:
            return list(await asyncio.gather(*(array.getitem(sel) for sel in selections)))

        return sync(all_of())


class TensorstoreAccess:
    """tensorstore's own zarr drivers: an independent reader and writer, no zarr-python."""

    gpu = False

    def __init__(self, engine: Engine) -> None:
        self.skipped_plugins = activate(engine)[1]
        import tensorstore

        self.ts = tensorstore

    def open(self, path: Path) -> Any:
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
        return self.ts.open(spec, open=True, read=True, write=True).result()

    def read(self, handle: Any, selection: Any) -> Any:
        return handle[selection].read().result()

    def create(self, workload: Workload, path: Path) -> Any:
        """Metadata by zarr (the same array every engine writes), data by tensorstore."""
        with zarr.config.set({"codec_pipeline.path": DEFAULT_PIPELINE}):
            workload.create(path)
        return self.open(path)

    def write(self, handle: Any, value: Any) -> None:
        handle.write(value).result()

    def read_all(self, handle: Any, selections: list[tuple[slice, ...]]) -> list[Any]:
        """Every read issued before any is waited for: tensorstore runs them concurrently."""
        futures = [handle[sel].read() for sel in selections]
        return [f.result() for f in futures]


class Worker:
    """Holds the engine's access path and the current workload's reference data."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.access: ZarrAccess | TensorstoreAccess = (
            TensorstoreAccess(engine) if engine.pipeline_path is None else ZarrAccess(engine)
        )
        self._ref_key: tuple[str, str] | None = None
        self._ref: np.ndarray | None = None
        self._ref_device: Any = None

    @property
    def pipeline_cls(self) -> type | None:
        return getattr(self.access, "pipeline_cls", None)

    def reference(self, workload: Workload, data_root: Path) -> np.ndarray:
        """Reference data, loaded fully into memory so page faults stay out of timings."""
        key = (workload.name, str(data_root))
        if self._ref is None or self._ref_key != key:
            self._ref = self._ref_device = None
            gc.collect()
            self._ref = np.load(ref_path(data_root, workload))
            self._ref_key = key
        return self._ref

    def value(self, workload: Workload, data_root: Path) -> Any:
        """The array a write stores: on the GPU for gpu engines, uploaded once."""
        ref = self.reference(workload, data_root)
        if not self.engine.gpu:
            return ref
        if self._ref_device is None:
            import cupy

            self._ref_device = cupy.asarray(ref)
        return self._ref_device

    def _sync(self) -> None:
        """Timings of gpu engines end when the device is done, not when work is queued."""
        if self.engine.gpu:
            import cupy

            cupy.cuda.Device().synchronize()

    def read(self, workload: Workload, data_root: Path) -> float:
        ref = self.reference(workload, data_root)
        handle = self.access.open(array_path(data_root, workload))
        self._sync()
        start = time.perf_counter()
        out = self.access.read(handle, ...)
        self._sync()
        seconds = time.perf_counter() - start
        if not same_bits(to_host(out), ref):
            raise WrongData("read result differs from reference data")
        return seconds

    def patches(self, workload: Workload, data_root: Path) -> float:
        """Random patches, one selection at a time, as a training loader reads samples."""
        ref = self.reference(workload, data_root)
        handle = self.access.open(array_path(data_root, workload))
        selections = workload.patch_selections()
        self._sync()
        start = time.perf_counter()
        outs = [self.access.read(handle, sel) for sel in selections]
        self._sync()
        seconds = time.perf_counter() - start
        for i, (sel, out) in enumerate(zip(selections, outs, strict=True)):
            if not same_bits(to_host(out), ref[sel]):
                raise WrongData(f"patch {i} at {sel} differs from reference data")
        return seconds

    def patches_batched(self, workload: Workload, data_root: Path) -> float:
        """The same random patches as `patches`, asked for all at once (a loader's batch)."""
        ref = self.reference(workload, data_root)
        handle = self.access.open(array_path(data_root, workload))
        selections = workload.patch_selections()
        self._sync()
        start = time.perf_counter()
        outs = self.access.read_all(handle, selections)
        self._sync()
        seconds = time.perf_counter() - start
        for i, (sel, out) in enumerate(zip(selections, outs, strict=True)):
            if not same_bits(to_host(out), ref[sel]):
                raise WrongData(f"patch {i} at {sel} differs from reference data")
        return seconds

    def write(self, workload: Workload, data_root: Path, scratch: Path) -> float:
        ref = self.reference(workload, data_root)
        value = self.value(workload, data_root)
        path = scratch / f"{self.engine.name}-{uuid.uuid4().hex}.zarr"
        try:
            handle = self.access.create(workload, path)
            self._sync()
            start = time.perf_counter()
            self.access.write(handle, value)
            self._sync()
            seconds = time.perf_counter() - start
            with zarr.config.set(CPU_DEFAULT):
                got = zarr.open_array(store=str(path), mode="r")[...]
            if not same_bits(to_host(got), ref):
                raise WrongData("data read back with zarr's default pipeline differs")
            return seconds
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request, turning every failure into a reply instead of a crash."""
        cmd = request["cmd"]
        try:
            workload = get_workload(request["workload"], request["quick"])
            data_root = Path(request["data"])
            scratch = Path(request["scratch"])
            if cmd == "read":
                seconds = self.read(workload, data_root)
            elif cmd == "patches":
                seconds = self.patches(workload, data_root)
            elif cmd == "patches-batched":
                seconds = self.patches_batched(workload, data_root)
            elif cmd == "write":
                seconds = self.write(workload, data_root, scratch)
            else:
                return {"status": "error", "error": f"unknown command {cmd!r}"}
            return {"status": "ok", "seconds": seconds, "nbytes": workload.op_nbytes(cmd)}
        except WrongData as exc:
            return {"status": "FAILED", "error": str(exc)}
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            gc.collect()


def to_host(array: Any) -> np.ndarray:
    """A numpy view or copy of a numpy, cupy or tensorstore result (outside timings)."""
    if hasattr(array, "get") and not isinstance(array, np.ndarray):
        return array.get()
    return np.asarray(array)


def same_bits(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Bitwise equality, so -0.0 vs 0.0 or NaN payload changes also count as wrong."""
    if actual.dtype != expected.dtype or actual.shape != expected.shape:
        return False
    a = np.ascontiguousarray(actual).reshape(-1).view(np.uint8)
    b = np.ascontiguousarray(expected).reshape(-1).view(np.uint8)
    return bool(np.array_equal(a, b))


def module_versions(engine: Engine) -> dict[str, str | None]:
    """`__version__` of the engine's modules as imported, which may be an uninstalled tree."""
    return {m: getattr(sys.modules.get(m), "__version__", None) for m in engine.imports}


def send(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def serve(engine_name: str) -> int:
    """Handshake, then answer requests from stdin until `quit` or EOF."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    faulthandler.enable()  # a native crash in an engine leaves a traceback in the log
    try:
        engine = get_engine(engine_name)
        worker = Worker(engine)
    except BaseException as exc:
        traceback.print_exc(file=sys.stderr)
        send(channel, {"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    cls = worker.pipeline_cls
    send(
        channel,
        {
            "ready": True,
            "pipeline": f"{cls.__module__}.{cls.__qualname__}" if cls else engine.name,
            "modules": module_versions(engine),
            "skipped_plugins": worker.access.skipped_plugins,
            "pid": os.getpid(),
        },
    )
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "quit":
            break
        send(channel, worker.handle(request))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bench worker (started by python -m bench)")
    parser.add_argument("--engine", required=True)
    args = parser.parse_args(argv)
    return serve(args.engine)


if __name__ == "__main__":
    sys.exit(main())
