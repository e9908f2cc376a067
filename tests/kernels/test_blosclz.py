"""The blosclz kernel on the host harness: real c-blosc streams (numcodecs, every clevel,
shuffle, item size, leftover blocks) decode byte for byte as c-blosc decodes them, and
damaged streams decode exactly as c-blosc does or fail as it fails, never touching a byte
outside their tables; the numpy reference agrees with the kernel everywhere."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from blosclz_streams import KINDS, make_data, single_stream_frame, streams, token_kinds
from harness import HERE, library
from hypothesis import event, given, settings
from hypothesis import strategies as st
from numcodecs import Blosc

from cuzarr.kernels import kernel_dir, reference

CANARY = 0xA5
PAD = 64


def _run(src: np.ndarray, src_offsets: np.ndarray, src_sizes: np.ndarray,
         dst_offsets: np.ndarray, capacity: np.ndarray, dst_size: int, grid: int = 3,
         block: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Kernel (host harness) and reference on the same tables, into canary-filled
    buffers padded by PAD bytes; returns (dst, status) after checking they agree."""
    dst = np.full(dst_size + PAD, CANARY, dtype=np.uint8)
    status = np.full(max(1, len(src_sizes)), 7, dtype=np.int64)
    tables = [np.ascontiguousarray(t, dtype=np.int64)
              for t in (src_offsets, src_sizes, dst_offsets, capacity)]
    library().host_blosclz_decompress(grid, 1, block, 1, src, dst, *tables, len(src_sizes),
                                      status)
    ref_dst = np.full_like(dst, CANARY)
    ref_status = reference.blosclz_decompress(src, ref_dst, *tables)
    np.testing.assert_array_equal(status[: len(src_sizes)], ref_status)
    np.testing.assert_array_equal(dst, ref_dst)
    assert (dst[dst_size:] == CANARY).all(), "wrote past the tables"
    return dst[:dst_size], status[: len(src_sizes)]


@settings(max_examples=100, deadline=None)
@given(clevel=st.integers(1, 9), shuffle=st.sampled_from([0, 1, 2]),
       typesize=st.sampled_from([1, 2, 4, 8]), kind=st.sampled_from(KINDS + KINDS[1:]),
       nbytes=st.one_of(st.integers(1, 3000), st.integers(3000, 150_000)),
       blocksize=st.sampled_from([0, 4096, 65536]),
       grid=st.integers(1, 4), block=st.sampled_from([1, 7, 32, 33, 64]),
       seed=st.integers(0, 2**32 - 1))
def test_real_streams_match_c_blosc(clevel: int, shuffle: int, typesize: int, kind: str,
                                    nbytes: int, blocksize: int, grid: int, block: int,
                                    seed: int) -> None:
    """Every compressed stream of a numcodecs frame decodes to c-blosc's bytes (before the
    unshuffle), whatever the block width and grid."""
    codec = Blosc(cname="blosclz", clevel=clevel, shuffle=shuffle, typesize=typesize,
                  blocksize=blocksize)
    s = streams(codec.encode(make_data(kind, nbytes, seed)))
    dst, status = _run(s.slab, s.src_offsets, s.src_sizes, s.dst_offsets, s.capacity,
                       s.expected.size, grid, block)
    event("compressed streams" if s.src_sizes.size else "stored (raw or memcpyed) only")
    np.testing.assert_array_equal(status, s.capacity)
    for at, size in zip(s.dst_offsets.tolist(), s.capacity.tolist(), strict=True):
        np.testing.assert_array_equal(dst[at : at + size], s.expected[at : at + size])


@settings(max_examples=40, deadline=None)
@given(clevel=st.integers(1, 9), shuffle=st.sampled_from([0, 1, 2]),
       typesize=st.sampled_from([1, 2, 4, 8]), kind=st.sampled_from(KINDS),
       nbytes=st.integers(1, 100_000), seed=st.integers(0, 2**16))
