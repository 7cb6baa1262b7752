"""Checkpoints are written atomically and read back; a leftover temp file never replaces them."""

from __future__ import annotations

from pathlib import Path

from collectors.files.checkpoints import FileCheckpointStore


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "ckpt")
    assert store.load() == {}
    entries: dict[str, dict[str, object]] = {"file:1:2:abc:0": {"offset": 42, "generation": 0, "path": "/x"}}
    store.save(entries)
    assert store.load() == entries
    assert not store.path.with_suffix(".tmp").exists()


def test_a_torn_temp_file_does_not_replace_the_checkpoint(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path)
    store.save({"file:1:2:abc:0": {"offset": 7, "generation": 0, "path": "/x"}})
    store.path.with_suffix(".tmp").write_bytes(b'{"file:1:2:abc:0": {"off')  # a crash mid-write
    assert store.load()["file:1:2:abc:0"]["offset"] == 7
    store.save({"file:1:2:abc:0": {"offset": 9, "generation": 0, "path": "/x"}})
    assert store.load()["file:1:2:abc:0"]["offset"] == 9
