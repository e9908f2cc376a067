"""io.set_range: which stores can have part of a value overwritten, and the writes
themselves (LocalStore files through the journal, MemoryStore values in memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore, MemoryStore

from cuzarr.io.journal import JOURNAL_SUFFIX
from cuzarr.io.set_range import LocalRangeWriter, MemoryRangeWriter, range_writer


class _KeyMapping(LocalStore):
    """A LocalStore that writes values its own way: cuzarr must not go around it."""

    async def set(self, key: str, value: Any) -> None:
        await super().set("mapped/" + key, value)


class _CountingMemory(MemoryStore):
    def set_sync(self, key: str, value: Any) -> None:
        super().set_sync(key, value)


def _put(store: Any, key: str, data: bytes) -> None:
    store.set_sync(key, default_buffer_prototype().buffer.from_bytes(data))


def _get(store: Any, key: str) -> bytes:
    return store.get_sync(key, prototype=default_buffer_prototype()).to_bytes()


def test_only_stores_whose_io_is_their_own_can_write_ranges(tmp_path: Path) -> None:
    assert isinstance(range_writer(LocalStore(tmp_path)), LocalRangeWriter)
    assert isinstance(range_writer(MemoryStore()), MemoryRangeWriter)
    assert range_writer(_KeyMapping(tmp_path)) is None
    assert range_writer(_CountingMemory()) is None
    assert range_writer(object()) is None


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_ranges_overwrite_and_extend_a_value(tmp_path: Path, kind: str) -> None:
    store: Any = LocalStore(tmp_path) if kind == "local" else MemoryStore()
    _put(store, "c/0/0", b"a" * 100)
    writer = range_writer(store)
    assert writer is not None and writer.size("c/0/0") == 100
    writer.write_ranges("c/0/0", [(10, b"XYZ"), (98, b"tail!")])
    assert _get(store, "c/0/0") == b"a" * 10 + b"XYZ" + b"a" * 85 + b"tail!"
    assert writer.size("c/0/0") == 103
    assert writer.size("c/0/1") is None
    with pytest.raises(FileNotFoundError, match="c/0/1"):
        writer.write_ranges("c/0/1", [(0, b"x")])
    if kind == "local":
        assert not list(tmp_path.rglob("*" + JOURNAL_SUFFIX))


def test_size_replays_a_journal_first(tmp_path: Path) -> None:
    """A killed writer's journal is applied before anyone learns the value's size."""
    from cuzarr.io.journal import _encode

    store = LocalStore(tmp_path)
    _put(store, "s", b"0" * 8)
    info = (tmp_path / "s").stat()
    (tmp_path / ("s" + JOURNAL_SUFFIX)).write_bytes(
        _encode([(8, b"appended")], (info.st_dev, info.st_ino)))
    writer = range_writer(store)
    assert writer is not None and writer.size("s") == 16
    assert _get(store, "s") == b"0" * 8 + b"appended"