def test_host_frame_decode_matches_numcodecs(clevel: int, shuffle: int, typesize: int,
                                             kind: str, nbytes: int, seed: int) -> None:
    """blosc_frame.decode_host decodes whole blosclz chunks with the reference: c-blosc's
    bytes, unshuffles and leftover blocks included."""
    from cuzarr.batch import ByteBatch
    from cuzarr.codecs.blosc_frame import decode_host

    codec = Blosc(cname="blosclz", clevel=clevel, shuffle=shuffle, typesize=typesize)
    frames = [codec.encode(make_data(kind, nbytes, seed)), codec.encode(make_data(kind, 7, 0))]
    batch = ByteBatch.from_buffers(frames)
    out, out_at = decode_host(batch.slab, batch.offsets, batch.sizes)
    for frame, at in zip(frames, out_at.tolist(), strict=True):
        expected = bytes(Blosc().decode(frame))
        assert out[at : at + len(expected)].tobytes() == expected


def _corpus() -> list[bytes]:
    return [Blosc(cname="blosclz", clevel=clevel, shuffle=shuffle, typesize=4,
                  blocksize=1 << 17).encode(make_data(kind, 200_000, clevel))
            for clevel in (1, 5, 9) for shuffle in (0, 1) for kind in KINDS]


def test_corpus_covers_every_token_kind() -> None:
    """The streams above hold far matches, extended lengths, overlapping copies and
    literal runs, and all of them (in one launch) decode to c-blosc's bytes."""
    kinds: Counter = Counter()
    parts = [streams(frame) for frame in _corpus()]
    for s in parts:
        for a, n in zip(s.src_offsets.tolist(), s.src_sizes.tolist(), strict=True):
            kinds.update(token_kinds(s.slab[a : a + n].tobytes()))
    assert {"literal", "near", "far", "long", "overlapping"} <= {k for k, v in kinds.items()
                                                                  if v}
    slab_at = np.cumsum([0] + [s.slab.size for s in parts])[:-1]
    out_at = np.cumsum([0] + [s.expected.size for s in parts])
    capacity = np.concatenate([s.capacity for s in parts])
    dst_offsets = np.concatenate([s.dst_offsets + a
                                  for s, a in zip(parts, out_at[:-1], strict=True)])
    dst, status = _run(np.concatenate([s.slab for s in parts]),
                       np.concatenate([s.src_offsets + a
                                       for s, a in zip(parts, slab_at, strict=True)]),
                       np.concatenate([s.src_sizes for s in parts]), dst_offsets, capacity,
                       int(out_at[-1]), grid=5)
    np.testing.assert_array_equal(status, capacity)
    expected = np.concatenate([s.expected for s in parts])
    for at, size in zip(dst_offsets.tolist(), capacity.tolist(), strict=True):
        np.testing.assert_array_equal(dst[at : at + size], expected[at : at + size])


def _c_blosc(stream: bytes, neblock: int) -> bytes | None:
    try:
        return bytes(Blosc().decode(single_stream_frame(stream, neblock)))
    except RuntimeError:
        return None


