"""Checkpoints: file identity -> offset of the next unacknowledged line, saved atomically.

Saved only with offsets Kafka acknowledged (the tailer advances them from ack callbacks), by
writing a temp file, fsyncing it and renaming it over the old one: a crash leaves either the old
or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson


class FileCheckpointStore:
    """A JSON map of stream id -> {offset, path} in `directory/checkpoints.json`."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "checkpoints.json"
        self.directory = directory

    def load(self) -> dict[str, dict[str, object]]:
        try:
            data: dict[str, dict[str, object]] = orjson.loads(self.path.read_bytes())
            return data
        except FileNotFoundError:
            return {}

    def save(self, entries: dict[str, dict[str, object]]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        with open(temp, "wb") as handle:
            handle.write(orjson.dumps(entries))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)
        directory_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)


# -- which content a file holds ---------------------------------------------------------------------
# A stream id is `file:<dev>:<ino>:<fingerprint>:<generation>`: the inode that first held the content,
# a hash of its first line, and how many times that inode was truncated. A copytruncate copy has other
# inode numbers but the same bytes, so it is found by its fingerprint and read on under the original's
# stream id and offsets: whatever rotation did while the collector was down, a line keeps one identity.
Entries = dict[str, dict[str, object]]


def fingerprint_of(stream_id: str) -> str:
    return stream_id.split(":")[3]


def saved_for(entries: Entries, dev: int, ino: int, mark: str) -> tuple[str, dict[str, object]] | None:
    """The checkpoint of this inode holding this content (the latest generation), if any."""
    prefix = f"file:{dev}:{ino}:{mark}:"
    found = [(sid, c) for sid, c in entries.items() if sid.startswith(prefix)]
    return max(found, key=lambda item: int(str(item[1]["generation"])), default=None)


def copied_from(entries: Entries, dev: int, ino: int, mark: str, busy: set[str]) -> tuple[str, int, int] | None:
    """For a file of another inode with content `mark` already checkpointed (a copy of a file read
    before): the original's stream id, its checkpointed offset and generation. Streams in `busy`
    (followed through another file) are not offered."""
    own = f"file:{dev}:{ino}:"
    found = [(sid, c) for sid, c in entries.items()
             if not sid.startswith(own) and sid not in busy and fingerprint_of(sid) == mark]
    if not found:
        return None
    sid, entry = max(found, key=lambda item: int(str(item[1]["generation"])))
    return sid, int(str(entry["offset"])), int(str(entry["generation"]))


def next_generation(entries: Entries, dev: int, ino: int) -> int:
    """The generation of new content in an inode: one past the last one checkpointed (a truncation the
    collector did not see, or saw but had not saved, gets the number it was, or would have been, given)."""
    prefix = f"file:{dev}:{ino}:"
    return 1 + max((int(str(c["generation"])) for sid, c in entries.items() if sid.startswith(prefix)), default=-1)
