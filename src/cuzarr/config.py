"""cuzarr's settings: one tuple of known keys, scoped like kvikio's `defaults`.

`get(name)` reads a setting, `set(name=value, ...)` changes it and, used as a
context manager, restores the previous values on exit. Each setting can also be
given in the environment as ``CUZARR_<NAME>`` (e.g. ``CUZARR_THREADS=4``).
Codecs and phases never read these globals: the pipeline turns them into a
frozen `Options` at the start of each read or write and passes that down.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cuzarr import timers
from cuzarr.errors import ConfigError, DeviceUnavailableError, UnknownSettingError

__all__ = ["Options", "get", "options", "reset", "set"]


def _positive_int_or_none(name: str, value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.lower() in ("", "none", "auto")):
        return None
    try:
        parsed = int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"cuzarr setting {name!r} must be a positive integer, got {value!r}"
        ) from None
    if parsed < 1:
        raise ConfigError(f"cuzarr setting {name!r} must be a positive integer, got {value!r}")
    return parsed


def _positive_int(name: str, value: Any) -> int:
    parsed = _positive_int_or_none(name, value)
    if parsed is None:
        raise ConfigError(f"cuzarr setting {name!r} must be a positive integer, got {value!r}")
    return parsed


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(name: str, value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ConfigError(f"cuzarr setting {name!r} must be one of {choices}, got {value!r}")
        return value.lower()

    return parse


def _fraction(name: str, value: Any) -> float:
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        parsed = float("nan")
    if not 0.0 < parsed <= 1.0:
        raise ConfigError(f"cuzarr setting {name!r} must be a number in (0, 1], got {value!r}")
    return parsed


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"cuzarr setting {name!r} must be a boolean, got {value!r}")


# name -> (default, parser, what it means)
_SETTINGS: dict[str, tuple[Any, Callable[[str, Any], Any], str]] = {
    "threads": (
        None,
        _positive_int_or_none,
        "worker threads for host IO and CPU decode/encode; None = os.cpu_count()",
    ),
    "device": (
        "auto",
        _choice("auto", "cpu", "cuda"),
        "auto: the output buffer decides (cupy -> cuda); cpu/cuda force a device",
    ),
    "wave_bytes": (
        1 << 30,
        _positive_int,
        "decoded bytes one wave of a large read or write may hold in memory",
    ),
    "generic_fallback": (
        True,
        _boolean,
        "let chains without a batched path run zarr's per-chunk codecs (False: raise)",
    ),
    "verify_checksums": (True, _boolean, "check crc32c codecs and shard index checksums on read"),
    "zstd_prefix_reads": (
        False,
        _boolean,
        "a read that needs the leading rows of a zstd chunk decodes the frame only that far "
        "(faster patches; damage to a block header inside that prefix can go unseen)",
    ),
    "shard_writes": (
        "in-place",
        _choice("in-place", "rewrite"),
        "in-place: a write of some inner chunks of a stored shard patches the shard (a "
        "LocalStore's file through a journal, a MemoryStore's value); rewrite: the whole "
        "shard is written again, as zarr does",
    ),
    "shard_dead_fraction": (
        0.5,
        _fraction,
        "a partial write that would leave more than this share of a shard's bytes unused "
        "rewrites the shard whole instead (compacting it)",
    ),
    "durable_writes": (
        False,
        _boolean,
        "fsync what cuzarr writes into a LocalStore's files (each partial write's journal "
        "and shard, each whole chunk or shard, and their folders): writes survive a machine "
        "crash, not only a killed process",
    ),
    "phase_timers": (
        False,
        _boolean,
        "add each phase's wall and CPU time (io, decode, scatter, gather, encode, store "
        "writes...) to the table cuzarr.phase_times() returns: a debugging aid",
    ),
}

_overrides: dict[str, Any] = {}


def _env_value(name: str) -> Any:
    return os.environ.get(f"CUZARR_{name.upper()}")


def _known(name: str) -> None:
    """Raise UnknownSettingError for a name no setting has, with the closest one."""
    if name in _SETTINGS:
        return
    import difflib

    close = difflib.get_close_matches(name, list(_SETTINGS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownSettingError(
        f"unknown cuzarr setting {name!r}{hint} (known: {', '.join(sorted(_SETTINGS))})")


def _check_device(value: str) -> None:
    """device="cuda" fails where it is set, not at the first read, where no GPU runs: the
    process's cuda device is made now (it is made once, and every read uses it)."""
    if value == "cuda":
        from cuzarr import devices

        devices._cuda_device()