@st.composite
def damaged_streams(draw: st.DrawFn) -> tuple[bytes, int]:
    """A real stream with bytes changed and/or cut short, or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        neblock = draw(st.integers(2, 3000))
        return draw(st.binary(min_size=0, max_size=neblock - 1)), neblock
    kind = draw(st.sampled_from(KINDS[1:]))
    data = make_data(kind, draw(st.integers(300, 30_000)), draw(st.integers(0, 2**16)))
    frame = Blosc(cname="blosclz", clevel=draw(st.integers(1, 9)), shuffle=0,
                  blocksize=1 << 16).encode(data)
    s = streams(frame)
    if not s.src_sizes.size:
        return b"", data.size
    a, n = int(s.src_offsets[0]), int(s.src_sizes[0])
    stream = bytearray(s.slab[a : a + n].tobytes())
    for _ in range(draw(st.integers(0, 4))):
        stream[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, n))
    if draw(st.booleans()):
        stream = stream[:cut]
    return bytes(stream), int(s.capacity[0])


@settings(max_examples=300, deadline=None)
@given(case=damaged_streams(), block=st.sampled_from([1, 32, 40]))
def test_damaged_streams_decode_as_c_blosc_or_fail(case: tuple[bytes, int], block: int) -> None:
    """No read or write outside the tables (canaries, neighbours intact), and the verdict
    and bytes of c-blosc itself: a stream is good exactly when c-blosc decodes it."""
    stream, neblock = case
    guard = np.frombuffer(b"\xff\xe0\x00" * 20, dtype=np.uint8)  # bytes that would parse
    src = np.concatenate([guard, np.frombuffer(stream, dtype=np.uint8), guard])
    dst, status = _run(src, np.array([guard.size]), np.array([len(stream)]),
                       np.array([PAD]), np.array([neblock]), PAD + neblock, block=block)
    assert (dst[:PAD] == CANARY).all(), "wrote before the stream's output"
    expected = _c_blosc(stream, neblock)
    event("c-blosc decodes it" if expected is not None else "c-blosc refuses it")
    assert (int(status[0]) == neblock) == (expected is not None)
    if expected is not None:
        assert dst[PAD:].tobytes() == expected
    else:
        assert int(status[0]) != neblock


_LONG_RUN = b"\x00a\xe0" + b"\xff" * 33 + b"\x00\x00"  # 'a', then 8424 more at distance 1


@pytest.mark.parametrize("stream, status", [
    (b"", 0),
    (b"\x03abcd", 4),  # one literal run
    (b"\x23abcd", 4),  # c-blosc's marker bit (5) in the first byte is ignored
    (b"\x02ab", reference.BLOSCLZ_TRUNCATED),  # run longer than the stream
    (b"\x00a\x20\x00\x00b", 5),  # 'a', a 3-byte run at distance 1, 'b'
    (b"\x00a\x20\x00\x00", reference.BLOSCLZ_TRUNCATED),  # a control byte with no run
    (b"\x00a\x20\x00", reference.BLOSCLZ_TRUNCATED),  # c-blosc wants 2 bytes after a length
    (b"\x00a\x20\x01\x00b", reference.BLOSCLZ_BAD_DISTANCE),  # distance 2, 1 byte written
    (b"\x00a\xe0\x05\x00\x00b", 1 + 14 + 1),  # length code 7 extended by 5
    (b"\x00a\xe0\xff\xff", reference.BLOSCLZ_TRUNCATED),  # extension runs off the end
    (b"\x00a\x3f\xff\x00\x00\x00", reference.BLOSCLZ_BAD_DISTANCE),  # far: 8192 back
    (_LONG_RUN + b"\x3f\xff\x00\x00\x00b", 8425 + 3 + 1),  # a far match, then 'b'
    (_LONG_RUN + b"\x3f\xff\x00\x00", 8425),  # a far match ending the stream is dropped
])
def test_hand_made_streams(stream: bytes, status: int) -> None:
    """The format's corners with room to spare, then with the capacity c-blosc would give
    (the decoded size): the same verdict and bytes as c-blosc there. (The dropped match
    is only seen with room to spare: at capacity it overflows first, in c-blosc too.)"""
    src = np.frombuffer(stream + b"\x00", dtype=np.uint8)
    one = (np.array([0]), np.array([len(stream)]), np.array([0]))
    assert int(_run(src, *one, np.array([9000]), 9000)[1][0]) == status
    if status > 0:
        dst, got = _run(src, *one, np.array([status]), status)
        expected = _c_blosc(stream, status)
        assert (int(got[0]) == status) == (expected is not None)
        assert expected is None or expected == dst.tobytes()


def test_overflowing_streams_stop_at_capacity() -> None:
    """A stream that decodes to more than its capacity fails before writing past it."""
    stream = b"\x00a\xe0\x05\x00\x00b"  # 16 bytes
    _, status = _run(np.frombuffer(stream, dtype=np.uint8), np.array([0]),
                     np.array([len(stream)]), np.array([0]), np.array([10]), 10)
    assert int(status[0]) == reference.BLOSCLZ_OVERFLOW
    assert _c_blosc(stream, 10) is None


def _asan_driver(tmp: Path, kernels: Path) -> Path | None:
    """blosclz_asan.cpp built with AddressSanitizer against the kernel in `kernels`."""
    compiler = shutil.which("g++")
    if compiler is None:
        return None
    target = tmp / "blosclz_asan"
    built = subprocess.run(
        [compiler, "-std=c++17", "-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer",
         f"-I{kernels}", f"-I{HERE}", str(HERE / "blosclz_asan.cpp"), "-o", str(target)],
        capture_output=True, text=True,
    )
    return target if built.returncode == 0 else None


def _asan_run(driver: Path, cases: list[tuple[int, bytes, int]]
              ) -> tuple[list[tuple[int, bytes]], str, int]:
    """(status, output bytes) per case, ASan's report, the exit status."""
    records = b"".join(struct.pack("<qqq", threads, len(stream), capacity) + stream
                       for threads, stream, capacity in cases)
    done = subprocess.run([str(driver)], input=records, capture_output=True,
                          env={"ASAN_OPTIONS": "detect_leaks=0"})
    results, at = [], 0
    for _, _, capacity in cases:
        if at + 8 + capacity > len(done.stdout):
            break
        status = struct.unpack_from("<q", done.stdout, at)[0]
        results.append((status, done.stdout[at + 8 : at + 8 + capacity]))
        at += 8 + capacity
    return results, done.stderr.decode(errors="replace"), done.returncode


