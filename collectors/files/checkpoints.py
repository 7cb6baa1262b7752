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
