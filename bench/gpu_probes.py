"""Open questions about nvCOMP 6's Python API, each settled by a small probe on the GPU.

cuzarr's cuda device was written against nvCOMP's documentation and a test double; these
are the points the documentation leaves open. Each probe is self-contained: it takes the
`nvidia.nvcomp` module, an array module (cupy) and a device synchronize, makes its own
inputs, and returns what it saw plus a one-line `answer`. A probe that raises is recorded
as not settled, with the error, and the next one still runs. CI runs every probe against
the nvCOMP test double with numpy, so the probes' own code is exercised without a GPU.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import zstandard

ALGORITHMS = ("Zstd", "Deflate", "LZ4")
ALIGN = 256  # slab offsets used by the probes: above any alignment nvCOMP asks for

QUESTIONS = {
    "buffer_sizes_after_decode": (
        "Does BatchArray.buffer_sizes after decode(out=preallocated BatchArray) give the "
        "decoded sizes or the capacities?"),
    "alignments": (
        "What do get_required_decompression_alignment() and "
        "get_required_compression_alignment() return for Zstd, Deflate and LZ4 (RAW)?"),
    "max_comp_buffer_size": (
        "What does get_max_comp_buffer_size return, and does it take an int or only an "
        "nvcomp.Array?"),
    "nvcomp_raw_zstd_frames": (
        "Do nvCOMP-written (RAW) zstd frames decode without a decompression_config, and "
        "with one built from compression_config? Do host zstd libraries read them?"),
    "corrupt_stream": (
        "How does a corrupt stream surface from Codec.decode: an exception (type, "
        "message), or silently in the sizes? Is the device still usable afterwards?"),
}

Sync = Callable[[], None]
Probe = Callable[[Any, Any, Sync], dict[str, Any]]


def payload(nbytes: int, seed: int = 0) -> bytes:
    """Deterministic bytes that compress about 3x (runs and small noise), not constants."""
    rng = np.random.default_rng(seed)
    base = (np.arange(nbytes) // 11 % 200).astype(np.uint8)
    return (base + (rng.integers(0, 4, nbytes) == 0)).astype(np.uint8).tobytes()


def host(array: Any) -> np.ndarray:
    """A numpy copy of a cupy (or numpy) array."""
    return array.get() if hasattr(array, "get") else np.asarray(array)


def batch_sizes(batch: Any) -> list[int]:
    """A BatchArray's buffer_sizes, a property or a method, whichever this version has."""
    sizes = batch.buffer_sizes
    return [int(s) for s in (sizes() if callable(sizes) else sizes)]


