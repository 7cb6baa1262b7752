"""Checkpoints are written atomically and read back; a leftover temp file never replaces them."""

from __future__ import annotations

from pathlib import Path

from collectors.files.checkpoints import FileCheckpointStore, copied_from, next_generation, saved_for


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


def test_a_copy_is_recognised_by_its_content_not_its_inode() -> None:
    entries: dict[str, dict[str, object]] = {
        "file:1:10:aaaa:0": {"offset": 500, "generation": 0, "path": "app.log"},
        "file:1:10:bbbb:1": {"offset": 40, "generation": 1, "path": "app.log"},
    }
    # a copy (inode 11) of generation 0: continue the original's stream at its offset
    assert copied_from(entries, 1, 11, "aaaa", busy=set()) == ("file:1:10:aaaa:0", 500, 0)
    assert copied_from(entries, 1, 11, "cccc", busy=set()) is None  # unknown content: no copy
    assert copied_from(entries, 1, 11, "aaaa", busy={"file:1:10:aaaa:0"}) is None  # followed elsewhere
    assert copied_from(entries, 1, 10, "aaaa", busy=set()) is None  # the original itself is no copy
    assert saved_for(entries, 1, 10, "bbbb") == ("file:1:10:bbbb:1", entries["file:1:10:bbbb:1"])
    # new content in inode 10 after a truncation the collector never saw: the next generation
    assert next_generation(entries, 1, 10) == 2 and next_generation(entries, 1, 12) == 0