def _reference(cases: list[tuple[int, bytes, int]]) -> list[tuple[int, bytes]]:
    expected = []
    for _, stream, cap in cases:
        dst = np.full(cap, CANARY, dtype=np.uint8)
        status = reference.blosclz_decompress(np.frombuffer(stream, dtype=np.uint8), dst,
                                              np.array([0]), np.array([len(stream)]),
                                              np.array([0]), np.array([cap]))
        expected.append((int(status[0]), dst.tobytes()))
    return expected


def _asan_cases() -> list[tuple[int, bytes, int]]:
    """Real streams, each also with bytes changed, cut short, or decoded into too little
    room, and random bytes: each with 1, 32 or 33 threads."""
    rng = np.random.default_rng(5)
    cases = []
    for clevel in (1, 5, 9):
        for kind in KINDS[1:]:
            frame = Blosc(cname="blosclz", clevel=clevel, shuffle=0,
                          blocksize=1 << 14).encode(make_data(kind, 40_000, clevel))
            s = streams(frame)
            for a, n, cap in zip(s.src_offsets.tolist(), s.src_sizes.tolist(),
                                 s.capacity.tolist(), strict=True):
                stream = s.slab[a : a + n].copy()
                cases.append((stream.tobytes(), cap))
                cases.append((stream[: rng.integers(0, n)].tobytes(), cap))
                cases.append((stream.tobytes(), int(rng.integers(0, cap))))
                hit = stream.copy()
                hit[rng.integers(0, n, 3)] = rng.integers(0, 256, 3, dtype=np.uint8)
                cases.append((hit.tobytes(), cap))
    cases += [(rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes(), 500)
              for _ in range(100)]
    return [(int(rng.choice([1, 32, 33])), stream, cap) for stream, cap in cases]


def test_no_access_outside_a_stream_under_asan(tmp_path: Path) -> None:
    """Every stream and output in a heap buffer of exactly its size (AddressSanitizer):
    no read or write outside, and the reference's statuses."""
    driver = _asan_driver(tmp_path, kernel_dir())
    if driver is None:
        pytest.skip("g++ with AddressSanitizer is not available")
    cases = _asan_cases()
    results, errors, rc = _asan_run(driver, cases)
    assert rc == 0 and "AddressSanitizer" not in errors, errors
    assert results == _reference(cases)
    statuses = [status for status, _ in results]
    assert any(s == cap for s, (_, _, cap) in zip(statuses, cases, strict=True))
    assert any(s < 0 for s in statuses)


@pytest.mark.parametrize("damage", ["literal bound", "barrier"])
def test_the_asan_driver_catches_a_broken_kernel(tmp_path: Path, damage: str) -> None:
    """The checks above can fail: without its literal-run bound the kernel reads past a
    truncated stream (ASan says so); with its barrier a byte late (a match reading the
    last byte written since the barrier goes ahead), threads running last to first read
    bytes not yet written."""
    source = (kernel_dir() / "blosclz.cu").read_text()
    if damage == "literal bound":
        broken = source.replace("if (ip + len > n) {", "if (false) {")
    else:
        broken = source.replace("distance) > synced) {", "distance) > synced + 1) {")
    assert broken != source
    (tmp_path / "blosclz.cu").write_text(broken)
    driver = _asan_driver(tmp_path, tmp_path)
    if driver is None:
        pytest.skip("g++ with AddressSanitizer is not available")
    if damage == "literal bound":
        _, errors, rc = _asan_run(driver, [(32, b"\x1fab", 40)])
        assert rc != 0 and "heap-buffer-overflow" in errors
    else:
        cases = _asan_cases()
        results, _, rc = _asan_run(driver, cases)
        assert rc == 0 and results != _reference(cases)