def get(name: str) -> Any:
    """The current value of setting `name` (override, else environment, else default)."""
    _known(name)
    default, parse, _ = _SETTINGS[name]
    if name in _overrides:
        return _overrides[name]
    env = _env_value(name)
    if env is not None:
        source = f"environment variable CUZARR_{name.upper()}"
        try:
            value = parse(name, env)
        except ConfigError as e:
            raise ConfigError(f"{e} (from {source})") from None
        if name == "device":
            _device_from_env(value, source)
        return value
    return default


def _device_from_env(value: str, source: str) -> None:
    try:
        _check_device(value)
    except DeviceUnavailableError as e:
        raise DeviceUnavailableError(f"{e} (device='cuda' comes from {source})") from None


class _Restorer:
    """Returned by `set`: a no-op when ignored, restores the old values as a context."""

    def __init__(self, previous: dict[str, Any]) -> None:
        self._previous = previous

    def __enter__(self) -> _Restorer:
        return self

    def __exit__(self, *exc: object) -> None:
        for name, (had, value) in self._previous.items():
            if had:
                _overrides[name] = value
            else:
                _overrides.pop(name, None)
        _follow_timers()


def set(**values: Any) -> _Restorer:
    """Change settings; validated now, so a bad value fails here, naming the setting
    (UnknownSettingError for a name no setting has, ConfigError for a bad value,
    DeviceUnavailableError for device="cuda" where the cuda device cannot run)."""
    parsed: dict[str, Any] = {}
    for name, value in values.items():
        _known(name)
        parsed[name] = _SETTINGS[name][1](name, value)
    if "device" in parsed:
        _check_device(parsed["device"])
    previous = {name: (name in _overrides, _overrides.get(name)) for name in parsed}
    _overrides.update(parsed)
    _follow_timers()
    return _Restorer(previous)


def reset() -> None:
    """Drop every override (the environment and defaults apply again)."""
    _overrides.clear()
    _follow_timers()


def describe() -> dict[str, str]:
    """Each setting with what it means, for docs and error messages."""
    return {name: doc for name, (_, _, doc) in _SETTINGS.items()}


@dataclass(frozen=True)
class Options:
    """The settings one read or write runs with, resolved once at the pipeline's edge."""

    threads: int
    device: str
    wave_bytes: int
    generic_fallback: bool
    verify_checksums: bool
    zstd_prefix_reads: bool
    shard_writes: str = "in-place"
    shard_dead_fraction: float = 0.5
    durable_writes: bool = False


@functools.cache
def _cpu_count() -> int:
    """os.cpu_count(), once: it reads /sys on every call (~0.1 ms, a tenth of a patch read)."""
    return os.cpu_count() or 1


def options() -> Options:
    """Resolve the current settings into `Options` (zarr's coalescing limits are each
    array's own: its ArraySpec's config)."""
    threads = get("threads") or _cpu_count()
    _follow_timers()
    return Options(
        threads=threads,
        device=get("device"),
        wave_bytes=get("wave_bytes"),
        generic_fallback=get("generic_fallback"),
        verify_checksums=get("verify_checksums"),
        zstd_prefix_reads=get("zstd_prefix_reads"),
        shard_writes=get("shard_writes"),
        shard_dead_fraction=get("shard_dead_fraction"),
        durable_writes=get("durable_writes"),
    )


def _follow_timers() -> None:
    """Switch the phase timers to the setting's current value: where settings change, and
    in `options()` for an environment changed since."""
    timers.set_enabled(get("phase_timers"))


# CUZARR_PHASE_TIMERS=1 times the first call too (a bad value is reported where it is used)
with contextlib.suppress(ConfigError):
    _follow_timers()