def pack(xp: Any, buffers: list[bytes]) -> tuple[Any, list[int], list[int]]:
    """One device slab holding `buffers` at ALIGN-aligned offsets: (slab, offsets, sizes)."""
    sizes = [len(b) for b in buffers]
    offsets = [0]
    for size in sizes[:-1]:
        offsets.append(offsets[-1] + -(-size // ALIGN) * ALIGN)
    staging = np.zeros(offsets[-1] + max(sizes[-1], 1) + ALIGN, dtype=np.uint8)
    for offset, buffer in zip(offsets, buffers, strict=True):
        staging[offset : offset + len(buffer)] = np.frombuffer(buffer, dtype=np.uint8)
    return xp.asarray(staging), offsets, sizes


def empty_batch(nv: Any, xp: Any, capacities: list[int]) -> tuple[Any, Any, list[int]]:
    """A zeroed device slab carved into `capacities`: (slab, BatchArray, offsets)."""
    offsets = [0]
    for capacity in capacities[:-1]:
        offsets.append(offsets[-1] + -(-capacity // ALIGN) * ALIGN)
    slab = xp.zeros(offsets[-1] + capacities[-1] + ALIGN, dtype=np.uint8)
    return slab, nv.as_arrays(slab, offsets, list(capacities)), offsets


def raw_codec(nv: Any, algorithm: str) -> Any:
    return nv.Codec(algorithm=algorithm, bitstream_kind=nv.BitstreamKind.RAW)


def error_text(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decoded_items(slab: Any, offsets: list[int], expected: list[bytes]) -> list[bool]:
    """Whether each item of `slab` at `offsets` starts with its expected bytes."""
    data = host(slab)
    return [data[o : o + len(e)].tobytes() == e for o, e in zip(offsets, expected, strict=True)]


def _decode_sizes(nv: Any, xp: Any, sync: Sync, with_config: bool) -> dict[str, Any]:
    real = [1000, 5000, 70000]
    expected = [payload(n, i) for i, n in enumerate(real)]
    src, offsets, sizes = pack(xp, [zstandard.ZstdCompressor(level=3).compress(e)
                                    for e in expected])
    capacities = [1 << 17] * len(real)
    codec = raw_codec(nv, "Zstd")
    out, dsts, out_offsets = empty_batch(nv, xp, capacities)
    kwargs: dict[str, Any] = {}
    if with_config:
        kwargs["decompression_config"] = codec.decompression_config(
            codec.compression_config(capacities))
    result = codec.decode(nv.as_arrays(src, offsets, sizes), out=dsts, **kwargs)
    returned = batch_sizes(result)
    sync()
    return {"real_sizes": real, "capacities": capacities, "returned_sizes": returned,
            "out_batch_sizes_after": batch_sizes(dsts), "returns_out_itself": result is dsts,
            "decoded_right": all(decoded_items(out, out_offsets, expected)),
            "gives": ("decoded sizes" if returned == real else
                      "capacities" if returned == capacities else "neither")}


def probe_buffer_sizes_after_decode(nv: Any, xp: Any, sync: Sync) -> dict[str, Any]:
    """Three host-written zstd frames (1000, 5000, 70000 bytes decoded) into 128 KiB
    capacities, without a decompression_config and with one built from the capacities."""
    runs = {"no_config": _decode_sizes(nv, xp, sync, False),
            "config_from_capacities": _decode_sizes(nv, xp, sync, True)}
    answer = "; ".join(f"{mode}: {run['gives']} ({run['returned_sizes']}), decoded "
                       f"{'right' if run['decoded_right'] else 'WRONG'}"
                       for mode, run in runs.items())
    return {"answer": answer, **runs}


def probe_alignments(nv: Any, xp: Any, sync: Sync) -> dict[str, Any]:
    """The required alignments of RAW codecs, per algorithm."""
    found = {}
    for algorithm in ALGORITHMS:
        codec = raw_codec(nv, algorithm)
        found[algorithm] = {
            "decompression": int(codec.get_required_decompression_alignment()),
            "compression": int(codec.get_required_compression_alignment()),
        }
    answer = ", ".join(f"{a}: decompression {v['decompression']}, compression "
                       f"{v['compression']}" for a, v in found.items())
    return {"answer": answer, "alignments": found}


def probe_max_comp_buffer_size(nv: Any, xp: Any, sync: Sync) -> dict[str, Any]:
    """The bound for a 1 MiB input per algorithm, given an Array, and what an int gets."""
    nbytes = 1 << 20
    bounds = {}
    for algorithm in ALGORITHMS:
        codec = raw_codec(nv, algorithm)
        bounds[algorithm] = int(codec.get_max_comp_buffer_size(
            nv.as_array(xp.zeros(nbytes, dtype=np.uint8))))
    try:
        raw_codec(nv, "Zstd").get_max_comp_buffer_size(nbytes)
        with_int = "accepted"
    except Exception as exc:
        with_int = f"refused: {error_text(exc)}"
    answer = (f"for 1 MiB: {', '.join(f'{a} {b}' for a, b in bounds.items())} bytes; "
              f"an int argument is {with_int}")
    return {"answer": answer, "input_bytes": nbytes, "bounds": bounds, "int_argument": with_int}


def _nvcomp_encode(nv: Any, xp: Any, sync: Sync, expected: list[bytes]
                   ) -> tuple[Any, list[int], list[int], Any, list[int]]:
    """Compress `expected` with nvCOMP's RAW Zstd: (slab, offsets, frame sizes, the
    compression config, the capacities given)."""
    codec = raw_codec(nv, "Zstd")
    sizes = [len(e) for e in expected]
    src, offsets, _ = pack(xp, expected)
    capacities = [int(codec.get_max_comp_buffer_size(nv.as_array(xp.zeros(n, dtype=np.uint8))))
                  for n in sizes]
    config = codec.compression_config(sizes)
    out, dsts, out_offsets = empty_batch(nv, xp, capacities)
    frames = batch_sizes(codec.encode(nv.as_arrays(src, offsets, sizes), out=dsts,
                                      compression_config=config))
    sync()
    return out, out_offsets, frames, (codec, config), capacities


def _decode_frames(nv: Any, xp: Any, sync: Sync, frames: Any, expected: list[bytes],
                   config: Callable[[Any], Any] | None) -> dict[str, Any]:
    slab, offsets, sizes = frames
    codec = raw_codec(nv, "Zstd")
    capacities = [len(e) for e in expected]
    out, dsts, out_offsets = empty_batch(nv, xp, capacities)
    kwargs = {} if config is None else {"decompression_config": config(codec)}
    try:
        got = batch_sizes(codec.decode(nv.as_arrays(slab, offsets, sizes), out=dsts, **kwargs))
        sync()
    except Exception as exc:
        return {"ok": False, "error": error_text(exc)}
    right = decoded_items(out, out_offsets, expected)
    return {"ok": all(right) and got == capacities, "sizes": got, "items_right": right}


def probe_nvcomp_raw_zstd_frames(nv: Any, xp: Any, sync: Sync) -> dict[str, Any]:
    """Frames nvCOMP writes (1 MiB, 300000 and 17 bytes) decoded three ways on the GPU, and
    by the zstandard library on the host."""
    expected = [payload(n, i) for i, n in enumerate((1 << 20, 300_000, 17))]
    slab, offsets, frames, (encoder, enc_config), capacities = _nvcomp_encode(
        nv, xp, sync, expected)
    batch = (slab, offsets, frames)
    sizes = [len(e) for e in expected]
    runs = {
        "no_config": _decode_frames(nv, xp, sync, batch, expected, None),
        "config_from_compression_config": _decode_frames(
            nv, xp, sync, batch, expected,
            lambda codec: codec.decompression_config(codec.compression_config(sizes))),
        "config_from_the_encoders_config": _decode_frames(
            nv, xp, sync, batch, expected,
            lambda codec: encoder.decompression_config(enc_config)),
    }
    data = host(slab)
    blobs = [data[o : o + n].tobytes() for o, n in zip(offsets, frames, strict=True)]
    content_sizes = [int(zstandard.frame_content_size(b)) for b in blobs]
    try:
        cpu = [zstandard.ZstdDecompressor().decompress(b, max_output_size=len(e)) == e
               for b, e in zip(blobs, expected, strict=True)]
        host_read = "yes" if all(cpu) else f"wrong bytes for items {cpu}"
    except zstandard.ZstdError as exc:
        host_read = f"no: {error_text(exc)}"
    answer = "; ".join(f"{mode}: {'decodes' if run['ok'] else 'FAILS ' + run.get('error', '')}"
                       for mode, run in runs.items())
    answer += (f"; zstandard reads them: {host_read}; content size in the frame header: "
               f"{'no' if all(c < 0 for c in content_sizes) else content_sizes}")
    return {"answer": answer, "input_sizes": sizes, "frame_sizes": frames,
            "encode_capacities": capacities, "frame_content_sizes": content_sizes,
            "host_zstandard": host_read, **runs}


def _corruptions(frame: bytes) -> dict[str, bytes]:
    middle = len(frame) // 2
    flipped = bytearray(frame)
    flipped[middle : middle + 16] = bytes(b ^ 0xFF for b in flipped[middle : middle + 16])
    noise = np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return {"flipped_bytes": bytes(flipped), "truncated": frame[:middle],
            "random_bytes": noise, "bad_magic": b"\x00\x00\x00\x00" + frame[4:]}


def _device_usable(xp: Any, sync: Sync) -> str:
    try:
        total = int(host(xp.arange(1000, dtype=np.int64).sum()))
        sync()
        return "yes" if total == 499500 else f"wrong arithmetic ({total})"
    except Exception as exc:
        return f"no: {error_text(exc)}"


def _decode_corrupt(nv: Any, xp: Any, sync: Sync, good: bytes, bad: bytes, expected: bytes,
                    with_config: bool) -> dict[str, Any]:
    codec = raw_codec(nv, "Zstd")
    src, offsets, sizes = pack(xp, [good, bad])
    capacities = [len(expected), len(expected)]
    out, dsts, out_offsets = empty_batch(nv, xp, capacities)
    kwargs: dict[str, Any] = {}
    if with_config:
        kwargs["decompression_config"] = codec.decompression_config(
            codec.compression_config(capacities))
    seen: dict[str, Any] = {}
    try:
        seen["sizes"] = batch_sizes(codec.decode(nv.as_arrays(src, offsets, sizes), out=dsts,
                                                 **kwargs))
        sync()
        seen["raised"] = None
        seen["items_right"] = decoded_items(out, out_offsets, [expected, expected])
    except Exception as exc:
        seen["raised"] = type(exc).__name__
        seen["message"] = error_text(exc)
    seen["device_usable_after"] = _device_usable(xp, sync)
    return seen


def probe_corrupt_stream(nv: Any, xp: Any, sync: Sync) -> dict[str, Any]:
    """A batch of one good and one damaged zstd frame (64 KiB decoded), for four kinds
    of damage, with and without a decompression_config. Runs last: a damaged stream that
    broke the CUDA context would fail whatever came after it."""
    expected = payload(1 << 16, 9)
    good = zstandard.ZstdCompressor(level=3).compress(expected)
    runs = {}
    for kind, bad in _corruptions(good).items():
        for with_config in (False, True):
            mode = f"{kind}/{'config' if with_config else 'no_config'}"
            runs[mode] = _decode_corrupt(nv, xp, sync, good, bad, expected, with_config)
    answer = "; ".join(
        f"{mode}: " + (f"raises {run['raised']}" if run["raised"] else
                       f"no exception, sizes {run.get('sizes')}, items right "
                       f"{run.get('items_right')}")
        + ("" if run["device_usable_after"] == "yes" else ", device NOT usable after")
        for mode, run in runs.items())
    return {"answer": answer, "runs": runs}


PROBES: dict[str, Probe] = {
    "buffer_sizes_after_decode": probe_buffer_sizes_after_decode,
    "alignments": probe_alignments,
    "max_comp_buffer_size": probe_max_comp_buffer_size,
    "nvcomp_raw_zstd_frames": probe_nvcomp_raw_zstd_frames,
    "corrupt_stream": probe_corrupt_stream,
}


def run_probe(name: str, nv: Any, xp: Any, sync: Sync) -> dict[str, Any]:
    """One probe's record: its question, settled or not, its answer or its error."""
    record: dict[str, Any] = {"question": QUESTIONS[name]}
    try:
        return record | {"settled": True} | PROBES[name](nv, xp, sync)
    except Exception as exc:
        tail = traceback.format_exc().strip().splitlines()[-6:]
        return record | {"settled": False, "error": error_text(exc), "traceback": tail}


def run_probes(nv: Any, xp: Any, sync: Sync,
               on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every probe in order; `on_result` gets the results so far after each one."""
    results: dict[str, Any] = {}
    for name in PROBES:
        results[name] = run_probe(name, nv, xp, sync)
        if on_result is not None:
            on_result(results)
    return results
